"""Writes a running training's progress, ETA and log tail to its TrainingRun row, throttled."""

from __future__ import annotations

import collections
import time
from typing import Any

from django.utils import timezone

from training.models import TrainingRun

# The admin refreshes every few seconds; one short UPDATE a second is plenty and keeps a
# per-batch callback from hammering the database (a CPU epoch can run hundreds of batches).
PROGRESS_WRITE_INTERVAL = 1.0
# Lines of log kept on the row: enough for every epoch of a long run plus the warnings.
LOG_TAIL_LINES = 200
# Training is most of the run; export and evaluation fill the rest of the bar.
TRAINING_SHARE = 0.9


class RunRecorder:
    """Progress callback and log sink for one run; each write is its own short UPDATE.

    Writes go through ``QuerySet.update`` outside any long transaction, so the admin sees them
    while the run goes on, and a slow run never holds a lock.
    """

    def __init__(self, run: TrainingRun, *, progress=None, log=None) -> None:
        self.run_id = run.pk
        self.lines: collections.deque[str] = collections.deque(
            run.log.splitlines()[-LOG_TAIL_LINES:], maxlen=LOG_TAIL_LINES)
        self._extra_progress = progress
        self._extra_log = log
        self._started = time.monotonic()
        self._last_write = 0.0
        self._detail: dict[str, Any] | None = None

    def line(self, message: str) -> None:
        """Append a log line (written at once: lines are rare, and they matter on failure)."""
        self.lines.append(message)
        if self._extra_log is not None:
            self._extra_log(message)
        self._write(force=True)

    def progress(self, event: dict[str, Any]) -> None:
        """The pipeline's per-batch/epoch callback: fraction done, epoch, batch and ETA."""
        if self._extra_progress is not None:
            self._extra_progress(event)
        if event["event"] == "epoch":
            logs = event.get("logs", {})
            self.line(f"Epoch {event['epoch']}/{event['epochs']} ({event['phase']}): "
                      + ", ".join(f"{k}={v:.4f}" for k, v in sorted(logs.items())))
        self._detail = self._detail_for(event)
        self._write(force=event["event"] == "epoch")

    def _detail_for(self, event: dict[str, Any]) -> dict[str, Any]:
        epochs, batches = max(1, event["epochs"]), max(1, event["batches"])
        done = (event["epoch"] - 1 + event["batch"] / batches) / epochs
        elapsed = time.monotonic() - self._started
        eta = elapsed / done * (1 - done) if done > 0 else None
        return {"phase": event["phase"], "epoch": event["epoch"], "epochs": event["epochs"],
                "batch": event["batch"], "batches": event["batches"],
                "eta_seconds": None if eta is None else round(eta),
                "fraction": round(done * TRAINING_SHARE, 4),
                "logs": {k: round(v, 4) for k, v in event.get("logs", {}).items()}}

    def _write(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_write < PROGRESS_WRITE_INTERVAL:
            return
        self._last_write = now
        fields: dict[str, Any] = {"log": "\n".join(self.lines)}
        if self._detail is not None:
            fields.update(progress=self._detail["fraction"], progress_detail=self._detail)
        TrainingRun.objects.filter(pk=self.run_id).update(**fields)

    def finish(self, *, status: str, error: str = "", activated: bool = False) -> None:
        """Final write: status, 100% on success, the whole log tail and the finish time."""
        fields: dict[str, Any] = {"status": status, "error": error, "activated": activated,
                                  "finished_at": timezone.now(), "log": "\n".join(self.lines)}
        if status == "succeeded":
            fields["progress"] = 1.0
        TrainingRun.objects.filter(pk=self.run_id).update(**fields)
