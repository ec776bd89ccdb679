"""Classification metrics in NumPy, for the Keras model and for its exported TFLite file."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from training.dataset import DatasetCache

TOP_K = 3
# Batch size for evaluation passes: memory is (EVAL_BATCH, h, w, 3) floats, independent of N.
EVAL_BATCH = 64


@dataclasses.dataclass
class Metrics:
    """Accuracy, top-3 accuracy, per-class P/R/F1/support, macro-F1 and the confusion matrix.

    ``confusion[i][j]`` counts images of class ``labels[i]`` predicted as ``labels[j]``.
    """

    labels: list[str]
    count: int
    accuracy: float
    top3_accuracy: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]
    confusion: list[list[int]]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def evaluate_probs(y_true: np.ndarray, probs: np.ndarray, labels: Sequence[str]) -> Metrics:
    """Metrics from true class indices and ``(N, C)`` scores (probabilities or logits).

    Precision of a class never predicted is 0 (as is F1), so macro-F1 punishes a model that
    ignores a category. Macro-F1 averages over classes with support or predictions.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs)
    n, c = len(y_true), len(labels)
    if n == 0:
        return Metrics(list(labels), 0, 0.0, 0.0, 0.0, {}, [[0] * c for _ in range(c)])
    y_pred = probs.argmax(axis=1)
    confusion = np.zeros((c, c), dtype=np.int64)
    np.add.at(confusion, (y_true, y_pred), 1)
    k = min(TOP_K, c)
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    tp = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros(c), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(c), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(c), where=denom > 0)
    seen = (support > 0) | (predicted > 0)
    per_class = {
        name: {"precision": float(precision[i]), "recall": float(recall[i]),
               "f1": float(f1[i]), "support": int(support[i])}
        for i, name in enumerate(labels)
    }
    return Metrics(
        labels=list(labels), count=n, accuracy=float((y_pred == y_true).mean()),
        top3_accuracy=float((top == y_true[:, None]).any(axis=1).mean()),
        macro_f1=float(f1[seen].mean()) if seen.any() else 0.0,
        per_class=per_class, confusion=confusion.tolist(),
    )


def _batches(cache: DatasetCache, indices: np.ndarray, batch_size: int):
    for start in range(0, len(indices), batch_size):
        yield cache.images[np.sort(indices[start:start + batch_size])]


def keras_probs(model: Any, cache: DatasetCache, indices: np.ndarray,
                batch_size: int = EVAL_BATCH) -> np.ndarray:
    """``(N, C)`` softmax probabilities of a Keras logits model on ``cache.images[indices]``."""
    import tensorflow as tf

    indices = np.sort(np.asarray(indices))
    out = [tf.nn.softmax(model(batch.astype(np.float32), training=False)).numpy()
           for batch in _batches(cache, indices, batch_size)]
    return np.concatenate(out) if out else np.zeros((0, len(cache.label_names)), np.float32)


def evaluate_keras(model: Any, cache: DatasetCache, indices: np.ndarray,
                   batch_size: int = EVAL_BATCH) -> Metrics:
    """Metrics of a Keras model (logits output) on the given cache rows."""
    indices = np.sort(np.asarray(indices))
    probs = keras_probs(model, cache, indices, batch_size)
    return evaluate_probs(cache.labels[indices], probs, cache.label_names)


def tflite_probs(tflite_bytes: bytes, cache: DatasetCache, indices: np.ndarray,
                 labels: Sequence[str], contract: Any, batch_size: int = EVAL_BATCH) -> np.ndarray:
    """Probabilities from the exported file through the production inference class."""
    from classifier.inference import LiteRTClassifier

    clf = LiteRTClassifier(tflite_bytes, labels=list(labels), contract=contract)
    indices = np.sort(np.asarray(indices))
    out = [clf.predict_proba(batch) for batch in _batches(cache, indices, batch_size)]
    return np.concatenate(out) if out else np.zeros((0, len(labels)), np.float32)


def evaluate_tflite(tflite_bytes: bytes, cache: DatasetCache, indices: np.ndarray,
                    labels: Sequence[str], contract: Any, batch_size: int = EVAL_BATCH) -> Metrics:
    """Metrics of the exported TFLite model, run by ``classifier.inference.LiteRTClassifier``.

    Measured on the same rows as the Keras metrics so quantisation loss shows side by side.
    """
    indices = np.sort(np.asarray(indices))
    probs = tflite_probs(tflite_bytes, cache, indices, labels, contract, batch_size)
    return evaluate_probs(cache.labels[indices], probs, labels)
