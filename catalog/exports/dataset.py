"""Person-labelled product images as an image-folder zip (``<category-slug>/<sku>.<ext>``).

The layout Keras ``image_dataset_from_directory``, Teachable Machine, Model Maker and this
project's ``training.dataset.image_folder_items`` read. The zip is written to a stream one image
at a time, so neither the admin download nor the command holds the archive in memory.
"""

from __future__ import annotations

import io
import logging
import posixpath
import re
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from catalog.exports.records import export_record_log
from catalog.models import CategorySource, ExportKind, Product

logger = logging.getLogger(__name__)

# Extensions the image-folder readers accept; anything else would be silently ignored by them,
# so such a product is skipped here with a reason instead.
DATASET_IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"})
# Characters kept in a file name; others become "-" so every OS and zip tool accepts the name.
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
DATASET_README = "README.txt"
DATASET_LABELS = "labels.txt"
# Products fetched per query while streaming (rows are small; images are read one at a time).
DATASET_CHUNK_SIZE = 200


@dataclass
class DatasetExport:
    """What to export and, once streamed, what was written and what was skipped (and why)."""

    queryset: QuerySet
    user: Any = None
    filters: dict[str, Any] = field(default_factory=dict)
    written: Counter = field(default_factory=Counter)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(self.written.values())


def product_list_for_dataset(*, queryset: QuerySet | None = None) -> QuerySet:
    """Products (of ``queryset``, or all) a person labelled and that have an image: the only
    labels trustworthy enough to train on."""
    qs = Product.objects.all() if queryset is None else queryset
    return (qs.filter(category_source=CategorySource.PERSON, category__isnull=False)
            .exclude(image="").select_related("category").order_by("category__slug", "sku"))


def dataset_member_name(product: Product, used: set[str]) -> str:
    """``<category-slug>/<sanitised sku><ext>``, unique within the archive.

    Two SKUs that sanitise alike (``A/1`` and ``A 1``) get the product id appended.
    """
    ext = posixpath.splitext(product.image.name)[1].lower()
    stem = _UNSAFE_NAME_CHARS.sub("-", product.sku).strip(".-") or f"product-{product.pk}"
    name = f"{product.category.slug}/{stem}{ext}"
    if name.lower() in used:
        name = f"{product.category.slug}/{stem}-{product.pk}{ext}"
    used.add(name.lower())
    return name


class _Sink(io.RawIOBase):
    """A write-only stream that keeps what the zip writer produced until it is drained."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._chunks.append(bytes(data))
        self._position += len(data)
        return len(data)

    def tell(self) -> int:  # zipfile records member offsets with tell()
        return self._position

    def drain(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


def dataset_zip_stream(export: DatasetExport) -> Iterator[bytes]:
    """Yield the zip in pieces: one piece per image, then labels.txt, README.txt and the index.

    A product whose image is missing or unreadable is skipped and listed in README.txt and the
    export record; the rest go on. The export is recorded when the stream ends.
    """
    sink = _Sink()
    used: set[str] = set()
    finished = False
    try:
        # Non-seekable sink: zipfile writes data descriptors, which every unzip tool reads.
        with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED) as archive:
            for product in export.queryset.iterator(chunk_size=DATASET_CHUNK_SIZE):
                _add_image(archive, product, used, export)
                yield sink.drain()
            _add_text_files(archive, export)
        yield sink.drain()
        finished = True
    finally:
        _record(export, finished)


def _add_image(archive: zipfile.ZipFile, product: Product, used: set[str],
               export: DatasetExport) -> None:
    ext = posixpath.splitext(product.image.name)[1].lower()
    if ext not in DATASET_IMAGE_EXTENSIONS:
        export.skipped.append((product.sku, f"unsupported image type {ext or '(none)'}"))
        return
    try:
        # One whole image in memory: a read that fails half-way leaves no truncated member.
        with product.image.storage.open(product.image.name, "rb") as source:
            data = source.read()
    except Exception as exc:  # noqa: BLE001 - any storage failure skips this image only
        logger.warning("Dataset export: product %s (%s) image %s unreadable: %s",
                       product.pk, product.sku, product.image.name, exc)
        export.skipped.append((product.sku, f"image {product.image.name} unreadable: {exc}"))
        return
    if not data:
        export.skipped.append((product.sku, f"image {product.image.name} is empty"))
        return
    archive.writestr(dataset_member_name(product, used), data)
    export.written[product.category.slug] += 1


def _add_text_files(archive: zipfile.ZipFile, export: DatasetExport) -> None:
    labels = sorted(export.written)  # alphanumeric: the order Keras assigns class indices
    archive.writestr(DATASET_LABELS, "".join(f"{label}\n" for label in labels),
                     compress_type=zipfile.ZIP_DEFLATED)
    lines = [
        "Labelled product images exported from Catalog Classifier",
        f"Exported: {timezone.now().isoformat()}",
        "Layout: <category-slug>/<sku>.<ext> (an image folder dataset; Keras",
        "image_dataset_from_directory, Teachable Machine and Model Maker read it).",
        "Only products whose category a person chose are included.",
        "",
        f"Images: {export.count}",
        *(f"  {label}: {export.written[label]}" for label in labels),
        f"Skipped: {len(export.skipped)}",
        *(f"  {sku}: {reason}" for sku, reason in export.skipped),
    ]
    archive.writestr(DATASET_README, "\n".join(lines) + "\n", compress_type=zipfile.ZIP_DEFLATED)


def _record(export: DatasetExport, finished: bool) -> None:
    message = f"Exported {export.count:,} labelled images as a dataset zip"
    if export.skipped:
        message += f" ({len(export.skipped):,} skipped)"
    if not finished:
        message += " (interrupted before the end)"
    detail = "\n".join(f"{sku}: {reason}" for sku, reason in export.skipped)
    export_record_log(kind=ExportKind.DATASET_ZIP, user=export.user, count=export.count,
                      skipped=len(export.skipped), filters=export.filters, message=message,
                      detail=detail if finished else "Interrupted.\n" + detail)


def dataset_export_write(export: DatasetExport, output: str | Path) -> Path:
    """Stream the dataset zip into a new file at ``output``; returns the path."""
    target = Path(output)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as handle:
        for chunk in dataset_zip_stream(export):
            handle.write(chunk)
    return target
