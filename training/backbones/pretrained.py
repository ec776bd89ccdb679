"""Pretrained EfficientNet-Lite Keras models: converted weights loaded into backbone and heads.

``efficientnet_lite_weights`` finds and converts the weights file; this module builds the
models around it. A converted file holds a whole ImageNet classifier's weights, so it is loaded
into a classifier wrapped around the backbone, which keeps them at whatever input size it has.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from training.backbones import efficientnet_lite as arch
from training.backbones.efficientnet_lite_weights import (
    IMAGENET,
    efficientnet_lite_weights_file,
    user_file_fix,
)
from training.backbones.torch_checkpoint import file_sha256
from training.exceptions import WeightsUnavailableError

# Characters of a Keras loading error kept in ours (Keras lists all ~100 layers it could not fill).
MAX_ERROR_DETAIL = 300


def load_efficientnet_lite_backbone(weights_file: Path | None, *,
                                    variant: str = "efficientnet_lite0",
                                    image_size: tuple[int, int] | None = None,
                                    drop_connect_rate: float = arch.DROP_CONNECT_RATE) -> Any:
    """A ``"backbone"`` model with the weights of a converted file (any input size).

    The file holds a whole classifier's weights (ImageNet head included), so it is loaded into
    a classifier wrapped around the new backbone; the backbone keeps them, the wrapper is dropped.

    Args:
        weights_file: from ``efficientnet_lite_weights_file``; ``None`` keeps random weights.
        variant: the variant the file belongs to.
        image_size: ``(height, width)``; defaults to the variant's resolution.
        drop_connect_rate: stochastic depth while fine-tuning.

    Returns:
        The backbone: float32 0..255 pixels -> ``(N, ceil(h/32), ceil(w/32), 1280)``.

    Raises:
        WeightsUnavailableError: the file does not load into this variant.
    """
    spec = arch.efficientnet_lite_spec(variant)
    backbone = arch.build_efficientnet_lite_backbone(
        spec, image_size or (spec.resolution, spec.resolution),
        drop_connect_rate=drop_connect_rate)
    if weights_file is not None:
        _load_weights(arch.build_efficientnet_lite_classifier(spec, backbone=backbone),
                      Path(weights_file), spec)
    return backbone


def _load_weights(classifier: Any, weights_file: Path, spec: arch.EfficientNetLiteSpec) -> None:
    try:
        with warnings.catch_warnings():
            # A file of another model makes Keras warn once per layer before it raises; the
            # error below says it once.
            warnings.filterwarnings("ignore", "Skipping nested container", UserWarning)
            classifier.load_weights(weights_file)
    except Exception as exc:  # Keras/h5py raise ValueError, OSError, KeyError... on a bad file
        # Keras lists every layer it could not fill; its first two lines say what is wrong.
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = " ".join(lines[:2])[:MAX_ERROR_DETAIL]
        raise WeightsUnavailableError(
            f"{weights_file.name} does not load into {spec.name} ({type(exc).__name__}: "
            f"{detail}).",
            path=weights_file, sha256=file_sha256(weights_file),
            fix="If it is a cached conversion, delete it (the next run converts again). "
                + user_file_fix(spec)) from None


def pretrained_efficientnet_lite_feature_extractor(
        *, cache_dir: str | Path, weights: str | Path | None = IMAGENET,
        variant: str = "efficientnet_lite0", image_size: tuple[int, int] | None = None) -> Any:
    """Pixels -> pooled 1280 features with pretrained weights: what the embedding cache runs.

    Args:
        cache_dir: folder for converted weights (e.g. ``<CATALOG_VAR_DIR>/weights``).
        weights: see ``efficientnet_lite_weights_file``.
        variant: ``efficientnet_lite0`` unless a ``.pth`` of another variant is passed.
        image_size: ``(height, width)``; defaults to the variant's resolution (224 for lite0).

    Returns:
        A ``keras.Model`` float32 0..255 ``(N, h, w, 3)`` -> ``(N, 1280)`` with a nested
        ``"backbone"``.

    Raises:
        WeightsUnavailableError: as ``efficientnet_lite_weights_file``.
    """
    weights_file = efficientnet_lite_weights_file(weights, cache_dir=cache_dir, variant=variant)
    backbone = load_efficientnet_lite_backbone(weights_file, variant=variant,
                                               image_size=image_size)
    return arch.build_efficientnet_lite_feature_extractor(
        arch.efficientnet_lite_spec(variant), backbone=backbone)


def pretrained_efficientnet_lite_classifier(
        *, cache_dir: str | Path, weights: str | Path | None = IMAGENET,
        variant: str = "efficientnet_lite0", image_size: tuple[int, int] | None = None) -> Any:
    """The full ImageNet classifier (1000 logits) with pretrained weights, for parity checks.

    Args and Raises: as ``pretrained_efficientnet_lite_feature_extractor``.

    Returns:
        A ``keras.Model`` float32 0..255 ``(N, h, w, 3)`` -> ``(N, 1000)`` logits.
    """
    spec = arch.efficientnet_lite_spec(variant)
    weights_file = efficientnet_lite_weights_file(weights, cache_dir=cache_dir, variant=variant)
    backbone = arch.build_efficientnet_lite_backbone(
        spec, image_size or (spec.resolution, spec.resolution))
    classifier = arch.build_efficientnet_lite_classifier(spec, backbone=backbone)
    if weights_file is not None:
        _load_weights(classifier, Path(weights_file), spec)
    return classifier
