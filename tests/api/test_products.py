"""Product and category reads: filters, search, tree counts, query counts, conditional GET."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from catalog.models import CategorySource, Product
from classifier.models import ClassificationJob
from tests.support.tiny_model import solid_color_jpeg


def _skus(response) -> set[str]:
    return {row["sku"] for row in response.json()["results"]}


def test_category_filter_includes_sub_categories(clients, catalog):
    anonymous = clients["anonymous"]
    assert _skus(anonymous.get("/api/v1/products/?category=fruit")) == {"APL-1", "LEM-1"}
    assert _skus(anonymous.get("/api/v1/products/?category=citrus")) == {"LEM-1"}
    assert _skus(anonymous.get("/api/v1/products/?category=tools")) == {"HAM-1"}


def test_search_matches_title_description_and_sku_prefix(clients, catalog):
    anonymous = clients["anonymous"]
    assert _skus(anonymous.get("/api/v1/products/?search=lemon")) == {"LEM-1"}
    assert _skus(anonymous.get("/api/v1/products/?search=fine hammer")) == {"HAM-1"}
    assert _skus(anonymous.get("/api/v1/products/?search=apl")) == {"APL-1"}
    assert _skus(anonymous.get("/api/v1/products/?search=secret")) == set()  # unpublished


def test_ordering_by_title_and_unknown_fields_are_ignored(clients, catalog):
    rows = clients["anonymous"].get("/api/v1/products/?ordering=title").json()["results"]
    assert [row["title"] for row in rows] == ["Apple", "Hammer", "Lemon"]
    assert clients["anonymous"].get("/api/v1/products/?ordering=secret_field").status_code == 200


def test_products_carry_category_and_absolute_image_urls(clients, catalog):
    row = clients["anonymous"].get(f"/api/v1/products/{catalog['lemon'].pk}/").json()
    assert row["category"] == {"name": "Citrus", "slug": "citrus", "parent": "fruit"}
    assert row["image_url"].startswith("http://testserver/media/products/lem-1/")
    assert row["thumbnail_url"].startswith("http://testserver/")
    hammer = clients["anonymous"].get(f"/api/v1/products/{catalog['hammer'].pk}/").json()
    assert hammer["image_url"] is None


def test_page_size_is_bounded(clients, catalog):
    body = clients["anonymous"].get("/api/v1/products/?page_size=1").json()
    assert len(body["results"]) == 1 and body["count"] == 3 and body["count_is_exact"] is True
    assert body["next"]
    body = clients["anonymous"].get("/api/v1/products/?page_size=100000").json()
    assert len(body["results"]) == 3


def test_category_tree_counts_published_products_including_children(clients, catalog):
    rows = clients["anonymous"].get("/api/v1/categories/").json()
    by_slug = {row["slug"]: row for row in rows}
    assert by_slug["fruit"]["product_count"] == 2  # apple + lemon (citrus); the draft is hidden
    assert by_slug["fruit"]["children"] == [
        {"name": "Citrus", "slug": "citrus", "position": 0, "product_count": 1}
    ]
    assert by_slug["citrus"]["parent"] == "fruit"
    detail = clients["anonymous"].get("/api/v1/categories/citrus/").json()
    assert detail["product_count"] == 1 and "description" in detail


def _bulk_products(count: int, category) -> None:
    Product.objects.bulk_create(
        Product(sku=f"BULK-{n}", title=f"Bulk {n}", is_published=True, category=category,
                category_source=CategorySource.PERSON, image=f"products/bulk/{n}.jpg")
        for n in range(count)
    )


@pytest.mark.parametrize("page_size", [5, 50])
def test_product_list_query_count_does_not_depend_on_page_size(
    clients, catalog, django_assert_num_queries, page_size,
):
    _bulk_products(60, catalog["citrus"])
    # capped count, one page query with categories joined
    with django_assert_num_queries(2):
        response = clients["anonymous"].get(
            f"/api/v1/products/?page_size={page_size}&category=fruit")
    assert len(response.json()["results"]) == page_size


@pytest.mark.parametrize("page_size", [5, 50])
def test_staff_product_list_query_count_does_not_depend_on_page_size(
    clients, catalog, django_assert_num_queries, page_size,
):
    _bulk_products(60, catalog["citrus"])
    # token, two permission lookups (user and group), count, page
    with django_assert_num_queries(5):
        response = clients["staff"].get(f"/api/v1/products/?page_size={page_size}")
    assert len(response.json()["results"]) == page_size
    assert "review_status" in response.json()["results"][0]


def test_category_list_query_count_is_constant(clients, catalog, django_assert_num_queries):
    with django_assert_num_queries(2):  # categories with counts, prefetched children
        clients["anonymous"].get("/api/v1/categories/")


def test_list_answers_if_none_match_with_304_until_the_catalog_changes(clients, catalog):
    anonymous = clients["anonymous"]
    first = anonymous.get("/api/v1/products/")
    etag = first["ETag"]
    assert "public" in first["Cache-Control"] and "Authorization" in first["Vary"]
    again = anonymous.get("/api/v1/products/", HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304 and again.content == b""
    Product.objects.filter(pk=catalog["apple"].pk).update(title="Red apple")
    changed = anonymous.get("/api/v1/products/", HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200 and changed["ETag"] != etag


def test_staff_responses_are_private(clients, catalog):
    response = clients["staff"].get("/api/v1/products/")
    assert "private" in response["Cache-Control"]


def test_staff_create_with_image_stores_it_and_requests_classification(
        clients, catalog, active_model, django_capture_on_commit_callbacks):
    upload = SimpleUploadedFile("kiwi.jpg", solid_color_jpeg((0, 180, 0)), "image/jpeg")
    with django_capture_on_commit_callbacks(execute=True):
        response = clients["staff"].post(
            "/api/v1/products/",
            {"sku": "KIW-1", "title": "Kiwi", "category": "fruit", "image": upload},
            format="multipart",
        )
    assert response.status_code == 201, response.content
    body = response.json()
    product = Product.objects.get(sku="KIW-1")
    assert body["image_name"] == product.image.name and product.image.storage.exists(
        product.image.name)
    assert product.category_source == CategorySource.PERSON
    # One automatic job for the new image (the save signal and the view's call enqueue once).
    assert list(ClassificationJob.objects.values_list("scope", "total")) == [
        ("auto: new image of KIW-1", 1)]


def test_staff_update_changes_fields_and_category_as_a_person(
        clients, catalog, active_model, django_capture_on_commit_callbacks):
    url = f"/api/v1/products/{catalog['hammer'].pk}/"
    with django_capture_on_commit_callbacks(execute=True):
        response = clients["staff"].patch(url, {"price": "9.50", "category": "fruit"},
                                          format="json")
    assert response.status_code == 200, response.content
    hammer = Product.objects.get(pk=catalog["hammer"].pk)
    assert str(hammer.price) == "9.50" and hammer.category == catalog["fruit"]
    assert not ClassificationJob.objects.exists()  # no new image, nothing to classify


def test_duplicate_sku_is_a_400_with_the_field(clients, catalog):
    response = clients["staff"].post("/api/v1/products/", {"sku": "APL-1", "title": "Again"},
                                     format="json")
    assert response.status_code == 400 and "sku" in response.json()


def test_a_broker_that_refuses_the_auto_job_does_not_undo_a_committed_product(
        transactional_db, active_model, settings, monkeypatch, caplog):
    """The classification request runs after the commit; when it cannot be enqueued (Redis down,
    database locked) the product and its uploaded file stay, and the failure is logged."""
    import django_q.tasks
    from django.core.files.base import ContentFile

    from catalog.services import product_create

    settings.CLASSIFIER = {**settings.CLASSIFIER, "AUTO_CLASSIFY": True}

    def broker_down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(django_q.tasks, "async_task", broker_down)
    product = product_create(sku="KIW-2", title="Kiwi",
                             image=ContentFile(solid_color_jpeg((0, 180, 0)), name="kiwi.jpg"))
    stored = Product.objects.get(sku="KIW-2")
    assert stored.image.name == product.image.name
    assert stored.image.storage.exists(stored.image.name)
    assert "broker unreachable" in caplog.text
