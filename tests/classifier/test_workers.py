"""Real worker processes: a qcluster classifies a job, survives a killed worker; no TensorFlow."""

import os
import subprocess
import sys
import threading

import pytest
from django.conf import settings

from catalog.appwrite import file_id_for_name
from catalog.models import Product, ReviewStatus
from classifier.models import ClassificationJob, JobStatus, PredictionRecord
from classifier.services import classification_job_start, classification_jobs_resume_stalled
from tests.classifier.conftest import BLUE, GREEN, RED
from tests.support import django_fixtures
from tests.support.appwrite_django import use_appwrite_storage
from tests.support.tiny_model import solid_color_jpeg

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("no_auto_classify")]

def _job(job_id: int) -> ClassificationJob:
    return ClassificationJob.objects.get(pk=job_id)


def test_qcluster_classifies_a_job_end_to_end(qcluster, settings, model_version, make_product,
                                              categories):
    settings.CLASSIFIER = {**settings.CLASSIFIER, "CHUNK_SIZE": 4}  # chunks are cut here
    colours = [RED, GREEN, BLUE] * 3
    products = [make_product(solid_color_jpeg(c)) for c in colours]
    bad = make_product(b"this is not an image", name="bad.jpg")

    cluster = qcluster()
    job = classification_job_start(products=Product.objects.all(), scope="e2e")
    assert job.chunk_count == 3

    cluster.wait_for(lambda: _job(job.pk).finished_at is not None, "the job to finish")
    job.refresh_from_db()
    assert (job.status, job.done_count, job.failed_count) == (JobStatus.SUCCEEDED, 9, 1)
    for product, colour in zip(products, colours, strict=True):
        product.refresh_from_db()
        expected = {RED: "red", GREEN: "green", BLUE: "blue"}[colour]
        assert product.category.slug == expected
    assert Product.objects.get(pk=bad.pk).review_status == ReviewStatus.FAILED


@pytest.fixture
def emulator_storage(settings, appwrite_bucket, monkeypatch):
    """Images and models in the Appwrite emulator, for this process and the qclusters it starts."""
    use_appwrite_storage(settings, appwrite_bucket, monkeypatch)
    return appwrite_bucket.emulator


def test_killed_workers_chunk_is_resumed_and_finished_by_another_cluster(
        qcluster, emulator_storage, model_version, make_product):
    products = [make_product(solid_color_jpeg(colour)) for colour in (RED, GREEN, BLUE) * 3]
    parked = products[4]
    # The worker's download of one image is parked in the emulator until the test lets it go:
    # the chunk is then provably mid-flight (model loaded, nothing written) when it is killed.
    gate = threading.Event()
    download = rf"/files/{file_id_for_name(parked.image.name)}/download$"
    emulator_storage.inject("GET", download, hold=gate)
    env = {"Q_WORKERS": "1", "APPWRITE_TIMEOUT": "300"}  # the parked read never times out
    try:
        first = qcluster(env_extra=env)
        job = classification_job_start(products=Product.objects.all(), scope="kill test")
        first.wait_for(lambda: emulator_storage.requests_to(download), "the parked download")
        first.kill_hard()
    finally:
        gate.set()
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and not PredictionRecord.objects.filter(job=job)

    # What the schedule does every few minutes, without waiting: django-q2's Redis broker never
    # re-delivers the lost chunk; on the ORM broker its late re-delivery then skips every product.
    assert classification_jobs_resume_stalled(stalled_after=0) == 1
    second = qcluster(env_extra=env)
    second.wait_for(lambda: _job(job.pk).finished_at is not None,
                    "the resumed chunk to finish")
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert (job.done_count, job.failed_count) == (9, 0)
    recorded = list(PredictionRecord.objects.filter(job=job).values_list("product_id", flat=True))
    assert sorted(recorded) == sorted(p.pk for p in products)  # each exactly once


def test_serving_path_never_imports_tensorflow(transactional_db, model_version, make_product):
    products = [make_product(solid_color_jpeg(c)) for c in (RED, GREEN)]
    job = classification_job_start(products=[p.pk for p in products], enqueue=False)
    script = (
        "import sys, django; django.setup()\n"
        "import classifier.services, classifier.tasks, classifier.admin, catalog.admin\n"
        "from django.contrib import admin; admin.autodiscover()\n"
        f"print(classifier.tasks.classification_chunk_run({job.pk}, {[p.pk for p in products]}))\n"
        "print('TF' if {'tensorflow', 'keras'} & set(sys.modules) else 'NO-TF')\n"
    )
    env = {**os.environ, "DATABASE_URL": django_fixtures.test_database_url(), "DJANGO_DEBUG": "1",
           "DJANGO_MEDIA_ROOT": str(settings.MEDIA_ROOT),
           "DJANGO_SETTINGS_MODULE": "config.settings"}
    result = subprocess.run([sys.executable, "-c", script], cwd=django_fixtures.REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "'done': 2" in result.stdout
    assert result.stdout.strip().endswith("NO-TF")


def test_workers_store_embeddings_and_rebuild_the_similarity_index_after_the_job(
        qcluster, settings, embedding_version, make_product):
    from classifier.models import DuplicateCandidate, ProductEmbedding
    from classifier.services.similar import similar_products
    from classifier.services.similarity_index import index_path, index_state

    products = [make_product(solid_color_jpeg(c), is_published=True)
                for c in (RED, (215, 25, 30), GREEN, BLUE)]
    # The cluster's environment carries the test's index folder (django_fixtures.QCluster).
    cluster = qcluster(env_extra={"SIMILARITY_DUPLICATE_THRESHOLD": "0.99"})
    job = classification_job_start(products=Product.objects.all(), scope="similarity")

    cluster.wait_for(lambda: index_state(embedding_version.embedding_backbone) is not None,
                     "the after-job index rebuild")
    assert _job(job.pk).status == JobStatus.SUCCEEDED
    assert ProductEmbedding.objects.count() == 4
    assert index_path(embedding_version.embedding_backbone).is_file()
    pair = DuplicateCandidate.objects.get()
    assert {pair.product_a, pair.product_b} == set(products[:2])
    # This (web) process maps the file the worker wrote.
    assert similar_products(product=products[0], limit=1)[0].product == products[1]
