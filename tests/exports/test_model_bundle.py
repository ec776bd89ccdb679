"""Model bundles: admin download and command, read back by bare LiteRT and the Appwrite Function."""

from __future__ import annotations

import importlib.util
import io
import json
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from appwrite.input_file import InputFile
from django.contrib.admin.models import LogEntry
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command

from catalog.models import ExportKind, ExportRecord
from classifier.inference import LiteRTClassifier
from classifier.models import ModelVersion
from tests.exports.conftest import sha256
from tests.support.appwrite_fixtures import appwrite_storage_client
from tests.support.model_versions import stored_model_version
from tests.support.tiny_model import (
    DEFAULT_LABELS,
    STRIPE_LABELS,
    make_stripe_tflite,
    make_tiny_tflite,
    make_tiny_tflite_with_embedding,
    solid_color_jpeg,
    striped_jpeg,
    tiny_contract,
)

pytest.importorskip("tensorflow")  # make_tiny_tflite converts a Keras model

REPO_ROOT = Path(__file__).resolve().parents[2]
FUNCTION_MAIN = REPO_ROOT / "examples" / "appwrite_function" / "main.py"
FIXTURE_IMAGES = REPO_ROOT / "tests" / "fixtures" / "images"
MODELVERSION_CHANGELIST = "/admin/classifier/modelversion/"
# Solid colours, off-primary mixes and real fixture photos: top-1 must agree on all of them.
PARITY_IMAGES = [solid_color_jpeg(rgb) for rgb in [(230, 20, 20), (20, 200, 40), (30, 40, 220),
                                                   (180, 140, 60), (90, 160, 200)]] + [
    (FIXTURE_IMAGES / name).read_bytes() for name in ("red.jpg", "green.jpg", "blue.jpg",
                                                     "exif-rotated.jpg", "alpha.png")]


@pytest.fixture(params=["logits", "logits+embedding"])
def model_version(db, request) -> ModelVersion:
    """The exported bundle's model: scores only (older versions), or scores and the embedding
    (what training exports now); every consumer of the bundle must handle both."""
    tflite = make_tiny_tflite() if request.param == "logits" else make_tiny_tflite_with_embedding()
    version = ModelVersion(number=7, name="tiny", labels=list(DEFAULT_LABELS), architecture="cnn",
                           input_contract=tiny_contract().to_dict(), checksum=sha256(tflite),
                           size_bytes=len(tflite), metrics={"accuracy": 1.0}, is_active=True)
    version.file.save("v7.tflite", ContentFile(tflite), save=False)
    version.save()
    return version


