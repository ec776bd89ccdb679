"""Classification chunks against a misbehaving Appwrite: each product gets a record or a reason.

Real SDK, real HTTP, the loopback emulator injecting the faults (tests/support/appwrite_emulator):
answers without a Content-Type, 200s labelled JSON whose body is not JSON, truncated bodies,
502/503 storms and slow replies, on image downloads and on the model download. Test settings
allow 2 retries and a 1 s timeout (tests/support/appwrite_django.py).
"""

import pytest

from catalog.appwrite import file_id_for_name
from catalog.models import Product, ReviewStatus
from classifier.models import ClassificationJob, JobStatus, PredictionOutcome, PredictionRecord
from classifier.services import (
    classification_chunk_run,
    classification_job_start,
    classification_jobs_resume_stalled,
)
from classifier.services import classify as classify_service
from classifier.services import jobs as jobs_service
from tests.classifier.conftest import BLUE, GREEN, RED
from tests.support.appwrite_django import use_appwrite_storage
from tests.support.tiny_model import solid_color_jpeg

pytestmark = pytest.mark.usefixtures("no_auto_classify")


@pytest.fixture
def emulator(settings, appwrite_bucket, monkeypatch):
    """Images and models in the emulator's buckets; model-load backoff without the waits."""
    use_appwrite_storage(settings, appwrite_bucket, monkeypatch)
    monkeypatch.setattr(jobs_service, "MODEL_LOAD_BACKOFF_SECONDS", 0.0)
    return appwrite_bucket.emulator


@pytest.fixture
def catalog(emulator, model_version, make_product):
    """Three good products and the active model, all stored in the emulator."""
    products = [make_product(solid_color_jpeg(colour)) for colour in (RED, GREEN, BLUE)]
    emulator.requests_log.clear()
    return products


def _download_of(name: str) -> str:
    return rf"/files/{file_id_for_name(name)}/download$"


def _run(products) -> ClassificationJob:
    job = classification_job_start(products=[p.pk for p in products], enqueue=False)
    classification_chunk_run(job_id=job.pk, product_ids=[p.pk for p in products])
    job.refresh_from_db()
    return job


def _outcomes(job) -> dict[int, tuple[str, str]]:
    return {r.product_id: (r.outcome, r.error) for r in PredictionRecord.objects.filter(job=job)}


def _assert_every_product_recorded(job, products):
    assert set(_outcomes(job)) == {p.pk for p in products}
    assert job.finished_at is not None and job.processed == len(products)


@pytest.mark.parametrize("fault", [
    {"status": 502, "json_body": False, "omit_content_type": True},
    {"status": 502, "omit_content_type": True},
    {"status": 503},
    {"delay": 1.5},
    {"truncate": 5},
    {"drop": True},
], ids=["502-html-no-content-type", "502-json-no-content-type", "503", "slow", "truncated",
        "dropped"])
def test_a_persistent_fault_on_one_image_fails_that_product_and_the_chunk_goes_on(
        emulator, catalog, make_product, fault):
    bad = make_product(solid_color_jpeg(RED))
    emulator.inject("GET", _download_of(bad.image.name), times=None, **fault)

    job = _run([*catalog, bad])

    _assert_every_product_recorded(job, [*catalog, bad])
    outcome, error = _outcomes(job)[bad.pk]
    assert outcome == PredictionOutcome.FAILED
    assert bad.image.name in error and "storage" in error
    assert (job.done_count, job.failed_count, job.status) == (3, 1, JobStatus.SUCCEEDED)
    bad.refresh_from_db()
    assert bad.review_status == ReviewStatus.FAILED and bad.classification_error == error


@pytest.mark.parametrize("fault", [
    {"status": 502, "omit_content_type": True}, {"status": 503}, {"delay": 1.5},
    {"truncate": 5}, {"status": 200, "body": b'{"message": "upstream gone', "content_type":
                                                "application/json"},
], ids=["502-no-content-type", "503", "slow", "truncated", "invalid-json"])
def test_a_passing_fault_on_an_image_is_retried_and_every_product_is_classified(
        emulator, catalog, fault):
    emulator.inject("GET", _download_of(catalog[0].image.name), times=1, **fault)

    job = _run(catalog)

    assert (job.done_count, job.failed_count) == (3, 0)
    assert len(emulator.requests_to(_download_of(catalog[0].image.name))) >= 1


