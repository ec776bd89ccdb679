"""Import an existing Appwrite bucket: one product per image file, safe to run again."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.core.files.storage import default_storage

from catalog import services
from catalog.exceptions import StorageError
from catalog.storage import AppwriteStorage

logger = logging.getLogger(__name__)


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped_non_images: int = 0
    failed: int = 0
    product_ids: list[int] = field(default_factory=list)  # created or updated

    def summary(self) -> str:
        return (f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged, "
                f"{self.skipped_non_images} skipped (not images), {self.failed} failed")


def _image_storage(bucket_id: str | None) -> AppwriteStorage:
    storage = default_storage
    if not isinstance(storage, AppwriteStorage):
        raise StorageError("Product images are stored locally. Set the APPWRITE_* variables "
                           "(README, 'Appwrite Storage') before importing a bucket.")
    if bucket_id and bucket_id != storage.bucket_id:
        raise StorageError(
            f"Products read images from bucket {storage.bucket_id} (APPWRITE_BUCKET_ID), so "
            f"files in bucket {bucket_id} would not display. Import {storage.bucket_id}, or set "
            f"APPWRITE_BUCKET_ID={bucket_id} first.")
    return storage


def appwrite_bucket_import(*, bucket_id: str | None = None, dry_run: bool = False,
                           progress: Any = None) -> ImportReport:
    """Create or update a product for every image file in the product image bucket.

    Products are matched and created by ``services.product_link_appwrite_file`` (the same rule
    the webhook uses), so a second run reports everything unchanged. ``dry_run`` only counts:
    files that would be linked count as created. ``progress`` is a tqdm-like object (``total``,
    ``update()``). ``product_ids`` lists what was created or updated, for a caller that wants
    them classified (the catalog does not know the classifier).
    """
    storage = _image_storage(bucket_id)
    report = ImportReport()
    if progress is not None:
        progress.total = storage.count_files()
        progress.refresh()
    for stored in storage.iter_files():
        file = storage.file_dict(stored)
        if not services.appwrite_file_is_image(file):
            report.skipped_non_images += 1
        elif dry_run:
            report.created += 1
        else:
            _import_one(file, report)
        if progress is not None:
            progress.update(1)
    return report


def _import_one(file: dict[str, Any], report: ImportReport) -> None:
    try:
        link = services.product_link_appwrite_file(file=file, create=True)
    except Exception:  # One bad file is counted and logged; the import goes on.
        logger.exception("Importing Appwrite file %s (%s) failed", file["$id"], file["name"])
        report.failed += 1
        return
    setattr(report, link.outcome, getattr(report, link.outcome) + 1)
    if link.outcome != "unchanged":
        report.product_ids.append(link.product.pk)
