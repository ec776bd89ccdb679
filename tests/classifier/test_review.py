"""The review workflow: the decide service, its admin history, the review page and product page."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from catalog.models import CategorySource, Product, ReviewStatus
from classifier import selectors
from classifier.exceptions import ReviewPermissionError
from classifier.models import ModelVersion
from classifier.services import (
    classification_chunk_run,
    classification_job_start,
    product_accept_prediction,
    product_review_decide,
    products_accept_predictions,
)
from tests.classifier.conftest import RED
from tests.support.tiny_model import solid_color_jpeg

pytestmark = pytest.mark.usefixtures("no_auto_classify")

REVIEW = "admin:catalog_product_review"


def top_k(*pairs):
    return [{"label": label, "confidence": confidence} for label, confidence in pairs]


@pytest.fixture
def in_review(make_product, categories):
    """Three uncertain products: red (41%), green (35%), blue (60%) predicted."""
    def make(slug, confidence, **fields):
        others = [s for s in ("red", "green", "blue") if s != slug]
        return make_product(
            solid_color_jpeg(RED), predicted_category=categories[slug],
            prediction_confidence=confidence, review_status=ReviewStatus.NEEDS_REVIEW,
            prediction_top_k=top_k((slug, confidence), (others[0], 0.3), (others[1], 0.1)),
            **fields)

    return {"red": make("red", 0.41), "green": make("green", 0.35), "blue": make("blue", 0.6)}


def staff(django_user_model, name, *codenames):
    user = django_user_model.objects.create_user(name, password="pw", is_staff=True)
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(codename=codename,
                                                         content_type__app_label="catalog"))
    return django_user_model.objects.get(pk=user.pk)  # fresh permission cache


# --- the service ---------------------------------------------------------------------------------


def test_a_decision_is_a_persons_category_and_leaves_one_history_line(in_review, categories,
                                                                      admin_user):
    product = in_review["red"]

    product_review_decide(product=product, category=categories["blue"], user=admin_user)

    product.refresh_from_db()
    assert product.category == categories["blue"]
    assert product.category_source == CategorySource.PERSON
    assert product.review_status == ReviewStatus.CLASSIFIED
    entry = LogEntry.objects.get(object_id=str(product.pk))
    assert entry.action_flag == CHANGE and entry.user == admin_user
    assert entry.get_change_message() == "Reviewed: chose Blue (prediction Red 41%)"


def test_accepting_says_so_in_the_history(in_review, categories, admin_user):
    product_accept_prediction(product=in_review["green"], user=admin_user)

    entry = LogEntry.objects.get(object_id=str(in_review["green"].pk))
    assert entry.get_change_message() == "Reviewed: accepted the prediction Green 35%"


def test_a_user_who_may_not_change_products_cannot_decide(in_review, categories,
                                                          django_user_model):
    viewer = staff(django_user_model, "viewer", "view_product")

    with pytest.raises(ReviewPermissionError, match="Can change product"):
        product_review_decide(product=in_review["red"], category=categories["blue"],
                              user=viewer)

    assert Product.objects.get(pk=in_review["red"].pk).category_id is None
    assert not LogEntry.objects.exists()


def test_the_classifier_never_overwrites_a_reviewed_category(model_version, make_product,
                                                             categories, admin_user):
    product = make_product(solid_color_jpeg(RED))  # the tiny model is sure this is red
    product_review_decide(product=product, category=categories["blue"], user=admin_user)

    job = classification_job_start(products=[product.pk])
    classification_chunk_run(job_id=job.pk, product_ids=[product.pk])

    product.refresh_from_db()
    assert product.predicted_category == categories["red"]
    assert product.category == categories["blue"]
    assert product.category_source == CategorySource.PERSON
    assert product.review_status == ReviewStatus.CLASSIFIED


def test_bulk_accept_records_every_product_in_the_history(in_review, admin_user):
    accepted, skipped = products_accept_predictions(products=Product.objects.all(),
                                                    user=admin_user)
    assert (accepted, skipped) == (3, 0)
    assert LogEntry.objects.filter(action_flag=CHANGE).count() == 3


# --- selectors -----------------------------------------------------------------------------------


def test_review_queue_is_least_certain_first_and_filters_by_predicted_category(in_review):
    assert list(selectors.products_for_review()) == [
        in_review["green"], in_review["red"], in_review["blue"]]
    assert list(selectors.products_for_review(predicted_slug="blue")) == [in_review["blue"]]
    counts = {c.slug: n for c, n in selectors.review_queue_by_predicted_category()}
    assert counts == {"red": 1, "green": 1, "blue": 1}


def test_labels_since_the_active_model_count_only_newer_person_labels(
        model_version, in_review, categories, admin_user):
    ModelVersion.objects.filter(pk=model_version.pk).update(
        created_at=timezone.now() - timedelta(hours=1))
    old = in_review["blue"]
    product_review_decide(product=old, category=categories["blue"], user=admin_user)
    Product.objects.filter(pk=old.pk).update(category_set_at=timezone.now() - timedelta(days=1))
    product_review_decide(product=in_review["red"], category=categories["red"], user=admin_user)

    assert selectors.person_labels_since_active_model_count() == 1


# --- the review page -----------------------------------------------------------------------------


def test_review_page_needs_the_change_product_permission(client, django_user_model, in_review):
    client.force_login(staff(django_user_model, "viewer", "view_product"))
    assert client.get(reverse(REVIEW)).status_code == 403
    decide = reverse("admin:catalog_product_decide", args=[in_review["red"].pk])
    assert client.post(decide, {"accept": "1"}).status_code == 403
    assert Product.objects.get(pk=in_review["red"].pk).category_id is None

    client.force_login(staff(django_user_model, "editor", "view_product", "change_product"))
    assert client.get(reverse(REVIEW)).status_code == 200


def test_review_page_shows_cards_least_certain_first_with_three_choices(admin_client,
                                                                        in_review):
    html = admin_client.get(reverse(REVIEW)).content.decode()

    order = [html.index(f'id="card-{in_review[c].pk}"') for c in ("green", "red", "blue")]
    assert order == sorted(order)
    assert html.count('class="review-choice"') == 9
    assert "41%" in html and 'data-key="3"' in html
    assert 'name="csrfmiddlewaretoken"' in html
    filtered = admin_client.get(reverse(REVIEW), {"predicted": "blue"}).content.decode()
    assert f'id="card-{in_review["blue"].pk}"' in filtered
    assert f'id="card-{in_review["red"].pk}"' not in filtered


def test_a_form_post_saves_and_returns_to_the_next_card(admin_client, in_review, categories):
    product = in_review["green"]
    url = reverse("admin:catalog_product_decide", args=[product.pk])
    next_url = f"{reverse(REVIEW)}#card-{in_review['red'].pk}"

    response = admin_client.post(url, {"category": "red", "next": next_url})

    assert response.status_code == 302 and response.url == next_url
    product.refresh_from_db()
    assert product.category == categories["red"] and product.category_is_from_person
    page = admin_client.get(reverse(REVIEW)).content.decode()
    assert f'id="card-{product.pk}"' not in page  # decided: out of the queue, after reload


def test_fetch_gets_json_with_the_new_counts(admin_client, in_review):
    url = reverse("admin:catalog_product_decide", args=[in_review["red"].pk])

    response = admin_client.post(url, {"accept": "1"}, HTTP_ACCEPT="application/json")

    body = response.json()
    assert response.status_code == 200 and body["ok"]
    assert body["category"] == {"slug": "red", "name": "Red"}
    assert body["remaining"] == 2 and body["labels_since_model"] == 1
    assert body["retrain_note"].startswith(
        "The next automatic retrain starts after 49 more labels (1 of 50 since"), body


def test_review_page_says_when_the_next_automatic_retrain_happens(admin_client, in_review,
                                                                  settings):
    settings.CLASSIFIER = {**settings.CLASSIFIER, "RETRAIN_AFTER_LABELS": 1}
    for product in in_review.values():
        admin_client.post(reverse("admin:catalog_product_decide", args=[product.pk]),
                          {"accept": "1"})

    page = admin_client.get(reverse(REVIEW)).content.decode()

    assert "A retrain is due (3 new labels since" in page
    settings.CLASSIFIER = {**settings.CLASSIFIER, "RETRAIN_AFTER_LABELS": 0}
    assert "Automatic retraining is off" in admin_client.get(reverse(REVIEW)).content.decode()


def test_an_unknown_category_is_refused_with_a_reason(admin_client, in_review):
    url = reverse("admin:catalog_product_decide", args=[in_review["red"].pk])

    response = admin_client.post(url, {"category": "no-such"}, HTTP_ACCEPT="application/json")

    assert response.status_code == 400 and "Reload the page" in response.json()["message"]
    assert Product.objects.get(pk=in_review["red"].pk).category_id is None


def test_decide_only_takes_post_with_a_csrf_token(admin_user, in_review):
    url = reverse("admin:catalog_product_decide", args=[in_review["red"].pk])
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(admin_user)

    assert browser.get(url).status_code == 405
    assert browser.post(url, {"accept": "1"}).status_code == 403
    assert Product.objects.get(pk=in_review["red"].pk).category_id is None


def test_an_outside_next_url_is_not_followed(admin_client, in_review):
    url = reverse("admin:catalog_product_decide", args=[in_review["red"].pk])
    response = admin_client.post(url, {"accept": "1", "next": "https://evil.example/"})
    assert response.url == reverse(REVIEW)


def test_empty_queue_says_so(admin_client, categories):
    html = admin_client.get(reverse(REVIEW)).content.decode()
    assert "Nothing to review" in html


# --- the product page ----------------------------------------------------------------------------


def test_product_page_shows_image_prediction_and_choose_buttons(admin_client, in_review):
    product = in_review["red"]
    html = admin_client.get(reverse("admin:catalog_product_change",
                                    args=[product.pk])).content.decode()

    assert f'<img src="{product.image.url}"' in html
    assert "Prediction: <strong>Red</strong>" in html and "41%" in html
    assert html.count('form="decide-form" name="category"') == 3
    assert "Accept prediction: Red" in html
    # The confidence reads as a percentage; the raw float and top-k JSON fields are gone.
    assert "field-confidence_display" in html and "field-prediction_confidence" not in html
    assert "field-prediction_top_k" not in html


def test_accept_on_the_product_page_comes_back_to_it_with_a_message(admin_client, in_review):
    product = in_review["blue"]
    page = reverse("admin:catalog_product_change", args=[product.pk])

    response = admin_client.post(reverse("admin:catalog_product_decide", args=[product.pk]),
                                 {"accept": "1", "next": page}, follow=True)

    assert response.redirect_chain[-1][0] == page
    assert "Blue saved" in response.content.decode()
    history = admin_client.get(reverse("admin:catalog_product_history", args=[product.pk]))
    assert "Reviewed: accepted the prediction Blue 60%" in history.content.decode()


def test_changelist_links_the_review_page_with_the_queue_size(admin_client, in_review):
    html = admin_client.get(reverse("admin:catalog_product_changelist")).content.decode()
    assert f'href="{reverse(REVIEW)}"' in html and "Review predictions (3)" in html


def test_json_answer_is_json(admin_client, in_review):
    url = reverse("admin:catalog_product_decide", args=[in_review["red"].pk])
    response = admin_client.post(url, {"category": "green"}, HTTP_ACCEPT="application/json")
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content)["ok"] is True
