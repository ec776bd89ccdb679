"""TFLite export (float32/float16/dynamic/int8) with a dynamic batch dimension; model bundles."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from classifier import bundle
from training.exceptions import TrainingError

# Calibration images for full-int8: ~100 covers the activation ranges of a small classifier;
# more only slows the export (each one is a full forward pass in the converter).
REPRESENTATIVE_SAMPLES = 100
# Re-exported: the bundle layout is defined once, in classifier.bundle.
BUNDLE_MODEL = bundle.BUNDLE_MODEL
BUNDLE_LABELS = bundle.BUNDLE_LABELS
BUNDLE_METADATA = bundle.BUNDLE_METADATA


class ExportError(TrainingError):
    """The model could not be converted to TFLite in the asked form."""


def export_tflite(keras_model_or_path: Any, *, quantization: str = "float32",
                  representative: np.ndarray | None = None) -> bytes:
    """Convert a Keras logits model to a TFLite flatbuffer with a dynamic batch dimension.

    The model is exported as a SavedModel endpoint whose input signature is
    ``[None, h, w, 3] float32``, so the interpreter can be resized to any batch size. A model
    whose outputs are a dict (``{"logits", "embedding"}``) keeps those names as the TFLite
    signature's output names.

    Quantization:
        ``float32``: no quantisation. ``float16``: float16 weights (half size, float compute).
        ``dynamic``: int8 weights, float activations. ``int8``: int8 weights and activations,
        calibrated on ``representative``; input and output stay float32 (quantise/dequantise
        ops are in the graph) so ``LiteRTClassifier`` feeds it exactly like a float model.

    Args:
        keras_model_or_path: a ``keras.Model`` or the path of a saved ``.keras`` file.
        quantization: one of ``float32``, ``float16``, ``dynamic``, ``int8``.
        representative: ``(N, h, w, 3)`` uint8 training images, required for ``int8``.

    Returns:
        The ``.tflite`` bytes.

    Raises:
        ExportError: unknown quantization, missing calibration images, or a static batch dim.
    """
    return export_tflite_forms(keras_model_or_path, (quantization,),
                               representative=representative)[quantization]


def export_tflite_forms(keras_model_or_path: Any, quantizations: Sequence[str], *,
                        representative: np.ndarray | None = None) -> dict[str, bytes]:
    """Several quantisations of one model, tracing its SavedModel once (the slow part).

    Returns:
        ``{quantization: tflite bytes}``; see :func:`export_tflite` for the forms.
    """
    import tempfile

    import keras
    import tensorflow as tf

    model = _as_model(keras_model_or_path)
    h, w = model.input_shape[1:3]
    # Through a SavedModel: converting a Keras 3 model's concrete function directly leaves its
    # weights as uninitialised resource variables (READ_VARIABLE ops that output NaN).
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name="serve", fn=lambda pixels: model(pixels, training=False),
        input_signature=[tf.TensorSpec([None, h, w, 3], tf.float32, name="pixels")],
    )
    forms: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="tflite-export-") as saved_model_dir:
        archive.write_out(saved_model_dir, verbose=False)
        for quantization in quantizations:
            converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
            _configure(converter, quantization, representative)
            forms[quantization] = converter.convert()
            signature = input_shape_signature(forms[quantization])
            if signature[0] != -1:
                raise ExportError(f"Exported model has a fixed batch size {signature}; "
                                  "expected -1.")
    return forms


def _as_model(keras_model_or_path: Any) -> Any:
    if isinstance(keras_model_or_path, (str, Path)):
        import keras

        return keras.models.load_model(keras_model_or_path, compile=False)
    return keras_model_or_path


def _configure(converter: Any, quantization: str, representative: np.ndarray | None) -> None:
    import tensorflow as tf

    if quantization == "float32":
        return
    if quantization not in ("float16", "dynamic", "int8"):
        raise ExportError(f"Unknown quantization {quantization!r}: use float32, float16, dynamic "
                          "or int8.")
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "int8":
        if representative is None or len(representative) == 0:
            raise ExportError("int8 export needs representative training images to calibrate; "
                              "pass some, or choose float16/dynamic quantization.")
        samples = np.asarray(representative[:REPRESENTATIVE_SAMPLES])

        def calibration():
            for image in samples:
                yield [image[None].astype(np.float32)]

        converter.representative_dataset = calibration
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]


def input_shape_signature(tflite_bytes: bytes) -> list[int]:
    """The input's shape signature (``-1`` marks a dynamic dimension)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite_bytes)
    return [int(d) for d in interpreter.get_input_details()[0]["shape_signature"]]


def representative_images(images: np.ndarray, indices: np.ndarray, *, seed: int,
                          count: int = REPRESENTATIVE_SAMPLES) -> np.ndarray:
    """A seeded sample of training images (uint8) for int8 calibration."""
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(indices, size=min(count, len(indices)), replace=False))
    return np.asarray(images[chosen])


def reexport(model_keras_path: str | Path, quantization: str, *,
             representative: np.ndarray | None = None) -> bytes:
    """Export a kept ``model.keras`` again (e.g. another quantisation) without retraining."""
    path = Path(model_keras_path)
    if not path.is_file():
        raise ExportError(f"Kept model {path} does not exist: retrain, or point at the run's "
                          "model.keras.")
    return export_tflite(path, quantization=quantization, representative=representative)


def write_bundle(dir_or_zip: str | Path, tflite_bytes: bytes, labels: Sequence[str],
                 metadata: dict[str, Any]) -> Path:
    """Write ``model.tflite``, ``labels.txt`` (one per line, output order) and ``metadata.json``.

    A path ending in ``.zip`` gets a zip archive; anything else a folder. ``metadata`` should hold
    the input contract, architecture, hparams and metrics; ``labels`` and ``created`` are added.
    The writing lives in ``classifier.bundle`` (TensorFlow-free, so the web process exports too).
    """
    try:
        return bundle.write_bundle(dir_or_zip, tflite_bytes, labels, metadata)
    except bundle.BundleError as exc:
        raise ExportError(exc.message) from exc
