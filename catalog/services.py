"""Writes and workflows for categories and products.

Admin, API, commands and tasks call these; they hold the rules (who may set a category, what a
new image triggers) so every entry point behaves the same.
"""

import logging
import posixpath
from dataclasses import dataclass

from django.conf import settings
from django.contrib.admin.models import CHANGE, LogEntry
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from catalog import appwrite
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

@transaction.atomic
def product_unpublish(*, product: Product, user=None, reason: str = "") -> Product:
    """Take a product off the storefront; its record, image and history stay.

    With a ``user`` the product's admin history gets a line saying why ("Unpublished: duplicate
    of SKU-1"). Unpublishing an unpublished product changes nothing but is still logged, so a
    person's decision is always on record.
    """
    if product.is_published:
        product.is_published = False
        product.save(update_fields=["is_published", "updated_at"])
    product_history_log(product=product, user=user,
                        message=f"Unpublished: {reason}" if reason else "Unpublished")
    return product


def product_history_log(*, product: Product, user, message: str) -> None:
    """One line in the product's admin history (when a person acted) and in the log."""
    if user is not None:
        LogEntry.objects.log_actions(user_id=user.pk, queryset=[product], action_flag=CHANGE,
                                     change_message=message, single_object=True)
    logger.info("Product %s (%s): %s, by %s", product.pk, product.sku, message,
                getattr(user, "pk", None) or "system")


# --- Appwrite files and products (webhook deliveries, bucket import) ---------------------------

# What the classifier can decode; other types in a bucket (PDFs, SVG, video) are not products.
IMAGE_MIME_TYPES = frozenset({
    "image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp", "image/tiff",
})


@dataclass(frozen=True)
class FileLink:
    """A product linked to an Appwrite file; outcome is created/updated/unchanged/no_product."""

    product: Product | None
    outcome: str


def appwrite_file_is_image(file: dict) -> bool:
    """A complete upload of a type the classifier decodes (pending chunked uploads are not)."""
    complete = int(file.get("chunksUploaded") or 0) >= int(file.get("chunksTotal") or 0)
    return complete and file.get("mimeType") in IMAGE_MIME_TYPES


def _title_from_file_name(name: str) -> str:
    stem = posixpath.splitext(name)[0].replace("-", " ").replace("_", " ").strip()
    return (stem[:1].upper() + stem[1:])[:200] or "Untitled"


def _products_for_file(*, file_id: str, image_name: str):
    return Product.objects.filter(
        Q(image=image_name) | Q(image__startswith=f"{appwrite.FOREIGN_PREFIX}{file_id}/"))


@transaction.atomic
def product_link_appwrite_file(*, file: dict, create: bool) -> FileLink:
    """Point the product that uses an Appwrite file at it, creating a draft when ``create``.

    Rule: the product whose image name maps to the file's id (see catalog/appwrite.py), else
    the product whose SKU is the file id. A new product is a draft (unpublished) with SKU = file
    id and a title from the file name. Linking the same file twice changes nothing.
    """
    file_id = file["$id"]
    image_name = appwrite.name_for_file(file_id=file_id, folder=file.get("folder") or "",
                                        name=file.get("name") or "")
    product = (_products_for_file(file_id=file_id, image_name=image_name).order_by("pk").first()
               or Product.objects.filter(sku=file_id).first())
    if product is None:
        if not create:
            return FileLink(None, "no_product")
        try:
            product = product_create(sku=file_id, title=_title_from_file_name(file["name"]),
                                     image=image_name)
        except (IntegrityError, ValidationError):  # A concurrent delivery created it first.
            return FileLink(Product.objects.get(sku=file_id), "unchanged")
        return FileLink(product, "created")
    if product.image.name == image_name and not product.image_missing:
        return FileLink(product, "unchanged")
    Product.objects.filter(pk=product.pk).update(
        image=image_name, image_missing=False, image_updated_at=timezone.now())
    product.refresh_from_db()
    return FileLink(product, "updated")


def _uploaded_outside_django(file: dict) -> bool:
    name = appwrite.name_for_file(file_id=file["$id"], folder=file.get("folder") or "",
                                  name=file.get("name") or "")
    return name.startswith(appwrite.FOREIGN_PREFIX)


def products_mark_image_missing(*, file: dict) -> int:
    """Flag the products using a deleted Appwrite file; products and their history stay."""
    file_id = file["$id"]
    image_name = appwrite.name_for_file(file_id=file_id, folder=file.get("folder") or "",
                                        name=file.get("name") or "")
    return _products_for_file(file_id=file_id, image_name=image_name).filter(
        image_missing=False).update(image_missing=True)


def _classify_on_commit(product: Product) -> bool:
    # The classifier depends on the catalog, not the other way round: import at call time.
    try:
        from classifier.services import product_classify_on_commit
    except ImportError:
        logger.warning("classifier.services.product_classify_on_commit is not available; "
                       "product %s is not queued for classification", product.pk)
        return False
    product_classify_on_commit(product=product)
    return True


def appwrite_file_event_handle(*, action: str, bucket_id: str, file: dict) -> str:
    """Apply one Appwrite storage event (a verified webhook delivery); returns what it did.

    create: link the file to its product (a draft product when APPWRITE_WEBHOOK_CREATES_PRODUCTS)
    and classify it if the link is new. update: re-classify.
    delete: mark the image missing. Redelivering an event is harmless: links and flags are set,
    not toggled, and classification is idempotent.
    """
    if bucket_id != settings.APPWRITE["BUCKET_ID"]:
        return "ignored: not the product image bucket"
    if action == "delete":
        return f"marked image missing on {products_mark_image_missing(file=file)} product(s)"
    if not appwrite_file_is_image(file):
        return "ignored: not an image"
    # Only files uploaded outside Django become draft products: a Django upload reaches Appwrite
    # (and fires this event) before its product row is saved, and that product links it.
    creates = (action == "create" and settings.APPWRITE["WEBHOOK_CREATES_PRODUCTS"]
               and _uploaded_outside_django(file))
    link = product_link_appwrite_file(file=file, create=creates)
    if link.product is None:
        return "ignored: no product uses this file"
    queued = False
    # An unchanged link on create is a redelivery, or an upload made through Django, whose save
    # already queued classification (CLASSIFIER_AUTO_CLASSIFY); do not classify twice.
    if action == "update" or link.outcome != "unchanged":
        queued = _classify_on_commit(link.product)
    return f"{link.outcome}; classification {'queued' if queued else 'not queued'}"
