"""Export every quantisation, measure accuracy and speed through LiteRT, keep the best trade.

"Which quantisation?" is answered per model by measurement, not by habit: each form is exported,
run by the production inference class on the same labelled images as the Keras model, and
timed; the default ("auto") keeps the fastest form whose accuracy is within
``MAX_ACCURACY_LOSS`` of Keras'. The whole table goes into the version's report.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from classifier.contract import InputContract

# float16 is not a candidate for "auto": on CPU its weights are expanded to float32 when the
# model loads, so it runs exactly like float32 and only the file is smaller. It stays available
# when asked for by name.
CANDIDATES = ("float32", "dynamic", "int8")
# One point of accuracy: what a shop would not notice, and what int8's 2-4x speed-up is worth.
MAX_ACCURACY_LOSS = 0.01
# Timing: images per timed pass (after the accuracy pass has warmed the interpreter up), and
# the serving batch size (classifier.runtime.INVOKE_BATCH).
TIMING_IMAGES = 32
TIMING_BATCH = 16


@dataclasses.dataclass
class QuantizationChoice:
    """The chosen form's bytes and the report's ``quantization`` table."""

    name: str
    tflite_bytes: bytes
    table: dict[str, Any]


def export_quantized(model: Any, *, requested: str, pixels: np.ndarray, labels: np.ndarray,
                     label_names: Sequence[str], contract: InputContract,
                     representative: np.ndarray, num_threads: int = 2) -> QuantizationChoice:
    """Export ``requested`` (or, for ``"auto"``, every candidate) and pick one.

    Args:
        model: the Keras model to export (logits output, or ``{"logits", "embedding"}``).
        requested: ``"auto"`` or one of ``CANDIDATES``.
        pixels: ``(N, h, w, 3)`` uint8 labelled images the forms are compared on.
        labels: ``(N,)`` their true class indices.
        label_names: class names in output order.
        contract: the model's input contract.
        representative: uint8 training images for int8 calibration.
        num_threads: LiteRT threads when timing (the serving setting).

    Returns:
        The chosen form. Accuracy here is on images the final model was trained on, so it
        measures what exporting loses (Keras vs TFLite), not generalisation.
    """
    from training.export import export_tflite_forms

    keras_probs = keras_predict(model, pixels)
    keras_accuracy = float((keras_probs.argmax(1) == labels).mean()) if len(labels) else 0.0
    names = CANDIDATES if requested == "auto" else (requested,)
    rows: dict[str, dict] = {}
    exported = export_tflite_forms(model, names, representative=representative)
    for name in names:
        rows[name] = _measure(exported[name], pixels, labels, keras_probs, label_names,
                              contract, num_threads)
        rows[name]["keras_accuracy"] = keras_accuracy
    chosen = choose(rows) if requested == "auto" else requested
    table = {"chosen": chosen, "requested": requested, "evaluated_on": int(len(labels)),
             "max_accuracy_loss": MAX_ACCURACY_LOSS, "candidates": rows}
    return QuantizationChoice(name=chosen, tflite_bytes=exported[chosen], table=table)


def choose(rows: dict[str, dict]) -> str:
    """The fastest form whose accuracy is at most ``MAX_ACCURACY_LOSS`` below Keras'."""
    eligible = [name for name, row in rows.items()
                if row["keras_accuracy"] - row["accuracy"] <= MAX_ACCURACY_LOSS + 1e-9]
    pool = eligible or ["float32"]
    return min(pool, key=lambda name: rows[name]["ms_per_image"])


def keras_predict(model: Any, pixels: np.ndarray, batch: int = 32) -> np.ndarray:
    """Softmax probabilities of a Keras logits model (or its ``"logits"`` output)."""
    from training.head import softmax

    out = []
    for start in range(0, len(pixels), batch):
        result = model(np.asarray(pixels[start:start + batch], np.float32), training=False)
        logits = result["logits"] if isinstance(result, dict) else result
        out.append(np.asarray(logits))
    if not out:
        return np.zeros((0, 1), np.float32)
    return softmax(np.concatenate(out)).astype(np.float32)


def _measure(tflite_bytes: bytes, pixels: np.ndarray, labels: np.ndarray,
             keras_probs: np.ndarray, label_names: Sequence[str], contract: InputContract,
             num_threads: int) -> dict:
    from classifier.inference import LiteRTClassifier

    clf = LiteRTClassifier(tflite_bytes, labels=list(label_names), contract=contract,
                           num_threads=num_threads, max_batch=TIMING_BATCH)
    probs = clf.predict_proba(pixels)
    timed = pixels[:TIMING_IMAGES]
    started = time.perf_counter()
    clf.predict_proba(timed)
    elapsed = time.perf_counter() - started
    n = max(1, len(timed))
    top1 = probs.argmax(1) if len(probs) else np.zeros(0, np.int64)
    return {"accuracy": float((top1 == labels).mean()) if len(labels) else 0.0,
            "agreement": float((top1 == keras_probs.argmax(1)).mean()) if len(labels) else 1.0,
            "ms_per_image": round(1000 * elapsed / n, 3), "size_bytes": len(tflite_bytes)}
