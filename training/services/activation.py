"""Activation policy: a new version goes live only if it beats the active one on the same data."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from classifier.models import ModelVersion
from training.models import ActivationPolicy


def model_version_apply_policy(*, model_version: ModelVersion, outcome, policy: str,
                               items: list, cache_dir: Path,
                               log: Callable[[str], None]) -> bool:
    """Activate ``model_version`` according to ``policy``; return whether it was activated.

    ``if_better``: activate when no version is active, or when the new exported model's
    validation accuracy is strictly higher than the active model's *on the same validation
    images* (the active ``.tflite`` is run on this run's validation split). When the two
    models' categories differ that comparison is meaningless, so the stored accuracies are
    compared instead and the log says so.

    Args:
        model_version: the new, inactive version.
        outcome: its ``TrainingOutcome`` (labels, hparams, tflite metrics).
        policy: an ``ActivationPolicy`` value.
        items: the run's labelled items (re-decoded when the active model's size differs).
        cache_dir: the run's kept decode cache (``images.npy`` + ``labels.json``).
        log: sink for the decision, shown in the run's log.
    """
    from classifier.selectors import model_version_get_active
    from classifier.services import model_version_activate

    active = model_version_get_active()
    if policy == ActivationPolicy.NEVER:
        log("Activation policy 'never': the new version stays inactive.")
        return False
    if policy == ActivationPolicy.IF_BETTER and active is not None:
        new_accuracy = outcome.metrics["tflite_validation"].accuracy
        active_accuracy = _active_accuracy(active, outcome, items, cache_dir, log)
        if active_accuracy is not None and new_accuracy <= active_accuracy:
            log(f"Not activated: validation accuracy {new_accuracy:.4f} does not beat the active "
                f"v{active.number} ({active_accuracy:.4f}).")
            return False
        log(f"New version beats the active v{active.number}: {new_accuracy:.4f} vs "
            f"{active_accuracy if active_accuracy is not None else float('nan'):.4f}.")
    elif active is None:
        log("No active version: activating the new one.")
    model_version_activate(model_version=model_version)
    return True


def _active_accuracy(active: ModelVersion, outcome, items: list, cache_dir: Path,
                     log: Callable[[str], None]) -> float | None:
    """The active model's accuracy on this run's validation images, or its stored accuracy."""
    if sorted(active.labels) != sorted(outcome.labels):
        log(f"Active v{active.number} knows other categories than this run; comparing stored "
            "validation accuracies (measured on different images).")
        return active.accuracy
    try:
        accuracy = _evaluate_active(active, outcome, items, cache_dir)
    except Exception as exc:  # noqa: BLE001 - a broken active model must not block a good one
        log(f"Could not evaluate active v{active.number} ({type(exc).__name__}: {exc}); "
            "treating it as beaten.")
        return None
    log(f"Active v{active.number} scores {accuracy:.4f} on this run's validation images.")
    return accuracy


def _evaluate_active(active: ModelVersion, outcome, items: list, cache_dir: Path) -> float:
    from classifier.contract import InputContract
    from training.dataset import DatasetCache, build_cache, stratified_split
    from training.evaluate import evaluate_tflite

    cache = _load_cache(cache_dir, DatasetCache).relabel(outcome.labels)
    hp = outcome.hparams
    # Same labels and seed as the pipeline: the same validation rows it evaluated on.
    split = stratified_split(cache.labels, validation_split=hp.validation_split,
                             test_split=hp.test_split, seed=hp.seed)
    contract = InputContract.from_dict(active.input_contract)
    indices = split.validation
    if contract.size != cache.size:
        by_key = {item.key: item for item in items}
        subset = [by_key[cache.keys[i]] for i in indices]
        cache = build_cache(subset, size=contract.size, cache_dir=cache_dir / "active",
                            workers=hp.decode_workers)
        indices = np.arange(len(cache))
    cache = cache.relabel(active.labels)
    with active.file.open("rb") as handle:
        tflite_bytes = handle.read()
    return evaluate_tflite(tflite_bytes, cache, indices, active.labels, contract).accuracy


def _load_cache(cache_dir: Path, cache_cls):
    meta = json.loads((cache_dir / "labels.json").read_text())
    images = np.load(cache_dir / "images.npy", mmap_mode="r")
    return cache_cls(images=images[: len(meta["labels"])], labels=np.array(meta["labels"],
                     dtype=np.int32), label_names=meta["label_names"], keys=meta["keys"],
                     skipped=[], size=tuple(images.shape[1:3]), cache_dir=cache_dir)
