"""Admin flows as a superuser: classify, accept, send to review, the review queue, job page."""

import re

import pytest
from django.urls import reverse

from catalog.models import CategorySource, Product, ReviewStatus
from classifier.models import ClassificationJob, PredictionRecord
from classifier.services import classification_chunk_run, classification_job_start
from tests.classifier.conftest import GREEN, RED
from tests.support.tiny_model import solid_color_jpeg

pytestmark = pytest.mark.usefixtures("no_auto_classify")

CHANGELIST = "admin:catalog_product_changelist"


def _action(client, action, products):
    return client.post(reverse(CHANGELIST), {
        "action": action, "_selected_action": [p.pk for p in products],
    }, follow=True)


def test_classify_selected_creates_job_and_links_to_it(admin_client, model_version,
                                                       make_product):
    products = [make_product(solid_color_jpeg(RED)), make_product(solid_color_jpeg(GREEN))]

    response = _action(admin_client, "classify_selected", products)

    job = ClassificationJob.objects.get()
    assert job.total == 2 and job.created_by.is_superuser
    job_url = reverse("admin:classifier_classificationjob_change", args=[job.pk])
    assert f'href="{job_url}"' in response.content.decode()


def test_classify_selected_without_model_shows_how_to_fix(admin_client, make_product):
    response = _action(admin_client, "classify_selected", [make_product()])
    assert "Train a model or activate" in response.content.decode()
    assert not ClassificationJob.objects.exists()


def test_accept_predicted_category_action(admin_client, make_product, categories):
    product = make_product(predicted_category=categories["red"], prediction_confidence=0.3,
                           review_status=ReviewStatus.NEEDS_REVIEW)
    without = make_product()

    response = _action(admin_client, "accept_predicted_category", [product, without])

    product.refresh_from_db()
    assert product.category == categories["red"]
    assert product.category_source == CategorySource.PERSON
    assert "1 had no prediction" in response.content.decode()


def test_send_to_review_action(admin_client, make_product):
    product = make_product(review_status=ReviewStatus.CLASSIFIED)
    _action(admin_client, "send_to_review", [product])
    assert Product.objects.get(pk=product.pk).review_status == ReviewStatus.NEEDS_REVIEW


def test_needs_review_view_lists_least_confident_first(admin_client, make_product, categories):
    for sku, confidence in (("MID", 0.55), ("LOW", 0.2), ("HIGH", 0.58)):
        make_product(sku=sku, predicted_category=categories["red"],
                     prediction_confidence=confidence, review_status=ReviewStatus.NEEDS_REVIEW)
    make_product(sku="DONE", review_status=ReviewStatus.CLASSIFIED)

    response = admin_client.get(reverse(CHANGELIST), {"review_status__exact": "needs_review"})

    html = response.content.decode()
    order = re.findall(r">(LOW|MID|HIGH|DONE)<", html)
    assert order == ["LOW", "MID", "HIGH"]
    assert "Needs review list" in html and "Review predictions (3)" in html


def test_confidence_band_filter(admin_client, make_product, categories):
    for sku, confidence in (("A", 0.2), ("B", 0.6), ("C", 0.9)):
        make_product(sku=sku, predicted_category=categories["red"],
                     prediction_confidence=confidence)
    response = admin_client.get(reverse(CHANGELIST), {"confidence": "mid"})
    assert re.findall(r">([ABC])<", response.content.decode()) == ["B"]


def test_classify_all_unclassified_button(admin_client, model_version, make_product):
    make_product(solid_color_jpeg(RED))
    make_product(solid_color_jpeg(RED), review_status=ReviewStatus.CLASSIFIED)
    make_product()  # no image: nothing to classify

    changelist = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert "Classify all unclassified" in changelist
    response = admin_client.post(reverse("admin:catalog_product_classify_unclassified"),
                                 follow=True)

    assert ClassificationJob.objects.get().total == 1
    assert "job #" in response.content.decode()
    assert admin_client.get(
        reverse("admin:catalog_product_classify_unclassified")).status_code == 405

    # Everything is classified now (as far as the button can see): no empty job.
    ClassificationJob.objects.all().delete()
    Product.objects.update(review_status=ReviewStatus.CLASSIFIED)
    again = admin_client.post(reverse("admin:catalog_product_classify_unclassified"),
                              follow=True)
    assert "Nothing to classify" in again.content.decode()
    assert not ClassificationJob.objects.exists()


def test_job_page_shows_progress_failures_and_refreshes_while_running(
        admin_client, model_version, make_product):
    good = make_product(solid_color_jpeg(RED))
    bad = make_product(b"", name="empty.jpg", sku="EMPTY-1")
    job = classification_job_start(products=[good.pk, bad.pk])
    url = reverse("admin:classifier_classificationjob_change", args=[job.pk])

    running = admin_client.get(url).content.decode()
    assert '<progress value="0" max="2"' in running
    assert 'http-equiv="refresh"' in running

    classification_chunk_run(job_id=job.pk, product_ids=[good.pk, bad.pk])
    done = admin_client.get(url).content.decode()
    assert '<progress value="2" max="2"' in done
    assert "EMPTY-1" in done and "empty (0 bytes)" in done
    assert 'http-equiv="refresh"' not in done


def test_product_changelist_shows_thumbnail_and_prediction(admin_client, make_product,
                                                           categories):
    make_product(solid_color_jpeg(RED), predicted_category=categories["red"],
                 prediction_confidence=0.87)
    html = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert '<img src="/media/products/' in html
    assert "Red (87%)" in html


def test_job_page_is_read_only_and_lists_its_products_with_outcomes_paged(
        admin_client, model_version, make_product, settings):
    from classifier.admin import JOB_RECORDS_PER_PAGE

    products = [make_product(solid_color_jpeg(RED)) for _ in range(JOB_RECORDS_PER_PAGE + 1)]
    ids = [p.pk for p in products]
    job = classification_job_start(products=ids)
    classification_chunk_run(job_id=job.pk, product_ids=ids)
    url = reverse("admin:classifier_classificationjob_change", args=[job.pk])

    first = admin_client.get(url).content.decode()
    second = admin_client.get(url, {"p": 2}).content.decode()

    assert 'name="_save"' not in first and 'name="_continue"' not in first
    assert f"Products ({len(ids)})" in first and "Page 1 of 2" in first
    assert first.count("<td>Classified</td>") == JOB_RECORDS_PER_PAGE
    assert second.count("<td>Classified</td>") == 1
    assert f">{products[-1].sku}</a>" in second
    record = PredictionRecord.objects.filter(job=job).first()
    record_page = admin_client.get(reverse("admin:classifier_predictionrecord_change",
                                           args=[record.pk])).content.decode()
    assert record_page and 'name="_save"' not in record_page
