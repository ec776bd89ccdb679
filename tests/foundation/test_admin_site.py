"""The admin site: the index dashboard, app order, and "View site" landing on the storefront."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from catalog.models import Category, CategorySource, Product, ReviewStatus
from classifier.models import ClassificationJob, JobStatus, ModelVersion
from tests.support.model_metrics import calibrated_metrics
from training.models import TrainingRun, TrainingStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop():
    """Two products to review, two auto-filled (one this week), an active calibrated model,
    one queued classification job and one running training run."""
    tools = Category.objects.create(name="Tools", slug="tools")
    for n in range(2):
        Product.objects.create(sku=f"R{n}", title="r", review_status=ReviewStatus.NEEDS_REVIEW)
    now = timezone.now()
    for sku, when in (("NEW", now - timedelta(days=1)), ("OLD", now - timedelta(days=8))):
        Product.objects.create(sku=sku, title=sku, category=tools, category_set_at=when,
                               category_source=CategorySource.CLASSIFIER,
                               review_status=ReviewStatus.CLASSIFIED)
    model = ModelVersion.objects.create(
        number=1, name="demo", labels=["tools"], input_contract={}, architecture="cnn",
        checksum="0" * 64, file="models/x.tflite", is_active=True,
        metrics=calibrated_metrics(["tools"]))
    ClassificationJob.objects.create(model_version=model, status=JobStatus.QUEUED, total=3)
    TrainingRun.objects.create(status=TrainingStatus.RUNNING)
    return model


def tiles(html: str) -> str:
    return html.split('class="dashboard-tiles"', 1)[1].split("</section>", 1)[0]


def test_dashboard_counts_what_needs_a_person_and_links_each_list(admin_client, shop):
    html = tiles(admin_client.get(reverse("admin:index")).content.decode())

    assert "Needs review" in html and ">2<" in html
    assert reverse("admin:catalog_product_review") in html
    # Filled automatically in the last 7 days: NEW, not OLD.
    assert "Filled automatically" in html and ">1<" in html
    assert "category_source__exact=classifier&amp;category_set_at__gte=" in html
    assert "Active model: v1 demo" in html and "80.0% accurate, auto-fill 96% right" in html
    assert reverse("admin:classifier_modelversion_change", args=[shop.pk]) in html
    assert "1 classification job, 1 training run queued or running" in html
    assert "status__in=queued%2Crunning" in html


def test_the_auto_filled_link_lists_exactly_the_counted_products(admin_client, shop):
    html = tiles(admin_client.get(reverse("admin:index")).content.decode())
    href = html.split('href="', 3)[2].split('"', 1)[0].replace("&amp;", "&")

    listed = admin_client.get(href)

    assert listed.status_code == 200
    body = listed.content.decode()
    assert ">NEW<" in body and ">OLD<" not in body and "1 product" in body


def test_dashboard_without_permissions_shows_counts_but_no_links(client, django_user_model,
                                                                  shop):
    user = django_user_model.objects.create_user("clerk", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_category"))
    client.force_login(user)

    html = tiles(client.get(reverse("admin:index")).content.decode())

    assert "Needs review" in html and "href" not in html


def test_dashboard_for_a_version_without_auto_fill_metrics(admin_client, shop):
    ModelVersion.objects.filter(pk=shop.pk).update(metrics={"accuracy": 0.5})
    html = tiles(admin_client.get(reverse("admin:index")).content.decode())
    assert "50.0% accurate" in html and "not measured" in html


def test_shop_apps_come_first_on_the_index(admin_client):
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert html.index("app-catalog") < html.index("app-classifier") < html.index("app-auth")


def test_view_site_is_the_storefront_of_published_products(admin_client, client):
    tools = Category.objects.create(name="Tools", slug="tools")
    Product.objects.create(sku="PUB", title="Published hammer", is_published=True,
                           category=tools, category_source=CategorySource.PERSON)
    Product.objects.create(sku="DRAFT", title="Draft saw", category=tools,
                           category_source=CategorySource.PERSON)

    index = admin_client.get(reverse("admin:index")).content.decode()
    assert 'href="/"' in index  # the admin's "View site"
    page = client.get("/")

    assert page.status_code == 200
    html = page.content.decode()
    assert "Published hammer" in html and "Draft saw" not in html
    assert reverse("api-docs") in html
    assert "Published hammer" not in client.get("/", {"category": "other"}).content.decode()
    assert client.get("/", {"category": "to\x00ols"}).status_code == 200  # NUL: no 500


# --- automatic retraining and drift on the dashboard ------------------------------------------


def test_review_tile_says_when_the_next_automatic_retrain_happens(admin_client, shop, settings):
    settings.CLASSIFIER = {**settings.CLASSIFIER, "RETRAIN_AFTER_LABELS": 50}
    TrainingRun.objects.all().delete()
    html = tiles(admin_client.get(reverse("admin:index")).content.decode())
    assert "The next automatic retrain starts after 50 more labels (0 of 50 since v1" in html


def _predictions(model, product, *, count: int, confidence: float, auto: int) -> None:
    from classifier.models import PredictionOutcome, PredictionRecord

    PredictionRecord.objects.bulk_create([
        PredictionRecord(product=product, model_version=model, label="tools",
                         confidence=confidence + (0.05 if i % 2 else -0.05),
                         outcome=(PredictionOutcome.CLASSIFIED if i < auto
                                  else PredictionOutcome.NEEDS_REVIEW))
        for i in range(count)])


def test_dashboard_warns_when_this_weeks_confidence_falls_clearly_below_validation(
        admin_client, shop):
    metrics = {**shop.metrics, "calibration": {**shop.metrics["calibration"],
                                               "mean_confidence": 0.9}}
    ModelVersion.objects.filter(pk=shop.pk).update(metrics=metrics)
    _predictions(shop, Product.objects.get(sku="NEW"), count=60, confidence=0.55, auto=10)

    html = admin_client.get(reverse("admin:index")).content.decode()

    panel = html.split('class="dashboard-drift"', 1)[1].split("</section>", 1)[0]
    assert 'role="alert"' in panel and "Possible drift: this week&#x27;s mean confidence 55% " \
        "(validation 90%) and auto-fill share 17% (validation 71%) over 60 predictions" in panel
    assert "<svg" in panel and "validation mean confidence: 90%" in panel
    assert "<th scope=\"row\">Tools</th><td>60</td><td>17%</td><td>83%</td><td>55%</td>" in panel


def test_dashboard_shows_weekly_figures_without_a_warning_when_in_line(admin_client, shop):
    metrics = {**shop.metrics, "calibration": {**shop.metrics["calibration"],
                                               "mean_confidence": 0.9}}
    ModelVersion.objects.filter(pk=shop.pk).update(metrics=metrics)
    _predictions(shop, Product.objects.get(sku="NEW"), count=40, confidence=0.9, auto=29)

    panel = admin_client.get(reverse("admin:index")).content.decode().split(
        'class="dashboard-drift"', 1)[1].split("</section>", 1)[0]

    assert 'role="alert"' not in panel and "in line with its validation figures" in panel


def test_no_weekly_panel_before_any_prediction_or_for_users_who_cannot_see_models(
        admin_client, client, django_user_model, shop):
    assert "dashboard-drift" not in admin_client.get(reverse("admin:index")).content.decode()
    _predictions(shop, Product.objects.get(sku="NEW"), count=40, confidence=0.3, auto=0)
    user = django_user_model.objects.create_user("clerk", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_product"))
    client.force_login(user)

    assert "dashboard-drift" not in client.get(reverse("admin:index")).content.decode()
    assert "dashboard-drift" in admin_client.get(reverse("admin:index")).content.decode()
