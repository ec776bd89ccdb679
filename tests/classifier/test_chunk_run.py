"""Running a classification chunk in-process: rules for categories, review, failures, re-runs."""

from pathlib import Path

import numpy as np
import pytest

from catalog.models import CategorySource, Product, ReviewStatus
from catalog.services import product_set_category_by_person
from classifier.models import ClassificationJob, JobStatus, PredictionOutcome, PredictionRecord
from classifier.services import classification_chunk_run, classification_job_start
from tests.classifier.conftest import BLUE, GREEN, RED
from tests.support.tiny_model import solid_color_jpeg

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "images"

pytestmark = pytest.mark.usefixtures("no_auto_classify")


def _run_all(products, **kwargs) -> ClassificationJob:
    job = classification_job_start(products=[p.pk for p in products], **kwargs)
    classification_chunk_run(job_id=job.pk, product_ids=[p.pk for p in products])
    job.refresh_from_db()
    return job


def test_confident_prediction_fills_category_and_records_history(model_version, make_product,
                                                                  categories):
    red = make_product(solid_color_jpeg(RED))
    blue = make_product(solid_color_jpeg(BLUE))

    job = _run_all([red, blue])

    red.refresh_from_db()
    blue.refresh_from_db()
    assert red.category == categories["red"]
    assert red.category_source == CategorySource.CLASSIFIER
    assert blue.predicted_category == categories["blue"]
    assert red.review_status == ReviewStatus.CLASSIFIED
    assert red.prediction_model_version == model_version
    assert red.prediction_top_k[0]["label"] == "red"
    assert (job.status, job.done_count, job.failed_count) == (JobStatus.SUCCEEDED, 2, 0)
    assert job.finished_at is not None
    record = PredictionRecord.objects.get(job=job, product=red)
    assert record.outcome == PredictionOutcome.CLASSIFIED and record.label == "red"


def test_person_category_survives_reclassification(model_version, make_product, categories):
    product = make_product(solid_color_jpeg(RED))
    product_set_category_by_person(product=product, category=categories["green"])

    _run_all([product])
    _run_all([product])

    product.refresh_from_db()
    assert product.category == categories["green"]
    assert product.category_source == CategorySource.PERSON
    assert product.predicted_category == categories["red"]


def test_prediction_below_threshold_goes_to_review_without_category(settings, model_version,
                                                                     make_product):
    settings.CLASSIFIER = {**settings.CLASSIFIER, "CONFIDENCE_THRESHOLD": 0.9999}
    grey = make_product(solid_color_jpeg((128, 128, 128)))  # all three classes equally likely

    job = _run_all([grey])

    grey.refresh_from_db()
    assert grey.review_status == ReviewStatus.NEEDS_REVIEW
    assert grey.category is None
    assert grey.prediction_confidence < 0.9999
    assert PredictionRecord.objects.get(job=job).outcome == PredictionOutcome.NEEDS_REVIEW


@pytest.mark.parametrize(("thresholds", "fills"), [
    ({"global": 0.99, "per_category": {"red": 0.9}}, True),   # red's own, lower threshold
    ({"global": 0.9, "per_category": {}}, True),
    ({"global": 0.99, "per_category": {}}, False),
    ({"global": 0.5, "per_category": {"red": None}}, False),  # red never fills by itself
    ({"global": None, "per_category": {}}, False),            # nothing precise enough
])
def test_model_versions_own_thresholds_decide_what_fills_a_category(
        model_version, make_product, categories, thresholds, fills):
    # Red logit 2.84, the others -1.08: confidence 0.962, between the thresholds above.
    product = make_product(solid_color_jpeg((200, 100, 100)))
    model_version.auto_fill_thresholds = {"target_precision": 0.95, **thresholds}
    model_version.save()

    _run_all([product])

    product.refresh_from_db()
    assert 0.95 < product.prediction_confidence < 0.97
    assert product.predicted_category == categories["red"]
    if fills:
        assert (product.category, product.review_status) == (categories["red"],
                                                             ReviewStatus.CLASSIFIED)
    else:
        assert (product.category, product.review_status) == (None, ReviewStatus.NEEDS_REVIEW)


@pytest.mark.parametrize(("enabled", "reference_colour", "fills"), [
    (True, (200, 100, 100), True),    # a near-duplicate of a labelled red product
    (True, (20, 20, 230), False),     # nearest labelled product is far away: no rule
    (False, (200, 100, 100), False),  # the rule was not shown precise enough at training
])
def test_near_duplicate_of_a_labelled_product_fills_even_below_the_threshold(
        make_model_version, make_product, categories, enabled, reference_colour, fills):
    from django.core.files.base import ContentFile

    from training.references import reference_bytes

    version = make_model_version(embedding=True)
    version.auto_fill_thresholds = {
        "target_precision": 0.95, "global": None, "per_category": {},  # confidence never fills
        "near_duplicate": {"enabled": enabled, "cosine": 0.99}}
    # The tiny model's embedding is the mean colour in 0..1: one labelled "red" reference.
    reference = np.array([reference_colour], np.float32) / 255
    version.reference_file.save("refs.npz", ContentFile(reference_bytes(reference, [0])))
    product = make_product(solid_color_jpeg((200, 100, 100)))

    _run_all([product])

    product.refresh_from_db()
    assert product.predicted_category == categories["red"]
    if fills:
        assert (product.category, product.category_source) == (categories["red"],
                                                               CategorySource.CLASSIFIER)
    else:
        assert (product.category, product.review_status) == (None, ReviewStatus.NEEDS_REVIEW)


