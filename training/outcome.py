"""What a training run produces and how its held-out predictions are judged.

Both ways of training (``training/transfer.py`` on frozen embeddings, ``training/end_to_end.py``
on pixels) hand their held-out predictions to :func:`heldout_report`, so metrics, temperature,
auto-fill thresholds and the quality gate are computed the same way for every model version,
and return a :class:`TrainingOutcome`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from classifier.preprocessing import InputContract
from training.calibration import auto_fill_thresholds, fit_temperature, reliability
from training.evaluate import evaluate_probs
from training.gate import GateResult, quality_gate
from training.head import softmax
from training.hparams import HParams


@dataclasses.dataclass
class HeldOut:
    """The held-out predictions every figure of a version comes from.

    Out-of-fold for k-fold training (every labelled image, predicted by a head that never saw
    it), the validation split for end-to-end training. ``probs`` are calibrated.
    """

    keys: list[str]
    labels: np.ndarray
    probs: np.ndarray
    label_names: list[str]
    method: str

    @property
    def predicted_names(self) -> list[str]:
        return [self.label_names[i] for i in self.probs.argmax(axis=1)]


@dataclasses.dataclass
class TrainingOutcome:
    """Everything a model version stores after a run.

    ``report`` is the version's ``metrics`` JSON (see ``heldout_report`` and the quantisation
    table); ``thresholds`` its ``auto_fill_thresholds``; ``gate`` says whether it may be
    activated automatically. ``warnings`` lists dropped categories and skipped images.
    """

    tflite_bytes: bytes
    labels: list[str]
    contract: InputContract
    hparams: HParams
    quantization: str
    keras_model_path: Path
    report: dict[str, Any]
    thresholds: dict[str, Any]
    gate: GateResult
    heldout: HeldOut
    dataset_stats: dict[str, Any]
    history: dict[str, list]
    warnings: list[str]
    embedding_backbone: str = ""
    embedding_dim: int = 0
    # The labelled embeddings (``training/references.py``), stored with the version.
    reference_bytes: bytes = b""

    @property
    def accuracy(self) -> float:
        return float(self.report["accuracy"])

    def summary(self) -> dict[str, float]:
        """Headline numbers for logs and benchmarks."""
        auto = self.report.get("auto_fill", {})
        return {"accuracy": self.accuracy, "macro_f1": self.report["macro_f1"],
                "auto_fill_coverage": auto.get("coverage", 0.0),
                "auto_fill_precision": auto.get("precision")}

    def metadata(self) -> dict[str, Any]:
        """JSON-ready metadata for the bundle."""
        return {
            "input_contract": self.contract.to_dict(),
            "architecture": self.hparams.architecture,
            "quantization": self.quantization,
            "hparams": self.hparams.to_dict(),
            "metrics": self.report,
            "auto_fill_thresholds": self.thresholds,
            "embedding_backbone": self.embedding_backbone,
            "dataset": self.dataset_stats,
            "history": self.history,
        }


def heldout_report(*, keys: list[str], labels: np.ndarray, logits: np.ndarray,
                   label_names: list[str], target_precision: float, method: str,
                   temperature: float | None = None) -> tuple[dict, dict, GateResult, HeldOut]:
    """Metrics, calibration, auto-fill thresholds and the gate from held-out logits.

    Args:
        keys: item keys of the held-out rows.
        labels: ``(N,)`` true class indices.
        logits: ``(N, C)`` uncalibrated held-out logits.
        label_names: class names in output order.
        target_precision: precision the auto-fill thresholds must reach.
        method: how the rows were held out (``"stratified_group_kfold"``, ``"validation_split"``).
        temperature: an already fitted temperature (k-fold fits it while choosing the recipe);
            fitted here when ``None``.

    Returns:
        ``(report, thresholds, gate, heldout)``: the version's metrics JSON (without the
        quantisation table), its auto-fill thresholds, the gate's verdict and the calibrated
        held-out predictions.
    """
    labels = np.asarray(labels)
    if temperature is None:
        temperature = fit_temperature(logits, labels)
    raw, probs = softmax(logits), softmax(np.asarray(logits, np.float64) / temperature)
    metrics = evaluate_probs(labels, probs, label_names).to_dict()
    before, after = reliability(raw, labels), reliability(probs, labels)
    thresholds, auto_fill = auto_fill_thresholds(probs, labels, label_names,
                                                 target=target_precision)
    gate = quality_gate(labels, probs.argmax(axis=1), label_names)
    report = {
        "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"],
        "top3_accuracy": metrics["top3_accuracy"], "validation_count": metrics["count"],
        "evaluated": method, "oof": metrics,
        "calibration": {"temperature": temperature, "ece_before": before["ece"],
                        "ece_after": after["ece"], "bins": after["bins"],
                        "bins_before": before["bins"],
                        # What drift monitoring compares a week's mean confidence with.
                        "mean_confidence": float(probs.max(axis=1).mean()) if len(probs)
                        else None},
        "auto_fill": auto_fill, "gate": gate.to_dict(),
        "baseline_accuracy": gate.majority_baseline,
    }
    heldout = HeldOut(keys=list(keys), labels=labels, probs=probs.astype(np.float32),
                      label_names=list(label_names), method=method)
    return report, thresholds, gate, heldout


def filter_classes(labels: list[str], *, min_images: int) -> tuple[list[str], np.ndarray,
                                                                    np.ndarray, list[str]]:
    """Keep categories with at least ``min_images`` items.

    Returns:
        ``(names, label indices of kept rows, kept row indices, warnings)``.

    Raises:
        NotEnoughDataError: fewer than two categories are left.
    """
    from training.exceptions import NotEnoughDataError

    names, counts = np.unique(np.asarray(labels), return_counts=True)
    keep = [str(n) for n, c in zip(names, counts) if c >= min_images]
    warnings = [f"Category {n!r} has only {c} image(s) (minimum {min_images}); it was left out."
                for n, c in zip(names, counts) if c < min_images]
    if len(keep) < 2:
        found = ", ".join(f"{n}: {c}" for n, c in zip(names, counts)) or "none"
        raise NotEnoughDataError(
            f"Training needs at least two categories with {min_images}+ images each; found {found}."
            " Add images, or lower min_images_per_class."
        )
    index = {n: i for i, n in enumerate(keep)}
    rows = np.array([i for i, label in enumerate(labels) if label in index], np.int64)
    return keep, np.array([index[labels[i]] for i in rows], np.int64), rows, warnings
