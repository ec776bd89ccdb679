"""The shared similarity index: one memory-mapped file per backbone, rebuilt in the background.

The rebuild (a django-q2 task: scheduled, and after classification jobs) reads the stored
embeddings of the active model's backbone, writes the index file atomically under
``SIMILARITY["INDEX_DIR"]`` with ``classifier.similarity.index``, scans it for near-duplicate
pairs (the duplicates page's candidates; see ``duplicate_scan``) and records what it saw in a
small state file beside it. Web processes only open the file read-only (``open_index``): every
process maps the same file, so the page cache holds one copy, and a rebuilt file is picked up
by the next request.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max
from django.utils import timezone

from classifier.exceptions import IndexFileError
from classifier.models import DuplicateCandidate, ModelVersion, ProductEmbedding
from classifier.services.duplicate_scan import duplicate_scan
from classifier.services.embeddings import backbone_tag, embeddings_iter
from classifier.similarity.index import SimilarityIndex, open_latest

logger = logging.getLogger(__name__)

REFRESH_TASK = "classifier.tasks.similarity_index_refresh"
# A full rebuild of a large catalog (graph build, all-pairs duplicate scan) takes minutes to tens
# of minutes, beyond the cluster's 10-minute default. Should the ORM broker hand the task to a
# second worker meanwhile (after its retry delay), that copy finds the rebuild lock taken and
# returns "busy" at once, so a timeout longer than the retry costs nothing here.
REFRESH_TIMEOUT_SECONDS = 2 * 3600
INDEX_SUFFIX = ".simindex"
STATE_SUFFIX = ".state.json"
LOCK_NAME = ".rebuild.lock"
# A stale index waits this many times its last refresh's duration before the next one, when
# that refresh took at least DUTY_MIN_SECONDS (shorter ones cost nothing worth rationing).
REFRESH_DUTY = 4
DUTY_MIN_SECONDS = 10
# How far before the last snapshot an incremental duplicate scan reaches: longer than a chunk's
# result transaction can stay open (the SQLite busy timeout is 30 s).
SCAN_OVERLAP_SECONDS = 300


@dataclass(frozen=True)
class RefreshOutcome:
    """What a refresh did: ``status`` is built, fresh, recent, busy or empty."""

    status: str
    backbone: str = ""
    count: int = 0
    pairs: int = 0


def index_dir() -> Path:
    return Path(settings.SIMILARITY["INDEX_DIR"])


def index_path(backbone: str) -> Path:
    """The index file of ``backbone``: a readable slug plus a digest (tags hold ``:``/``@``)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", backbone)[:60]
    digest = hashlib.sha256(backbone.encode()).hexdigest()[:10]
    return index_dir() / f"{slug}-{digest}{INDEX_SUFFIX}"


def active_backbone() -> str | None:
    """``backbone_tag`` of the active model version, or None when no version is active."""
    row = (ModelVersion.objects.filter(is_active=True)
           .values_list("embedding_backbone", "checksum").first())
    return None if row is None else backbone_tag(backbone=row[0], checksum=row[1])


def open_index(backbone: str) -> SimilarityIndex | None:
    """This process's mapping of the backbone's index file (reopened after a rebuild), or None
    when it has not been built yet or cannot be read (queries then fall back; see similar.py)."""
    try:
        index = open_latest(index_path(backbone))
    except IndexFileError:
        return None
    return index if index.backbone == backbone else None


def index_state(backbone: str) -> dict | None:
    """What the last rebuild of ``backbone`` saw (time, count, threshold, pairs), if any."""
    try:
        return json.loads(index_path(backbone).with_suffix(STATE_SUFFIX).read_text())
    except (OSError, ValueError):
        return None


def similarity_index_refresh(*, force: bool = False, min_age_seconds: float = 0
                             ) -> RefreshOutcome:
    """Rebuild the active backbone's index and duplicate candidates when they are stale.

    Stale: no index yet, embeddings added, changed or deleted since the last build, or the
    duplicate threshold setting changed. Runs one at a time per index folder (a file lock):
    a refresh finding another one running returns "busy" at once.

    A stale index younger than ``REFRESH_DUTY`` times its last refresh's duration (when that
    took ``DUTY_MIN_SECONDS`` or more) is left for a later run, so on a large catalog rebuilding
    never takes more than about a fifth of a worker.

    Args:
        force: Rebuild even when nothing changed, and rescan every pair for duplicates.
        min_age_seconds: Also leave a stale index alone if it was built less than this long ago
            (the after-job trigger; the scheduled refresh passes 0 and picks it up).
    """
    backbone = active_backbone()
    if backbone is None:
        return RefreshOutcome("empty")
    index_dir().mkdir(parents=True, exist_ok=True)
    with _exclusive(index_dir() / LOCK_NAME) as locked:
        if not locked:
            return RefreshOutcome("busy", backbone)
        state = index_state(backbone)
        if not force and _is_fresh(backbone, state):
            return RefreshOutcome("fresh", backbone, state["count"], state["pairs"])
        if not force and state and index_path(backbone).exists() and (
                _age_seconds(state) < max(min_age_seconds, _duty_wait(state))):
            return RefreshOutcome("recent", backbone, state["count"], state["pairs"])
        return _rebuild(backbone, state, full=force)


def similarity_index_refresh_on_commit() -> None:
    """Ask the workers to refresh the index once the current transaction commits (after a
    classification job); the task returns at once when nothing changed."""
    def enqueue():
        from django_q.tasks import async_task

        async_task(REFRESH_TASK, min_age_seconds=settings.SIMILARITY["REBUILD_MIN_SECONDS"],
                   task_name="similarity-index-refresh-after-job",
                   timeout=REFRESH_TIMEOUT_SECONDS)

    transaction.on_commit(enqueue)


