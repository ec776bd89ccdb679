"""Reads for model versions, jobs, the review queue and the products waiting for the classifier."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Case, Count, Exists, F, OuterRef, QuerySet, When

from catalog.models import Category, CategorySource, Product, ReviewStatus
from classifier.models import (
    ClassificationJob,
    DuplicateCandidate,
    DuplicateDecision,
    JobStatus,
    ModelVersion,
    PredictionOutcome,
    PredictionRecord,
    ProductEmbedding,
)

# Jobs that still hold workers' attention: shown on the dashboard as "running".
UNFINISHED_JOB_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)


def model_version_get_active() -> ModelVersion | None:
    return ModelVersion.objects.filter(is_active=True).first()


def products_unclassified():
    """Products the classifier has not looked at yet and that have an image to look at."""
    return Product.objects.filter(review_status=ReviewStatus.UNCLASSIFIED, image_missing=False
                                  ).exclude(image="")


def products_without_current_embedding(*, backbone: str) -> QuerySet[Product]:
    """Products with an image but no embedding of that image by ``backbone``: never embedded,
    embedded by another backbone, or given a new image since (a new upload has a new name)."""
    current = ProductEmbedding.objects.filter(product=OuterRef("pk"), backbone=backbone,
                                              image_name=OuterRef("image"))
    return (Product.objects.filter(image_missing=False).exclude(image="")
            .exclude(Exists(current)))


def job_records(*, job) -> QuerySet:
    """Every product a job recorded, with its outcome, failures first, for the job's page."""
    failures_first = Case(When(outcome=PredictionOutcome.FAILED, then=0), default=1)
    return (PredictionRecord.objects.filter(job=job)
            .select_related("product", "category", "category__parent")
            .order_by(failures_first, "product_id"))


# --- review -------------------------------------------------------------------------------------


def products_for_review(*, predicted_slug: str = "") -> QuerySet[Product]:
    """The review queue: least certain first, where a person's decision teaches the model most.

    Args:
        predicted_slug: Only products predicted as this category (the review page's filter).
    """
    products = (Product.objects.filter(review_status=ReviewStatus.NEEDS_REVIEW)
                .select_related("predicted_category", "predicted_category__parent", "category"))
    if predicted_slug:
        products = products.filter(predicted_category__slug=predicted_slug)
    return products.order_by(F("prediction_confidence").asc(nulls_last=True), "pk")


def review_queue_by_predicted_category() -> list[tuple[Category, int]]:
    """Categories the queue's products are predicted as, with counts (the page's filter)."""
    counts = dict(Product.objects.filter(review_status=ReviewStatus.NEEDS_REVIEW,
                                         predicted_category__isnull=False)
                  .values_list("predicted_category").annotate(n=Count("pk")).order_by())
    categories = Category.objects.filter(pk__in=counts).select_related("parent")
    return [(category, counts[category.pk]) for category in categories]


def products_needing_review_count() -> int:
    return Product.objects.filter(review_status=ReviewStatus.NEEDS_REVIEW).count()


def person_labels_since(*, since: datetime | None) -> QuerySet[Product]:
    """Products whose category a person set (chose, accepted or imported) since ``since``."""
    products = Product.objects.filter(category_source=CategorySource.PERSON)
    return products if since is None else products.filter(category_set_at__gte=since)


def person_labels_since_active_model_count() -> int:
    """How many products people labelled since the active model was trained.

    New labels are what a retrain learns from, so this is the number a retrain policy watches;
    with no active model every person's label is new.
    """
    active = model_version_get_active()
    return person_labels_since(since=active.created_at if active else None).count()


def products_auto_filled_since(*, since: datetime) -> QuerySet[Product]:
    """Products whose shop category the classifier filled on its own since ``since``."""
    return Product.objects.filter(category_source=CategorySource.CLASSIFIER,
                                  category_set_at__gte=since)


def classification_jobs_unfinished() -> QuerySet[ClassificationJob]:
    return ClassificationJob.objects.filter(status__in=UNFINISHED_JOB_STATUSES)


# --- duplicates ---------------------------------------------------------------------------------


def duplicate_candidates_undecided() -> QuerySet[DuplicateCandidate]:
    """The last scan's duplicate pairs that nobody has decided on, most alike first."""
    decided = DuplicateDecision.objects.filter(product_a=OuterRef("product_a"),
                                               product_b=OuterRef("product_b"))
    return (DuplicateCandidate.objects.exclude(Exists(decided))
            .select_related("product_a__category", "product_b__category")
            .order_by("-score", "product_a", "product_b"))