def bare_litert_top1(bundle_zip: Path, image: bytes) -> str:
    """Classify with nothing but ai_edge_litert, NumPy, Pillow and json (no project code)."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter
    from PIL import Image, ImageOps

    with zipfile.ZipFile(bundle_zip) as archive:
        model = archive.read("model.tflite")
        labels = archive.read("labels.txt").decode().splitlines()
        meta = json.loads(archive.read("metadata.json"))
    height, width = meta["input_size"]
    img = Image.open(io.BytesIO(image))
    source_height, source_width = meta["source_size"]
    img.draft("RGB", (source_width, source_height))  # what the site's decoder does for JPEGs
    img = ImageOps.exif_transpose(img)
    if img.mode in ("RGBA", "LA", "P"):
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    img = img.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
    assert meta["value_range"] == [0.0, 255.0] and meta["input_dtype"] == "float32"
    tensor = np.asarray(img, dtype=np.float32)[None]  # raw 0-255, as the metadata says
    interpreter = Interpreter(model_content=model)
    input_index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(input_index, [1, height, width, 3])
    interpreter.allocate_tensors()
    interpreter.set_tensor(input_index, tensor)
    interpreter.invoke()
    # The class scores are the output with one column per label (a second output, when there
    # is one, is the image embedding).
    scores = next(d for d in interpreter.get_output_details() if d["shape"][-1] == len(labels))
    logits = interpreter.get_tensor(scores["index"])[0]
    return labels[int(logits.argmax())]


def download(client, versions) -> object:
    return client.post(MODELVERSION_CHANGELIST, {"action": "download_model",
                                                 "_selected_action": [v.pk for v in versions]})


@pytest.mark.django_db
def test_admin_download_gives_zip_with_model_labels_in_output_order_and_metadata(
        client, exporter, model_version):
    client.force_login(exporter)
    response = download(client, [model_version])
    assert response["Content-Type"] == "application/zip"
    assert 'filename="model-v7.zip"' in response["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert sorted(archive.namelist()) == ["labels.txt", "metadata.json", "model.tflite"]
        tflite = archive.read("model.tflite")
        assert archive.read("labels.txt").decode() == "red\ngreen\nblue\n"
        meta = json.loads(archive.read("metadata.json"))
    assert tflite == model_version.file.open("rb").read()
    assert meta["input_size"] == [32, 32] and meta["input_dtype"] == "float32"
    assert meta["source_size"] == [48, 48] and meta["format"] == "catalog-classifier-bundle/2"
    assert meta["value_range"] == [0.0, 255.0] and meta["architecture"] == "cnn"
    assert meta["metrics"] == {"accuracy": 1.0} and meta["model_version"] == 7
    assert meta["created"] == model_version.created_at.isoformat()
    assert meta["checksum"] == sha256(tflite) and meta["labels"] == ["red", "green", "blue"]


@pytest.mark.django_db
def test_download_is_logged_in_the_model_versions_history(client, exporter, model_version):
    client.force_login(exporter)
    download(client, [model_version])
    entry = LogEntry.objects.get()
    assert entry.get_edited_object() == model_version and entry.user == exporter
    assert entry.change_message == "Exported model bundle of v7"
    assert ExportRecord.objects.get().kind == ExportKind.MODEL_BUNDLE


@pytest.mark.django_db
def test_staff_without_model_view_permission_cannot_download(client, viewer, model_version):
    client.force_login(viewer)
    response = download(client, [model_version])
    assert response.get("Content-Type") != "application/zip"
    assert ExportRecord.objects.count() == 0 and LogEntry.objects.count() == 0


@pytest.mark.django_db
def test_selecting_two_versions_asks_for_one(client, exporter, model_version):
    other = ModelVersion.objects.create(number=8, labels=["a"], architecture="cnn",
                                        input_contract=tiny_contract().to_dict(), file="x.tflite")
    client.force_login(exporter)
    response = download(client, [model_version, other])
    assert response.status_code == 302 and ExportRecord.objects.count() == 0


@pytest.mark.django_db
def test_command_exports_active_or_numbered_version_and_refuses_unknown(tmp_path, model_version):
    call_command("export_model", "--active", "--output", str(tmp_path / "a.zip"),
                 stdout=io.StringIO())
    call_command("export_model", "7", "--output", str(tmp_path / "b.zip"), stdout=io.StringIO())
    for name in ("a.zip", "b.zip"):
        with zipfile.ZipFile(tmp_path / name) as archive:
            assert archive.read("labels.txt").decode().splitlines() == list(DEFAULT_LABELS)
    assert ExportRecord.objects.filter(source="command").count() == 2
    with pytest.raises(CommandError, match="No such model version"):
        call_command("export_model", "99", "--output", str(tmp_path / "c.zip"))


@pytest.mark.django_db
def test_damaged_model_file_is_refused_instead_of_exported(tmp_path, model_version):
    model_version.file.storage.delete(model_version.file.name)
    model_version.file.storage.save(model_version.file.name, ContentFile(b"not the model"))
    with pytest.raises(CommandError, match="does not match its stored SHA-256"):
        call_command("export_model", "7", "--output", str(tmp_path / "bad.zip"))
    assert not (tmp_path / "bad.zip").exists()


@pytest.mark.django_db
def test_bare_litert_on_the_bundle_agrees_with_the_project_classifier(tmp_path, model_version):
    call_command("export_model", "7", "--output", str(tmp_path / "m.zip"), stdout=io.StringIO())
    project = LiteRTClassifier(make_tiny_tflite(), labels=DEFAULT_LABELS, contract=tiny_contract())
    expected = [p.label for p in project.predict_bytes(PARITY_IMAGES)]
    assert [bare_litert_top1(tmp_path / "m.zip", image) for image in PARITY_IMAGES] == expected
    assert expected[:3] == ["red", "green", "blue"]  # the comparison is not trivially constant


def load_function_module():
    spec = importlib.util.spec_from_file_location("appwrite_function_main", FUNCTION_MAIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeContext:
    """What Appwrite's Python runtime passes: ``req`` (body_json, headers), ``res``, log/error."""

    def __init__(self, body: dict, headers: dict):
        self.req = SimpleNamespace(body_json=body, headers=headers)
        self.res = SimpleNamespace(json=lambda data, status=200: (status, data))
        self.logs: list[str] = []
        self.errors: list[str] = []

    def log(self, message):
        self.logs.append(message)

    def error(self, message):
        self.errors.append(message)