def build_index_file(path: Path, backbone: str) -> SimilarityIndex | None:
    """Write an index of every stored embedding of ``backbone`` to ``path`` (atomically).

    Vectors go through a float16 scratch file beside ``path`` rather than memory, so a
    million-product catalog needs no more than a batch of them in RAM at once.

    Returns:
        The opened index, or None when no product has an embedding of this backbone.
    """
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".vectors-") as scratch:
        vectors_file = Path(scratch) / "vectors.f16"
        id_parts, dim = [], 0
        with open(vectors_file, "wb") as out:
            for ids, vectors in embeddings_iter(backbone=backbone):
                out.write(vectors.astype("<f2").tobytes())
                id_parts.append(ids)
                dim = vectors.shape[1]
        if not id_parts:
            return None
        ids = np.concatenate(id_parts)
        vectors = np.memmap(vectors_file, dtype="<f2", mode="r", shape=(len(ids), dim))
        return SimilarityIndex.build(path, ids=ids, vectors=vectors, backbone=backbone)


def _rebuild(backbone: str, state: dict | None, *, full: bool) -> RefreshOutcome:
    started = time.monotonic()
    path = index_path(backbone)
    snapshot_at = timezone.now()  # before reading: rows written from now on make it stale
    # Rows, not indexed vectors, decide freshness: a row that cannot be decoded is left out of
    # the index but must not make every later check see a change.
    rows = ProductEmbedding.objects.filter(backbone=backbone).count()
    index = build_index_file(path, backbone)
    if index is None:
        _remove(path)
        DuplicateCandidate.objects.all().delete()
        _write_state(backbone, snapshot_at=snapshot_at, count=0, rows=rows, pairs=0)
        return RefreshOutcome("empty", backbone)
    threshold = settings.SIMILARITY["DUPLICATE_THRESHOLD"]
    scan = duplicate_scan(index, threshold=threshold, found_at=snapshot_at,
                          changed=None if full else _changed_since(backbone, state))
    seconds = time.monotonic() - started
    _write_state(backbone, snapshot_at=snapshot_at, count=index.count, rows=rows,
                 pairs=scan.pairs, kind=index.kind, scan=scan.kind,
                 build_seconds=round(index.build_seconds, 3), refresh_seconds=round(seconds, 3))
    _remove_other_indexes(keep=path)
    logger.info("Similarity index for %s rebuilt: %s products (%s), %s duplicate scan, %s "
                "pairs at cosine >= %s; %.1f s", backbone, index.count, index.kind, scan.kind,
                scan.pairs, threshold, seconds)
    return RefreshOutcome("built", backbone, index.count, scan.pairs)


def _changed_since(backbone: str, state: dict | None) -> list[int] | None:
    """Products whose embeddings were written since the last scan, or None when the last scan
    cannot be built on (none yet, or made at another threshold): then all are scanned."""
    if not state or not state.get("scan") or (
            state.get("threshold") != settings.SIMILARITY["DUPLICATE_THRESHOLD"]):
        return None
    # updated_at is stamped before its chunk commits: a row stamped just before the last
    # snapshot may have become visible only after it, so the window reaches back a margin
    # (scanning a few rows twice is harmless; missing one would hide its pairs for good).
    since = datetime.fromisoformat(state["snapshot_at"]) - timedelta(
        seconds=SCAN_OVERLAP_SECONDS)
    return list(ProductEmbedding.objects.filter(backbone=backbone, updated_at__gte=since)
                .values_list("product_id", flat=True))


def _is_fresh(backbone: str, state: dict | None) -> bool:
    if state is None or (state["count"] and not index_path(backbone).exists()):
        return False
    stats = ProductEmbedding.objects.filter(backbone=backbone).aggregate(
        count=Count("pk"), last=Max("updated_at"))
    changed = stats["last"] is not None and stats["last"] >= datetime.fromisoformat(
        state["snapshot_at"])
    return (stats["count"] == state.get("rows") and not changed
            and state.get("threshold") == settings.SIMILARITY["DUPLICATE_THRESHOLD"])


def _duty_wait(state: dict) -> float:
    took = state.get("refresh_seconds", 0)
    return REFRESH_DUTY * took if took >= DUTY_MIN_SECONDS else 0


def _age_seconds(state: dict) -> float:
    return (timezone.now() - datetime.fromisoformat(state["snapshot_at"])).total_seconds()


def _write_state(backbone: str, *, snapshot_at: datetime, count: int, rows: int, pairs: int,
                 **extra) -> None:
    state = {"backbone": backbone, "snapshot_at": snapshot_at.isoformat(), "count": count,
             "rows": rows, "pairs": pairs, "threshold": settings.SIMILARITY["DUPLICATE_THRESHOLD"],
             "built_at": timezone.now().isoformat(), **extra}
    target = index_path(backbone).with_suffix(STATE_SUFFIX)
    scratch = target.with_name(f".{target.name}.tmp")
    scratch.write_text(json.dumps(state))
    os.replace(scratch, target)


def _remove_other_indexes(*, keep: Path) -> None:
    """Delete index and state files of other backbones: nothing queries them any more (their
    products are re-embedded by classification or ``backfill_embeddings``; until then a
    product's old vector is searched exactly among its own backbone's)."""
    for old in index_dir().glob(f"*{INDEX_SUFFIX}"):
        if old != keep:
            _remove(old)
            _remove(old.with_suffix(STATE_SUFFIX))


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


@contextlib.contextmanager
def _exclusive(lock_path: Path):
    """Yields True while holding an exclusive lock on ``lock_path``, False if another process
    holds it (no waiting: a second refresh would only repeat the first one's work)."""
    with open(lock_path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
