"""Product image embeddings: stored from each classification pass, backfilled for older products."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from django.db import DatabaseError, transaction

from catalog.models import Product
from classifier.exceptions import EmbeddingFormatError, NoEmbeddingModelError
from classifier.models import ModelVersion, ProductEmbedding
from classifier.runtime import LoadedModel, get_active_model
from classifier.selectors import products_without_current_embedding
from classifier.services.classify import classify_products
from classifier.services.results import ItemResult
from classifier.similarity.encoding import (
    CODEC_FLOAT16,
    embedding_decode,
    embedding_encode,
    l2_normalise,
)

logger = logging.getLogger(__name__)

# float16, not int8: on the demo catalog's real embeddings (bench/duplicate_threshold.py) float16
# changes cosine scores by < 1e-4 and keeps recall@10 at 1.000; int8 halves the bytes (1,288 vs
# 2,564 for 1,280 dims) but moves scores by up to 0.005, right where the duplicate threshold
# cuts, and drops recall@10 to 0.994. The index stores float16 anyway, so nothing is rounded twice.
EMBEDDING_CODEC = CODEC_FLOAT16

# Rows read per query when loading every embedding of a backbone (2.5 MB of vectors at 1,280
# dims): bounded memory per step, few round trips.
LOAD_BATCH = 1000

_FIELDS = ["backbone", "dim", "vector", "norm", "model_version", "image_name", "updated_at"]


def backbone_tag(*, backbone: str, checksum: str) -> str:
    """The key under which a model version's embeddings are comparable.

    The version's ``embedding_backbone`` (the backbone and its weights; a fine-tuned backbone has
    its own); a model that does not declare one (imported, or trained before embeddings were
    recorded) is comparable only with itself, so its file checksum stands in.
    """
    return backbone or f"model:{checksum[:16]}"


def model_version_backbone(version_id: int) -> str:
    """``backbone_tag`` of a stored model version (one query)."""
    backbone, checksum = ModelVersion.objects.values_list(
        "embedding_backbone", "checksum").get(pk=version_id)
    return backbone_tag(backbone=backbone, checksum=checksum)


def product_embeddings_store(*, results: Sequence[ItemResult], products: Sequence[Product],
                             model_version_id: int) -> int:
    """Store the embeddings a chunk's classification computed, in one bulk upsert.

    Called by the chunk runner beside its results (same transaction, own savepoint), and a
    problem here never undoes a classification: a malformed vector (all zeros, NaN) is skipped
    and logged, a database error is logged with the fix (``backfill_embeddings``) and the chunk
    goes on. Products
    deleted meanwhile are skipped. ``products`` are the rows the images were fetched for: their
    image names say which image each vector belongs to.

    Returns:
        How many embeddings were written.
    """
    with_vectors = [r for r in results
                    if r.prediction is not None and r.prediction.embedding is not None]
    if not with_vectors:
        return 0
    names = {p.pk: p.image.name for p in products}
    try:
        # A savepoint: inside the chunk's transaction a failure here rolls back only this.
        with transaction.atomic():
            return _upsert(model_version_backbone(model_version_id), model_version_id,
                           [(r.product_id, r.prediction.embedding, names.get(r.product_id, ""))
                            for r in with_vectors])
    except DatabaseError:
        logger.exception("Embeddings of %s products not stored (model version %s); similar "
                         "products and duplicates miss them until `manage.py backfill_embeddings "
                         "--apply` runs", len(with_vectors), model_version_id)
        return 0


def _upsert(backbone: str, model_version_id: int,
            items: Sequence[tuple[int, np.ndarray, str]]) -> int:
    """Encode and insert-or-update ``(product id, vector, image name)`` rows in one statement."""
    rows = []
    for product_id, vector, image_name in items:
        try:
            encoded = embedding_encode(vector, codec=EMBEDDING_CODEC)
        except EmbeddingFormatError as exc:
            logger.warning("Product %s: embedding not stored: %s", product_id, exc.message)
            continue
        rows.append(ProductEmbedding(product_id=product_id, backbone=backbone, dim=len(vector),
                                     vector=encoded, norm=float(np.linalg.norm(vector)),
                                     model_version_id=model_version_id, image_name=image_name))
    existing = set(Product.objects.filter(pk__in=[r.product_id for r in rows])
                   .values_list("pk", flat=True))
    rows = [r for r in rows if r.product_id in existing]
    ProductEmbedding.objects.bulk_create(rows, update_conflicts=True,
                                         unique_fields=["product"], update_fields=_FIELDS)
    return len(rows)


# --- Reading them back ---------------------------------------------------------------------------

def embeddings_iter(*, backbone: str, published_only: bool = False, batch: int = LOAD_BATCH
                    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(ids, unit float32 vectors)`` of a backbone's stored embeddings, a batch at a time.

    Read in primary-key order with keyset paging (served by the (backbone, product) index), so
    memory stays bounded and rows written meanwhile are neither skipped nor repeated. A row that
    does not decode, or has another width than the first, is skipped with a warning (it is
    re-embedded by the next pass).
    """
    rows = ProductEmbedding.objects.filter(backbone=backbone)
    if published_only:
        rows = rows.filter(product__is_published=True)
    last, dim = 0, None
    while True:
        page = list(rows.filter(product_id__gt=last).order_by("product_id")
                    .values_list("product_id", "vector")[:batch])
        if not page:
            return
        last = page[-1][0]
        ids = np.asarray([product_id for product_id, _ in page], dtype=np.int64)
        blobs = [bytes(blob) for _, blob in page]
        vectors = _decode_uniform(blobs)
        if vectors is None or vectors.shape[1] != (dim or vectors.shape[1]):
            ids, vectors = _decode_each(ids, blobs, dim)
        if len(ids):
            dim = vectors.shape[1]
            yield ids, vectors


