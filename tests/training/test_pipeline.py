"""End-to-end training on tiny generated data: export parity, quantisation, determinism, errors."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from classifier.inference import LiteRTClassifier
from classifier.preprocessing import decode_image
from tests.training.conftest import CLASS_COLOURS, write_dataset, zip_folder
from training.dataset import image_folder_items
from training.exceptions import NotEnoughDataError, WeightsUnavailableError
from training.export import (
    BUNDLE_LABELS,
    BUNDLE_METADATA,
    BUNDLE_MODEL,
    input_shape_signature,
    reexport,
    write_bundle,
)
from training.hparams import HParams
from training.pipeline import run_training

pytest.importorskip("tensorflow")

SIZE = (32, 32)


def tiny_hparams(**overrides) -> HParams:
    base = {"architecture": "cnn", "image_size": SIZE, "epochs": 3, "batch_size": 16,
            "weights": None, "seed": 3, "min_images_per_class": 5, "quantization": "float32"}
    return HParams(**{**base, **overrides})


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("data") / "images")


@pytest.fixture(scope="module")
def trained(data_root, tmp_path_factory):
    events: list[dict] = []
    outcome = run_training(image_folder_items(data_root), tiny_hparams(),
                           workdir=tmp_path_factory.mktemp("run"), progress=events.append)
    return outcome, events


def validation_batch(data_root: Path, outcome) -> tuple[np.ndarray, np.ndarray]:
    """The validation images decoded again from their files, and their true class indices."""
    items = image_folder_items(data_root)
    hp = outcome.hparams
    from training.dataset import stratified_split

    labels = np.array([outcome.labels.index(i.label) for i in items])
    split = stratified_split(labels, validation_split=hp.validation_split, seed=hp.seed)
    batch = np.stack([decode_image(items[i].load(), size=SIZE) for i in split.validation])
    return batch, labels[split.validation]


def test_exported_tflite_top1_matches_kept_keras_model_on_validation_batch(trained, data_root):
    import keras

    outcome, _ = trained
    batch, y_true = validation_batch(data_root, outcome)
    model = keras.models.load_model(outcome.keras_model_path, compile=False)
    keras_logits = model(batch.astype(np.float32), training=False).numpy()
    clf = LiteRTClassifier(outcome.tflite_bytes, labels=outcome.labels, contract=outcome.contract)
    probs = clf.predict_proba(batch)
    np.testing.assert_array_equal(probs.argmax(1), keras_logits.argmax(1))
    np.testing.assert_allclose(probs, keras.ops.softmax(keras_logits).numpy(), atol=1e-4)
    # Separable colours: a 3-epoch CNN must get them right, or the parity above proves little.
    assert (probs.argmax(1) == y_true).mean() >= 0.9


def test_outcome_reports_keras_and_tflite_metrics_side_by_side(trained):
    outcome, _ = trained
    report = outcome.report
    keras_m, tflite_m = report["keras_validation"], report["tflite_validation"]
    assert keras_m["accuracy"] == tflite_m["accuracy"] == report["accuracy"]
    assert keras_m["confusion"] == tflite_m["confusion"] == report["oof"]["confusion"]
    assert report["evaluated"] == "validation_split" and report["validation_count"] == 12
    assert report["quantization"]["chosen"] == "float32"
    assert outcome.labels == sorted(CLASS_COLOURS)
    assert outcome.contract.size == SIZE and outcome.contract.output == "logits"
    counts = outcome.dataset_stats["counts"]
    assert counts["red"] == {"train": 16, "validation": 4, "test": 0}
    assert len(outcome.history["val_loss"]) == outcome.hparams.epochs
    json.dumps(outcome.metadata())  # everything a ModelVersion stores is JSON-ready


def test_temperature_is_folded_into_the_exported_logits(trained, data_root):
    """The exported model's softmax is the calibrated probability its thresholds were set on."""
    outcome, _ = trained
    batch, _ = validation_batch(data_root, outcome)
    clf = LiteRTClassifier(outcome.tflite_bytes, labels=outcome.labels, contract=outcome.contract)
    np.testing.assert_allclose(clf.predict_proba(batch), outcome.heldout.probs, atol=1e-4)
    assert outcome.thresholds["target_precision"] == 0.95
    assert outcome.report["calibration"]["temperature"] > 0


def test_progress_reports_every_batch_and_epoch(trained):
    _, events = trained
    epochs = [e for e in events if e["event"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3]
    assert all(e["epochs"] == 3 and e["batches"] == 3 and e["phase"] == "train" for e in events)
    assert "val_loss" in epochs[-1]["logs"]
    assert [e["batch"] for e in events[:3]] == [1, 2, 3]


def test_exported_model_has_a_dynamic_batch_dimension(trained):
    outcome, _ = trained
    assert input_shape_signature(outcome.tflite_bytes) == [-1, *SIZE, 3]


@pytest.mark.parametrize("quantization", ["float16", "dynamic", "int8"])
def test_quantised_reexports_run_with_litert_classifier(trained, data_root, quantization):
    outcome, _ = trained
    batch, y_true = validation_batch(data_root, outcome)
    tflite = reexport(outcome.keras_model_path, quantization, representative=batch)
    clf = LiteRTClassifier(tflite, labels=outcome.labels, contract=outcome.contract)
    probs = clf.predict_proba(batch)
    assert probs.shape == (len(batch), 3)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-3)
    assert (probs.argmax(1) == y_true).mean() >= 0.9
    assert len(tflite) < len(outcome.tflite_bytes)  # outcome: float32


