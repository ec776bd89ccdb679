"""Every API error body carries a machine-readable ``code`` beside its message."""

import pytest
from django.conf import settings

from catalog.models import Category


def test_unauthenticated_write_is_a_401_with_a_code(clients):
    response = clients["anonymous"].post("/api/v1/products/", {"sku": "X", "title": "x"},
                                         format="json")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated" and response.json()["detail"]


def test_bad_token_is_a_401_with_a_code(clients):
    clients["anonymous"].credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    response = clients["anonymous"].get("/api/v1/classification-jobs/")
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


def test_throttled_classify_is_a_429_with_a_code(clients):
    allowed = int(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["classify_anon"].split("/")[0])
    for _ in range(allowed):
        clients["anonymous"].post("/api/v1/classify/", {}, format="json")
    response = clients["anonymous"].post("/api/v1/classify/", {}, format="json")
    assert response.status_code == 429
    assert response.json()["code"] == "throttled" and "available in" in response.json()["detail"]


@pytest.mark.parametrize(("role", "method", "url", "status", "code"), [
    ("staff_noperm", "post", "/api/v1/classification-jobs/", 403, "permission_denied"),
    ("anonymous", "get", "/api/v1/products/999999/", 404, "not_found"),
    ("staff", "delete", "/api/v1/classify/", 405, "method_not_allowed"),
])
def test_other_client_errors_carry_their_code(clients, role, method, url, status, code):
    response = getattr(clients[role], method)(url, {}, format="json")
    assert response.status_code == status
    assert response.json()["code"] == code


def test_field_errors_keep_their_shape_and_say_invalid(clients):
    response = clients["staff"].post("/api/v1/products/", {"title": "No SKU"}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid" and "sku" in body and isinstance(body["sku"], list)


def test_every_category_count_is_an_integer_including_empty_children(clients, catalog):
    Category.objects.create(name="Empty", slug="empty", parent=catalog["fruit"])
    rows = clients["anonymous"].get("/api/v1/categories/").json()
    counts = [row["product_count"] for row in rows]
    counts += [child["product_count"] for row in rows for child in row["children"]]
    assert all(isinstance(count, int) for count in counts), rows
    empty = next(c for row in rows for c in row["children"] if c["slug"] == "empty")
    assert empty["product_count"] == 0
