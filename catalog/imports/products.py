"""Product import: create or update products by SKU, one row per transaction, with a report."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import DatabaseError, transaction
from django.utils import timezone

from catalog.imports.sources import (
    ImageSourceError,
    RowError,
    cell,
    image_source_read,
)
from catalog.models import Category, CategorySource, Product, ReviewStatus

logger = logging.getLogger(__name__)

TRUE_VALUES = frozenset({"1", "true", "yes", "y", "on"})
FALSE_VALUES = frozenset({"0", "false", "no", "n", "off", ""})
# Fields an import row may set; compared before and after so an unchanged row writes nothing.
_TRACKED = ("title", "description", "is_published", "price", "category_id", "category_source")


@dataclass
class ImportReport:
    """Counts per outcome and every row error; a dry run counts what a real run would do."""

    dry_run: bool = False
    created: int = 0
    changed: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def failed_rows(self) -> int:
        return len({error.row for error in self.errors})

    def summary(self) -> str:
        prefix = "Dry run: would have " if self.dry_run else ""
        return (f"{prefix}{self.created} created, {self.changed} changed, {self.unchanged} "
                f"unchanged, {self.failed_rows} rows with errors")


class RowInvalid(Exception):
    def __init__(self, errors: list[RowError]):
        super().__init__(errors)
        self.errors = errors


@dataclass
class _Row:
    sku: str
    values: dict[str, Any]  # model attribute -> new value; absent columns are left alone
    image: tuple[str, bytes] | None


def import_roots(extra: Sequence[str | Path] = ()) -> list[Path]:
    """Folders images may come from: ``extra`` (e.g. ``--images-dir``) then the setting."""
    return [Path(p) for p in (*extra, *settings.CATALOG_IMPORT_ROOTS)]


def catalog_import(*, rows: Iterable[tuple[int, dict | RowError]], roots: Sequence[Path],
                   dry_run: bool = False) -> ImportReport:
    """Create or update a product per row, matched by SKU; a bad row changes nothing.

    Each row is validated (category exists, values parse, image readable) and then written in
    its own transaction; an image stored for a row whose write fails is deleted again, so a bad
    row leaves neither a product nor an orphan file. A category set by a row is a person's
    label. A ``labelled`` column of ``0`` means "no label": the row's category is ignored and
    left to the classifier. Re-running the same file reports every row unchanged.
    """
    report = ImportReport(dry_run=dry_run)
    seen: dict[str, int] = {}
    for number, values in rows:
        if isinstance(values, RowError):
            report.errors.append(values)
            continue
        try:
            outcome = _import_row(number, values, roots=roots, dry_run=dry_run, seen=seen)
        except RowInvalid as exc:
            report.errors.extend(exc.errors)
            continue
        setattr(report, outcome, getattr(report, outcome) + 1)
    return report


def _import_row(number: int, values: dict, *, roots: Sequence[Path], dry_run: bool,
                seen: dict[str, int]) -> str:
    row = _parse_row(number, values, roots=roots, seen=seen)
    product = Product.objects.filter(sku=row.sku).first()
    created = product is None
    product = product or Product(sku=row.sku)
    changed = _apply(product, row.values)
    image_changed = row.image is not None and not _same_image(product, row.image[1])
    if not (created or changed or image_changed):
        return "unchanged"
    try:
        product.full_clean(exclude=["image"])
    except ValidationError as exc:
        raise RowInvalid(_validation_errors(number, exc)) from exc
    if not dry_run:
        _write(number, product, row.image if image_changed else None)
    return "created" if created else "changed"


def _parse_row(number: int, values: dict, *, roots: Sequence[Path],
               seen: dict[str, int]) -> _Row:
    errors: list[RowError] = []

    def problem(column: str, message: str) -> None:
        errors.append(RowError(number, column, message))

    sku = cell(values, "sku") or ""
    if not sku:
        problem("sku", "required: every product needs a SKU")
    elif sku in seen:
        problem("sku", f"{sku} appears again (first on row {seen[sku]}); keep one row per SKU")
    else:
        seen[sku] = number
    parsed: dict[str, Any] = {}
    title = cell(values, "title")
    if not title:
        problem("title", "required: give the product a title")
    parsed["title"] = title
    if (description := cell(values, "description")) is not None:
        parsed["description"] = description
    _parse_flags(values, parsed, problem)
    _parse_category(values, parsed, problem)
    image = None
    source = cell(values, "image", "image_url")
    if source:
        try:
            image = image_source_read(source, roots=roots)
        except ImageSourceError as exc:
            problem("image", str(exc))
    if errors:
        raise RowInvalid(errors)
    return _Row(sku=sku, values=parsed, image=image)


def _parse_flags(values: dict, parsed: dict, problem) -> None:
    published = cell(values, "published", "is_published")
    if published is not None:
        if published.lower() not in TRUE_VALUES | FALSE_VALUES:
            problem("published", f"{published!r} is not yes/no; use 1 or 0")
        parsed["is_published"] = published.lower() in TRUE_VALUES
    price = cell(values, "price")
    if price is not None:
        try:
            parsed["price"] = Decimal(price) if price else None
        except InvalidOperation:
            problem("price", f"{price!r} is not a number; write it like 12.50")


def _parse_category(values: dict, parsed: dict, problem) -> None:
    labelled = cell(values, "labelled")
    slug = cell(values, "category_slug", "category") or ""
    if labelled is not None and labelled.lower() not in TRUE_VALUES | FALSE_VALUES:
        problem("labelled", f"{labelled!r} is not yes/no; use 1 or 0")
        return
    if labelled is not None and labelled.lower() in FALSE_VALUES:
        return  # unlabelled: the classifier decides; an existing category is kept
    if not slug:
        if labelled is not None:
            problem("category_slug", "the row is marked labelled but has no category_slug")
        return
    category = Category.objects.filter(slug=slug).first()
    if category is None:
        problem("category_slug", f"no category {slug!r}; import the categories first or fix "
                                 "the slug")
        return
    parsed["category"] = category


def _apply(product: Product, values: dict[str, Any]) -> bool:
    """Set the row's values on ``product``; returns whether anything differs from before."""
    before = {name: getattr(product, name) for name in _TRACKED}
    for name, value in values.items():
        if name != "category":
            setattr(product, name, value)
    category = values.get("category")
    if category is not None and (product.category_id != category.pk
                                 or product.category_source != CategorySource.PERSON):
        product.category = category
        product.category_source = CategorySource.PERSON
        product.category_set_at = timezone.now()
        if product.review_status == ReviewStatus.NEEDS_REVIEW:
            product.review_status = ReviewStatus.CLASSIFIED
    return any(getattr(product, name) != value for name, value in before.items())


