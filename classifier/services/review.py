"""People's part of the loop: accepting a prediction, sending products to review."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.db import transaction
from django.db.models import QuerySet

from catalog.models import Product, ReviewStatus
from catalog.services import product_set_category_by_person
from classifier.exceptions import NoPredictionError

logger = logging.getLogger(__name__)


@transaction.atomic
def product_accept_prediction(*, product: Product, user=None) -> Product:
    """A person confirms the predicted category: it becomes the shop category, theirs from now.

    Goes through ``product_set_category_by_person`` so the classifier never overwrites it.

    Raises:
        NoPredictionError: The product has no predicted category yet.
    """
    if product.predicted_category_id is None:
        raise NoPredictionError(
            f"Product {product.sku} has no predicted category to accept. Classify it first, or "
            "choose its category by hand."
        )
    product = product_set_category_by_person(product=product, category=product.predicted_category)
    if product.review_status != ReviewStatus.CLASSIFIED:
        Product.objects.filter(pk=product.pk).update(review_status=ReviewStatus.CLASSIFIED)
        product.review_status = ReviewStatus.CLASSIFIED
    logger.info("Product %s (%s): prediction %s accepted by %s", product.pk, product.sku,
                product.predicted_category.slug, getattr(user, "pk", None) or "system")
    return product


def products_send_to_review(*, products: QuerySet | Iterable) -> int:
    """Put products in the review queue (a person doubts the category or the prediction).

    Args:
        products: A Product queryset, Product objects or ids.

    Returns:
        How many products were changed.
    """
    if not isinstance(products, QuerySet):
        ids = [getattr(p, "pk", p) for p in products]
        products = Product.objects.filter(pk__in=ids)
    return products.exclude(review_status=ReviewStatus.NEEDS_REVIEW).update(
        review_status=ReviewStatus.NEEDS_REVIEW
    )


def products_accept_predictions(*, products: QuerySet, user=None) -> tuple[int, int]:
    """Accept the prediction of each product that has one (the admin's bulk action).

    Returns:
        ``(accepted, skipped)``; products without a prediction are skipped.
    """
    accepted = skipped = 0
    for product in products.select_related("predicted_category"):
        if product.predicted_category_id is None:
            skipped += 1
            continue
        product_accept_prediction(product=product, user=user)
        accepted += 1
    return accepted, skipped
