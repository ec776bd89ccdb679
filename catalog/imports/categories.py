"""Category import: create or update categories by slug (parents before children)."""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import DatabaseError, transaction

from catalog.imports.products import ImportReport
from catalog.imports.sources import RowError, cell
from catalog.models import Category


def categories_import(*, rows: Iterable[tuple[int, dict | RowError]],
                      dry_run: bool = False) -> ImportReport:
    """Create or update a category per row (``slug,name,description,parent_slug``).

    Rows without a parent go first, so a file may list children before their parents. Each row
    is its own transaction; re-running the same file reports every row unchanged.
    """
    report = ImportReport(dry_run=dry_run)
    parsed = []
    for number, values in rows:
        if isinstance(values, RowError):
            report.errors.append(values)
        else:
            parsed.append((number, values))
    parsed.sort(key=lambda item: bool(cell(item[1], "parent_slug")))
    for number, values in parsed:
        try:
            outcome = _import_category(number, values, dry_run=dry_run)
        except ValidationError as exc:
            report.errors.extend(RowError(number, "parent_slug" if name == "parent" else name,
                                          " ".join(messages))
                                 for name, messages in exc.message_dict.items())
            continue
        except DatabaseError as exc:
            report.errors.append(RowError(number, "", f"could not be saved ({exc})"))
            continue
        setattr(report, outcome, getattr(report, outcome) + 1)
    return report


def _import_category(number: int, values: dict, *, dry_run: bool) -> str:
    slug = cell(values, "slug") or ""
    name = cell(values, "name") or ""
    parent_slug = cell(values, "parent_slug") or ""
    category = Category.objects.filter(slug=slug).first() if slug else None
    created = category is None
    category = category or Category(slug=slug)
    parent = Category.objects.filter(slug=parent_slug).first() if parent_slug else None
    if parent_slug and parent is None and not dry_run:
        raise ValidationError({"parent_slug": f"no category {parent_slug!r}; add it to the file"})
    new = {"name": name, "parent_id": parent.pk if parent else None}
    if (description := cell(values, "description")) is not None:
        new["description"] = description
    changed = any(getattr(category, key) != value for key, value in new.items())
    if not (created or changed):
        return "unchanged"
    for key, value in new.items():
        setattr(category, key, value)
    category.full_clean()
    if not dry_run:
        with transaction.atomic():
            category.save()
    return "created" if created else "changed"
