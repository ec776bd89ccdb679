"""One call from labelled items to an exported, evaluated TFLite model (what Django calls)."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from classifier.preprocessing import InputContract
from training.dataset import (
    DatasetStats,
    LabelledItem,
    build_cache,
    dataset_stats,
    filter_small_classes,
    stratified_split,
)
from training.evaluate import Metrics
from training.hparams import HParams
from training.train import ProgressFn

LogFn = Callable[[str], None]


@dataclasses.dataclass
class TrainingOutcome:
    """Everything a model version stores after a run.

    ``metrics`` keys: ``keras_validation``, ``tflite_validation`` and, with a test split,
    ``keras_test`` and ``tflite_test``; Keras and TFLite are measured on the same images, so the
    export's (quantisation) loss shows side by side. ``warnings`` collects dropped classes and
    skipped images for the operator.
    """

    tflite_bytes: bytes
    labels: list[str]
    contract: InputContract
    metrics: dict[str, Metrics]
    dataset_stats: DatasetStats
    history: dict[str, list]
    keras_model_path: Path
    hparams: HParams
    best_epoch: int
    warnings: list[str]

    def summary(self) -> dict[str, float]:
        """Headline numbers: accuracy and macro-F1 per evaluated model and split."""
        return {f"{name}_{field}": getattr(m, field)
                for name, m in self.metrics.items() for field in ("accuracy", "macro_f1")}

    def metadata(self) -> dict[str, Any]:
        """JSON-ready metadata for the bundle and the model version row."""
        return {
            "input_contract": self.contract.to_dict(),
            "architecture": self.hparams.architecture,
            "hparams": self.hparams.to_dict(),
            "metrics": {name: m.to_dict() for name, m in self.metrics.items()},
            "summary": self.summary(),
            "dataset": self.dataset_stats.to_dict(),
            "history": self.history,
            "best_epoch": self.best_epoch,
        }


def run_training(items: Iterable[LabelledItem], hparams: HParams, *, workdir: str | Path,
                 progress: ProgressFn | None = None, log: LogFn | None = None,
                 keep_cache: bool = False) -> TrainingOutcome:
    """Cache → filter/split → train → evaluate Keras → export TFLite → evaluate TFLite.

    Args:
        items: labelled images (``image_folder_items(...)`` or the catalog's own items).
        hparams: the run's hyperparameters (validated on construction).
        workdir: run folder; keeps ``model.keras`` for re-export without retraining, and the
            ``cache/`` memmap while running (removed at the end unless ``keep_cache``).
        progress: per-batch/epoch callback, see ``training.train.train``.
        log: receives one line per phase and every warning (skipped images, dropped classes).

    Returns:
        The outcome: TFLite bytes, labels in output order, input contract, metrics, stats.

    Raises:
        NotEnoughDataError, DatasetReadError, WeightsUnavailableError, ExportError: each with a
        message saying how to fix it.
    """
    from training.evaluate import evaluate_keras, evaluate_tflite
    from training.export import export_tflite, representative_images
    from training.train import train

    say = log or (lambda message: None)
    workdir = Path(workdir)
    cache_dir = workdir / "cache"
    say(f"Decoding images at {hparams.image_size[0]}x{hparams.image_size[1]}...")
    try:
        full = build_cache(items, size=hparams.image_size, cache_dir=cache_dir,
                           workers=hparams.decode_workers)
        warnings = [f"Skipped {s.key}: {s.reason}" for s in full.skipped]
        cache, dropped_warnings = filter_small_classes(
            full, min_images=hparams.min_images_per_class
        )
        warnings += dropped_warnings
        for line in warnings:
            say(line)
        split = stratified_split(cache.labels, validation_split=hparams.validation_split,
                                 test_split=hparams.test_split, seed=hparams.seed)
        dropped = _dropped_counts(full, cache)
        stats = dataset_stats(cache, split, dropped=dropped, warnings=warnings)
        say(f"Training {hparams.architecture} on {len(split.train)} images, "
            f"validating on {len(split.validation)}, {len(cache.label_names)} categories...")
        result = train(cache, split, hparams, progress=progress, workdir=workdir)
        contract = InputContract(height=hparams.image_size[0], width=hparams.image_size[1],
                                 output="logits")
        say(f"Exporting TFLite ({hparams.quantization})...")
        representative = (representative_images(cache.images, split.train, seed=hparams.seed)
                          if hparams.quantization == "int8" else None)
        tflite_bytes = export_tflite(result.model_path, quantization=hparams.quantization,
                                     representative=representative)
        metrics = _evaluate_all(result.model_path, tflite_bytes, cache, split, contract,
                                evaluate_keras, evaluate_tflite)
    finally:
        if not keep_cache:
            shutil.rmtree(cache_dir, ignore_errors=True)
    say("Done: " + ", ".join(f"{k}={v:.3f}" for k, v in _accuracies(metrics).items()))
    return TrainingOutcome(tflite_bytes=tflite_bytes, labels=result.labels, contract=contract,
                           metrics=metrics, dataset_stats=stats, history=result.history,
                           keras_model_path=result.model_path, hparams=hparams,
                           best_epoch=result.best_epoch, warnings=warnings)


def _evaluate_all(model_path: Path, tflite_bytes: bytes, cache: Any, split: Any,
                  contract: InputContract, evaluate_keras: Any,
                  evaluate_tflite: Any) -> dict[str, Metrics]:
    import keras

    model = keras.models.load_model(model_path, compile=False)
    parts = {"validation": split.validation}
    if len(split.test):
        parts["test"] = split.test
    metrics: dict[str, Metrics] = {}
    for part, indices in parts.items():
        metrics[f"keras_{part}"] = evaluate_keras(model, cache, indices)
        metrics[f"tflite_{part}"] = evaluate_tflite(tflite_bytes, cache, indices,
                                                   cache.label_names, contract)
    return metrics


def _dropped_counts(full: Any, kept: Any) -> dict[str, int]:
    counts = np.bincount(full.labels, minlength=len(full.label_names))
    return {n: int(c) for n, c in zip(full.label_names, counts) if n not in kept.label_names}


def _accuracies(metrics: dict[str, Metrics]) -> dict[str, float]:
    return {f"{name}_accuracy": m.accuracy for name, m in metrics.items()}
