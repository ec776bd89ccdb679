"""``manage.py classify_catalog``: enqueue by default, run in-process with --sync."""

import io

import pytest
from django.core.management import CommandError, call_command

from catalog.models import Product, ReviewStatus
from classifier.models import ClassificationJob, JobStatus
from tests.classifier.conftest import BLUE, RED
from tests.support.tiny_model import solid_color_jpeg

pytestmark = pytest.mark.usefixtures("no_auto_classify")


def test_sync_classifies_unclassified_products_in_process(model_version, make_product):
    fresh = make_product(solid_color_jpeg(RED))
    make_product(solid_color_jpeg(BLUE), review_status=ReviewStatus.CLASSIFIED)
    out = io.StringIO()

    call_command("classify_catalog", "--unclassified", "--sync", stdout=out, stderr=io.StringIO())

    job = ClassificationJob.objects.get()
    assert (job.status, job.total, job.done_count) == (JobStatus.SUCCEEDED, 1, 1)
    assert Product.objects.get(pk=fresh.pk).predicted_category.slug == "red"
    assert f"Job {job.pk} succeeded: 1 classified, 0 failed" in out.getvalue()


def test_default_enqueues_a_job_and_prints_its_id(model_version, make_product):
    products = [make_product(solid_color_jpeg(RED)) for _ in range(3)]
    out = io.StringIO()

    call_command("classify_catalog", "--ids", f"{products[0].pk},{products[2].pk}", stdout=out)

    job = ClassificationJob.objects.get()
    assert job.total == 2 and job.status == JobStatus.QUEUED
    assert f"Enqueued classification job {job.pk}" in out.getvalue()


def test_without_active_model_the_command_says_how_to_fix(db, make_product):
    make_product(solid_color_jpeg(RED))
    with pytest.raises(CommandError, match="activate"):
        call_command("classify_catalog", "--all", stdout=io.StringIO())


def test_nothing_to_classify_creates_no_job(model_version, make_product):
    make_product()  # no image: nothing the classifier could look at
    out = io.StringIO()

    call_command("classify_catalog", "--unclassified", stdout=out)

    assert "Nothing to classify" in out.getvalue()
    assert not ClassificationJob.objects.exists()


def test_bad_ids_are_refused(db):
    with pytest.raises(CommandError, match="comma-separated"):
        call_command("classify_catalog", "--ids", "1,x", stdout=io.StringIO())
