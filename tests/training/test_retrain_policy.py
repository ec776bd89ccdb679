"""The retrain policy: when the hourly check starts a run; the stored embeddings it trains on."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.models import Schedule

from catalog.models import Product
from classifier.models import ProductEmbedding
from classifier.similarity.encoding import embedding_encode
from tests.training.django_support import colour_jpeg, person_products
from tests.training.test_training_admin import stored_version
from training.hparams import HParams
from training.models import ActivationPolicy, TrainingRun, TrainingStatus
from training.selectors import RETRAIN_SCHEDULE_NAME, catalog_training_items, retrain_status
from training.services import training_run_start_if_due

pytestmark = pytest.mark.django_db


@pytest.fixture
def threshold(settings):
    settings.CLASSIFIER = {**settings.CLASSIFIER, "RETRAIN_AFTER_LABELS": 4}
    return 4


def _active_version_an_hour_ago():
    version = stored_version(is_active=True)
    ModelVersion = type(version)
    ModelVersion.objects.filter(pk=version.pk).update(
        created_at=timezone.now() - timedelta(hours=1))
    version.refresh_from_db()
    return version


def test_retrain_check_is_scheduled_hourly_on_the_training_cluster():
    schedule = Schedule.objects.get(name=RETRAIN_SCHEDULE_NAME)
    assert (schedule.schedule_type, schedule.repeats, schedule.cluster) == (
        Schedule.HOURLY, -1, "training")
    assert callable(import_string(schedule.func))


def test_check_starts_nothing_below_the_threshold_and_says_how_many_labels_are_missing(
        threshold):
    version = _active_version_an_hour_ago()
    person_products("red", threshold - 1)

    run, reason = training_run_start_if_due()

    assert run is None and not TrainingRun.objects.exists()
    assert reason == (f"The next automatic retrain starts after 1 more label (3 of 4 since "
                      f"v{version.number}; checked hourly).")


def test_check_starts_one_if_better_run_with_its_reason_once_the_threshold_is_crossed(threshold):
    version = _active_version_an_hour_ago()
    person_products("red", threshold + 1)

    run, reason = training_run_start_if_due()
    again, second_reason = training_run_start_if_due()

    assert TrainingRun.objects.get() == run and again is None
    assert run.trigger == f"schedule: 5 new labels since v{version.number}"
    assert run.activation_policy == ActivationPolicy.IF_BETTER
    assert run.options["architecture"] == HParams().architecture
    assert run.options["image_size"] == list(HParams().image_size)
    assert reason == f"Started training run #{run.pk} ({run.trigger})."
    assert second_reason.startswith(f"Training run #{run.pk} is queued")


def test_check_starts_nothing_while_a_run_is_running(threshold):
    _active_version_an_hour_ago()
    running = TrainingRun.objects.create(status=TrainingStatus.RUNNING)
    person_products("red", threshold * 2)

    run, reason = training_run_start_if_due()

    assert run is None and TrainingRun.objects.get() == running
    assert f"Training run #{running.pk} is running" in reason


def test_labels_a_kept_inactive_version_already_saw_do_not_start_another_run(threshold):
    """A run whose version the gate refused moves the count: no hourly retrain on old labels."""
    _active_version_an_hour_ago()
    person_products("red", threshold + 2, seed=1)
    finished = TrainingRun.objects.create(status=TrainingStatus.SUCCEEDED, activated=False)

    assert training_run_start_if_due()[0] is None
    person_products("green", threshold, seed=2)
    run, _ = training_run_start_if_due()

    assert run is not None and run.trigger == (
        f"schedule: {threshold} new labels since training run #{finished.pk}")


def test_zero_turns_automatic_retraining_off(settings):
    settings.CLASSIFIER = {**settings.CLASSIFIER, "RETRAIN_AFTER_LABELS": 0}
    person_products("red", 10)

    run, reason = training_run_start_if_due()

    assert run is None and "off" in reason and not TrainingRun.objects.exists()


def test_without_an_active_model_every_label_counts_towards_the_first(threshold):
    person_products("red", threshold)

    status = retrain_status()

    assert (status.new_labels, status.since_what, status.due) == (threshold, "the start", True)


def test_due_retrain_names_the_next_scheduled_check(threshold):
    person_products("red", threshold)
    Schedule.objects.filter(name=RETRAIN_SCHEDULE_NAME).update(
        next_run=timezone.now().replace(hour=14, minute=0))

    assert retrain_status().sentence() == (
        "A retrain is due (4 new labels since the start): it starts at the next check (14:00).")


# --- stored embeddings -------------------------------------------------------------------------

BACKBONE = "efficientnet_lite0:0123456789abcdef@64x64"


def _store(product: Product, vector, *, backbone=BACKBONE, norm=True, image_name=None):
    vector = np.asarray(vector, np.float32)
    ProductEmbedding.objects.create(
        product=product, backbone=backbone, dim=len(vector), vector=embedding_encode(vector),
        norm=float(np.linalg.norm(vector)) if norm else None,
        image_name=product.image.name if image_name is None else image_name)


def test_training_items_carry_the_raw_stored_embedding_of_the_runs_backbone_only():
    rng = np.random.default_rng(0)
    current, other_backbone, no_norm, old_image, none = person_products("red", 5)
    raw = rng.uniform(0, 6, 1280)  # ReLU6 features: non-negative, length ~100, not 1
    _store(current, raw)
    _store(other_backbone, raw, backbone="efficientnet_lite0:0123456789abcdef@224x224")
    _store(no_norm, raw, norm=False)
    _store(old_image, raw)
    old_image.image.save("replaced.jpg", ContentFile(colour_jpeg((9, 9, 9), rng)))

    items = {item.key.split(":")[1]: item
             for item in catalog_training_items(image_size=(224, 224), embedding_backbone=BACKBONE)}

    given = items[str(current.pk)]
    assert given.embedding_backbone == BACKBONE and given.digest.startswith("stored:")
    np.testing.assert_allclose(np.asarray(given.embedding, np.float32), raw, rtol=2e-3,
                               atol=2e-3)
    for product in (other_backbone, no_norm, old_image, none):
        assert items[str(product.pk)].embedding is None, product
    assert items[str(none.pk)].load() == none.image.open("rb").read()
    assert all(item.embedding is None for item in catalog_training_items(image_size=(224, 224)))
