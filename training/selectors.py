"""Reads for training: which catalog products may teach the classifier, and runs in progress."""

from __future__ import annotations

import functools

from django.db.models import QuerySet

from catalog.models import CategorySource, Product
from catalog.storage import read_image_bytes
from classifier.preprocessing import source_size
from training.dataset import LabelledItem
from training.models import TrainingRun, TrainingStatus


def product_list_for_training() -> QuerySet[Product]:
    """Products whose category a person set or confirmed, that have an image in storage.

    Never the classifier's own labels: training on them would teach the model its mistakes.
    Ordered by primary key so the same catalog always yields the same items (and split).
    """
    return (Product.objects.filter(category_source=CategorySource.PERSON, category__isnull=False,
                                   image_missing=False)
            .exclude(image="").select_related("category").order_by("pk"))


def catalog_training_items(*, image_size: tuple[int, int]) -> list[LabelledItem]:
    """The catalog's person-labelled products as ``LabelledItem`` (label = category slug).

    Args:
        image_size: the model's input ``(height, width)``. Images are fetched exactly as the
            classifier fetches them (a server-side preview of ``source_size(image_size)`` when
            the storage offers one), so training and inference see the same pixels.

    Returns:
        One item per product, keyed ``product:<pk>:<sku>``; images are read lazily, in the
        pipeline's thread pool.
    """
    preview_width = source_size(image_size)[1]
    return [LabelledItem(f"product:{p.pk}:{p.sku}", p.category.slug,
                         functools.partial(read_image_bytes, p.image.name,
                                           preview_width=preview_width))
            for p in product_list_for_training()]


def training_runs_unfinished() -> QuerySet:
    """Training runs queued or running (the dashboard's "running jobs")."""
    return TrainingRun.objects.filter(status__in=[TrainingStatus.QUEUED, TrainingStatus.RUNNING])
