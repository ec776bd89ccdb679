"""Writes and workflows for categories and products.

Admin, API, commands and tasks call these; they hold the rules (who may set a category, what a
new image triggers) so every entry point behaves the same.
"""

import logging

from django.db import transaction
from django.utils import timezone

from catalog.models import Category, CategorySource, Product, ReviewStatus

logger = logging.getLogger(__name__)


def category_create(
    *, name: str, slug: str, description: str = "", parent: Category | None = None,
    position: int = 0,
) -> Category:
    category = Category(
        name=name, slug=slug, description=description, parent=parent, position=position
    )
    category.full_clean()
    category.save()
    return category


def product_set_category_by_person(*, product: Product, category: Category | None) -> Product:
    """Record a person's decision: it always wins and the classifier never overwrites it.

    Clearing the category hands the product back to the classifier.
    """
    product.category = category
    product.category_source = CategorySource.PERSON if category else CategorySource.NONE
    product.category_set_at = timezone.now()
    if category is not None and product.review_status == ReviewStatus.NEEDS_REVIEW:
        product.review_status = ReviewStatus.CLASSIFIED
    product.full_clean()
    product.save()
    return product


@transaction.atomic
def product_create(
    *, sku: str, title: str, description: str = "", is_published: bool = False,
    price=None, image=None, category: Category | None = None,
) -> Product:
    """Create a product; a category given here is a person's decision."""
    product = Product(
        sku=sku, title=title, description=description, is_published=is_published, price=price,
    )
    if category is not None:
        product.category = category
        product.category_source = CategorySource.PERSON
        product.category_set_at = timezone.now()
    if image is not None:
        product.image = image
        product.image_updated_at = timezone.now()
    product.full_clean()
    product.save()
    return product


def product_image_check(*, product_id: int) -> bool:
    """Check that a product's image is still in storage and record the answer.

    Returns whether the image is present. A product without an image counts as present (there
    is nothing to lose). Used after storage events and by operators auditing a bucket.
    """
    product = Product.objects.get(pk=product_id)
    if not product.image:
        present = True
    else:
        present = product.image.storage.exists(product.image.name)
    if product.image_missing == present:
        Product.objects.filter(pk=product.pk).update(image_missing=not present)
        if not present:
            logger.warning(
                "Product %s (%s): image %s is missing from storage",
                product.pk, product.sku, product.image.name,
            )
    return present


# Fields a product update may set directly; category and image go through their own rules.
PRODUCT_UPDATABLE_FIELDS = ("sku", "title", "description", "is_published", "price")
_UNSET = object()


@transaction.atomic
def product_update(
    *, product: Product, data: dict, category=_UNSET, image=None,
) -> Product:
    """Update a product's plain fields, and its category or image when given.

    Args:
        product: The product to change.
        data: New values for any of ``PRODUCT_UPDATABLE_FIELDS``; other keys are refused.
        category: A ``Category`` or ``None`` (cleared) when the caller decided it; omit to keep
            the current one. A category given here is a person's decision.
        image: A new image file, or ``None`` to keep the current one.

    Raises:
        ValueError: ``data`` holds a field that is not updatable here.
        django.core.exceptions.ValidationError: The new values are invalid.
    """
    unknown = set(data) - set(PRODUCT_UPDATABLE_FIELDS)
    if unknown:
        raise ValueError(f"These product fields cannot be updated here: {sorted(unknown)}.")
    for field, value in data.items():
        setattr(product, field, value)
    if image is not None:
        product.image = image
        product.image_updated_at = timezone.now()
    if category is not _UNSET and category != product.category:
        return product_set_category_by_person(product=product, category=category)
    product.full_clean()
    product.save()
    return product
