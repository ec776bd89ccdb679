"""Reads for model versions, jobs and the products waiting for the classifier."""

from classifier.models import ModelVersion


def model_version_get_active() -> ModelVersion | None:
    return ModelVersion.objects.filter(is_active=True).first()


def products_unclassified():
    """Products the classifier has not looked at yet and that have an image to look at."""
    from catalog.models import Product, ReviewStatus

    return Product.objects.filter(review_status=ReviewStatus.UNCLASSIFIED, image_missing=False
                                  ).exclude(image="")


def job_failed_records(*, job, limit: int = 200):
    """A job's failed products with their reasons, for the job page (capped: it is a page)."""
    from classifier.models import PredictionOutcome, PredictionRecord

    return (PredictionRecord.objects.filter(job=job, outcome=PredictionOutcome.FAILED)
            .select_related("product").order_by("product_id")[:limit])
