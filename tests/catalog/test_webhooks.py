"""Appwrite webhook deliveries (real ones, from the emulator to a live server) and their effect."""

from pathlib import Path

import pytest
import requests
from appwrite.input_file import InputFile

from catalog.models import Product
from tests.catalog.conftest import queued_products
from tests.support.appwrite_fixtures import appwrite_storage_client

RED = (Path(__file__).resolve().parents[1] / "fixtures" / "images" / "red.jpg").read_bytes()
SECRET = "webhook-secret-for-tests"
EVENTS = [f"buckets.test-bucket.files.*.{action}" for action in ("create", "update", "delete")]


@pytest.fixture
def hooked(appwrite_storage, live_server, settings, active_model):
    """The emulator delivers file events of test-bucket to the live site's webhook URL.

    Returns the bucket, an SDK client and ``queued_products`` (what auto-classification queued).
    """
    url = f"{live_server.url}/webhooks/appwrite/"
    settings.APPWRITE = {**settings.APPWRITE, "WEBHOOK_SECRET": SECRET, "WEBHOOK_URL": url,
                         "WEBHOOK_CREATES_PRODUCTS": True}
    settings.CLASSIFIER = {**settings.CLASSIFIER, "AUTO_CLASSIFY": True}
    appwrite_storage.emulator.add_webhook(url, EVENTS, secret=SECRET)
    sdk = appwrite_storage_client(appwrite_storage)
    return appwrite_storage, sdk, queued_products


def _upload(sdk, file_id="console-1", name="red-mug.jpg", data=RED):
    sdk.create_file("test-bucket", file_id, InputFile.from_bytes(data, name), folder="uploads")


def _deliveries(emu, count):
    deliveries = emu.wait_for_deliveries()
    assert len(deliveries) == count
    return deliveries


def _redeliver(delivery):
    return requests.post(delivery.url, data=delivery.body, headers=delivery.headers, timeout=10)


def test_create_makes_a_draft_product_and_queues_its_classification(hooked):
    bucket, sdk, calls = hooked
    _upload(sdk)
    (delivery,) = _deliveries(bucket.emulator, 1)
    assert delivery.status == 200
    product = Product.objects.get()
    assert (product.sku, product.title, product.is_published) == ("console-1", "Red mug", False)
    assert product.image.name == "appwrite/console-1/red-mug.jpg"
    assert product.image.read() == RED
    assert calls() == [[product.pk]]


def test_redelivered_create_changes_nothing(hooked):
    bucket, sdk, calls = hooked
    _upload(sdk)
    (delivery,) = _deliveries(bucket.emulator, 1)
    before = Product.objects.values().get()
    assert _redeliver(delivery).status_code == 200
    assert Product.objects.values().get() == before
    assert len(calls()) == 1


def test_create_without_product_creation_links_nothing(hooked, settings):
    bucket, sdk, calls = hooked
    settings.APPWRITE = {**settings.APPWRITE, "WEBHOOK_CREATES_PRODUCTS": False}
    _upload(sdk)
    assert _deliveries(bucket.emulator, 1)[0].status == 200
    assert not Product.objects.exists() and calls() == []


def test_create_of_a_non_image_is_ignored(hooked):
    bucket, sdk, calls = hooked
    _upload(sdk, name="manual.txt", data=b"not an image at all")
    assert _deliveries(bucket.emulator, 1)[0].status == 200
    assert not Product.objects.exists() and calls() == []


def test_update_reclassifies_and_follows_a_rename_and_an_older_rename_changes_nothing(hooked):
    bucket, sdk, calls = hooked
    _upload(sdk)
    _deliveries(bucket.emulator, 1)
    sdk.update_file("test-bucket", "console-1", name="blue-mug.jpg")
    _deliveries(bucket.emulator, 2)
    product = Product.objects.get()
    assert product.image.name == "appwrite/console-1/blue-mug.jpg"
    assert calls() == [[product.pk], [product.pk]]
    sdk.update_file("test-bucket", "console-1", name="green-mug.jpg")
    deliveries = _deliveries(bucket.emulator, 3)
    assert _redeliver(deliveries[1]).json()["outcome"] == "unchanged"  # the rename to blue, late
    assert Product.objects.get().image.name == "appwrite/console-1/green-mug.jpg"
    assert len(calls()) == 3


