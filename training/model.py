"""Keras model builders: the tutorial CNN baseline and a MobileNetV3-Small transfer model.

Every model takes raw 0..255 float pixels and rescales inside the graph (pixels are scaled once),
and outputs logits; softmax is applied at inference time in NumPy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.exceptions import WeightsUnavailableError
from training.hparams import HParams

BACKBONE_NAME = "backbone"


def build_model(hparams: HParams, num_classes: int) -> Any:
    """Build an uncompiled Keras model for ``hparams.architecture``.

    Args:
        hparams: architecture, image size, dropout and backbone weights.
        num_classes: width of the logits layer.

    Returns:
        A ``keras.Model`` mapping ``(N, h, w, 3)`` float32 0..255 pixels to ``(N, num_classes)``
        logits. For pretrained backbones, the backbone (layer named ``"backbone"``) is frozen.

    Raises:
        WeightsUnavailableError: ImageNet weights were asked for but cannot be loaded.
    """
    if hparams.architecture == "cnn":
        return _tutorial_cnn(hparams, num_classes)
    return _mobilenet_v3_small(hparams, num_classes)


def _tutorial_cnn(hparams: HParams, num_classes: int) -> Any:
    """The seed tutorial's network, kept as the baseline (its Rescaling is the only scaling)."""
    import keras
    from keras import layers

    h, w = hparams.image_size
    return keras.Sequential([
        keras.Input(shape=(h, w, 3), name="pixels"),
        layers.Rescaling(1.0 / 255),
        layers.Conv2D(16, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(32, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(64, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dense(num_classes, name="logits"),
    ], name="tutorial_cnn")


def _mobilenet_v3_small(hparams: HParams, num_classes: int) -> Any:
    """MobileNetV3-Small backbone + GAP/Dropout/Dense head.

    ``include_preprocessing=True`` puts Keras' own Rescaling layer (x/127.5 - 1) at the start of
    the backbone, so raw 0..255 pixels go in and scaling happens once, in the graph.
    """
    import keras
    from keras import layers

    h, w = hparams.image_size
    backbone = load_mobilenet_backbone(keras, (h, w, 3), hparams.weights)
    backbone.trainable = hparams.weights is None
    inputs = keras.Input(shape=(h, w, 3), name="pixels")
    # training=False keeps BatchNorm in inference mode even when the top is unfrozen for
    # fine-tuning; otherwise small batches would wreck the pretrained statistics.
    x = backbone(inputs, training=False if hparams.weights is not None else None)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(hparams.dropout)(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="mobilenet_v3_small_classifier")


def load_mobilenet_backbone(keras: Any, input_shape: tuple[int, int, int],
                            weights: str | None) -> Any:
    """Keras' MobileNetV3-Small without its top, with its own Rescaling (raw 0..255 input)."""
    if weights not in (None, "imagenet") and not Path(weights).is_file():
        raise WeightsUnavailableError(
            f"Weights file {weights} does not exist: pass --weights with the path of a "
            "MobileNetV3-Small no-top .h5 file, or --weights none for random initialisation."
        )
    try:
        model = keras.applications.MobileNetV3Small(
            input_shape=input_shape, include_top=False, weights=weights,
            include_preprocessing=True, pooling=None,
        )
    except Exception as exc:  # Keras raises bare Exception for download failures.
        if weights is None:
            raise
        raise WeightsUnavailableError(
            f"Cannot load {weights} weights for MobileNetV3-Small ({exc}). Offline machines: "
            "download weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5 elsewhere and pass "
            "--weights PATH (or put it in ~/.keras/models/), or use --weights none / "
            "--architecture cnn to train from random weights."
        ) from exc
    model.name = BACKBONE_NAME
    return model


def unfreeze_top(model: Any, num_layers: int) -> int:
    """Make the top ``num_layers`` backbone layers trainable (BatchNorm stays frozen).

    Returns:
        How many layers were unfrozen (0 for models without a backbone, e.g. the tutorial CNN).
    """
    from keras import layers

    try:
        backbone = model.get_layer(BACKBONE_NAME)
    except ValueError:
        return 0
    backbone.trainable = True
    cut = max(0, len(backbone.layers) - num_layers)
    unfrozen = 0
    for i, layer in enumerate(backbone.layers):
        layer.trainable = i >= cut and not isinstance(layer, layers.BatchNormalization)
        unfrozen += int(layer.trainable)
    return unfrozen


def augmentation(seed: int) -> Any:
    """Training-only augmentation, applied in the tf.data pipeline, never exported."""
    import keras
    from keras import layers

    return keras.Sequential([
        layers.RandomFlip("horizontal", seed=seed),
        layers.RandomRotation(0.05, seed=seed + 1),
        layers.RandomZoom(0.1, seed=seed + 2),
        layers.RandomContrast(0.1, seed=seed + 3),
    ], name="augmentation")


def classifier_on_features(extractor: Any, kernel: Any, bias: Any) -> Any:
    """The exported model: the frozen extractor, then a dense layer holding the trained head.

    Args:
        extractor: a functional Keras model, pixels (0..255) to pooled embedding.
        kernel: ``(D, C)`` head kernel acting on raw embeddings (standardisation and
            temperature already folded in, see ``training.head.HeadWeights.folded``).
        bias: ``(C,)`` head bias.

    Returns:
        A ``keras.Model`` with outputs ``{"logits": (N, C), "embedding": (N, D)}``: one invoke
        classifies an image and gives its embedding (similar products, duplicates).
    """
    import keras
    from keras import layers

    embedding = extractor.output
    dense = layers.Dense(kernel.shape[1], name="logits")
    logits = dense(embedding)
    dense.set_weights([kernel, bias])
    return keras.Model(extractor.input, {"logits": logits, "embedding": embedding},
                       name=f"{extractor.name}_classifier")


def fold_temperature(model: Any, temperature: float) -> None:
    """Divide the output layer ``"logits"`` by ``temperature`` in place (calibrated logits)."""
    layer = model.get_layer("logits")
    kernel, bias = layer.get_weights()
    layer.set_weights([kernel / temperature, bias / temperature])
