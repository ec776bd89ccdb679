"""Writes and workflows for model versions (activation, rollback)."""

import logging

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from catalog.models import CategorySource, Product, ReviewStatus
from classifier.models import RECLASSIFY_SCOPE_PREFIX, ModelVersion

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

    Once committed, the products the classifier is responsible for (still in review, or filed
    by the classifier) are re-classified by the new version; a person's category is never
    touched (``results_apply`` keeps it).
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
    number = model_version.number
    transaction.on_commit(lambda: products_reclassify_after_activation(number=number))
    return model_version


def products_reclassify_after_activation(*, number: int) -> None:
    """Start a job for products in review or filed by the classifier (none: no job)."""
    from classifier.exceptions import NoActiveModelError
    from classifier.services.jobs import classification_job_start

    products = (Product.objects
                .filter(Q(review_status=ReviewStatus.NEEDS_REVIEW)
                        | Q(category_source=CategorySource.CLASSIFIER))
                .exclude(category_source=CategorySource.PERSON)
                .exclude(image="").filter(image_missing=False))
    if not products.exists():
        return
    try:
        classification_job_start(products=products,
                                 scope=f"{RECLASSIFY_SCOPE_PREFIX}v{number} activated")
    except NoActiveModelError:  # deactivated again before this ran
        logger.info("v%s no longer active: products not re-classified", number)
