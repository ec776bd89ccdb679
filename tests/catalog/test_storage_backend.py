"""AppwriteStorage round trips through the real SDK and the emulator, and the id mapping."""

import os

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage, storages
from django.core.files.uploadedfile import SimpleUploadedFile, TemporaryUploadedFile

from catalog.appwrite import file_id_for_name, name_for_file
from catalog.exceptions import ImageNotFoundError
from catalog.models import Product
from catalog.storage import AppwriteStorage
from tests.support.appwrite_emulator import ID_PATTERN

SIX_MIB = 6 * 1024 * 1024


def test_file_ids_are_valid_deterministic_and_distinct_per_name():
    names = ["products/sku-1/ab12cd34-mug.jpg", "products/sku-1/ab12cd35-mug.jpg",
             "x" * 250 + ".jpg", "émoji/☕.png"]
    ids = [file_id_for_name(n) for n in names]
    assert all(ID_PATTERN.fullmatch(i) for i in ids)
    assert len(set(ids)) == len(names)
    assert file_id_for_name(names[0]) == file_id_for_name(names[0])


def test_names_round_trip_to_ids_for_django_and_foreign_files():
    name = "products/sku-1/ab12cd34-mug.jpg"
    file_id = file_id_for_name(name)
    assert name_for_file(file_id=file_id, folder="products/sku-1/", name="ab12cd34-mug.jpg") == name
    foreign = name_for_file(file_id="6a1f00aa", folder="photos/2026/", name="Pink.png")
    assert foreign == "appwrite/6a1f00aa/Pink.png"
    assert file_id_for_name(foreign) == "6a1f00aa"


def test_small_file_round_trips_with_readable_name_and_folder(appwrite_storage):
    name = default_storage.save("products/sku-1/mug.jpg", ContentFile(b"small bytes"))
    assert name == "products/sku-1/mug.jpg"
    stored = appwrite_storage.emulator.files(appwrite_storage.bucket_id)
    assert [(f["$id"], f["name"], f["folder"]) for f in stored] == [
        (file_id_for_name(name), "mug.jpg", "products/sku-1/")]
    assert default_storage.exists(name)
    assert default_storage.size(name) == len(b"small bytes")
    with default_storage.open(name) as handle:
        assert handle.read() == b"small bytes"


def test_large_file_uses_chunked_upload_and_round_trips(appwrite_storage, tmp_path):
    data = os.urandom(SIX_MIB)
    name = default_storage.save("big/blob.bin", ContentFile(data))
    with default_storage.open(name) as handle:
        assert handle.read() == data
    chunk_posts = appwrite_storage.emulator.requests_to(r"/files$", method="POST")
    assert len(chunk_posts) == 2  # 5 MiB + 1 MiB


def test_large_temporary_upload_streams_from_disk(appwrite_storage):
    data = os.urandom(SIX_MIB)
    upload = TemporaryUploadedFile("huge.bin", "application/octet-stream", len(data), None)
    upload.write(data)
    upload.flush()
    name = default_storage.save("big/huge.bin", upload)
    upload.close()
    stored = appwrite_storage.emulator.file_bytes(appwrite_storage.bucket_id,
                                                   file_id_for_name(name))
    assert stored == data
    assert appwrite_storage.emulator.files(appwrite_storage.bucket_id)[0]["name"] == "huge.bin"


def test_saving_a_taken_name_gets_a_new_name_and_keeps_the_old_file(appwrite_storage):
    first = default_storage.save("a/photo.jpg", ContentFile(b"one"))
    second = default_storage.save("a/photo.jpg", ContentFile(b"two"))
    assert first != second and second.startswith("a/photo_")
    assert default_storage.open(first).read() == b"one"
    assert default_storage.open(second).read() == b"two"


def test_delete_removes_the_file_and_tolerates_a_missing_one(appwrite_storage):
    name = default_storage.save("a/gone.jpg", ContentFile(b"x"))
    default_storage.delete(name)
    assert not default_storage.exists(name)
    default_storage.delete(name)  # no error
    assert appwrite_storage.emulator.files(appwrite_storage.bucket_id) == []


def test_missing_file_raises_image_not_found_naming_the_bucket(appwrite_storage):
    with pytest.raises(ImageNotFoundError) as caught:
        default_storage.open("products/nope/missing.jpg")
    assert "image products/nope/missing.jpg not found in bucket test-bucket" in str(caught.value)
    assert isinstance(caught.value, FileNotFoundError)


def test_listdir_shows_files_and_subfolders_across_pages(appwrite_storage):
    for i in range(105):  # seeded directly: 105 uploads over HTTP would only slow the test
        name = f"cat/f{i:03}.txt"
        appwrite_storage.emulator.add_file("test-bucket", b"x", name=name[4:], folder="cat",
                                           file_id=file_id_for_name(name))
    default_storage.save("cat/sub/deep.txt", ContentFile(b"y"))
    default_storage.save("other/z.txt", ContentFile(b"z"))
    dirs, files = default_storage.listdir("cat")
    assert dirs == ["sub"]
    assert len(files) == 105 and files[0] == "f000.txt"
    assert default_storage.listdir("") == (["cat", "other"], [])


def test_json_file_downloads_as_its_exact_bytes(appwrite_storage):
    raw = b'{"labels": ["b", "a"],   "x": 1}'
    name = default_storage.save("models/v1/contract.json", ContentFile(raw))
    assert default_storage.open(name).read() == raw


def test_models_alias_uses_its_own_bucket(appwrite_storage):
    models = storages["models"]
    assert isinstance(models, AppwriteStorage) and models.bucket_id == "test-models"
    name = models.save("v1/model.tflite", ContentFile(b"tflite"))
    assert appwrite_storage.emulator.file_bytes("test-models", file_id_for_name(name)) == b"tflite"
    assert appwrite_storage.emulator.files(appwrite_storage.bucket_id) == []


def test_storage_deconstructs_for_migrations():
    path, args, kwargs = AppwriteStorage(bucket_id="b1").deconstruct()
    assert path == "catalog.storage.AppwriteStorage" and kwargs == {"bucket_id": "b1"}


@pytest.mark.django_db
def test_product_image_field_saves_small_and_large_images_to_the_bucket(appwrite_storage):
    product = Product.objects.create(sku="sku-1", title="Mug")
    product.image.save("mug.jpg", SimpleUploadedFile("mug.jpg", b"jpegish"))
    big = os.urandom(SIX_MIB)
    other = Product.objects.create(sku="sku-2", title="Poster")
    other.image.save("poster.jpg", ContentFile(big))
    product.refresh_from_db()
    other.refresh_from_db()
    assert product.image.name.startswith("products/sku-1/") and product.image.name.endswith(
        "-mug.jpg")
    assert product.image.read() == b"jpegish"
    other.image.open()
    assert other.image.read() == big
    assert len(appwrite_storage.emulator.files(appwrite_storage.bucket_id)) == 2
