"""Who may export, and the audit trail every export (admin or command line) leaves."""

from __future__ import annotations

import getpass
import logging
from typing import Any

from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.db import models

from catalog.models import ExportKind, ExportRecord

logger = logging.getLogger(__name__)

# Permission a user needs (with staff status and the view permission) to export products or
# their labelled images: exports copy the catalogue out of the shop.
EXPORT_PRODUCT_PERMISSION = "catalog.export_product"


def user_can_export(user, model: type[models.Model], *, extra_permission: str = "") -> bool:
    """Staff, the model's view permission, and ``extra_permission`` when one is named."""
    if not (user and user.is_active and user.is_staff):
        return False
    opts = model._meta
    if not user.has_perm(f"{opts.app_label}.view_{opts.model_name}"):
        return False
    return not extra_permission or user.has_perm(extra_permission)


def command_actor() -> str:
    """How a command-line export is attributed: the OS account that ran it."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        name = "unknown"
    return f"{name} (command line)"


def export_record_log(
    *, kind: ExportKind, user=None, count: int, skipped: int = 0,
    filters: dict[str, Any] | None = None, detail: str = "", message: str,
    logged_object: models.Model | None = None,
) -> ExportRecord:
    """Record one export: an ``ExportRecord`` always, plus an admin history entry for a user.

    One admin ``LogEntry`` per export, not per product: it goes on ``logged_object`` (the model
    version of a bundle) or else on the new ``ExportRecord``, so it shows in the admin's
    "Recent actions" and in that object's history. Command-line exports have no user, and a
    ``LogEntry`` needs one, so their record carries the OS user in ``actor`` instead.
    """
    record = ExportRecord.objects.create(
        kind=kind, user=user if user and user.pk else None,
        actor=user.get_username() if user and user.pk else command_actor(),
        source="admin" if user and user.pk else "command", count=count, skipped=skipped,
        filters=filters or {}, detail=detail,
    )
    if record.user_id:
        target = logged_object or record
        LogEntry.objects.log_actions(
            user_id=record.user_id, queryset=[target],
            action_flag=CHANGE if logged_object is not None else ADDITION,
            change_message=message, single_object=True,
        )
    logger.info("%s by %s (%s)", message, record.actor, filters or {})
    return record