def _decode_uniform(blobs: list[bytes]) -> np.ndarray | None:
    """All of a page's vectors in one NumPy step, when they share the float16 layout this module
    writes (same header and length): ~30x faster than one ``embedding_decode`` per row. None
    when they do not (another codec, mixed widths, a bad row): then each row is decoded alone.
    """
    try:
        first = embedding_decode(blobs[0])
    except EmbeddingFormatError:
        return None
    offset = len(blobs[0]) - 2 * len(first)  # float16 payload: 2 bytes per dimension at the end
    header = blobs[0][:max(offset, 0)]
    if offset <= 0 or any(len(b) != len(blobs[0]) or b[:offset] != header for b in blobs):
        return None
    raw = np.frombuffer(b"".join(b[offset:] for b in blobs), dtype="<f2")
    try:
        vectors = l2_normalise(raw.reshape(len(blobs), len(first)))
    except EmbeddingFormatError:
        return None
    # The first row decoded both ways must agree, or the layout was not float16 after all.
    return vectors if np.allclose(vectors[0], first, atol=1e-6) else None


def _decode_each(ids: np.ndarray, blobs: list[bytes], dim: int | None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Row by row, skipping (and logging) rows that do not decode or are not ``dim`` wide
    (``None``: as wide as the first good row)."""
    kept, vectors = [], []
    for product_id, blob in zip(ids.tolist(), blobs):
        try:
            vector = embedding_decode(blob)
        except EmbeddingFormatError as exc:
            logger.warning("Product %s: stored embedding skipped: %s", product_id, exc.message)
            continue
        dim = dim or len(vector)
        if len(vector) == dim:
            kept.append(product_id)
            vectors.append(vector)
    if not vectors:
        return np.empty(0, np.int64), np.empty((0, 0), np.float32)
    return np.asarray(kept, dtype=np.int64), np.stack(vectors)


def product_embedding_vector(*, product_id: int, backbone: str | None = None
                             ) -> tuple[str, np.ndarray] | None:
    """A product's stored ``(backbone, unit vector)``; None when it has none (or another
    backbone's, when ``backbone`` is given) or the stored bytes are corrupt."""
    rows = ProductEmbedding.objects.filter(product_id=product_id)
    if backbone is not None:
        rows = rows.filter(backbone=backbone)
    row = rows.values_list("backbone", "vector").first()
    if row is None:
        return None
    try:
        return row[0], embedding_decode(row[1])
    except EmbeddingFormatError:
        return None


# --- Backfill ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BackfillOutcome:
    """What a backfill did (or, dry, would do)."""

    backbone: str
    model_number: int
    missing: int
    embedded: int = 0
    failed: int = 0


def products_embeddings_backfill(*, apply: bool, chunk_size: int = 64,
                                 progress: Callable[[int], None] | None = None
                                 ) -> BackfillOutcome:
    """Embed, with the active model, every product image without a current embedding.

    "Current" means computed by the active model's backbone from the product's present image;
    products embedded so are skipped, so a re-run resumes where an interrupted one stopped.
    Images are fetched, decoded and run through the model in chunks exactly as classification
    does (``classify_products``), but only the embeddings are written: categories, predictions
    and the review queue are left alone. Failed images are logged and counted.

    Args:
        apply: False only counts what would be embedded.
        chunk_size: Products per batched inference.
        progress: Called with the number of products of each chunk once it is done.

    Raises:
        NoActiveModelError: No model version is active.
        NoEmbeddingModelError: The active model outputs no embedding.
    """
    model = embedding_model()
    backbone = model_version_backbone(model.version_id)
    pending = products_without_current_embedding(backbone=backbone).order_by("pk")
    ids = list(pending.values_list("pk", flat=True))
    outcome = BackfillOutcome(backbone=backbone, model_number=model.number, missing=len(ids))
    if not apply:
        return outcome
    embedded = failed = 0
    for start in range(0, len(ids), max(1, chunk_size)):
        products = list(Product.objects.filter(pk__in=ids[start:start + chunk_size]))
        results, _ = classify_products(products, model)
        stored = product_embeddings_store(results=results, products=products,
                                          model_version_id=model.version_id)
        embedded += stored
        failed += len(products) - stored
        if progress:
            progress(len(products))
    return BackfillOutcome(backbone=backbone, model_number=model.number, missing=len(ids),
                           embedded=embedded, failed=failed)


def embedding_model() -> LoadedModel:
    """The active model, checked to output an image embedding.

    Raises:
        NoActiveModelError, ModelLoadError, ModelContractError: No usable active model.
        NoEmbeddingModelError: It outputs no embedding.
    """
    model = get_active_model()
    if model.classifier.embedding_dim == 0:
        raise NoEmbeddingModelError(
            f"The active model v{model.number} outputs no image embedding, so products cannot "
            "be compared by image. Train a model with a pretrained backbone (the default, "
            "EfficientNet-Lite0) and activate it.")
    return model
