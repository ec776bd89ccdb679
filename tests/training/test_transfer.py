"""The pretrained default end to end: EfficientNet-Lite0 (offline ImageNet weights), cached
embeddings, k-fold head, calibration, thresholds, near-duplicate rule, two-output export.

Real weights, tiny inputs (64 px) and a 60-image colour catalog keep it to seconds per run.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from classifier.inference import LiteRTClassifier
from classifier.preprocessing import decode_image
from tests.training.conftest import write_dataset
from training.dataset import image_folder_items
from training.hparams import HParams
from training.pipeline import run_training

pytest.importorskip("tensorflow")

SIZE = (64, 64)


def hparams(**overrides) -> HParams:
    return HParams(**{"image_size": SIZE, "seed": 3, "quantization": "float32", **overrides})


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory, lite0_weights_cache):
    root = tmp_path_factory.mktemp("var")
    shutil.copytree(lite0_weights_cache, root / "weights")  # converted once per test session
    return root


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data") / "images", per_class=20)


@pytest.fixture(scope="module")
def trained(data_root, cache_root, tmp_path_factory):
    logs: list[str] = []
    outcome = run_training(image_folder_items(data_root), hparams(),
                           workdir=tmp_path_factory.mktemp("run"), cache_root=cache_root,
                           log=logs.append)
    return outcome, logs


def test_default_is_the_pretrained_backbone_on_embeddings():
    defaults = HParams()
    assert (defaults.architecture, defaults.weights, defaults.image_size) == (
        "efficientnet_lite0", "imagenet", (224, 224))
    assert defaults.on_embeddings and defaults.quantization == "auto"


def test_every_image_is_predicted_out_of_fold_and_reported(trained):
    outcome, logs = trained
    report = outcome.report
    assert report["evaluated"] == "stratified_group_kfold"
    assert 2 <= report["evaluation"]["folds"] <= 5 and report["evaluation"]["count"] == 60
    assert report["oof"]["count"] == 60 and len(outcome.heldout.keys) == 60
    assert report["accuracy"] >= 0.9  # three far-apart colours: ImageNet features separate them
    assert outcome.gate.passed and report["gate"]["passed"]
    assert len(report["calibration"]["bins"]) == 10
    assert report["auto_fill"]["target_precision"] == 0.95
    assert outcome.embedding_backbone.startswith("efficientnet_lite0:579344248a93e230@64x64")
    assert outcome.embedding_dim == 1280
    json.dumps(outcome.metadata())
    assert any("60 computed, 0 from the cache" in line for line in logs)


def test_exported_model_gives_calibrated_logits_and_the_backbone_embedding(trained, data_root,
                                                                           cache_root):
    import keras

    from training.features import build_feature_extractor

    outcome, _ = trained
    items = image_folder_items(data_root)[::7]
    batch = np.stack([decode_image(item.load(), size=SIZE) for item in items])
    clf = LiteRTClassifier(outcome.tflite_bytes, labels=outcome.labels,
                           contract=outcome.contract)
    probs, embeddings = clf.predict(batch)
    model = keras.models.load_model(outcome.keras_model_path, compile=False)
    keras_out = model(batch.astype(np.float32), training=False)
    np.testing.assert_allclose(probs, keras.ops.softmax(keras_out["logits"]).numpy(),
                               atol=1e-4)
    extractor = build_feature_extractor(hparams(), weights_dir=cache_root / "weights")
    np.testing.assert_allclose(embeddings, extractor(batch), rtol=1e-3, atol=1e-3)
    assert [outcome.labels[i] for i in probs.argmax(1)] == [item.label for item in items]


def test_retraining_reuses_cached_embeddings_and_gives_the_same_model(trained, data_root,
                                                                      cache_root, tmp_path):
    first, _ = trained
    logs: list[str] = []
    again = run_training(image_folder_items(data_root), hparams(), workdir=tmp_path,
                         cache_root=cache_root, log=logs.append)
    assert any("0 computed, 60 from the cache" in line for line in logs)
    assert again.thresholds == first.thresholds
    np.testing.assert_allclose(again.heldout.probs, first.heldout.probs, atol=1e-6)


def test_a_new_image_decodes_only_itself(trained, data_root, cache_root, tmp_path):
    extra = data_root.parent / "more"
    shutil.copytree(data_root, extra)
    from PIL import Image

    Image.new("RGB", (40, 40), (200, 30, 30)).save(extra / "red" / "new.jpg")
    logs: list[str] = []
    run_training(image_folder_items(extra), hparams(), workdir=tmp_path, cache_root=cache_root,
                 log=logs.append)
    assert any("1 computed, 60 from the cache" in line for line in logs)


def test_embeddings_stored_with_products_are_used_without_reading_any_image(
        trained, data_root, cache_root, tmp_path):
    """A retrain from the embeddings classification stored: no image is read or decoded
    (the export check's sample is already in the pixel cache from the first run)."""
    import dataclasses

    from training.features import build_feature_extractor

    first, _ = trained
    extractor = build_feature_extractor(hparams(), weights_dir=cache_root / "weights")
    items = image_folder_items(data_root)
    vectors = extractor(np.stack([decode_image(item.load(), size=SIZE) for item in items]))

    def never_read():
        raise AssertionError("the image was read")

    import hashlib

    given = [dataclasses.replace(item, load=never_read, embedding=vector,
                                 embedding_backbone=extractor.backbone_id,
                                 digest=hashlib.sha256(item.load()).hexdigest())
             for item, vector in zip(items, vectors)]
    logs: list[str] = []
    outcome = run_training(given, hparams(), workdir=tmp_path, cache_root=cache_root,
                           log=logs.append)
    assert any("0 computed, 0 from the cache, 60 stored with their products; read no image."
               in line for line in logs), logs
    assert outcome.labels == first.labels and outcome.gate.passed


def test_near_duplicate_rule_is_measured_and_references_stored(trained):
    from classifier.references import load_reference_set

    outcome, _ = trained
    rule = outcome.thresholds["near_duplicate"]
    assert {"enabled", "cosine", "answered", "correct", "precision"} <= rule.keys()
    references = load_reference_set(outcome.reference_bytes, dim=1280)
    assert references.embeddings.shape == (60, 1280)
    np.testing.assert_allclose(np.linalg.norm(references.embeddings, axis=1), 1.0, atol=1e-2)


@pytest.mark.slow
def test_auto_quantization_measures_each_form_and_keeps_the_fastest_within_a_point(
        data_root, cache_root, tmp_path):
    outcome = run_training(image_folder_items(data_root), hparams(quantization="auto"),
                           workdir=tmp_path, cache_root=cache_root)
    table = outcome.report["quantization"]
    assert set(table["candidates"]) == {"float32", "dynamic", "int8"}
    chosen = table["candidates"][table["chosen"]]
    assert chosen["keras_accuracy"] - chosen["accuracy"] <= 0.01
    eligible = [row for row in table["candidates"].values()
                if row["keras_accuracy"] - row["accuracy"] <= 0.01]
    assert chosen["ms_per_image"] == min(row["ms_per_image"] for row in eligible)
    assert outcome.quantization == table["chosen"]
    clf = LiteRTClassifier(outcome.tflite_bytes, labels=outcome.labels,
                           contract=outcome.contract)
    assert clf.embedding_dim == 1280


def test_collapsed_random_backbone_fails_the_gate(data_root, tmp_path):
    """Random init trains end to end; one epoch of a tiny learning rate learns nothing."""
    outcome = run_training(image_folder_items(data_root),
                           hparams(architecture="cnn", weights=None, epochs=1,
                                   learning_rate=1e-7, image_size=(32, 32)),
                           workdir=tmp_path)
    assert not outcome.gate.passed and outcome.report["gate"]["reasons"]
