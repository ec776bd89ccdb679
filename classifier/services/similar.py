"""Similar products and search by photo: nearest stored embeddings of one backbone, by cosine."""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
from django.conf import settings

from catalog.models import Product
from classifier.exceptions import ClassifierError
from classifier.models import ProductEmbedding
from classifier.services.embeddings import (
    embedding_model,
    embeddings_iter,
    model_version_backbone,
    product_embedding_vector,
)
from classifier.services.similarity_index import open_index
from classifier.similarity.encoding import l2_normalise

logger = logging.getLogger(__name__)

# Results one request may ask for: a storefront row or two, not a catalog export.
MAX_LIMIT = 50
DEFAULT_LIMIT = 10
# The index holds every product (drafts too); results are kept only if still visible, so ask
# for more neighbours than needed, and 4x more again (up to MAX_FETCH) when too few survive.
# MAX_FETCH bounds one request's work on a catalog that is mostly unpublished.
FETCH_MARGIN = 10
MAX_FETCH = 2000


@dataclass(frozen=True)
class SimilarProduct:
    """A product and the cosine similarity of its image to the query (1.0 = same direction)."""

    product: Product
    score: float


def similar_products(*, product: Product, limit: int = DEFAULT_LIMIT,
                     published_only: bool = True) -> list[SimilarProduct]:
    """Products whose images look most like ``product``'s, best first, without the product.

    Compared under the backbone that embedded ``product``'s image, so two backbones' vectors
    are never mixed. A product without an embedding (not classified yet) has no similar
    products: the answer is empty, not an error.

    Args:
        published_only: Only published products (the storefront); False for staff pages.
    """
    stored = product_embedding_vector(product_id=product.pk)
    if stored is None:
        return []
    backbone, vector = stored
    return nearest_products(vector=vector, backbone=backbone, limit=limit,
                            exclude={product.pk}, published_only=published_only)


def products_like_image(*, data: bytes, limit: int = DEFAULT_LIMIT,
                        max_decode_pixels: int | None = None
                        ) -> tuple[list[SimilarProduct], int]:
    """The published products whose images look most like this photo, and the model number.

    The photo is embedded by the active model through the same LiteRT path as classification;
    ``max_decode_pixels`` bounds what it may decode to (an untrusted caller's limit).

    Raises:
        ImageError: The bytes are not a usable image.
        NoActiveModelError, NoEmbeddingModelError, ModelLoadError: no model can embed it.
    """
    model = embedding_model()
    result = model.classifier.predict_bytes([data], k=1, max_decode_pixels=max_decode_pixels)[0]
    if isinstance(result, ClassifierError):
        raise result
    backbone = model_version_backbone(model.version_id)
    return nearest_products(vector=result.embedding, backbone=backbone, limit=limit), model.number


def nearest_products(*, vector: np.ndarray, backbone: str, limit: int,
                     exclude: Collection[int] = (), published_only: bool = True
                     ) -> list[SimilarProduct]:
    """The ``limit`` products of ``backbone`` nearest to ``vector``, best first.

    Through the backbone's index file when it exists; otherwise (before the first rebuild) an
    exact scan of the stored embeddings if there are at most ``EXACT_FALLBACK_MAX``, else
    nothing until the index is built. Never raises for a missing or unreadable index.
    """
    limit = max(0, min(limit, MAX_LIMIT))
    if limit == 0:
        return []
    index = open_index(backbone)
    if index is not None:
        return _index_search(index, vector, backbone, limit, set(exclude), published_only)
    return _exact_search(vector, backbone, limit, set(exclude), published_only)


def _index_search(index, vector, backbone, limit, exclude, published_only):
    fetch = limit + len(exclude) + FETCH_MARGIN
    while True:
        neighbours = index.query(vector, backbone=backbone, k=fetch, exclude=exclude)
        found = _with_products([(n.id, n.score) for n in neighbours], published_only)
        if len(found) >= limit or len(neighbours) < fetch or fetch >= MAX_FETCH:
            return found[:limit]
        fetch = min(MAX_FETCH, fetch * 4)


def _exact_search(vector, backbone, limit, exclude, published_only):
    """Exact cosine over the stored embeddings, for catalogs small enough to read per request."""
    rows = ProductEmbedding.objects.filter(backbone=backbone)
    if published_only:
        rows = rows.filter(product__is_published=True)
    count = rows.count()
    if count > settings.SIMILARITY["EXACT_FALLBACK_MAX"]:
        logger.warning("No similarity index for %s yet and %s embeddings are too many to scan "
                       "per request; similar products appear once the background rebuild has "
                       "run (manage.py qcluster)", backbone, count)
        return []
    query = l2_normalise(vector)
    id_parts, score_parts = [np.empty(0, np.int64)], [np.empty(0, np.float32)]
    for ids, vectors in embeddings_iter(backbone=backbone, published_only=published_only):
        if vectors.shape[1] == len(query):
            keep = ~np.isin(ids, list(exclude))
            id_parts.append(ids[keep])
            score_parts.append(vectors[keep] @ query)
    ids, scores = np.concatenate(id_parts), np.concatenate(score_parts)
    best = np.lexsort((ids, -scores))[:limit]  # highest score first, ties by id
    return _with_products(list(zip(ids[best].tolist(), scores[best].tolist())), published_only)


def _with_products(scored: list[tuple[int, float]], published_only: bool
                   ) -> list[SimilarProduct]:
    """Products of the scored ids that exist (and are published), in the scored order."""
    products = Product.objects.filter(pk__in=[i for i, _ in scored]).select_related(
        "category", "category__parent")
    if published_only:
        products = products.filter(is_published=True)
    by_id = {p.pk: p for p in products}
    return [SimilarProduct(by_id[i], min(1.0, float(s))) for i, s in scored if i in by_id]
