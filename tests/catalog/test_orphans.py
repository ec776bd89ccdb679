"""No orphan files: a failed upload or save cleans up, and sweep_orphan_files finds the rest."""

import io
import os
import time

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import DatabaseError

from catalog import appwrite, services
from catalog.exceptions import StorageUnavailableError
from catalog.models import Product
from tests.support.database import refuse_inserts_titled
from tests.support.tiny_model import solid_color_jpeg

RED = solid_color_jpeg((220, 20, 20))
CREATE_FILE = r"/buckets/test-bucket/files$"

pytestmark = pytest.mark.django_db


def _bucket_names(emulator) -> list[str]:
    return sorted(f["name"] for f in emulator.files("test-bucket"))


def _sweep(*args: str) -> str:
    out = io.StringIO()
    call_command("sweep_orphan_files", *args, stdout=out)
    return out.getvalue()


def test_an_upload_whose_answer_was_lost_and_that_gave_up_leaves_no_file(appwrite_storage):
    emu = appwrite_storage.emulator
    emu.inject("POST", CREATE_FILE, truncate=5, times=1)  # stored, but the answer is cut off
    emu.inject("POST", CREATE_FILE, status=503, times=None)  # then every retry fails

    with pytest.raises(StorageUnavailableError):
        default_storage.save("products/p/photo.jpg", ContentFile(RED))

    assert len(emu.requests_to(CREATE_FILE, "POST")) == 3
    assert _bucket_names(emu) == []


def test_a_request_deadline_cuts_retries_short(appwrite_storage, settings):
    settings.APPWRITE = {**settings.APPWRITE, "MAX_RETRIES": 10}
    emu = appwrite_storage.emulator
    emu.inject("POST", CREATE_FILE, status=503, times=None)

    with appwrite.deadline(1.0), pytest.raises(StorageUnavailableError) as caught:
        default_storage.save("products/p/photo.jpg", ContentFile(RED))

    attempts = len(emu.requests_to(CREATE_FILE, "POST"))
    assert attempts < 11 and f"after {attempts} attempts" in str(caught.value)


@pytest.mark.parametrize("storage", ["local", "appwrite"])
def test_a_product_save_that_fails_after_the_upload_deletes_the_uploaded_file(
        request, settings, storage):
    emu = request.getfixturevalue("appwrite_storage").emulator if storage == "appwrite" else None
    if emu is None:
        request.getfixturevalue("local_storage")
    kept = services.product_create(sku="KEPT", title="Kept",
                                   image=SimpleUploadedFile("kiwi.jpg", RED)).image.name
    refuse_inserts_titled("Refused")

    with pytest.raises(DatabaseError):  # validated, uploaded, then the INSERT fails
        services.product_create(sku="NEW-1", title="Refused",
                                image=SimpleUploadedFile("kiwi.jpg", RED))

    assert not Product.objects.filter(sku="NEW-1").exists()
    if emu is not None:
        assert _bucket_names(emu) == [kept.rsplit("/", 1)[1]]
    else:
        media = settings.MEDIA_ROOT
        assert [os.path.relpath(os.path.join(d, f), media)
                for d, _, files in os.walk(media) for f in files] == [kept]


def test_sweep_lists_then_deletes_only_old_unreferenced_files_django_stored(appwrite_storage):
    emu = appwrite_storage.emulator
    product = Product.objects.create(sku="KEEP", title="Kept")
    product.image.save("kept.jpg", ContentFile(RED))
    orphan = default_storage.save("products/gone/orphan.jpg", ContentFile(RED))
    emu.add_file("test-bucket", RED, name="console.jpg", file_id="console-1")  # not Django's

    assert "Found (dry run; --delete removes them) 0" in _sweep()  # everything is young
    listed = _sweep("--older-than", "0")
    assert orphan in listed and "Found (dry run" in listed and "1 orphan" in listed
    assert len(emu.files("test-bucket")) == 3  # a dry run deletes nothing

    assert "Deleted 1 orphan file(s)" in _sweep("--older-than", "0", "--delete")
    assert not default_storage.exists(orphan) and default_storage.exists(product.image.name)
    assert emu.file_bytes("test-bucket", "console-1") == RED


def test_sweep_on_local_files_uses_their_age(local_storage, settings):
    product = Product.objects.create(sku="KEEP", title="Kept")
    product.image.save("kept.jpg", ContentFile(RED))
    old = default_storage.save("products/gone/old.jpg", ContentFile(RED))
    young = default_storage.save("products/gone/young.jpg", ContentFile(RED))
    elsewhere = default_storage.save("exports/report.csv", ContentFile(b"sku\n"))
    two_hours_ago = time.time() - 7200
    os.utime(default_storage.path(old), (two_hours_ago, two_hours_ago))

    _sweep("--delete")

    assert not default_storage.exists(old)
    assert all(default_storage.exists(n) for n in (young, elsewhere, product.image.name))
