"""Likely duplicate products: a person's decision on a pair, and pairs as a fresh scan finds."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction

from catalog.models import Product
from catalog.services import product_unpublish
from classifier.exceptions import DuplicatePermissionError, NoActiveModelError
from classifier.models import (
    DuplicateCandidate,
    DuplicateDecision,
    DuplicateDecisionKind,
    ordered_pair,
)
from classifier.services.similarity_index import (
    DUPLICATE_NEIGHBOURS,
    active_backbone,
    build_index_file,
    index_dir,
)

logger = logging.getLogger(__name__)

# Deciding on a pair changes what the shop shows: the product form's permission.
DUPLICATE_PERMISSION = "catalog.change_product"


@dataclass(frozen=True)
class FoundPair:
    """Two products (``a`` has the smaller id) whose images have cosine similarity ``score``."""

    a: Product
    b: Product
    score: float


def duplicate_pair_dismiss(*, product_a: Product, product_b: Product,
                           user=None) -> DuplicateDecision:
    """A person says two products are not duplicates: the pair is never listed again.

    Raises:
        DuplicatePermissionError: ``user`` may not change products.
    """
    return _decide(product_a, product_b, kind=DuplicateDecisionKind.NOT_DUPLICATE, user=user)


@transaction.atomic
def duplicate_pair_unpublish_copy(*, copy: Product, original: Product,
                                  user=None) -> DuplicateDecision:
    """A person picks ``copy`` as the duplicate of ``original`` and takes it off the storefront.

    The copy is unpublished through the catalog service (its record and images stay; its admin
    history says "Unpublished: duplicate of <SKU>"), and the pair is not listed again.

    Raises:
        DuplicatePermissionError: ``user`` may not change products.
    """
    _check_permission(user)
    product_unpublish(product=copy, user=user, reason=f"duplicate of {original.sku}")
    return _decide(copy, original, kind=DuplicateDecisionKind.COPY_UNPUBLISHED, user=user,
                   unpublished=copy)


def duplicate_pairs_find(*, threshold: float | None = None,
                         include_decided: bool = False) -> list[FoundPair]:
    """Every pair of products whose images are at least ``threshold`` alike, highest first.

    A fresh scan of the active backbone's stored embeddings (through a scratch index, so the
    shared index and the duplicates page are untouched), for ``find_duplicates``.

    Args:
        threshold: Cosine cut; default the ``SIMILARITY_DUPLICATE_THRESHOLD`` setting.
        include_decided: Also pairs a person already decided on.

    Raises:
        NoActiveModelError: No model version is active (its backbone decides what is compared).
    """
    backbone = active_backbone()
    if backbone is None:
        raise NoActiveModelError()
    if threshold is None:
        threshold = settings.SIMILARITY["DUPLICATE_THRESHOLD"]
    index_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=index_dir(), prefix=".scan-") as scratch:
        index = build_index_file(Path(scratch) / "scan.simindex", backbone)
        pairs = [] if index is None else index.near_duplicates(threshold=threshold,
                                                               k=DUPLICATE_NEIGHBOURS)
        if index is not None:
            index.close()
    decided = set() if include_decided else set(
        DuplicateDecision.objects.values_list("product_a", "product_b"))
    products = Product.objects.in_bulk({i for p in pairs for i in (p.a, p.b)})
    return [FoundPair(products[p.a], products[p.b], p.score) for p in pairs
            if p.a in products and p.b in products and (p.a, p.b) not in decided]


def _decide(first: Product, second: Product, *, kind: str, user,
            unpublished: Product | None = None) -> DuplicateDecision:
    _check_permission(user)
    a, b = ordered_pair(first.pk, second.pk)
    score = (DuplicateCandidate.objects.filter(product_a=a, product_b=b)
             .values_list("score", flat=True).first())
    decision, _ = DuplicateDecision.objects.update_or_create(
        product_a_id=a, product_b_id=b,
        defaults={"kind": kind, "unpublished": unpublished, "score": score, "decided_by": user})
    logger.info("Products %s and %s: %s, by %s", a, b, decision.get_kind_display(),
                getattr(user, "pk", None) or "system")
    return decision


def _check_permission(user) -> None:
    if user is not None and not user.has_perm(DUPLICATE_PERMISSION):
        raise DuplicatePermissionError()
