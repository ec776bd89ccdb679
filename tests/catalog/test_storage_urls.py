"""Images served to the admin and API (proxy or direct URLs) and the classifier's fetch path."""

import io
from pathlib import Path

import pytest
import requests
from django.core.files.base import ContentFile
from PIL import Image

from catalog.exceptions import ImageNotFoundError
from catalog.models import Product
from catalog.storage import image_url, read_image_bytes, thumbnail_url

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "images"
LARGE_PHOTO = (FIXTURES / "large-photo.jpg").read_bytes()
RED = (FIXTURES / "red.jpg").read_bytes()

pytestmark = pytest.mark.django_db


def _product(sku: str, filename: str, data: bytes) -> Product:
    product = Product.objects.create(sku=sku, title=sku)
    product.image.save(filename, ContentFile(data))
    return product


def test_private_bucket_image_is_served_by_the_cached_proxy(appwrite_storage, client):
    product = _product("mug", "mug.jpg", RED)
    url = image_url(product.image)
    assert url == f"/media-proxy/{product.image.name}"
    response = client.get(url)
    assert response.status_code == 200
    assert response.content == RED and response["Content-Type"] == "image/jpeg"
    assert "max-age" in response["Cache-Control"] and response["ETag"]
    again = client.get(url, HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304


def test_private_bucket_thumbnail_is_a_webp_preview_of_the_asked_size(appwrite_storage, client):
    product = _product("photo", "photo.jpg", LARGE_PHOTO)
    url = thumbnail_url(product.image, size=160)
    assert url.endswith("?size=160")
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/webp"
    image = Image.open(io.BytesIO(response.content))
    assert image.format == "WEBP" and image.size == (160, 160)
    assert appwrite_storage.emulator.requests_to(r"/preview$")


def test_proxy_refuses_names_no_product_uses_and_missing_files(appwrite_storage, client):
    from django.core.files.storage import storages

    model_name = storages["default"].save("models/secret.tflite", ContentFile(b"weights"))
    assert client.get(f"/media-proxy/{model_name}").status_code == 404
    product = _product("gone", "gone.jpg", RED)
    storages["default"].delete(product.image.name)
    assert client.get(image_url(product.image)).status_code == 404
    assert client.get(f"{image_url(product.image)}?size=99999").status_code == 400


def test_public_bucket_urls_load_straight_from_appwrite_without_a_key(public_appwrite_storage):
    product = _product("pub", "pub.jpg", LARGE_PHOTO)
    url = image_url(product.image)
    assert url.startswith(public_appwrite_storage.endpoint) and "project=" in url
    original = requests.get(url, timeout=10)
    assert original.status_code == 200 and original.content == LARGE_PHOTO
    thumb = requests.get(thumbnail_url(product.image, size=96), timeout=10)
    assert thumb.status_code == 200 and thumb.headers["Content-Type"] == "image/webp"
    assert Image.open(io.BytesIO(thumb.content)).size == (96, 96)


def test_local_storage_urls_are_the_media_urls(local_storage):
    product = _product("local", "local.jpg", RED)
    assert image_url(product.image) == product.image.url
    assert thumbnail_url(product.image) == product.image.url
    assert read_image_bytes(product.image, preview_width=336) == RED
    assert image_url(Product(sku="none").image) == ""


def test_classifier_fetch_uses_a_preview_of_the_width_asked_for(appwrite_storage, settings):
    settings.APPWRITE = {**settings.APPWRITE, "CLASSIFY_FROM_PREVIEW": True}
    product = _product("big", "big.jpg", LARGE_PHOTO)
    data = read_image_bytes(product.image, preview_width=336)
    previews = appwrite_storage.emulator.requests_to(r"/preview$")
    assert len(previews) == 1 and previews[0].query["width"] == "336"
    assert len(data) < len(LARGE_PHOTO) / 4
    assert Image.open(io.BytesIO(data)).size == (336, 252)
    assert not appwrite_storage.emulator.requests_to(r"/download$")
    assert len(appwrite_storage.emulator.requests_to(r"/files/[^/]+$", method="GET")) >= 1


def test_classifier_fetch_reads_the_original_when_previews_are_off(appwrite_storage):
    product = _product("orig", "orig.jpg", LARGE_PHOTO)
    assert read_image_bytes(product.image, preview_width=336) == LARGE_PHOTO
    assert not appwrite_storage.emulator.requests_to(r"/preview$")


def test_classifier_fetch_of_a_non_image_returns_its_bytes_not_an_icon(appwrite_storage, settings):
    settings.APPWRITE = {**settings.APPWRITE, "CLASSIFY_FROM_PREVIEW": True}
    text = (FIXTURES / "text.jpg").read_bytes()
    product = _product("text", "text.jpg", text)
    assert read_image_bytes(product.image, preview_width=336) == text


@pytest.mark.parametrize("previews", [True, False])
def test_classifier_fetch_of_a_missing_file_raises_image_not_found(appwrite_storage, settings,
                                                                    previews):
    settings.APPWRITE = {**settings.APPWRITE, "CLASSIFY_FROM_PREVIEW": previews}
    with pytest.raises(ImageNotFoundError, match="not found in bucket test-bucket"):
        read_image_bytes("products/x/missing.jpg", preview_width=336)


def test_local_missing_file_raises_image_not_found(local_storage):
    with pytest.raises(ImageNotFoundError, match="not found in local media storage"):
        read_image_bytes("products/x/missing.jpg")


def test_admin_product_list_shows_thumbnails_that_load(appwrite_storage, admin_client):
    product = _product("listed", "listed.jpg", LARGE_PHOTO)
    page = admin_client.get("/admin/catalog/product/")
    url = thumbnail_url(product.image, size=96)
    assert page.status_code == 200 and url.replace("&", "&amp;") in page.content.decode()
    assert admin_client.get(url)["Content-Type"] == "image/webp"
