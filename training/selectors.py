"""Reads for training: which catalog products may teach the classifier, and runs in progress."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from datetime import datetime

import numpy as np
from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone
from django_q.models import Schedule

from catalog.models import CategorySource, Product
from catalog.storage import read_image_bytes
from classifier.exceptions import EmbeddingFormatError
from classifier.preprocessing import source_size
from classifier.selectors import model_version_get_active, person_labels_since
from training.dataset import LabelledItem
from training.models import TrainingRun, TrainingSource, TrainingStatus

# Stored embeddings fetched per database round trip (~2.5 KB each at 1,280 dimensions).
EMBEDDING_ROWS_PER_FETCH = 2000


def product_list_for_training() -> QuerySet[Product]:
    """Products whose category a person set or confirmed, that have an image in storage.

    Never the classifier's own labels: training on them would teach the model its mistakes.
    Ordered by primary key so the same catalog always yields the same items (and split).
    """
    return (Product.objects.filter(category_source=CategorySource.PERSON, category__isnull=False,
                                   image_missing=False)
            .exclude(image="").select_related("category").order_by("pk"))


def catalog_training_items(*, image_size: tuple[int, int],
                           embedding_backbone: str = "") -> list[LabelledItem]:
    """The catalog's person-labelled products as ``LabelledItem`` (label = category slug).

    Args:
        image_size: the model's input ``(height, width)``. Images are fetched exactly as the
            classifier fetches them (a server-side preview of ``source_size(image_size)`` when
            the storage offers one), so training and inference see the same pixels.
        embedding_backbone: the backbone id the run will embed with (``expected_backbone_id``);
            a product whose stored embedding came from that backbone, from its present image,
            carries it, so the run neither reads nor decodes that image.

    Returns:
        One item per product, keyed ``product:<pk>:<sku>``; images are read lazily, in the
        pipeline's thread pool, and only when the item has no usable embedding.
    """
    preview_width = source_size(image_size)[1]
    products = product_list_for_training()
    stored = (_stored_embeddings(products, embedding_backbone) if embedding_backbone else {})
    items = []
    for p in products:
        item = LabelledItem(f"product:{p.pk}:{p.sku}", p.category.slug,
                            functools.partial(read_image_bytes, p.image.name,
                                              preview_width=preview_width))
        found = stored.get((p.pk, p.image.name))
        if found is not None:
            item = dataclasses.replace(item, embedding=found[0],
                                       embedding_backbone=embedding_backbone, digest=found[1])
        items.append(item)
    return items


def _stored_embeddings(products: QuerySet[Product], backbone: str
                       ) -> dict[tuple[int, str], tuple[np.ndarray, str]]:
    """``{(product id, image name): (raw float16 embedding, digest)}`` of ``backbone``.

    Only rows that recorded the raw vector's length (``norm``); the image name ties each vector
    to the image it was computed from, so a product whose image changed since is read again.
    """
    from classifier.models import ProductEmbedding
    from classifier.similarity.encoding import embedding_decode

    rows = (ProductEmbedding.objects.filter(backbone=backbone, norm__isnull=False,
                                            product__in=products.values("pk"))
            .values_list("product_id", "image_name", "vector", "norm"))
    vectors = {}
    for product_id, image_name, blob, norm in rows.iterator(chunk_size=EMBEDDING_ROWS_PER_FETCH):
        try:
            unit = embedding_decode(blob)
        except EmbeddingFormatError:
            continue  # a corrupt row: this product's image is read and embedded instead
        # float16 like the stored unit vector: the same precision at half a float32's memory.
        vectors[(product_id, image_name)] = ((unit * norm).astype(np.float16),
                                             _stored_image_digest(image_name, bytes(blob)))
    return vectors


def _stored_image_digest(image_name: str, vector_blob: bytes) -> str:
    """Key of an image in the training cache's pixel table when its bytes are not read.

    The image's storage name and its embedding stand in for a hash of its content: a new
    upload gets a new name, and the same name in another storage (a test, another bucket)
    holding another image has another embedding, so cached pixels are never another image's.
    """
    return "stored:" + hashlib.sha256(image_name.encode() + b"\0" + vector_blob).hexdigest()


def training_runs_unfinished() -> QuerySet:
    """Training runs queued or running (the dashboard's "running jobs")."""
    return TrainingRun.objects.filter(status__in=[TrainingStatus.QUEUED, TrainingStatus.RUNNING])


# --- automatic retraining -----------------------------------------------------------------------

# The django-q2 schedule (training/migrations/0003) whose next run is the next retrain check.
RETRAIN_SCHEDULE_NAME = "retrain when enough new labels"


@dataclasses.dataclass(frozen=True)
class RetrainStatus:
    """Where the retrain policy stands: the review page and dashboard say it, the check acts on it.

    ``new_labels`` counts person labels since the later of the active version's creation and
    the last catalog training run's request: a run whose version the gate or the "if better"
    comparison kept inactive has already learnt from those labels, so the next one waits for
    ``threshold`` more instead of retraining on the same ones every hour.
    """

    threshold: int
    new_labels: int
    since_what: str
    run_in_progress: TrainingRun | None
    next_check: datetime | None

    @property
    def enabled(self) -> bool:
        return self.threshold > 0

    @property
    def due(self) -> bool:
        return (self.enabled and self.run_in_progress is None
                and self.new_labels >= self.threshold)

    @property
    def remaining(self) -> int:
        return max(0, self.threshold - self.new_labels)

    def sentence(self) -> str:
        """When the next automatic retrain happens, in one sentence for a shop operator."""
        if not self.enabled:
            return "Automatic retraining is off (CLASSIFIER_RETRAIN_AFTER_LABELS=0)."
        if self.run_in_progress is not None:
            return (f"Training run #{self.run_in_progress.pk} is "
                    f"{self.run_in_progress.get_status_display().lower()}; the next automatic "
                    "retrain counts labels from its start.")
        when = (f"at the next check ({timezone.localtime(self.next_check):%H:%M})"
                if self.next_check else "when a training worker runs the hourly check")
        if self.due:
            return (f"A retrain is due ({self.new_labels} new labels since {self.since_what}): "
                    f"it starts {when}.")
        return (f"The next automatic retrain starts after {self.remaining} more "
                f"label{'s' if self.remaining != 1 else ''} ({self.new_labels} of "
                f"{self.threshold} since {self.since_what}; checked hourly).")


def retrain_status() -> RetrainStatus:
    """The retrain policy's state: threshold, new labels, a run in progress, the next check."""
    active = model_version_get_active()
    since, since_what = (active.created_at, f"v{active.number}") if active else (None, "the start")
    last_run = (TrainingRun.objects.filter(source=TrainingSource.CATALOG)
                .order_by("-created_at", "-pk").first())
    if last_run is not None and (since is None or last_run.created_at > since):
        since, since_what = last_run.created_at, f"training run #{last_run.pk}"
    next_check = (Schedule.objects.filter(name=RETRAIN_SCHEDULE_NAME).exclude(repeats=0)
                  .values_list("next_run", flat=True).first())
    return RetrainStatus(
        threshold=settings.CLASSIFIER["RETRAIN_AFTER_LABELS"],
        new_labels=person_labels_since(since=since).count(),
        since_what=since_what, run_in_progress=training_runs_unfinished().first(),
        next_check=next_check)
