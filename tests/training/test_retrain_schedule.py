"""The hourly retrain check on a real training qcluster: one run once enough labels exist, none
before, and a run from stored embeddings that reads no image."""

from __future__ import annotations

import importlib
from datetime import timedelta

import pytest
from django.apps import apps
from django.core.files.base import ContentFile
from django.utils import timezone

from catalog.models import Category, Product
from catalog.services import product_create, product_set_category_by_person
from classifier.models import ModelVersion, ProductEmbedding
from tests.support.pretrained import CATEGORIES, demo_photos
from training.models import TrainingRun, TrainingStatus
from training.selectors import RETRAIN_SCHEDULE_NAME

pytestmark = pytest.mark.slow

PER_CATEGORY = 6
THRESHOLD = len(CATEGORIES) * PER_CATEGORY
# Small and quick, like the session's pretrained model: its stored embeddings are @64x64.
RUN_OPTIONS = {"image_size": [64, 64], "quantization": "float32", "min_images_per_class": 5,
               "seed": 1}


@pytest.fixture
def retrain_schedule(transactional_db):
    """The migration's schedule row (flushed by earlier transactional tests), fed test options."""
    from django_q.models import Schedule

    migration = importlib.import_module("training.migrations.0003_schedule_retrain_check")
    migration.create_schedule(apps, None)
    Schedule.objects.filter(name=RETRAIN_SCHEDULE_NAME).update(
        kwargs=repr({"options": RUN_OPTIONS}))
    return Schedule.objects.get(name=RETRAIN_SCHEDULE_NAME)


def _tick(cluster, schedule) -> str:
    """Make the check due now, wait until the cluster's scheduler ran it; its result."""
    from django_q.models import Schedule, Task

    Schedule.objects.filter(pk=schedule.pk).update(next_run=timezone.now() - timedelta(seconds=1),
                                                   task=None)

    def task_id():
        return Schedule.objects.get(pk=schedule.pk).task

    cluster.wait_for(lambda: task_id() and Task.objects.filter(id=task_id()).exists(),
                     "the scheduled retrain check")
    return Task.objects.get(id=task_id()).result


def _active_pretrained_version(outcome) -> ModelVersion:
    from training.services.versions import model_version_create_from_outcome

    for slug in outcome.labels:
        Category.objects.get_or_create(slug=slug, defaults={"name": slug.title()})
    version = model_version_create_from_outcome(outcome=outcome, name="pretrained")
    # Active since an hour ago, set directly: activation would queue re-classification jobs.
    ModelVersion.objects.filter(pk=version.pk).update(
        is_active=True, activated_at=timezone.now(),
        created_at=timezone.now() - timedelta(hours=1))
    return ModelVersion.objects.get(pk=version.pk)


def _labelled_products(count_per_category: int, start: int) -> list[Product]:
    """Products a person filed, with demo photos the pretrained model did not train on."""
    products = []
    for slug in CATEGORIES:
        photos = demo_photos(slug, start + count_per_category, variant=2)[start:]
        products += [product_create(sku=f"{slug}-{i}", title=path.stem,
                                    category=Category.objects.get(slug=slug),
                                    image=ContentFile(path.read_bytes(), name=path.name))
                     for i, path in enumerate(photos, start)]
    return products


def _store_embeddings() -> None:
    """What classification stores for each product: here by the backfill, with the active model."""
    from classifier.services.embeddings import products_embeddings_backfill

    outcome = products_embeddings_backfill(apply=True)
    assert outcome.failed == 0 and outcome.embedded == outcome.missing


def _finished_run(cluster) -> TrainingRun:
    cluster.wait_for(lambda: TrainingRun.objects.filter(status__in=[
        TrainingStatus.SUCCEEDED, TrainingStatus.FAILED]).count()
        == TrainingRun.objects.count() > 0, "the training run to finish")
    return TrainingRun.objects.order_by("-pk").first()


def test_scheduled_check_starts_one_run_past_the_threshold_and_it_reads_no_stored_image(
        qcluster, retrain_schedule, pretrained_outcome, settings, tmp_path):
    from django_q.brokers import get_broker

    settings.CLASSIFIER = {**settings.CLASSIFIER, "AUTO_CLASSIFY": False}
    get_broker("training").purge_queue()
    version = _active_pretrained_version(pretrained_outcome)
    _labelled_products(PER_CATEGORY - 1, start=0)
    _store_embeddings()
    # Its own var/ folder: the embedding and pixel caches start empty.
    cluster = qcluster(cluster_name="training", env_extra={
        "CLASSIFIER_RETRAIN_AFTER_LABELS": str(THRESHOLD), "CLASSIFIER_AUTO_CLASSIFY": "0",
        "CATALOG_VAR_DIR": str(tmp_path / "var")})

    below = _tick(cluster, retrain_schedule)
    assert not TrainingRun.objects.exists()
    assert below.startswith(f"The next automatic retrain starts after {len(CATEGORIES)} more")

    _labelled_products(1, start=PER_CATEGORY - 1)
    _store_embeddings()
    started = _tick(cluster, retrain_schedule)
    run = TrainingRun.objects.get()
    assert started == f"Started training run #{run.pk} ({run.trigger})."
    assert run.trigger == f"schedule: {THRESHOLD} new labels since v{version.number}"
    _tick(cluster, retrain_schedule)  # runs after the training run on the one training worker
    first = _finished_run(cluster)
    assert first == run and TrainingRun.objects.count() == 1
    assert first.status == TrainingStatus.SUCCEEDED, first.error + first.log
    # The first run from stored embeddings reads only the export checks' sample (all 18 here).
    assert (f"{THRESHOLD} stored with their products; read {THRESHOLD} image files, decoded "
            f"{THRESHOLD}.") in first.log

    # People confirm every product again; every image file is then gone from storage.
    for product in Product.objects.all():
        product_set_category_by_person(product=product, category=product.category)
        product.image.storage.delete(product.image.name)
    _tick(cluster, retrain_schedule)
    second = _finished_run(cluster)
    assert TrainingRun.objects.count() == 2 and second != first
    assert second.status == TrainingStatus.SUCCEEDED, second.error + second.log
    assert f"{THRESHOLD} stored with their products; read no image." in second.log
    assert "Skipped" not in second.log
    assert ProductEmbedding.objects.count() == THRESHOLD