@pytest.mark.django_db
def test_appwrite_function_classifies_an_uploaded_file_with_the_exported_bundle(
        tmp_path, model_version, appwrite_bucket, monkeypatch):
    bundle = tmp_path / "model.zip"
    call_command("export_model", "--active", "--output", str(bundle), stdout=io.StringIO())
    monkeypatch.setenv("MODEL_BUNDLE", str(bundle))
    monkeypatch.setenv("APPWRITE_FUNCTION_API_ENDPOINT", appwrite_bucket.endpoint)
    monkeypatch.setenv("APPWRITE_FUNCTION_PROJECT_ID", appwrite_bucket.project_id)
    storage = appwrite_storage_client(appwrite_bucket)
    photo = InputFile.from_bytes(solid_color_jpeg((30, 190, 40)), "leaf.jpg")
    uploaded = storage.create_file(appwrite_bucket.bucket_id, "leaf-1", photo)
    event = {"$id": uploaded.id, "bucketId": appwrite_bucket.bucket_id, "name": "leaf.jpg"}
    context = FakeContext(event, {"x-appwrite-key": appwrite_bucket.api_key,
                                  "x-appwrite-trigger": "event"})
    status, result = load_function_module().main(context)
    assert status == 200 and context.errors == []
    assert result["label"] == "green" and result["top_k"][0]["label"] == "green"
    assert result["confidence"] > 0.9 and result["model_version"] == 7
    # Blue (40) is a little above red (30) in this photo, so it comes second.
    assert [item["label"] for item in result["top_k"]] == ["green", "blue", "red"]
    assert "leaf-1: green" in context.logs[0]


@pytest.mark.django_db
def test_appwrite_function_reports_a_missing_file_without_crashing(
        tmp_path, model_version, appwrite_bucket, monkeypatch):
    bundle = tmp_path / "model.zip"
    call_command("export_model", "--active", "--output", str(bundle), stdout=io.StringIO())
    monkeypatch.setenv("MODEL_BUNDLE", str(bundle))
    monkeypatch.setenv("APPWRITE_FUNCTION_API_ENDPOINT", appwrite_bucket.endpoint)
    monkeypatch.setenv("APPWRITE_FUNCTION_PROJECT_ID", appwrite_bucket.project_id)
    context = FakeContext({"$id": "gone", "bucketId": appwrite_bucket.bucket_id},
                          {"x-appwrite-key": appwrite_bucket.api_key})
    status, result = load_function_module().main(context)
    assert status == 500 and result["ok"] is False and "gone" in context.errors[0]


# Stripes whose strength after downscaling depends on the JPEG draft scale (384 px at 1/8 vs 1/4).
STRIPED = [striped_jpeg((384, 384), period=12), striped_jpeg((384, 288), period=10),
           striped_jpeg((640, 480), period=20), solid_color_jpeg((90, 160, 200))]


@pytest.mark.django_db
def test_appwrite_function_sees_the_sites_pixels_on_a_resize_sensitive_model(tmp_path):
    tflite = make_stripe_tflite()
    stored_model_version(tflite, labels=STRIPE_LABELS, number=9, contract=tiny_contract(),
                         architecture="stripes", activate=False)
    call_command("export_model", "9", "--output", str(tmp_path / "s.zip"), stdout=io.StringIO())
    function = load_function_module()
    bundle = function.load_bundle(tmp_path / "s.zip")
    site = LiteRTClassifier(tflite, labels=STRIPE_LABELS, contract=tiny_contract())

    def striped(results) -> float:
        return next(r["confidence"] for r in results if r["label"] == "striped")

    expected = [dict(site.predict_bytes([image])[0].top_k)["striped"] for image in STRIPED]
    assert [striped(function.classify(image, bundle)) for image in STRIPED] == pytest.approx(
        expected, abs=1e-5)
    # The model does see resizing: the function's old 2x draft answers very differently.
    bundle.source_height, bundle.source_width = 64, 64
    drifted = [striped(function.classify(image, bundle)) for image in STRIPED[:3]]
    assert max(abs(a - b) for a, b in zip(drifted, expected)) > 0.3