def test_bundle_holds_model_labels_in_output_order_and_metadata(trained, tmp_path):
    outcome, _ = trained
    folder = write_bundle(tmp_path / "bundle", outcome.tflite_bytes, outcome.labels,
                          outcome.metadata())
    assert (folder / BUNDLE_LABELS).read_text().splitlines() == outcome.labels
    meta = json.loads((folder / BUNDLE_METADATA).read_text())
    assert meta["input_contract"]["height"] == 32 and meta["architecture"] == "cnn"
    archive = write_bundle(tmp_path / "bundle.zip", outcome.tflite_bytes, outcome.labels, {})
    with zipfile.ZipFile(archive) as zf:
        assert zf.read(BUNDLE_MODEL) == outcome.tflite_bytes


def test_same_seed_gives_identical_metrics_and_history(trained, data_root, tmp_path):
    first, _ = trained
    again = run_training(image_folder_items(data_root), tiny_hparams(), workdir=tmp_path)
    assert again.history == first.history
    assert again.report["keras_validation"] == first.report["keras_validation"]
    assert again.thresholds == first.thresholds


def test_zip_input_trains_like_the_folder(data_root, tmp_path):
    archive = zip_folder(data_root, tmp_path / "images.zip", wrap="images")
    outcome = run_training(image_folder_items(archive), tiny_hparams(epochs=1), workdir=tmp_path)
    assert outcome.labels == sorted(CLASS_COLOURS)
    assert outcome.dataset_stats["counts"]["blue"]["validation"] == 4


def test_one_category_raises_not_enough_data(tmp_path):
    root = write_dataset(tmp_path / "d", per_class=6, colours={"red": (220, 40, 40)})
    with pytest.raises(NotEnoughDataError):
        run_training(image_folder_items(root), tiny_hparams(), workdir=tmp_path / "run")


def test_mobilenet_with_a_weights_file_trains_on_embeddings_and_tries_fine_tuning(data_root,
                                                                                  tmp_path):
    """Local weights path: the frozen-embedding path, then a fine-tune phase judged against it
    on the same held-out fold; the backbone rescales once (raw pixels go in)."""
    import keras

    weights = tmp_path / "mobilenet_v3_small_no_top.weights.h5"
    keras.applications.MobileNetV3Small(input_shape=(*SIZE, 3), include_top=False,
                                        weights=None).save_weights(weights)
    hp = tiny_hparams(architecture="mobilenet_v3_small", weights=str(weights), epochs=1,
                      fine_tune_epochs=1, fine_tune_layers=10, augment=False)
    outcome = run_training(image_folder_items(data_root), hp, workdir=tmp_path / "run")
    assert outcome.history["phase"][-1] == "fine_tune" and "head" in outcome.history["phase"]
    tuned = outcome.report["fine_tune"]
    assert tuned["heldout_count"] > 0 and {"frozen_accuracy", "tuned_accuracy"} <= tuned.keys()
    model = keras.models.load_model(outcome.keras_model_path, compile=False)
    rescalings = [layer for layer in model.get_layer("backbone").layers
                  if isinstance(layer, keras.layers.Rescaling)]
    assert len(rescalings) == 1
    assert outcome.embedding_dim == 576 and outcome.embedding_backbone.startswith(
        "mobilenet_v3_small:")


def test_a_discarded_fine_tune_leaves_the_exported_backbone_as_it_was_evaluated(data_root,
                                                                                tmp_path):
    """The frozen candidate shares the backbone the fine-tune trains in place: when the tuned
    model loses (here it diverges at a huge learning rate), the saved model must carry the
    original backbone weights, not the tuned ones under a head fitted to frozen embeddings."""
    import keras

    weights = tmp_path / "mobilenet_v3_small_no_top.weights.h5"
    original = keras.applications.MobileNetV3Small(input_shape=(*SIZE, 3), include_top=False,
                                                   weights=None)
    original.save_weights(weights)
    hp = tiny_hparams(architecture="mobilenet_v3_small", weights=str(weights), epochs=1,
                      fine_tune_epochs=2, fine_tune_layers=40, fine_tune_lr_factor=1e6,
                      augment=False)
    outcome = run_training(image_folder_items(data_root), hp, workdir=tmp_path / "run")
    assert outcome.report["fine_tune"]["kept"] is False
    saved = keras.models.load_model(outcome.keras_model_path, compile=False)
    backbone = saved.get_layer("backbone").get_weights()
    assert len(backbone) == len(original.get_weights())
    for mine, theirs in zip(backbone, original.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    assert "+ft:" not in outcome.embedding_backbone


def test_imagenet_weights_offline_raise_weights_unavailable(tmp_path, monkeypatch):
    from training.model import build_model

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # empty download cache
    with pytest.raises(WeightsUnavailableError, match="--weights"):
        build_model(tiny_hparams(architecture="mobilenet_v3_small", weights="imagenet"), 3)


def test_missing_weights_file_raises_weights_unavailable(tmp_path):
    from training.model import build_model

    with pytest.raises(WeightsUnavailableError, match="does not exist"):
        build_model(tiny_hparams(architecture="mobilenet_v3_small",
                                 weights=str(tmp_path / "nope.h5")), 3)


def test_importing_the_pipeline_loads_neither_django_nor_tensorflow():
    code = ("import sys, training.pipeline, training.dataset, training.export, training.report;"
            "heavy = [m for m in ('django', 'tensorflow', 'keras') if m in sys.modules];"
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "[]"
