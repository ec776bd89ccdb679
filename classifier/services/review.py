"""People's part of the loop: deciding a product's category in review, sending products back."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.db.models import QuerySet

from catalog.models import Category, Product, ReviewStatus
from catalog.services import product_history_log, product_set_category_by_person
from classifier.exceptions import NoPredictionError, ReviewPermissionError

# Deciding a category is changing the product: the same permission as its admin form.
REVIEW_PERMISSION = "catalog.change_product"


def review_message(*, chosen: Category, predicted: Category | None,
                   confidence: float | None) -> str:
    """The admin-history line of one decision, e.g. "Reviewed: chose Tools (prediction Musical
    instruments 41%)"; a shop operator reads it on the product's History page."""
    if predicted is None:
        return f"Reviewed: chose {chosen.name} (no prediction)"
    percent = "" if confidence is None else f" {confidence:.0%}"
    if predicted.pk == chosen.pk:
        return f"Reviewed: accepted the prediction {chosen.name}{percent}"
    return f"Reviewed: chose {chosen.name} (prediction {predicted.name}{percent})"


@transaction.atomic
def product_review_decide(*, product: Product, category: Category, user=None) -> Product:
    """A person decides a product's category: the one entry point for every review decision.

    The review page, the product page's "choose" and "accept" buttons and the bulk accept action
    all come here, so each decision is stored the same way: the shop category becomes a
    person's (the classifier never overwrites it), the product leaves the review queue, and the
    admin history of the product gets one line saying what was chosen against what the model
    said. ``user`` is None only for code that acts for nobody (scripts, tests); then nothing is
    logged and no permission is checked.

    Raises:
        ReviewPermissionError: ``user`` may not change products.
    """
    if user is not None and not user.has_perm(REVIEW_PERMISSION):
        raise ReviewPermissionError()
    message = review_message(chosen=category, predicted=product.predicted_category,
                             confidence=product.prediction_confidence)
    # Decided, whatever the queue said (needs review, failed, never classified): one save.
    product.review_status = ReviewStatus.CLASSIFIED
    product = product_set_category_by_person(product=product, category=category)
    product_history_log(product=product, user=user, message=message)
    return product


def product_accept_prediction(*, product: Product, user=None) -> Product:
    """A person confirms the predicted category (see ``product_review_decide``).

    Raises:
        NoPredictionError: The product has no predicted category yet.
        ReviewPermissionError: ``user`` may not change products.
    """
    if product.predicted_category_id is None:
        raise NoPredictionError(
            f"Product {product.sku} has no predicted category to accept. Classify it first, or "
            "choose its category by hand."
        )
    return product_review_decide(product=product, category=product.predicted_category,
                                 user=user)


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
