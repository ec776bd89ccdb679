"""Writes and workflows for model versions (activation, rollback)."""

import logging

from django.db import transaction
from django.utils import timezone

from classifier.models import ModelVersion

logger = logging.getLogger(__name__)


@transaction.atomic
def model_version_activate(*, model_version: ModelVersion) -> ModelVersion:
    """Make this version the one inference uses, deactivating any other (also a rollback).

    The database enforces "at most one active" with a partial unique index. Concurrent
    activations (two admins, a training task finishing) are serialised by locking every version
    row in primary-key order first: on PostgreSQL each later UPDATE then sees the winner's
    committed state instead of its own stale snapshot, so no activation fails on the index.
    Versions number in the tens or hundreds, so the lock is cheap. SQLite serialises writers
    itself (IMMEDIATE transactions).
    """
    list(ModelVersion.objects.select_for_update().order_by("pk").values_list("pk", flat=True))
    ModelVersion.objects.filter(is_active=True).exclude(pk=model_version.pk).update(
        is_active=False
    )
    ModelVersion.objects.filter(pk=model_version.pk).update(
        is_active=True, activated_at=timezone.now()
    )
    logger.info("Model version v%s activated", model_version.number)
    model_version.refresh_from_db()
    return model_version
