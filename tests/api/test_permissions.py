"""Who may call what: anonymous, a signed-in shopper, staff, and staff without the permission."""

import pytest

from classifier.models import ClassificationJob
from tests.support.tiny_model import solid_color_jpeg

ROLES = ("anonymous", "user", "staff", "staff_noperm")
READ_FOR_ALL = {"anonymous": 200, "user": 200, "staff": 200, "staff_noperm": 200}


def _staff_only(ok: int) -> dict[str, int]:
    return {"anonymous": 401, "user": 403, "staff": ok, "staff_noperm": 403}


def _new_product(ctx):
    return "post", "/api/v1/products/", {"sku": f"NEW-{ctx['role']}", "title": "New"}, "json"


def _job(ctx):
    job = ClassificationJob.objects.create(model_version=ctx["model"], total=3)
    return "get", f"/api/v1/classification-jobs/{job.pk}/", None, None


def _classify_image(ctx):
    return "post", "/api/v1/classify/", {"image": ctx["jpeg"]}, "multipart"


# (name, request builder, expected status per role)
MATRIX = [
    ("categories list", lambda c: ("get", "/api/v1/categories/", None, None), READ_FOR_ALL),
    ("category detail", lambda c: ("get", "/api/v1/categories/fruit/", None, None),
     READ_FOR_ALL),
    ("products list", lambda c: ("get", "/api/v1/products/", None, None), READ_FOR_ALL),
    ("product detail", lambda c: ("get", f"/api/v1/products/{c['apple'].pk}/", None, None),
     READ_FOR_ALL),
    ("product create", _new_product, _staff_only(201)),
    ("product update", lambda c: ("patch", f"/api/v1/products/{c['apple'].pk}/",
                                  {"title": "Green apple"}, "json"), _staff_only(200)),
    ("product classify", lambda c: ("post", f"/api/v1/products/{c['apple'].pk}/classify/",
                                    None, None), _staff_only(202)),
    ("jobs list", lambda c: ("get", "/api/v1/classification-jobs/", None, None),
     _staff_only(200)),
    ("job create", lambda c: ("post", "/api/v1/classification-jobs/", {"category": "fruit"},
                              "json"), _staff_only(202)),
    ("job detail", _job, _staff_only(200)),
    ("model versions list", lambda c: ("get", "/api/v1/model-versions/", None, None),
     _staff_only(200)),
    ("model version detail", lambda c: ("get", f"/api/v1/model-versions/{c['model'].pk}/",
                                        None, None), _staff_only(200)),
    ("model version activate", lambda c: ("post",
                                          f"/api/v1/model-versions/{c['model'].pk}/activate/",
                                          None, None), _staff_only(200)),
    ("training runs list", lambda c: ("get", "/api/v1/training-runs/", None, None),
     _staff_only(200)),
    ("training run create", lambda c: ("post", "/api/v1/training-runs/",
                                       {"options": {"epochs": 1}}, "json"), _staff_only(202)),
    ("classify image", _classify_image, READ_FOR_ALL),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("name", "build", "expected"), MATRIX, ids=[m[0] for m in MATRIX])
def test_each_role_gets_the_expected_status(clients, catalog, active_model, role, name, build,
                                            expected, tmp_path):
    ctx = {**catalog, "model": active_model, "role": role,
           "jpeg": _upload(tmp_path, solid_color_jpeg((250, 0, 0)))}
    method, url, body, fmt = build(ctx)
    response = getattr(clients[role], method)(url, body, format=fmt)
    assert response.status_code == expected[role], (name, role, response.content[:300])
    if response.status_code >= 400:
        assert "detail" in response.json()


def test_anonymous_does_not_see_unpublished_products(clients, catalog):
    response = clients["anonymous"].get(f"/api/v1/products/{catalog['draft'].pk}/")
    assert response.status_code == 404
    skus = {p["sku"] for p in clients["anonymous"].get("/api/v1/products/").json()["results"]}
    assert "DRF-1" not in skus and "APL-1" in skus


def test_staff_without_view_permission_sees_only_the_storefront(clients, catalog):
    rows = clients["staff_noperm"].get("/api/v1/products/").json()["results"]
    assert "DRF-1" not in {row["sku"] for row in rows}
    assert "review_status" not in rows[0]


def test_staff_see_unpublished_products_and_classifier_fields(clients, catalog):
    rows = clients["staff"].get("/api/v1/products/").json()["results"]
    by_sku = {row["sku"]: row for row in rows}
    assert by_sku["DRF-1"]["is_published"] is False
    assert by_sku["APL-1"]["review_status"] == "unclassified"
    assert by_sku["APL-1"]["image_name"].startswith("products/apl-1/")


def _upload(tmp_path, data: bytes, name: str = "image.jpg"):
    path = tmp_path / name
    path.write_bytes(data)
    return path.open("rb")
