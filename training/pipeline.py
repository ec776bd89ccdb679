"""One call from labelled items to an exported, evaluated, calibrated TFLite model.

Two ways to train, one way to judge. Pretrained backbones (the default) train a head on frozen,
cached embeddings with k-fold cross-validation (``training/transfer.py``); the tutorial CNN and
randomly initialised backbones train end to end on one validation split
(``training/end_to_end.py``). Either way the held-out predictions go through
``training.outcome.heldout_report``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from training.hparams import HParams
from training.outcome import HeldOut, TrainingOutcome, heldout_report
from training.train import ProgressFn

__all__ = ["HeldOut", "TrainingOutcome", "heldout_report", "run_training"]

LogFn = Callable[[str], None]


def run_training(items: Iterable, hparams: HParams, *, workdir: str | Path,
                 progress: ProgressFn | None = None, log: LogFn | None = None,
                 cache_root: str | Path | None = None,
                 keep_cache: bool = False) -> TrainingOutcome:
    """Train, evaluate, calibrate and export a model from labelled items.

    Args:
        items: labelled images (``image_folder_items(...)`` or the catalog's own items).
        hparams: the run's hyperparameters (validated on construction).
        workdir: run folder; keeps ``model.keras`` for re-export without retraining.
        progress: per-batch/epoch callback, see ``training.train.train``.
        log: receives one line per phase and every warning (skipped images, dropped classes).
        cache_root: folder for caches that outlive the run (embeddings, converted weights);
            default ``<workdir>/cache``, i.e. none kept between runs.
        keep_cache: end-to-end training keeps its decoded-image memmap (tests).

    Raises:
        NotEnoughDataError, DatasetReadError, WeightsUnavailableError, ExportError: each with a
        message saying how to fix it.
    """
    say = log or (lambda message: None)
    workdir = Path(workdir)
    cache_root = Path(cache_root) if cache_root is not None else workdir / "cache"
    if hparams.on_embeddings:
        from training.transfer import train_on_embeddings

        return train_on_embeddings(list(items), hparams, workdir=workdir, cache_root=cache_root,
                                   progress=progress, say=say)
    from training.end_to_end import train_end_to_end

    return train_end_to_end(items, hparams, workdir=workdir, progress=progress, say=say,
                            keep_cache=keep_cache)
