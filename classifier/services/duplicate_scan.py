"""The duplicate scan of an index rebuild: pairs of near-identical images, in full or for changes.

A full scan (``SimilarityIndex.near_duplicates``) compares every product with every other: on
the exact index that is quadratic (bench/similar_products.py: 110 s at 20,000 products on two
cores), fine for a first build or a forced rescan but not after every classification job. So a
rebuild normally rescans only the products whose embeddings changed since the last scan: each is
queried against the new index for its nearest neighbours, its old pairs are replaced, and every
other pair is kept (pairs of deleted products go with them, by cascade).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import Q

from catalog.models import Product
from classifier.models import DuplicateCandidate, ordered_pair
from classifier.similarity.index import DuplicatePair, SimilarityIndex

# Neighbours kept per product: duplicates come in pairs or small groups.
DUPLICATE_NEIGHBOURS = 5
# Above this share of changed products a full scan is cheaper than one query per change (a
# batched full scan costs about what querying half of the products one by one does).
INCREMENTAL_MAX_SHARE = 0.25
# Ids per query (SQLite binds at most 999 parameters).
ID_BATCH = 900


@dataclass(frozen=True)
class ScanOutcome:
    kind: str  # "full" or "incremental"
    pairs: int  # candidate pairs stored after the scan


def duplicate_scan(index: SimilarityIndex, *, threshold: float, found_at: datetime,
                   changed: Sequence[int] | None) -> ScanOutcome:
    """Store the index's near-duplicate pairs as candidates.

    Args:
        index: The freshly built index of the active backbone.
        threshold: Cosine similarity at or above which two products are candidates.
        found_at: The rebuild's snapshot time, stored with each candidate.
        changed: Products whose embeddings changed since the last scan at this threshold, or
            None for a full scan (first scan, new threshold or backbone, forced rescan).
    """
    if changed is None or len(changed) > INCREMENTAL_MAX_SHARE * index.count:
        pairs = index.near_duplicates(threshold=threshold, k=DUPLICATE_NEIGHBOURS)
        return ScanOutcome("full", _replace_all(index.backbone, pairs, found_at))
    pairs = _pairs_of(index, changed, threshold)
    return ScanOutcome("incremental", _replace_for(index.backbone, changed, pairs, found_at))


def _pairs_of(index: SimilarityIndex, product_ids: Sequence[int],
              threshold: float) -> list[DuplicatePair]:
    """The near-duplicate pairs of these products (each one's nearest neighbours)."""
    found: dict[tuple[int, int], float] = {}
    for product_id in product_ids:
        vector = index.vector(product_id)
        if vector is None:  # deleted, or its embedding could not be read
            continue
        for neighbour in index.query(vector, backbone=index.backbone, k=DUPLICATE_NEIGHBOURS,
                                     exclude=[product_id]):
            if neighbour.score >= threshold:
                pair = ordered_pair(product_id, neighbour.id)
                found[pair] = max(neighbour.score, found.get(pair, -1.0))
    return [DuplicatePair(a, b, score) for (a, b), score in found.items()]


@transaction.atomic
def _replace_all(backbone: str, pairs: list[DuplicatePair], found_at: datetime) -> int:
    DuplicateCandidate.objects.all().delete()
    _insert(backbone, pairs, found_at)
    return DuplicateCandidate.objects.count()


@transaction.atomic
def _replace_for(backbone: str, product_ids: Sequence[int], pairs: list[DuplicatePair],
                 found_at: datetime) -> int:
    ids = sorted(set(product_ids))
    for start in range(0, len(ids), ID_BATCH):
        batch = ids[start:start + ID_BATCH]
        DuplicateCandidate.objects.filter(Q(product_a__in=batch) | Q(product_b__in=batch)
                                          ).delete()
    DuplicateCandidate.objects.exclude(backbone=backbone).delete()
    _insert(backbone, pairs, found_at)
    return DuplicateCandidate.objects.count()


def _insert(backbone: str, pairs: list[DuplicatePair], found_at: datetime) -> None:
    """Insert pairs whose products still exist (a product may be deleted during a scan)."""
    existing = set(Product.objects.in_bulk({i for p in pairs for i in (p.a, p.b)}))
    DuplicateCandidate.objects.bulk_create(
        [DuplicateCandidate(product_a_id=p.a, product_b_id=p.b, score=round(min(p.score, 1.0), 4),
                            backbone=backbone, found_at=found_at)
         for p in pairs if p.a in existing and p.b in existing],
        batch_size=ID_BATCH, ignore_conflicts=True)