def test_rerunning_a_chunk_adds_no_records_and_keeps_counts(model_version, make_product):
    products = [make_product(solid_color_jpeg(c)) for c in (RED, GREEN, BLUE)]
    job = _run_all(products)

    again = classification_chunk_run(job_id=job.pk, product_ids=[p.pk for p in products])

    job.refresh_from_db()
    assert again == {"done": 0, "failed": 0, "skipped": 3}
    assert PredictionRecord.objects.filter(job=job).count() == 3
    assert (job.done_count, job.failed_count, job.total) == (3, 0, 3)


def test_missing_image_file_marks_product_failed_not_found(model_version, make_product):
    gone = make_product(solid_color_jpeg(RED))
    gone.image.storage.delete(gone.image.name)
    fine = make_product(solid_color_jpeg(GREEN))

    job = _run_all([gone, fine])

    gone.refresh_from_db()
    assert gone.review_status == ReviewStatus.FAILED
    assert "not found" in gone.classification_error
    assert Product.objects.get(pk=fine.pk).review_status == ReviewStatus.CLASSIFIED
    assert (job.done_count, job.failed_count, job.status) == (1, 1, JobStatus.SUCCEEDED)


def test_failure_keeps_the_earlier_good_prediction(model_version, make_product, categories):
    product = make_product(solid_color_jpeg(BLUE))
    _run_all([product])
    product.image.storage.delete(product.image.name)

    _run_all([product])

    product.refresh_from_db()
    assert product.review_status == ReviewStatus.FAILED
    assert product.predicted_category == categories["blue"]
    assert product.category == categories["blue"]
    assert product.prediction_confidence > 0.9


def test_label_without_category_fails_with_clear_message(make_model_version, make_product,
                                                         categories):
    make_model_version(labels=("red", "green", "teal"))
    product = make_product(solid_color_jpeg(BLUE))

    _run_all([product])

    product.refresh_from_db()
    assert product.review_status == ReviewStatus.FAILED
    assert "'teal'" in product.classification_error
    assert "slug" in product.classification_error


CORPUS_EXPECTATIONS = {
    # file: expected label, or None for a per-product error
    "zero-bytes.jpg": None,
    "truncated.jpg": None,
    "text.jpg": None,
    "pixel-bomb.png": None,
    "cmyk.jpg": "red",
    "grey16.png": "any",
    "palette-transparent.png": "green",
    "animated.gif": "red",
    "exif-rotated.jpg": "any",
    "photo.webp": "any",
    "alpha.png": "red",
    "jpeg-named.png": "red",
    "red.jpg": "red",
    "green.jpg": "green",
    "blue.jpg": "blue",
}


def test_bad_image_corpus_gives_per_product_errors_and_the_chunk_goes_on(model_version,
                                                                        make_product):
    products = {name: make_product((FIXTURES / name).read_bytes(), name=name)
                for name in CORPUS_EXPECTATIONS}

    job = _run_all(list(products.values()))

    for name, expected in CORPUS_EXPECTATIONS.items():
        product = Product.objects.get(pk=products[name].pk)
        if expected is None:
            assert product.review_status == ReviewStatus.FAILED, name
            assert product.classification_error, name
        else:
            assert product.review_status != ReviewStatus.FAILED, product.classification_error
            if expected != "any":
                assert product.predicted_category.slug == expected, name
    failed = sum(1 for e in CORPUS_EXPECTATIONS.values() if e is None)
    assert (job.failed_count, job.done_count) == (failed, len(CORPUS_EXPECTATIONS) - failed)
    assert PredictionRecord.objects.filter(job=job).count() == len(CORPUS_EXPECTATIONS)


def test_chunk_larger_than_the_read_ahead_window_completes(settings, model_version,
                                                           make_product):
    # One fetch thread: the read-ahead window is 2 + decode threads, far below the chunk size.
    settings.CLASSIFIER = {**settings.CLASSIFIER, "FETCH_WORKERS": 1}
    colours = [RED, GREEN, BLUE] * 7
    products = [make_product(solid_color_jpeg(c)) for c in colours]

    job = _run_all(products)

    assert (job.done_count, job.failed_count) == (len(colours), 0)
    labels = [Product.objects.get(pk=p.pk).predicted_category.slug for p in products]
    assert labels == [{RED: "red", GREEN: "green", BLUE: "blue"}[c] for c in colours]


def test_chunk_whose_products_were_all_deleted_closes_the_job(model_version, make_product):
    """Products deleted after the job started (e.g. re-classification after an activation)
    leave the job's total, so the job finishes instead of waiting for the stalled-job resume."""
    kept = make_product(solid_color_jpeg(RED))
    gone = [make_product(solid_color_jpeg(BLUE)) for _ in range(2)]
    job = classification_job_start(products=[kept, *gone])
    ids = [p.pk for p in gone]
    Product.objects.filter(pk__in=ids).delete()

    classification_chunk_run(job_id=job.pk, product_ids=ids)
    # Re-delivered (or resumed) the same chunk counts the deleted products out only once.
    classification_chunk_run(job_id=job.pk, product_ids=ids)
    job.refresh_from_db()
    assert (job.total, job.finished_at, job.product_ids) == (1, None, [kept.pk])

    classification_chunk_run(job_id=job.pk, product_ids=[kept.pk])
    job.refresh_from_db()
    assert (job.status, job.total, job.done_count, job.failed_count) == (
        JobStatus.SUCCEEDED, 1, 1, 0)
    assert job.finished_at is not None
