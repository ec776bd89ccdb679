"""The product table as CSV (spreadsheets) or JSON Lines, streamed row by row."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from django.db.models import QuerySet

from catalog.exports.records import export_record_log
from catalog.models import ExportKind, Product
from catalog.storage import image_url

FORMATS = ("csv", "jsonl")
# Rows fetched per database round trip: big enough to amortise the query, small enough that a
# 100,000-product export never holds more than a few hundred model instances.
EXPORT_CHUNK_SIZE = 500
# Rows joined into one chunk of the HTTP response: fewer, larger writes to the socket.
ROWS_PER_CHUNK = 100
# Spreadsheets (Excel) only read a CSV as UTF-8 when it starts with a byte order mark.
UTF8_BOM = "\ufeff"

COLUMNS = (
    "sku", "title", "category_slug", "category_name", "category_source",
    "predicted_category_slug", "predicted_category_name", "confidence", "top_k",
    "review_status", "published", "price", "image_url",
)


@dataclass
class TableExport:
    """What to export and what was written (``count`` grows while the stream is consumed)."""

    queryset: QuerySet
    fmt: str = "csv"
    bom: bool = False
    base_url: str = ""
    user: Any = None
    filters: dict[str, Any] = field(default_factory=dict)
    count: int = 0


def product_list_for_export(*, queryset: QuerySet | None = None, published_only: bool = False,
                            category_slug: str = "") -> QuerySet:
    """Products to export (``queryset``, e.g. an admin selection, or all), ordered by SKU, with
    the categories each row prints joined in so there is no query per row."""
    qs = (Product.objects.all() if queryset is None else queryset)
    qs = qs.select_related("category", "predicted_category").order_by("sku")
    if published_only:
        qs = qs.filter(is_published=True)
    if category_slug:
        qs = qs.filter(category__slug=category_slug)
    return qs


def product_export_row(product: Product, *, base_url: str = "") -> dict[str, Any]:
    """One product as a flat dict of ``COLUMNS`` (``top_k`` stays a list; CSV encodes it)."""
    url = image_url(product.image)  # "" without an image; Appwrite-aware
    if url.startswith("/") and base_url:
        url = base_url.rstrip("/") + url  # local storage gives site-relative URLs
    category, predicted = product.category, product.predicted_category
    return {
        "sku": product.sku,
        "title": product.title,
        "category_slug": category.slug if category else "",
        "category_name": category.name if category else "",
        "category_source": product.category_source,
        "predicted_category_slug": predicted.slug if predicted else "",
        "predicted_category_name": predicted.name if predicted else "",
        "confidence": product.prediction_confidence,
        "top_k": product.prediction_top_k or [],
        "review_status": product.review_status,
        "published": product.is_published,
        "price": None if product.price is None else str(product.price),
        "image_url": url,
    }


class _Line:
    """A file-like that hands back what csv.writer writes, so each row becomes one string."""

    def write(self, value: str) -> str:
        return value


def _csv_lines(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    writer = csv.writer(_Line())
    yield writer.writerow(COLUMNS)
    for row in rows:
        row = {**row, "top_k": json.dumps(row["top_k"], ensure_ascii=False),
               "published": "1" if row["published"] else "0"}
        yield writer.writerow(["" if row[c] is None else row[c] for c in COLUMNS])


def _jsonl_lines(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    for row in rows:
        yield json.dumps(row, ensure_ascii=False) + "\n"


def catalog_export_stream(export: TableExport) -> Iterator[str]:
    """Yield the export as text chunks, then record it (with the rows actually written).

    The queryset is read with ``.iterator()``, so memory stays flat however many products there
    are. The record is written when the stream ends, also when a download is cut short.

    Raises:
        ValueError: an unknown format.
    """
    if export.fmt not in FORMATS:
        raise ValueError(f"Unknown export format {export.fmt!r}: use one of {', '.join(FORMATS)}.")

    def rows() -> Iterator[dict[str, Any]]:
        for product in export.queryset.iterator(chunk_size=EXPORT_CHUNK_SIZE):
            export.count += 1
            yield product_export_row(product, base_url=export.base_url)

    lines = _csv_lines(rows()) if export.fmt == "csv" else _jsonl_lines(rows())
    finished = False
    try:
        if export.bom:
            yield UTF8_BOM
        buffer: list[str] = []
        for line in lines:
            buffer.append(line)
            if len(buffer) >= ROWS_PER_CHUNK:
                yield "".join(buffer)
                buffer.clear()
        yield "".join(buffer)
        finished = True
    finally:
        _record(export, finished)


def _record(export: TableExport, finished: bool) -> None:
    kind = ExportKind.CATALOG_CSV if export.fmt == "csv" else ExportKind.CATALOG_JSONL
    label = "CSV" if export.fmt == "csv" else "JSON Lines"
    message = f"Exported {export.count:,} products as {label}"
    if not finished:
        message += " (interrupted before the end)"
    export_record_log(kind=kind, user=export.user, count=export.count, filters=export.filters,
                      message=message, detail="" if finished else "Interrupted.")


def catalog_export_write(export: TableExport, output: str | Path | TextIO) -> int:
    """Stream the export into a text stream or a new UTF-8 file; returns the rows written."""
    if isinstance(output, (str, Path)):
        with open(output, "w", encoding="utf-8", newline="") as handle:
            return catalog_export_write(export, handle)
    for chunk in catalog_export_stream(export):
        output.write(chunk)
    return export.count
