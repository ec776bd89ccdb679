"""`manage.py import_appwrite_bucket` on a bucket of a few hundred files, run twice."""

import io
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command

from catalog.models import Product
from tests.catalog.conftest import queued_products

RED = (Path(__file__).resolve().parents[1] / "fixtures" / "images" / "red.jpg").read_bytes()
IMAGES, NON_IMAGES = 200, 7

pytestmark = pytest.mark.django_db


@pytest.fixture
def filled_bucket(appwrite_storage):
    """200 console-uploaded images, 7 non-images, and one image a Django product already uses."""
    emu = appwrite_storage.emulator
    for i in range(IMAGES):
        emu.add_file("test-bucket", RED, name=f"item-{i:03}.jpg", folder="shop")
    for i in range(NON_IMAGES):
        emu.add_file("test-bucket", b"plain text %d" % i, name=f"notes-{i}.txt")
    product = Product.objects.create(sku="own-1", title="Own")
    product.image.save("own.jpg", ContentFile(RED))
    return appwrite_storage, product


def _import(*args: str) -> str:
    out = io.StringIO()
    call_command("import_appwrite_bucket", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_import_creates_one_product_per_image_and_a_second_run_changes_nothing(filled_bucket):
    first = _import()
    assert f"{IMAGES} created, 0 updated, 1 unchanged, {NON_IMAGES} skipped" in first
    assert Product.objects.count() == IMAGES + 1
    sample = Product.objects.get(title="Item 007")
    assert sample.image.name == f"appwrite/{sample.sku}/item-007.jpg"
    assert not sample.is_published and sample.image.read() == RED
    snapshot = list(Product.objects.order_by("pk").values())
    second = _import()
    assert f"0 created, 0 updated, {IMAGES + 1} unchanged, {NON_IMAGES} skipped" in second
    assert list(Product.objects.order_by("pk").values()) == snapshot


def test_dry_run_counts_without_writing(filled_bucket):
    out = _import("--dry-run")
    assert "Dry run" in out and f"{IMAGES + 1} created" in out
    assert Product.objects.count() == 1


def test_import_repairs_a_product_flagged_missing(filled_bucket):
    _, product = filled_bucket
    Product.objects.filter(pk=product.pk).update(image_missing=True)
    assert "1 updated" in _import()
    assert not Product.objects.get(pk=product.pk).image_missing


def test_classify_queues_one_job_for_what_the_import_changed(filled_bucket, active_model,
                                                             settings):
    settings.CLASSIFIER = {**settings.CLASSIFIER, "AUTO_CLASSIFY": False}
    out = _import("--classify")
    (ids,) = queued_products("import")
    assert sorted(ids) == sorted(Product.objects.exclude(sku="own-1").values_list("pk", flat=True))
    assert "queued for 200 product(s)" in out
    assert "nothing new to classify" in _import("--classify")
    assert len(queued_products("import")) == 1  # nothing new the second time


def test_with_auto_classify_on_each_imported_product_is_queued_once_and_classify_adds_none(
        filled_bucket, active_model, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        out = _import("--classify")
    assert "as it changed" in out and queued_products("import") == []
    assert len(queued_products()) == IMAGES  # one auto job per new image, none for "own-1"


def test_import_of_another_bucket_is_refused_with_the_fix(filled_bucket):
    with pytest.raises(CommandError, match="APPWRITE_BUCKET_ID=other"):
        _import("--bucket", "other")


def test_import_without_appwrite_configured_says_what_to_set(local_storage):
    with pytest.raises(CommandError, match="APPWRITE_"):
        _import()
