"""Tiny real TFLite classifiers with hand-set weights, and solid-colour JPEGs to feed them.

The models follow the production contract: float32 raw 0-255 pixels in (dynamic batch), the graph
rescales, logits out. Each class's logit is ``10 * mean(its colour channel) - 5``, so a solid
red/green/blue image is classified as "red"/"green"/"blue" with certainty. TensorFlow is imported
inside the builders (seconds to import), and results are cached per process.
"""

from __future__ import annotations

import io
import os
from functools import cache

import numpy as np
from PIL import Image

from classifier.preprocessing import InputContract

DEFAULT_LABELS = ("red", "green", "blue")
DEFAULT_SIZE = (32, 32)  # (height, width): tiny so conversion and inference take milliseconds.

# Hand-set weights: after Rescaling(1/255) and average pooling each channel is in [0, 1]; a
# 10x gain and -5 bias give logits of +5 for a saturated channel and -5 for an empty one.
CHANNEL_GAIN = 10.0
CHANNEL_BIAS = -5.0


def tiny_contract(size: tuple[int, int] = DEFAULT_SIZE, *, dtype: str = "float32") -> InputContract:
    """The input contract matching :func:`make_tiny_tflite` (or the int8 variant)."""
    return InputContract(height=size[0], width=size[1], dtype=dtype)


def solid_color_jpeg(rgb: tuple[int, int, int], size: tuple[int, int] = (48, 48)) -> bytes:
    """A JPEG of one colour; ``size`` is ``(width, height)`` like Pillow's."""
    buffer = io.BytesIO()
    Image.new("RGB", size, tuple(rgb)).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def make_tiny_tflite(labels=DEFAULT_LABELS, size=DEFAULT_SIZE) -> bytes:
    """A float32 ``.tflite`` classifier: raw 0-255 input -> Rescaling -> GAP -> Dense logits.

    Args:
        labels: Class names; class ``i`` looks at colour channel ``i % 3``.
        size: Input ``(height, width)``.

    Returns:
        The ``.tflite`` bytes (input ``(None, height, width, 3)`` float32, output logits).
    """
    return _float_model(tuple(labels), tuple(size))


def make_tiny_tflite_with_embedding(labels=DEFAULT_LABELS, size=DEFAULT_SIZE) -> bytes:
    """The same classifier exported by the training pipeline's own exporter with two outputs:
    ``logits`` and ``embedding`` (the image's mean colour in 0..1, a 3-d "embedding")."""
    return _two_output_model(tuple(labels), tuple(size))


def make_tiny_tflite_int8(labels=DEFAULT_LABELS, size=DEFAULT_SIZE) -> bytes:
    """The same classifier fully quantised: int8 input (real 0-255), int8 logits.

    Calibrated on solid colours and noise so the logit range (-5..+5) is covered.
    """
    return _int8_model(tuple(labels), tuple(size))


@cache
def _float_model(labels: tuple[str, ...], size: tuple[int, int]) -> bytes:
    tf = _import_tf()
    converter = tf.lite.TFLiteConverter.from_keras_model(_build_keras_model(labels, size))
    return converter.convert()


@cache
def _int8_model(labels: tuple[str, ...], size: tuple[int, int]) -> bytes:
    tf = _import_tf()
    height, width = size

    def representative_data():
        rng = np.random.default_rng(0)
        for index in range(32):
            if index % 2:
                image = np.broadcast_to(rng.integers(0, 256, 3), (1, height, width, 3))
            else:
                image = rng.integers(0, 256, (1, height, width, 3))
            yield [np.ascontiguousarray(image, dtype=np.float32)]
        for channel in range(3):  # Saturated primaries give the extreme logits.
            image = np.zeros((1, height, width, 3), dtype=np.float32)
            image[..., channel] = 255.0
            yield [image]

    converter = tf.lite.TFLiteConverter.from_keras_model(_build_keras_model(labels, size))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_data
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


@cache
def _two_output_model(labels: tuple[str, ...], size: tuple[int, int]) -> bytes:
    import keras

    from training.export import export_tflite

    base = _build_keras_model(labels, size)
    pooled = base.get_layer("logits").input
    two = keras.Model(base.input, {"logits": base.output, "embedding": pooled})
    return export_tflite(two)


def _build_keras_model(labels: tuple[str, ...], size: tuple[int, int]):
    import keras

    height, width = size
    inputs = keras.Input(shape=(height, width, 3), dtype="float32", name="pixels")
    x = keras.layers.Rescaling(1.0 / 255.0)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    dense = keras.layers.Dense(len(labels), name="logits")
    model = keras.Model(inputs, dense(x))
    kernel = np.zeros((3, len(labels)), dtype=np.float32)
    for index in range(len(labels)):
        kernel[index % 3, index] = CHANNEL_GAIN
    dense.set_weights([kernel, np.full(len(labels), CHANNEL_BIAS, dtype=np.float32)])
    return model


def _import_tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # Keep test output readable.
    import tensorflow as tf

    return tf
