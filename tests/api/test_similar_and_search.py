"""GET /products/{id}/similar/ and POST /search/by-image/: shapes, visibility, errors, throttle."""

import io

import pytest
from django.conf import settings
from django.core.files.base import ContentFile

from catalog.models import Product
from classifier.models import ModelVersion
from classifier.services import classification_job_run_sync, similarity_index_refresh
from tests.api.conftest import store_tiny_model
from tests.support.pretrained import DEMO_IMAGES, photographed_again
from tests.support.tiny_model import solid_color_jpeg

SEARCH = "/api/v1/search/by-image/"


def similar_url(product, query="") -> str:
    return f"/api/v1/products/{product.pk}/similar/{query}"


@pytest.fixture
def embedded(catalog, active_model):
    """The API catalog plus a published cherry (red like the apple) and an unpublished ruby,
    all classified (so embedded); the index is built."""
    for sku, title, published in (("CHR-1", "Cherry", True), ("RUBY-1", "Ruby draft", False)):
        product = Product(sku=sku, title=title, is_published=published)
        product.image.save(f"{sku}.jpg", ContentFile(solid_color_jpeg((210, 25, 30))), save=False)
        product.save()
        catalog[title.split()[0].lower()] = product
    classification_job_run_sync(products=Product.objects.exclude(image=""))
    similarity_index_refresh()
    return catalog


def test_similar_lists_published_look_alikes_with_scores_without_itself(clients, embedded):
    response = clients["anonymous"].get(similar_url(embedded["apple"]))
    assert response.status_code == 200
    body = response.json()
    assert body["product"] == embedded["apple"].pk
    assert [r["product"]["sku"] for r in body["results"]] == ["CHR-1", "LEM-1"]
    first = body["results"][0]
    assert first["score"] > 0.99 > body["results"][1]["score"]
    assert set(first["product"]) == {"id", "sku", "title", "price", "category", "image_url",
                                     "thumbnail_url"}
    assert first["product"]["image_url"].startswith("http://testserver/")


def test_similar_honours_limit_and_refuses_a_bad_one_with_a_code(clients, embedded):
    one = clients["anonymous"].get(similar_url(embedded["apple"], "?limit=1")).json()
    assert [r["product"]["sku"] for r in one["results"]] == ["CHR-1"]
    for bad in ("0", "51", "many"):
        response = clients["anonymous"].get(similar_url(embedded["apple"], f"?limit={bad}"))
        assert response.status_code == 400 and response.json()["code"] == "invalid"
        assert "limit" in response.json()


def test_similar_of_unknown_or_unpublished_is_404_for_the_public(clients, embedded):
    for product in (embedded["ruby"], Product(pk=987_654)):
        response = clients["anonymous"].get(similar_url(product))
        assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert clients["anonymous"].get("/api/v1/products/99999999999999999999/similar/"
                                    ).status_code == 404
    # Staff who may view products see an unpublished one's look-alikes (published only).
    staff = clients["staff"].get(similar_url(embedded["ruby"])).json()
    assert [r["product"]["sku"] for r in staff["results"]][:2] == ["CHR-1", "APL-1"]


def test_similar_of_a_product_without_embedding_is_an_empty_list(clients, embedded):
    body = clients["anonymous"].get(similar_url(embedded["hammer"])).json()
    assert body == {"product": embedded["hammer"].pk, "results": []}


def test_similar_before_any_index_is_built_answers_from_the_stored_embeddings(clients, catalog,
                                                                              active_model):
    classification_job_run_sync(products=Product.objects.exclude(image=""))
    body = clients["anonymous"].get(similar_url(catalog["apple"])).json()
    assert [r["product"]["sku"] for r in body["results"]] == ["LEM-1"]


def test_search_by_image_returns_published_products_most_like_the_photo(clients, embedded):
    photo = io.BytesIO(solid_color_jpeg((225, 22, 18)))
    photo.name = "photo.jpg"
    response = clients["anonymous"].post(f"{SEARCH}?limit=2", {"image": photo},
                                         format="multipart")
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == 1
    assert {r["product"]["sku"] for r in body["results"]} == {"APL-1", "CHR-1"}
    assert all(r["score"] > 0.99 for r in body["results"])


@pytest.mark.parametrize("payload, code", [
    ({"image": ("notes.jpg", b"these are not pixels")}, "invalid_image"),
    ({}, "invalid"),
])
def test_search_by_image_refuses_what_is_not_an_image_with_a_code(clients, active_model,
                                                                   payload, code):
    files = {}
    for field, (name, data) in payload.items():
        files[field] = io.BytesIO(data)
        files[field].name = name
    response = clients["anonymous"].post(SEARCH, files, format="multipart")
    assert response.status_code == 400 and response.json()["code"] == code


