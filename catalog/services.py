"""Writes and workflows for categories and products.

Admin, API, commands and tasks call these; they hold the rules (who may set a category, what a
new image triggers) so every entry point behaves the same.
"""

import logging
import posixpath
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.contrib.admin.models import CHANGE, LogEntry
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from catalog import appwrite
from catalog.models import Category, CategorySource, Product, ReviewStatus
from catalog.storage import AppwriteStorage

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


@contextmanager
def _uploaded_image_discarded_on_failure(product: Product) -> Iterator[None]:
    """If the save that stores a new upload fails after the upload (a database error, the
    commit), delete the file it stored: a failed request leaves nothing in the bucket.

    Only a file this save uploads is ever deleted (a name assigned as a string, such as an
    Appwrite file linked by the webhook, is somebody else's). A process killed in between leaves
    the file for ``manage.py sweep_orphan_files``.
    """
    uploading = bool(product.image) and not product.image._committed
    try:
        yield
    except BaseException:
        if uploading and product.image._committed:
            try:
                product.image.storage.delete(product.image.name)
            except Exception:  # noqa: BLE001 - the original error matters more; the sweep remains
                logger.warning("Product %s: could not delete the image %s of a failed save",
                               product.sku, product.image.name, exc_info=True)
        raise


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
    with _uploaded_image_discarded_on_failure(product), transaction.atomic():
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
    with _uploaded_image_discarded_on_failure(product), transaction.atomic():
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


def _image_name(file: dict) -> str:
    return appwrite.name_for_file(file_id=file["$id"], folder=file.get("folder") or "",
                                  name=file.get("name") or "")


def _file_time(file: dict) -> datetime | None:
    """When the file's bytes were stored: its ``$createdAt`` (Appwrite's clock; a file's bytes
    never change under one id, while ``$updatedAt`` also moves on renames and permission edits),
    or None when the dict has none."""
    value = file.get("$createdAt")
    return datetime.fromisoformat(value) if value else None


def _products_for_file(*, file_id: str, image_name: str):
    return Product.objects.filter(
        Q(image=image_name) | Q(image__startswith=f"{appwrite.FOREIGN_PREFIX}{file_id}/"))


def _file_is_newer(product: Product, file: dict) -> bool:
    """Whether a file uploaded outside Django is newer than the product's image: deleted and
    uploaded again under the same id and name, its create event arriving before the delete's.

    Django's own uploads never are: the save that stored them classified them already, and it
    stamps ``image_updated_at`` before the upload, so Appwrite's clock is always later. A
    product that never recorded when is not reclassified on every replay.
    """
    if not _uploaded_outside_django(file):
        return False
    file_time = _file_time(file)
    return bool(file_time and product.image_updated_at and file_time > product.image_updated_at)


@transaction.atomic
def product_link_appwrite_file(*, file: dict, create: bool) -> FileLink:
    """Point the product that uses an Appwrite file at it, creating a draft when ``create``.

    Rule: the product whose image name maps to the file's id (see catalog/appwrite.py), else
    the product whose SKU is the file id. A new product is a draft (unpublished) with SKU = file
    id and a title from the file name. Linking the same file again changes nothing; a link that
    changes the image (name, a missing image back, newer bytes) is saved with ``save()``, so the
    classifier's receiver classifies it.
    """
    file_id, image_name = file["$id"], _image_name(file)
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
    if (product.image.name == image_name and not product.image_missing
            and not _file_is_newer(product, file)):
        return FileLink(product, "unchanged")
    product.image = image_name
    product.image_missing = False
    product.image_updated_at = _file_time(file) or timezone.now()
    product.save(update_fields=["image", "image_missing", "image_updated_at", "updated_at"])
    return FileLink(product, "updated")


def _uploaded_outside_django(file: dict) -> bool:
    return _image_name(file).startswith(appwrite.FOREIGN_PREFIX)


def products_mark_image_missing(*, file: dict) -> int:
    """Flag the products using a deleted Appwrite file; products and their history stay."""
    return _products_for_file(file_id=file["$id"], image_name=_image_name(file)).filter(
        image_missing=False).update(image_missing=True)


def appwrite_file_event_handle(*, action: str, bucket_id: str, file: dict) -> str:
    """Apply one Appwrite storage event (a verified webhook delivery); returns what it did.

    Order-safe: deliveries arrive late, twice or out of order, so the event only says which
    file to look at; what is applied is the file as Appwrite has it now. Gone: its products are
    marked ``image_missing`` (a create replayed after the delete resurrects nothing). Present:
    a delete is older than a re-upload and changes nothing; a create or update links the file
    to its product (a draft product when APPWRITE_WEBHOOK_CREATES_PRODUCTS) from its current
    name, and a changed link is classified (classifier/signals.py). An older rename, or any
    replay, finds the product already up to date.

    Raises:
        StorageError: Appwrite could not be asked (the view answers 503; Appwrite redelivers).
    """
    storage = default_storage
    if bucket_id != settings.APPWRITE["BUCKET_ID"] or not isinstance(storage, AppwriteStorage):
        return "ignored: not the product image bucket"
    current = storage.file_now(file["$id"])
    if current is None:
        return f"file gone: marked image missing on {products_mark_image_missing(file=file)} "\
               "product(s)"
    if action == "delete":
        return "ignored: the file exists again (this delete is older than its re-upload)"
    if not appwrite_file_is_image(current):
        return "ignored: not an image"
    # Only files uploaded outside Django become draft products: a Django upload reaches Appwrite
    # (and fires this event) before its product row is saved, and that product links it.
    creates = (action == "create" and settings.APPWRITE["WEBHOOK_CREATES_PRODUCTS"]
               and _uploaded_outside_django(current))
    link = product_link_appwrite_file(file=current, create=creates)
    return "ignored: no product uses this file" if link.product is None else link.outcome
