"""Import entry points shared by the admin and the commands: read a file, import, record it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import IO

from catalog.exports.records import export_record_log
from catalog.imports.categories import categories_import
from catalog.imports.products import ImportReport, catalog_import, import_roots
from catalog.imports.sources import import_format, import_rows_read
from catalog.models import ExportKind


def catalog_import_file(*, stream: IO[bytes], name: str, fmt: str | None = None,
                        images_dirs: Sequence[str | Path] = (), dry_run: bool = False,
                        user=None) -> ImportReport:
    """Import products from an open CSV / JSON Lines file; a real run is recorded."""
    rows = import_rows_read(stream, fmt=import_format(name, fmt))
    report = catalog_import(rows=rows, roots=import_roots(images_dirs), dry_run=dry_run)
    _record(report, name=name, what="products", user=user)
    return report


def categories_import_file(*, stream: IO[bytes], name: str, dry_run: bool = False,
                           user=None) -> ImportReport:
    """Import categories from an open CSV / JSON Lines file; a real run is recorded."""
    report = categories_import(rows=import_rows_read(stream, fmt=import_format(name)),
                               dry_run=dry_run)
    _record(report, name=name, what="categories", user=user)
    return report


def _record(report: ImportReport, *, name: str, what: str, user) -> None:
    if report.dry_run:
        return
    export_record_log(
        kind=ExportKind.CATALOG_IMPORT, user=user, count=report.created + report.changed,
        skipped=report.failed_rows, filters={"file": name, "what": what},
        detail="\n".join(str(error) for error in report.errors),
        message=f"Imported {what} from {name}: {report.summary()}",
    )
