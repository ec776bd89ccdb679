"""Uploads are checked (400 for bad images, 413 over the limit) and /classify/ answers top-k."""

import io
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from catalog.models import Product

IMAGES = Path(__file__).resolve().parents[1] / "fixtures" / "images"


def _file(name: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, (IMAGES / name).read_bytes(), "image/jpeg")


def _create(client, image):
    return client.post("/api/v1/products/", {"sku": "UP-1", "title": "Upload", "image": image},
                       format="multipart")


@pytest.mark.parametrize("name", ["text.jpg", "truncated.jpg", "pixel-bomb.png",
                                  "zero-bytes.jpg"])
def test_bad_image_upload_is_a_400_with_a_message_and_no_product(clients, name):
    response = _create(clients["staff"], _file(name))
    assert response.status_code == 400, response.content
    assert response.json()["image"][0]  # a message about the image field
    assert not Product.objects.filter(sku="UP-1").exists()


def test_odd_but_valid_images_are_accepted(clients):
    response = _create(clients["staff"], _file("jpeg-named.png"))
    assert response.status_code == 201, response.content


def test_upload_over_the_limit_is_a_413_before_reading_it(clients, settings):
    settings.API_MAX_UPLOAD_BYTES = 100_000  # large-photo.jpg is ~490 KB
    response = _create(clients["staff"], _file("large-photo.jpg"))
    assert response.status_code == 413
    assert "limit is 100,000 bytes" in response.json()["detail"]


def test_upload_just_over_the_limit_is_a_413_from_the_field_check(clients, settings):
    size = (IMAGES / "large-photo.jpg").stat().st_size
    settings.API_MAX_UPLOAD_BYTES = size - 1  # inside the multipart allowance, over the limit
    response = _create(clients["staff"], _file("large-photo.jpg"))
    assert response.status_code == 413
    assert f"{size:,} bytes" in response.json()["detail"]


@pytest.mark.parametrize(("name", "label"), [("red.jpg", "red"), ("green.jpg", "green"),
                                             ("blue.jpg", "blue")])
def test_classify_returns_the_top_k_for_solid_colours(clients, active_model, name, label):
    response = clients["anonymous"].post("/api/v1/classify/", {"image": _file(name)},
                                         format="multipart")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["label"] == label and body["confidence"] > 0.9
    assert [item["label"] for item in body["top_k"]][0] == label
    assert len(body["top_k"]) == settings.CLASSIFIER["TOP_K"]
    assert body["model_version"] == active_model.number


def test_classify_by_storage_name_of_a_product_image(clients, catalog, active_model):
    response = clients["anonymous"].post(
        "/api/v1/classify/", {"image_name": catalog["apple"].image.name}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["label"] == "red"


@pytest.mark.parametrize("name", ["../secret.txt", "models/tiny.tflite", "products/missing.jpg",
                                  "products/../models/tiny.tflite"])
def test_classify_refuses_names_that_are_not_stored_product_images(clients, active_model, name):
    response = clients["anonymous"].post("/api/v1/classify/", {"image_name": name}, format="json")
    assert response.status_code == 400
    assert "image_name" in response.json()


def test_classify_without_an_active_model_is_a_503_saying_what_to_do(clients):
    response = clients["anonymous"].post("/api/v1/classify/", {"image": _file("red.jpg")},
                                         format="multipart")
    assert response.status_code == 503
    assert response.json()["code"] == "no_active_model"
    assert "activate" in response.json()["detail"]


@pytest.mark.parametrize("name", ["text.jpg", "truncated.jpg", "pixel-bomb.png"])
def test_classify_bad_image_is_a_400(clients, active_model, name):
    response = clients["anonymous"].post("/api/v1/classify/", {"image": _file(name)},
                                         format="multipart")
    assert response.status_code == 400, response.content
    assert response.json()["detail"]


def test_classify_needs_exactly_one_input(clients, active_model):
    response = clients["anonymous"].post("/api/v1/classify/", {}, format="json")
    assert response.status_code == 400


def test_classify_over_the_limit_is_a_413(clients, active_model, settings):
    settings.API_MAX_UPLOAD_BYTES = 100_000
    response = clients["anonymous"].post("/api/v1/classify/", {"image": _file("large-photo.jpg")},
                                         format="multipart")
    assert response.status_code == 413


def test_anonymous_classify_is_throttled_at_the_configured_rate(clients):
    allowed = int(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["classify_anon"].split("/")[0])
    codes = [clients["anonymous"].post("/api/v1/classify/", {}, format="json").status_code
             for _ in range(allowed + 1)]
    assert codes[:allowed] == [400] * allowed
    assert codes[-1] == 429
    # Staff are not throttled by the anonymous rate.
    assert clients["staff"].post("/api/v1/classify/", {}, format="json").status_code == 400

def _flat_png(width: int, height: int) -> SimpleUploadedFile:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, "PNG")
    return SimpleUploadedFile("flat.png", buffer.getvalue(), content_type="image/png")


def _big_photo(width: int, height: int) -> SimpleUploadedFile:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, "JPEG", quality=80)
    return SimpleUploadedFile("photo.jpg", buffer.getvalue(), content_type="image/jpeg")


def test_an_anonymous_image_that_would_decode_too_big_is_a_400_before_decoding(
        clients, active_model, settings):
    settings.CLASSIFY_ANON_MAX_PIXELS = 1_000_000
    too_big = clients["anonymous"].post("/api/v1/classify/", {"image": _flat_png(1100, 1000)},
                                        format="multipart")
    assert too_big.status_code == 400 and too_big.json()["code"] == "invalid_image"
    assert "may decode at most 1,000,000" in too_big.json()["detail"]
    # Staff are held to the general limit only; a big JPEG decodes small (draft), so it passes.
    staff = clients["staff"].post("/api/v1/classify/", {"image": _flat_png(1100, 1000)},
                                  format="multipart")
    photo = clients["anonymous"].post("/api/v1/classify/", {"image": _big_photo(3000, 2000)},
                                      format="multipart")
    assert (staff.status_code, photo.status_code) == (200, 200)
    assert photo.json()["label"] == "red"


def test_the_client_address_comes_from_trusted_proxies_only(clients, settings):
    allowed = int(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["classify_anon"].split("/")[0])

    def calls(forwarded_for: str) -> list[int]:
        return [clients["anonymous"].post("/api/v1/classify/", {}, format="json",
                                          HTTP_X_FORWARDED_FOR=forwarded_for).status_code
                for _ in range(allowed + 1)]

    # No proxy configured (the default): X-Forwarded-For is ignored, REMOTE_ADDR is counted.
    assert calls("198.51.100.1").count(429) == 1
    assert calls("198.51.100.2")[0] == 429
    # One trusted proxy: the address it appended is the client; each has its own budget.
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    assert calls("6.6.6.6, 198.51.100.3").count(429) == 1
    assert calls("7.7.7.7, 198.51.100.4").count(429) == 1
    assert calls("8.8.8.8, 198.51.100.4")[0] == 429  # a forged first hop changes nothing


def test_nul_characters_in_a_category_slug_or_search_are_a_400_or_ignored_never_a_500(clients):
    # Found by the schema fuzzer on PostgreSQL, which refuses NUL in any query parameter.
    response = clients["staff"].post("/api/v1/products/",
                                     {"sku": "NUL-1", "title": "t", "category": "fr\x00uit"},
                                     format="json")
    assert response.status_code == 400, response.content
    assert "category" in str(response.json()), response.json()
    searched = clients["anonymous"].get("/api/v1/products/", {"search": "a\x00"})
    assert searched.status_code in (200, 400), searched.content
