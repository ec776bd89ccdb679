"""train_classifier: versions with matching exports, clear errors, catalog source, activation."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from classifier.contract import InputContract
from classifier.inference import LiteRTClassifier
from classifier.models import ModelVersion
from classifier.preprocessing import decode_image
from tests.training.conftest import IMAGE_SIDE, write_dataset
from tests.training.django_support import TINY, classifier_products, person_products
from training.dataset import image_folder_items, stratified_split
from training.models import TrainingRun, TrainingStatus
from training.services import (
    model_version_reexport,
    training_run_create,
    training_run_execute,
)

pytestmark = pytest.mark.django_db


def train(*args: str) -> str:
    out = io.StringIO()
    call_command("train_classifier", *TINY, *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def stored_bytes(field) -> bytes:
    with field.open("rb") as handle:
        return handle.read()


def validation_batch(root: Path, version: ModelVersion) -> np.ndarray:
    items = image_folder_items(root)
    hp = version.hyperparameters
    labels = np.array([version.labels.index(i.label) for i in items])
    split = stratified_split(labels, validation_split=hp["validation_split"], seed=hp["seed"])
    size = (IMAGE_SIDE, IMAGE_SIDE)
    return np.stack([decode_image(items[i].load(), size=size) for i in split.validation])


@pytest.fixture
def folder(tmp_path, settings) -> Path:
    settings.TRAINING_DATA_ROOTS = [tmp_path]  # runs created here, as the admin and API do
    return write_dataset(tmp_path / "data", per_class=12)


@pytest.mark.slow
def test_command_saves_version_whose_stored_tflite_matches_stored_keras_top1(folder, tmp_path):
    import keras

    output = train("--from-dir", str(folder), "--epochs", "3", "--quantization", "float32")

    version = ModelVersion.objects.get()
    run = TrainingRun.objects.get()
    assert run.status == TrainingStatus.SUCCEEDED and run.model_version == version
    assert version.is_active  # the first model has nothing to beat
    assert f"v{version.number}" in output and "macro-F1" in output
    batch = validation_batch(folder, version)
    keras_path = tmp_path / "model.keras"
    keras_path.write_bytes(stored_bytes(version.keras_file))
    model = keras.models.load_model(keras_path, compile=False)
    keras_top1 = model(batch.astype(np.float32), training=False).numpy().argmax(1)
    clf = LiteRTClassifier(stored_bytes(version.file), labels=version.labels,
                           contract=InputContract.from_dict(version.input_contract))
    np.testing.assert_array_equal(clf.predict_proba(batch).argmax(1), keras_top1)
    assert version.metrics["accuracy"] == version.metrics["tflite_validation"]["accuracy"]
    assert version.auto_fill_thresholds["target_precision"] == 0.95
    assert "Auto-fill" in output
    assert version.accuracy >= 0.9  # separable colours: otherwise the parity above proves little
    assert len(version.history["val_loss"]) == 3


@pytest.mark.slow
def test_tiff_images_are_trained_on_and_skipped_files_are_named_in_the_warnings(folder):
    from PIL import Image

    Image.open(folder / "red" / "000.jpg").save(folder / "red" / "scan.tif", format="TIFF")
    (folder / "red" / "logo.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")

    train("--from-dir", str(folder), "--epochs", "1")

    version = ModelVersion.objects.get()
    counts = version.dataset_stats["counts"]["red"]
    assert sum(counts.values()) == 13  # 12 JPEGs and the TIFF
    assert "Skipped red/logo.svg: a .svg file, not an image type" in version.notes
    assert [s["key"] for s in version.dataset_stats["skipped"]] == ["red/logo.svg"]


@pytest.mark.slow
@pytest.mark.parametrize(("setup", "message"), [
    ("empty_catalog", "No labelled images"),
    ("one_category", "at least two categories"),
    ("missing_folder", "was not found"),
])
def test_bad_input_fails_with_clear_message_and_creates_no_version(setup, message, tmp_path):
    args: list[str] = ["--epochs", "1"]
    if setup == "one_category":
        person_products("red", 6)
    if setup == "missing_folder":
        args += ["--from-dir", str(tmp_path / "nowhere")]

    with pytest.raises(CommandError, match=message):
        train(*args)

    assert not ModelVersion.objects.exists()
    assert not TrainingRun.objects.exclude(status=TrainingStatus.FAILED).exists()


@pytest.mark.slow
def test_catalog_source_trains_only_on_person_labelled_products():
    person_products("red", 6)
    person_products("green", 6)
    classifier_products("green", 4)  # classifier-labelled in a person category
    classifier_products("blue", 6)  # a category only the classifier ever used

    train("--epochs", "1")

    stats = ModelVersion.objects.get().dataset_stats
    assert stats["classes"] == ["green", "red"]
    assert {label: sum(c.values()) for label, c in stats["counts"].items()} == {
        "green": 6, "red": 6}


@pytest.mark.slow
def test_activation_policy_first_activates_a_gate_failure_stays_inactive_activate_forces(folder):
    train("--from-dir", str(folder), "--epochs", "3")
    first = ModelVersion.objects.get()
    # A barely trained model: one epoch at a learning rate too small to learn anything.
    run = training_run_create(options={"architecture": "cnn", "image_size": [IMAGE_SIDE] * 2,
                                       "epochs": 1, "learning_rate": 1e-7, "seed": 3,
                                       "batch_size": 16, "min_images_per_class": 3},
                              source="folder", source_path=str(folder))
    run = training_run_execute(run_id=run.pk)
    worse = run.model_version

    assert worse.accuracy < first.accuracy
    assert not run.activated and "fails the quality gate" in run.log
    assert worse.metrics["gate"]["passed"] is False and worse.metrics["gate"]["reasons"]
    assert ModelVersion.objects.get(is_active=True) == first

    train("--from-dir", str(folder), "--epochs", "3", "--seed", "4", "--activate")
    forced = ModelVersion.objects.order_by("-number").first()
    assert forced.number == 3 and forced.is_active
    assert ModelVersion.objects.filter(is_active=True).count() == 1


@pytest.mark.slow
def test_execute_refuses_a_run_that_is_not_queued(folder):
    run = training_run_create(options={"architecture": "cnn", "epochs": 1},
                              source="folder", source_path=str(folder))
    TrainingRun.objects.filter(pk=run.pk).update(status=TrainingStatus.SUCCEEDED)

    again = training_run_execute(run_id=run.pk)

    assert again.status == TrainingStatus.SUCCEEDED and again.model_version is None
    assert not ModelVersion.objects.exists()


@pytest.mark.slow
def test_reexport_creates_new_version_from_kept_keras_without_training(folder):
    train("--from-dir", str(folder), "--epochs", "2")
    source = ModelVersion.objects.get()
    runs_before = TrainingRun.objects.count()

    copy = model_version_reexport(model_version=source, quantization="float16")

    assert TrainingRun.objects.count() == runs_before
    assert (copy.number, copy.quantization, copy.labels) == (2, "float16", source.labels)
    assert copy.checksum != source.checksum and not copy.is_active
    assert copy.metrics["reexported_from"] == source.number
    batch = validation_batch(folder, source)
    contract = InputContract.from_dict(source.input_contract)
    top1 = [LiteRTClassifier(stored_bytes(v.file), labels=v.labels, contract=contract)
            .predict_proba(batch).argmax(1) for v in (source, copy)]
    np.testing.assert_array_equal(top1[0], top1[1])


def test_bad_options_fail_before_anything_is_queued():
    from training.exceptions import InvalidHParamsError

    with pytest.raises(InvalidHParamsError, match="Unknown architecture"):
        training_run_create(options={"architecture": "resnet9000"})
    with pytest.raises(InvalidHParamsError, match="Unknown hyperparameters"):
        training_run_create(options={"epohcs": 3})
    assert not TrainingRun.objects.exists()


@pytest.mark.slow
def test_from_dir_is_relative_to_where_the_command_runs(folder, monkeypatch):
    monkeypatch.chdir(folder.parent)

    train("--from-dir", folder.name, "--epochs", "1", "--no-activate")

    run = TrainingRun.objects.get()
    assert run.status == TrainingStatus.SUCCEEDED and run.source_path == str(folder.resolve())
