"""Tiny real TFLite classifiers with hand-set weights, and the images to feed them.

The models follow the production contract: float32 raw 0-255 pixels in (dynamic batch), the graph
rescales, logits out. The colour model's class logit is ``10 * mean(its colour channel) - 5``, so a
solid red/green/blue image is classified as "red"/"green"/"blue" with certainty; it cannot tell
how an image was resized. The stripe model (``make_stripe_tflite``) reacts to fine vertical stripes,
whose strength after downscaling depends on every step of the resize chain (JPEG draft scale,
preview width, filter): parity tests use it so that training and inference resizing differently
changes the confidence. TensorFlow is imported inside the builders (seconds to import), and results
are cached per process.
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


# The stripe model: "striped" - "flat" logit = 2 * (STRIPE_GAIN * e - STRIPE_BIAS), where e is the
# mean absolute difference of horizontally adjacent pixels (0-1 scale). A cleanly antialiased
# stripe photo keeps e < 0.01, an aliased resize leaves 0.02-0.2: a gain of 100 turns that
# difference into confidences tens of points apart.
STRIPE_LABELS = ("flat", "striped")
STRIPE_GAIN = 100.0
STRIPE_BIAS = 1.3


def striped_jpeg(size: tuple[int, int] = (384, 384), *, period: int = 12, noise: float = 0.0,
                 quality: int = 95) -> bytes:
    """A JPEG of vertical dark/light stripes ``period`` pixels wide; ``size`` is ``(w, h)``.

    ``noise`` (grey levels, seeded) makes the file big enough for Appwrite to preview.
    """
    width, height = size
    row = np.where((np.arange(width) // max(1, period // 2)) % 2 == 0, 230.0, 25.0)
    pixels = np.broadcast_to(row[None, :, None], (height, width, 3)).copy()
    if noise:
        pixels += np.random.default_rng(0).normal(0, noise, pixels.shape)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, format="JPEG",
                                                                    quality=quality)
    return buffer.getvalue()


def make_stripe_tflite(size=DEFAULT_SIZE) -> bytes:
    """A float32 ``.tflite`` classifier of ``STRIPE_LABELS`` that reacts to fine stripes.

    Graph: raw 0-255 -> Rescaling -> Conv2D(1x2, [+1,-1] and [-1,+1] over the channel mean,
    ReLU: together |horizontal difference|) -> GAP -> Dense(2) logits.
    """
    return _stripe_model(tuple(size))


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


@cache
def _stripe_model(size: tuple[int, int]) -> bytes:
    import keras

    tf = _import_tf()
    height, width = size
    inputs = keras.Input(shape=(height, width, 3), dtype="float32", name="pixels")
    x = keras.layers.Rescaling(1.0 / 255.0)(inputs)
    edges = keras.layers.Conv2D(2, (1, 2), use_bias=False, activation="relu")
    x = keras.layers.GlobalAveragePooling2D()(edges(x))
    dense = keras.layers.Dense(2, name="logits")
    model = keras.Model(inputs, dense(x))
    kernel = np.zeros((1, 2, 3, 2), dtype=np.float32)
    kernel[0, 0, :, 0], kernel[0, 1, :, 0] = 1 / 3, -1 / 3  # relu(left - right)
    kernel[0, 0, :, 1], kernel[0, 1, :, 1] = -1 / 3, 1 / 3  # relu(right - left)
    edges.set_weights([kernel])
    gains = np.array([[-STRIPE_GAIN, STRIPE_GAIN]] * 2, dtype=np.float32)
    dense.set_weights([gains, np.array([STRIPE_BIAS, -STRIPE_BIAS], dtype=np.float32)])
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


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
