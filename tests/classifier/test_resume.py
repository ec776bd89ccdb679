"""Resuming stalled jobs: only unrecorded products are enqueued again, and the job then finishes."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.brokers import get_broker
from django_q.models import Schedule
from django_q.signing import SignedPackage

from catalog.models import ReviewStatus
from classifier.models import ClassificationJob, JobStatus, PredictionOutcome, PredictionRecord
from classifier.services import (
    classification_chunk_run,
    classification_job_start,
    classification_jobs_resume_stalled,
)
from classifier.services.jobs import CHUNK_TASK, MAX_RESUMES, STALL_MARGIN_SECONDS
from tests.classifier.conftest import BLUE, GREEN, RED
from tests.support.tiny_model import solid_color_jpeg

pytestmark = pytest.mark.usefixtures("no_auto_classify")


@pytest.fixture
def broker(db):
    """The configured broker (ORM or Redis), emptied before and after the test."""
    broker = get_broker()
    broker.purge_queue()
    yield broker
    broker.purge_queue()


def _queued_chunks(broker) -> list[tuple]:
    """Take every queued task off the broker; the (func, args) of each."""
    tasks = []
    while got := broker.dequeue():
        tasks += [SignedPackage.loads(payload) for _, payload in got]
    return [(task["func"], task["args"]) for task in tasks]


def _stall(job: ClassificationJob, seconds_ago: float) -> None:
    ClassificationJob.objects.filter(pk=job.pk).update(
        last_progress_at=timezone.now() - timedelta(seconds=seconds_ago))


def test_stalled_job_gets_only_unrecorded_products_enqueued_and_then_finishes(
        settings, broker, model_version, make_product, django_capture_on_commit_callbacks):
    settings.CLASSIFIER = {**settings.CLASSIFIER, "CHUNK_SIZE": 2}
    products = [make_product(solid_color_jpeg(c)) for c in (RED, GREEN, BLUE, RED, GREEN)]
    ids = [p.pk for p in products]
    job = classification_job_start(products=ids, enqueue=False)
    classification_chunk_run(job_id=job.pk, product_ids=ids[:2])  # then the worker "died"
    _stall(job, settings.Q_CLUSTER["retry"] + STALL_MARGIN_SECONDS + 1)

    with django_capture_on_commit_callbacks(execute=True):
        enqueued = classification_jobs_resume_stalled()

    assert enqueued == 2
    queued = _queued_chunks(broker)
    assert queued == [(CHUNK_TASK, (job.pk, ids[2:4])), (CHUNK_TASK, (job.pk, ids[4:]))]
    job.refresh_from_db()
    assert (job.status, job.resume_count) == (JobStatus.RUNNING, 1)
    assert job.last_progress_at > timezone.now() - timedelta(minutes=1)  # not resumed again soon
    assert classification_jobs_resume_stalled() == 0

    for func, args in queued:
        import_string(func)(*args)
    job.refresh_from_db()
    assert (job.status, job.done_count, job.failed_count) == (JobStatus.SUCCEEDED, 5, 0)
    assert sorted(PredictionRecord.objects.filter(job=job).values_list("product_id", flat=True)
                  ) == sorted(ids)


def test_jobs_with_recent_progress_or_finished_are_left_alone(
        settings, broker, model_version, make_product, django_capture_on_commit_callbacks):
    product = make_product(solid_color_jpeg(RED))
    recent = classification_job_start(products=[product.pk], enqueue=False)
    _stall(recent, settings.Q_CLUSTER["retry"])  # the ORM broker's re-delivery still due
    finished = classification_job_start(products=[product.pk], enqueue=False)
    classification_chunk_run(job_id=finished.pk, product_ids=[product.pk])
    _stall(finished, 10**6)

    with django_capture_on_commit_callbacks(execute=True):
        assert classification_jobs_resume_stalled() == 0

    assert _queued_chunks(broker) == []
    assert ClassificationJob.objects.get(pk=recent.pk).resume_count == 0


def test_a_job_waiting_behind_a_busy_queue_is_not_resumed_until_the_workers_are_idle(
        settings, broker, model_version, make_product, django_capture_on_commit_callbacks):
    products = [make_product(solid_color_jpeg(c)) for c in (RED, GREEN)]
    busy = classification_job_start(products=[p.pk for p in products], enqueue=False)
    classification_chunk_run(job_id=busy.pk, product_ids=[products[0].pk])  # progressing now
    waiting = classification_job_start(products=[products[1].pk], enqueue=False)
    stall = settings.Q_CLUSTER["retry"] + STALL_MARGIN_SECONDS + 1
    _stall(waiting, stall)

    with django_capture_on_commit_callbacks(execute=True):
        assert classification_jobs_resume_stalled() == 0
        assert ClassificationJob.objects.get(pk=waiting.pk).resume_count == 0
        # The busy job stops progressing too: nothing moves, so the waiting job is resumed.
        _stall(busy, stall)
        assert classification_jobs_resume_stalled() == 2

    assert sorted(args for _, args in _queued_chunks(broker)) == sorted(
        [(busy.pk, [products[1].pk]), (waiting.pk, [products[1].pk])])


def test_job_that_keeps_stalling_fails_with_reason_instead_of_looping(
        broker, model_version, make_product, django_capture_on_commit_callbacks):
    product = make_product(solid_color_jpeg(RED))
    job = classification_job_start(products=[product.pk], enqueue=False)

    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(MAX_RESUMES):
            _stall(job, 60)
            assert classification_jobs_resume_stalled(stalled_after=30) == 1
        _stall(job, 60)
        assert classification_jobs_resume_stalled(stalled_after=30) == 0

    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.finished_at is not None
    assert "Stalled: 1 products failed after 3 resumes" in job.error
    record = PredictionRecord.objects.get(job=job, product=product)  # none left without a reason
    assert record.outcome == PredictionOutcome.FAILED and "stalled after 3 resumes" in record.error
    product.refresh_from_db()
    assert product.review_status == ReviewStatus.FAILED and product.classification_error


def test_resume_is_scheduled_for_every_broker(db):
    schedule = Schedule.objects.get(name="resume stalled classification jobs")
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == (Schedule.MINUTES, 5, -1)
    assert import_string(schedule.func)() == 0  # the task exists and runs (nothing stalled)