def test_a_200_labelled_json_whose_body_is_not_json_fails_only_that_image(
        emulator, catalog, make_product):
    """A proxy in front of Appwrite answers 200, labelled JSON, with a cut-off body."""
    bad = make_product(solid_color_jpeg(GREEN))
    emulator.inject("GET", _download_of(bad.image.name), times=None, status=200,
                    body=b'{"message": "upstream gone', content_type="application/json")

    job = _run([*catalog, bad])

    _assert_every_product_recorded(job, [*catalog, bad])
    outcome, error = _outcomes(job)[bad.pk]
    assert outcome == PredictionOutcome.FAILED and "malformed answer" in error
    assert job.done_count == 3


def test_a_503_storm_on_every_image_fails_each_product_with_the_reason(emulator, catalog):
    emulator.inject("GET", r"/buckets/test-bucket/files/[^/]+/download$", status=503,
                    times=None)

    job = _run(catalog)

    _assert_every_product_recorded(job, catalog)
    errors = {error for _, error in _outcomes(job).values()}
    assert all("after 3 attempts" in e and "HTTP 503" in e for e in errors)
    assert (job.status, job.failed_count) == (JobStatus.FAILED, 3)


def test_an_unexpected_error_in_one_products_decode_fails_that_product_only(
        emulator, catalog, monkeypatch):
    real_decode = classify_service.decode_image
    target = catalog[1]  # the green one

    poisoned = solid_color_jpeg(GREEN)

    def decode(data, *, size):
        if data == poisoned:
            raise MemoryError("simulated: the decoder ran out of memory")
        return real_decode(data, size=size)

    monkeypatch.setattr(classify_service, "decode_image", decode)
    job = _run(catalog)

    _assert_every_product_recorded(job, catalog)
    outcome, error = _outcomes(job)[target.pk]
    assert outcome == PredictionOutcome.FAILED and "MemoryError" in error
    assert job.done_count == 2


# --- the model download: a failure of the whole chunk ------------------------------------------


def _model_download(version) -> str:
    return _download_of(version.file.name)


@pytest.mark.parametrize("fault", [
    {"status": 502, "omit_content_type": True},
    {"status": 200, "body": b'{"message": "upstream gone', "content_type": "application/json"},
    {"truncate": 100}, {"status": 503},
], ids=["502-no-content-type", "invalid-json", "truncated", "503"])
def test_a_model_download_that_fails_once_is_retried_within_the_chunk(
        emulator, catalog, model_version, fault):
    # Three storage attempts per model read: a fault lasting one whole read is a chunk retry.
    emulator.inject("GET", _model_download(model_version), times=3, **fault)

    job = _run(catalog)

    assert (job.status, job.done_count, job.failed_count) == (JobStatus.SUCCEEDED, 3, 0)


def test_a_model_download_that_keeps_failing_leaves_the_chunk_to_the_resume_task(
        emulator, catalog, model_version):
    emulator.inject("GET", _model_download(model_version), times=None, status=502,
                    omit_content_type=True)

    job = _run(catalog)

    # Nothing recorded yet, nothing lost: the job waits for the stalled-job resume, with why.
    assert not PredictionRecord.objects.filter(job=job).exists()
    assert job.status == JobStatus.RUNNING and job.finished_at is None
    assert "HTTP 502" in job.error and "will be retried" in job.error

    emulator.clear_faults()
    assert classification_jobs_resume_stalled(stalled_after=0) == 1
    classification_chunk_run(job_id=job.pk, product_ids=[p.pk for p in catalog])
    job.refresh_from_db()
    assert (job.status, job.done_count) == (JobStatus.SUCCEEDED, 3)


def test_a_chunk_that_never_gets_its_model_fails_every_product_with_the_reason_in_the_end(
        emulator, catalog, model_version):
    emulator.inject("GET", _model_download(model_version), times=None, status=503)
    ids = [p.pk for p in catalog]
    job = classification_job_start(products=ids, enqueue=False)

    for _ in range(jobs_service.MAX_RESUMES + 1):
        classification_chunk_run(job_id=job.pk, product_ids=ids)
        classification_jobs_resume_stalled(stalled_after=0)

    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.finished_at is not None
    _assert_every_product_recorded(job, catalog)
    assert all(outcome == PredictionOutcome.FAILED and "HTTP 503" in error
               for outcome, error in _outcomes(job).values())
    for product in Product.objects.filter(pk__in=ids):
        assert product.review_status == ReviewStatus.FAILED and "HTTP 503" in (
            product.classification_error)
