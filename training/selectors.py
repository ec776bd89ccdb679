"""Reads for training: which catalog products may teach the classifier, and runs in progress."""

from __future__ import annotations

from collections.abc import Callable

from django.db.models import QuerySet

from catalog.models import CategorySource, Product
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


def catalog_training_items(*, image_side: int | None = None) -> list[LabelledItem]:
    """The catalog's person-labelled products as ``LabelledItem`` (label = category slug).

    Args:
        image_side: the model's input side; lets the storage fetch a smaller preview when it
            supports one (the classifier's own fetch path does the same, so pixels match).

    Returns:
        One item per product, keyed ``product:<pk>:<sku>``; images are read lazily, in the
        pipeline's thread pool.
    """
    return [LabelledItem(f"product:{p.pk}:{p.sku}", p.category.slug,
                         _image_loader(p.image.name, p.image.storage, image_side))
            for p in product_list_for_training()]


def _image_loader(name: str, storage, image_side: int | None) -> Callable[[], bytes]:
    try:  # The storage helper's fetch path (Appwrite previews, retries) when it is installed.
        from catalog.storage import read_image_bytes
    except ImportError:
        read_image_bytes = None

    def load() -> bytes:
        if read_image_bytes is not None:
            return read_image_bytes(name, for_size=image_side)
        # A fresh handle per call: loaders run concurrently in the pipeline's threads.
        with storage.open(name, "rb") as handle:
            return handle.read()

    return load


def training_runs_unfinished() -> QuerySet:
    """Training runs queued or running (the dashboard's "running jobs")."""
    return TrainingRun.objects.filter(status__in=[TrainingStatus.QUEUED, TrainingStatus.RUNNING])