def test_search_by_image_without_a_model_that_embeds_is_a_503_saying_what_to_do(clients, db):
    store_tiny_model(embedding=False)
    photo = io.BytesIO(solid_color_jpeg((225, 22, 18)))
    photo.name = "photo.jpg"
    response = clients["anonymous"].post(SEARCH, {"image": photo}, format="multipart")
    assert response.status_code == 503
    assert response.json()["code"] == "no_embedding_model"
    assert "pretrained backbone" in response.json()["detail"]
    ModelVersion.objects.update(is_active=False)
    photo.seek(0)
    response = clients["anonymous"].post(SEARCH, {"image": photo}, format="multipart")
    assert (response.status_code, response.json()["code"]) == (503, "no_active_model")


def test_search_by_image_over_the_limit_is_a_413(clients, active_model, settings):
    settings.API_MAX_UPLOAD_BYTES = 1000
    photo = io.BytesIO(solid_color_jpeg((1, 2, 3), size=(400, 400)) + b"\0" * 2000)
    photo.name = "big.jpg"
    response = clients["anonymous"].post(SEARCH, {"image": photo}, format="multipart")
    assert response.status_code == 413 and response.json()["code"] == "upload_too_large"


def test_an_anonymous_photo_that_would_decode_too_big_is_a_400_as_on_classify(
        clients, active_model, settings):
    from PIL import Image

    settings.CLASSIFY_ANON_MAX_PIXELS = 1_000_000
    buffer = io.BytesIO()
    Image.new("RGB", (1100, 1000), (200, 30, 30)).save(buffer, "PNG")

    def search(client):
        photo = io.BytesIO(buffer.getvalue())
        photo.name = "flat.png"
        return client.post(SEARCH, {"image": photo}, format="multipart")

    anonymous = search(clients["anonymous"])
    assert anonymous.status_code == 400 and anonymous.json()["code"] == "invalid_image"
    assert "may decode at most 1,000,000" in anonymous.json()["detail"]
    assert search(clients["staff"]).status_code == 200


def test_search_by_image_shares_the_classify_rate_limit(clients):
    allowed = int(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["classify_anon"].split("/")[0])
    codes = [clients["anonymous"].post("/api/v1/classify/", {}, format="json").status_code
             for _ in range(allowed - 1)]
    codes.append(clients["anonymous"].post(SEARCH, {}, format="multipart").status_code)
    throttled = clients["anonymous"].post(SEARCH, {}, format="multipart")
    assert codes == [400] * allowed
    assert throttled.status_code == 429 and throttled.json()["code"] == "throttled"
    assert clients["staff"].post(SEARCH, {}, format="multipart").status_code == 400


def test_schema_documents_both_endpoints_with_examples_and_error_codes(clients, db):
    schema = clients["anonymous"].get("/api/schema/?format=json").json()
    similar = schema["paths"]["/api/v1/products/{id}/similar/"]["get"]
    search = schema["paths"]["/api/v1/search/by-image/"]["post"]
    assert [p["name"] for p in similar["parameters"] if p["in"] == "query"] == ["limit"]
    assert "examples" in similar["responses"]["200"]["content"]["application/json"]
    assert set(similar["responses"]) == {"200", "400", "404"}
    assert set(search["responses"]) == {"200", "400", "413", "429", "503"}
    assert "multipart/form-data" in search["requestBody"]["content"]
    example = search["responses"]["200"]["content"]["application/json"]["examples"]
    assert next(iter(example.values()))["value"]["results"][0]["score"] == 0.93
    error = search["responses"]["503"]["content"]["application/json"]
    assert error["schema"]["$ref"].endswith("/Error")


@pytest.mark.slow
def test_search_by_photo_with_the_pretrained_model_finds_the_same_product_first(
        clients, pretrained_version):
    for sku, path in (("LEMON", "fruit/lemon-2.jpg"), ("GRAPES", "fruit/grapes-2.jpg"),
                      ("HAMMER", "tools/hammer-2.jpg")):
        product = Product(sku=sku, title=sku.title(), is_published=True)
        product.image.save(path.split("/")[1], ContentFile((DEMO_IMAGES / path).read_bytes()),
                           save=False)
        product.save()
    classification_job_run_sync(products=Product.objects.all())
    photo = io.BytesIO(photographed_again((DEMO_IMAGES / "fruit/lemon-2.jpg").read_bytes()))
    photo.name = "shopper.jpg"
    body = clients["anonymous"].post(SEARCH, {"image": photo}, format="multipart").json()
    assert [r["product"]["sku"] for r in body["results"]][0] == "LEMON"
    assert body["results"][0]["score"] > 0.92 > body["results"][1]["score"]
