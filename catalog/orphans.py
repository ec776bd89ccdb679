"""Stored files no record refers to (left by a process killed mid-request), found and removed.

A request that fails cleans up what it stored (``catalog.services``, ``AppwriteStorage._save``);
a worker killed between storing a file and committing its row cannot. The sweep lists the files
under the folders Django uploads to, in every storage a model's file field uses, and removes
those that no file field of any model names and that are older than a grace period (a file
whose row is still being written looks exactly like an orphan). The catalog imports no other
app: the references come from the app registry (products' images, model versions' files, ...).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.apps import apps
from django.core.files.storage import FileSystemStorage, Storage
from django.db import models
from django.utils import timezone

from catalog import appwrite
from catalog.storage import AppwriteStorage

logger = logging.getLogger(__name__)

# The folders Django stores uploads in (Product.image's "products/<sku>/", model versions'
# "models/"). Nothing else in a bucket or the media folder is touched: files other apps or the
# Appwrite console put there are not Django's to delete.
SWEPT_FOLDERS = ("products/", "models/")
# Files younger than this are never orphans yet: an upload's row commits within seconds, and an
# hour also covers a long training run storing its model before the version row is saved.
DEFAULT_GRACE = timedelta(hours=1)


@dataclass(frozen=True)
class StoredFile:
    name: str
    created: datetime | None
    where: str


@dataclass
class SweepReport:
    orphans: list[StoredFile] = field(default_factory=list)
    deleted: int = 0
    failed: list[str] = field(default_factory=list)


def orphan_files_sweep(*, dry_run: bool = True, older_than: timedelta = DEFAULT_GRACE
                       ) -> SweepReport:
    """Find (and unless ``dry_run``, delete) stored files no record refers to.

    Args:
        dry_run: only list them (the default: a sweep deletes data, so it is asked for).
        older_than: leave files younger than this alone.

    Returns:
        The orphans found, how many were deleted, and the names whose deletion failed.
    """
    referenced = _referenced_names()
    cutoff = timezone.now() - older_than
    report = SweepReport()
    for storage in _file_storages():
        for stored in _stored_files(storage):
            if stored.name in referenced or (stored.created and stored.created > cutoff):
                continue
            report.orphans.append(stored)
            if not dry_run:
                _delete(storage, stored, report)
    return report


def _delete(storage: Storage, stored: StoredFile, report: SweepReport) -> None:
    try:
        storage.delete(stored.name)
    except Exception as exc:  # noqa: BLE001 - one failed delete is reported; the sweep goes on
        report.failed.append(f"{stored.name}: {exc}")
    else:
        report.deleted += 1
        logger.info("Deleted orphan file %s from %s", stored.name, stored.where)


def _file_fields() -> Iterator[models.FileField]:
    for model in apps.get_models():
        for model_field in model._meta.concrete_fields:
            if isinstance(model_field, models.FileField):
                yield model_field


def _referenced_names() -> set[str]:
    names: set[str] = set()
    for file_field in _file_fields():
        manager = file_field.model._default_manager
        names.update(manager.exclude(**{file_field.name: ""}).values_list(file_field.name,
                                                                          flat=True))
    return names


def _file_storages() -> list[Storage]:
    """Each distinct storage (bucket, folder) some file field uses, once."""
    seen, unique = set(), []
    for file_field in _file_fields():
        storage = file_field.storage
        key = (("appwrite", storage.bucket_id) if isinstance(storage, AppwriteStorage)
               else (type(storage).__name__, getattr(storage, "location", id(storage))))
        if key not in seen:
            seen.add(key)
            unique.append(storage)
    return unique


def _stored_files(storage: Storage) -> Iterator[StoredFile]:
    if isinstance(storage, AppwriteStorage):
        where = f"bucket {storage.bucket_id}"
        for stored in storage.iter_files():
            name = storage.name_for(stored)
            if name.startswith(SWEPT_FOLDERS) and not name.startswith(appwrite.FOREIGN_PREFIX):
                yield StoredFile(name, datetime.fromisoformat(stored.createdat), where)
    elif isinstance(storage, FileSystemStorage):
        root = Path(storage.location)
        for folder in SWEPT_FOLDERS:
            for path in sorted((root / folder).rglob("*")):
                if path.is_file():
                    created = datetime.fromtimestamp(os.stat(path).st_mtime, tz=UTC)
                    yield StoredFile(path.relative_to(root).as_posix(), created, str(root))