def _same_image(product: Product, data: bytes) -> bool:
    """Whether the stored image has exactly these bytes (size first: usually enough to differ)."""
    if not product.pk or not product.image:
        return False
    storage, name = product.image.storage, product.image.name
    try:
        if storage.size(name) != len(data):
            return False
        with storage.open(name, "rb") as stored:
            return hashlib.sha256(stored.read()).digest() == hashlib.sha256(data).digest()
    except Exception:  # noqa: BLE001 - an unreadable stored image is replaced by the import
        return False


def _write(number: int, product: Product, image: tuple[str, bytes] | None) -> None:
    saved_name = ""
    try:
        with transaction.atomic():
            if image is not None:
                product.image.save(image[0], ContentFile(image[1]), save=False)
                saved_name = product.image.name
                product.image_updated_at = timezone.now()
            product.save()
    except (DatabaseError, OSError) as exc:
        if saved_name:  # the row rolled back: its new file must not outlive it
            product.image.storage.delete(saved_name)
        logger.warning("Import row %s (SKU %s) failed: %s", number, product.sku, exc)
        raise RowInvalid([RowError(number, "", f"could not be saved ({exc}); nothing was "
                                               "written for this row")]) from exc


def _validation_errors(number: int, exc: ValidationError) -> list[RowError]:
    columns = {"category": "category_slug", "is_published": "published", "__all__": ""}
    return [RowError(number, columns.get(name, name), " ".join(messages))
            for name, messages in exc.message_dict.items()]
