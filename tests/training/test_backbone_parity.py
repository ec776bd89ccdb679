"""EfficientNet-Lite0 in Keras (and its TFLite export) equals the PyTorch reference's outputs.

The reference outputs are ``tests/fixtures/efficientnet_lite0_reference.npz``, written by
``tools/reference/efficientnet_lite0_reference.py`` (torch 2.13.0, efficientnet-lite-pytorch
0.1.0, in a scratch virtualenv). Logits are of magnitude <= 8 and pooled features <= 6.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.backbones.efficientnet_lite import (
    MIN_INPUT_SIDE,
    build_efficientnet_lite_backbone,
    efficientnet_lite_spec,
)
from training.backbones.pretrained import (
    pretrained_efficientnet_lite_classifier,
    pretrained_efficientnet_lite_feature_extractor,
)

pytest.importorskip("tensorflow")

REFERENCE = Path(__file__).resolve().parents[1] / "fixtures" / "efficientnet_lite0_reference.npz"
# Keras vs PyTorch float32 on this machine: 5.5e-6 on logits, 3.8e-6 on features (different
# convolution kernels sum in different orders). 1e-4 leaves room for other CPUs' kernels while
# a wrong layout, padding or epsilon moves outputs by 1e-2 or more.
KERAS_TOLERANCE = 1e-4
# TFLite (XNNPACK) float32 vs the reference: measured 1.8e-5 on the pooled features.
TFLITE_TOLERANCE = 2e-4


def decode_png(data: np.ndarray) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data.tobytes())).convert("RGB"))


def run(model, images: np.ndarray) -> np.ndarray:
    """One eager forward pass in inference mode (predict() would first trace a graph)."""
    return np.asarray(model(images.astype(np.float32), training=False))


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(REFERENCE) as fixture:
        stored = {key: fixture[key] for key in fixture.files}
    stored["images"] = np.stack([decode_png(stored[f"image_{i}_png"]) for i in range(3)])
    stored["odd_image"] = decode_png(stored["odd_image_png"])[None]
    return stored


@pytest.fixture(scope="module")
def feature_extractor(lite0_weights_cache):
    return pretrained_efficientnet_lite_feature_extractor(cache_dir=lite0_weights_cache)


def test_fixture_was_made_from_the_pinned_weights(reference):
    from training.backbones.efficientnet_lite_weights import PRETRAINED_SOURCES

    assert str(reference["source_sha256"]) == PRETRAINED_SOURCES["efficientnet_lite0"].sha256
    assert reference["images"].shape == (3, 224, 224, 3)
    assert reference["images"].dtype == np.uint8


def test_imagenet_logits_match_the_reference(reference, lite0_weights_cache):
    classifier = pretrained_efficientnet_lite_classifier(cache_dir=lite0_weights_cache)

    logits = run(classifier, reference["images"])

    assert np.abs(logits - reference["logits"]).max() <= KERAS_TOLERANCE
    np.testing.assert_array_equal(np.argsort(-logits, axis=1)[:, :5],
                                  np.argsort(-reference["logits"], axis=1)[:, :5])


def test_pooled_features_match_the_reference(reference, feature_extractor):
    features = run(feature_extractor, reference["images"])

    assert features.shape == (3, 1280)
    assert np.abs(features - reference["features"]).max() <= KERAS_TOLERANCE


def test_odd_input_size_pads_like_the_reference(reference, lite0_weights_cache):
    odd = reference["odd_image"]
    extractor = pretrained_efficientnet_lite_feature_extractor(
        cache_dir=lite0_weights_cache, image_size=odd.shape[1:3])

    features = run(extractor, odd)

    assert np.abs(features - reference["odd_features"]).max() <= KERAS_TOLERANCE


@pytest.mark.slow
def test_tflite_float32_export_gives_the_reference_features(reference, feature_extractor):
    from ai_edge_litert.interpreter import Interpreter

    from training.export import export_tflite

    interpreter = Interpreter(model_content=export_tflite(feature_extractor), num_threads=2)
    (source,), (target,) = interpreter.get_input_details(), interpreter.get_output_details()
    interpreter.resize_tensor_input(source["index"], reference["images"].shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(source["index"], reference["images"].astype(np.float32))
    interpreter.invoke()

    features = interpreter.get_tensor(target["index"])
    assert np.abs(features - reference["features"]).max() <= TFLITE_TOLERANCE


def test_pixels_are_scaled_once_inside_the_backbone(feature_extractor):
    backbone = feature_extractor.get_layer("backbone")
    scaling = [layer for layer in backbone.layers
               if type(layer).__name__ in ("Rescaling", "Normalization")]
    outer = [layer for layer in feature_extractor.layers
             if type(layer).__name__ in ("Rescaling", "Normalization")]

    assert [layer.name for layer in scaling] == ["normalize"] and outer == []
    # (x - 127) / 128: 0 -> -0.9921875, 255 -> 1.0 exactly
    np.testing.assert_array_equal(scaling[0](np.array([0.0, 127.0, 255.0])),
                                  [-127 / 128, 0.0, 1.0])


def test_blocks_are_named_in_order_for_fine_tuning(feature_extractor):
    spec = efficientnet_lite_spec("efficientnet_lite0")
    names = [layer.name for layer in feature_extractor.get_layer("backbone").layers]

    assert spec.block_names()[0] == "block1a" and spec.block_names()[-1] == "block7a"
    assert len(spec.block_names()) == 16
    firsts = [min(i for i, name in enumerate(names) if name.startswith(f"{block}_"))
              for block in spec.block_names()]
    assert firsts == sorted(firsts)


def test_smallest_input_builds_and_a_smaller_one_is_refused():
    spec = efficientnet_lite_spec("efficientnet_lite0")

    backbone = build_efficientnet_lite_backbone(spec, (MIN_INPUT_SIDE, MIN_INPUT_SIDE + 8))

    assert backbone.output_shape == (None, 1, 2, 1280)
    with pytest.raises(ValueError, match="at least 32x32"):
        build_efficientnet_lite_backbone(spec, (MIN_INPUT_SIDE - 1, 224))