def test_delete_marks_the_image_missing_and_keeps_the_product(hooked):
    bucket, sdk, calls = hooked
    _upload(sdk)
    _deliveries(bucket.emulator, 1)
    sdk.delete_file("test-bucket", "console-1")
    deliveries = _deliveries(bucket.emulator, 2)
    product = Product.objects.get()
    assert product.image_missing and product.image.name == "appwrite/console-1/red-mug.jpg"
    assert _redeliver(deliveries[1]).status_code == 200  # redelivered delete: still one product
    assert Product.objects.get().image_missing


def test_re_upload_after_delete_clears_missing_and_classifies_and_a_late_delete_is_ignored(
        hooked):
    bucket, sdk, calls = hooked
    _upload(sdk)
    _deliveries(bucket.emulator, 1)
    sdk.delete_file("test-bucket", "console-1")
    _deliveries(bucket.emulator, 2)
    _upload(sdk)
    deliveries = _deliveries(bucket.emulator, 3)
    assert not Product.objects.get().image_missing
    assert len(calls()) == 2
    answer = _redeliver(deliveries[1])  # the delete, delivered again after the re-upload
    assert "exists again" in answer.json()["outcome"]
    assert not Product.objects.get().image_missing


def test_upload_through_django_is_linked_without_a_second_classification(hooked):
    bucket, sdk, calls = hooked
    from django.core.files.base import ContentFile

    product = Product.objects.create(sku="sku-9", title="Kettle")
    product.image.save("kettle.jpg", ContentFile(RED))  # the event may beat the row's save
    assert _deliveries(bucket.emulator, 1)[0].status == 200
    assert Product.objects.get().image.name == product.image.name  # no draft duplicate
    assert len(calls()) == 1  # queued once, by the save that stored the image


def test_a_product_saved_by_the_catalog_service_is_classified_once_despite_its_event(hooked):
    """product_create stamps image_updated_at before the upload, so the file's Appwrite times are
    later: the event must still not count as newer bytes (that was a second classification of
    every upload made through the admin, the API or an import)."""
    bucket, sdk, calls = hooked
    from django.core.files.base import ContentFile

    from catalog.services import product_create

    product = product_create(sku="sku-10", title="Kettle",
                             image=ContentFile(RED, name="kettle.jpg"))
    assert _deliveries(bucket.emulator, 1)[0].status == 200
    assert Product.objects.get().image.name == product.image.name
    assert len(calls()) == 1


def test_a_wrongly_signed_delivery_is_refused_and_changes_nothing(hooked, settings):
    bucket, sdk, calls = hooked
    settings.APPWRITE = {**settings.APPWRITE, "WEBHOOK_SECRET": "not-the-registered-secret"}
    _upload(sdk)
    (delivery,) = _deliveries(bucket.emulator, 1)
    assert delivery.status == 403
    assert not Product.objects.exists() and calls() == []


def test_an_unsigned_delivery_is_refused_and_changes_nothing(hooked):
    bucket, sdk, calls = hooked
    _upload(sdk)
    (delivery,) = _deliveries(bucket.emulator, 1)
    Product.objects.all().delete()
    headers = {k: v for k, v in delivery.headers.items() if k != "X-Appwrite-Webhook-Signature"}
    answer = requests.post(delivery.url, data=delivery.body, headers=headers, timeout=10)
    assert answer.status_code == 401
    tampered = requests.post(delivery.url, data=delivery.body.replace(b"red", b"rex"),
                             headers=delivery.headers, timeout=10)
    assert tampered.status_code == 403
    assert not Product.objects.exists()


def test_webhook_accepts_only_post(hooked, client):
    assert client.get("/webhooks/appwrite/").status_code == 405


# --- order safety: late, replayed and out-of-order deliveries ---------------------------------


def test_a_create_replayed_after_the_delete_does_not_resurrect_the_image(hooked):
    bucket, sdk, calls = hooked
    _upload(sdk)
    _deliveries(bucket.emulator, 1)
    sdk.delete_file("test-bucket", "console-1")
    create, _ = _deliveries(bucket.emulator, 2)
    answer = _redeliver(create)
    assert answer.status_code == 200 and answer.json()["outcome"].startswith("file gone")
    product = Product.objects.get()
    assert product.image_missing
    assert len(calls()) == 1  # only the original create was classified


def test_a_delivery_while_appwrite_is_unreachable_is_a_503_so_appwrite_redelivers(hooked):
    bucket, sdk, calls = hooked
    _upload(sdk)
    (delivery,) = _deliveries(bucket.emulator, 1)
    bucket.emulator.inject("GET", r"/files/console-1$", status=503, times=None)
    assert _redeliver(delivery).status_code == 503
