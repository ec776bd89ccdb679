"""Admin: the Retrain flow through a real training qcluster, run and version pages, charts."""

from __future__ import annotations

import numpy as np
import pytest
from django.contrib.auth.models import Permission
from django.core.files.base import ContentFile
from django.urls import reverse

from classifier.models import ModelVersion
from tests.support.tiny_model import make_tiny_tflite, tiny_contract
from tests.training.conftest import write_dataset
from training.evaluate import evaluate_probs
from training.models import TrainingRun, TrainingStatus

LABELS = ["red", "green", "blue"]


def stored_version(**overrides) -> ModelVersion:
    """A version with a real tiny .tflite and metrics computed by training.evaluate."""
    y_true = np.array([0, 0, 1, 1, 2, 2])
    probs = np.eye(3)[[0, 1, 1, 1, 2, 0]]
    metrics = evaluate_probs(y_true, probs, LABELS).to_dict()
    overrides.setdefault("metrics", {"accuracy": metrics["accuracy"],
                                     "keras_validation": metrics, "tflite_validation": metrics,
                                     "best_epoch": 2})
    overrides.setdefault("history", {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7],
                                     "accuracy": [0.5, 0.8], "val_accuracy": [0.4, 0.7]})
    version = ModelVersion(
        number=overrides.pop("number", 1), labels=LABELS,
        input_contract=tiny_contract().to_dict(), architecture="cnn", checksum="0" * 64,
        **overrides)
    version.file.save("tiny.tflite", ContentFile(make_tiny_tflite()), save=False)
    version.save()
    return version


@pytest.mark.django_db
def test_model_version_page_opens_with_the_evaluation_and_folds_the_raw_json(admin_client):
    version = stored_version()

    page = admin_client.get(reverse("admin:classifier_modelversion_change", args=[version.pk]))

    html = page.content.decode()
    assert page.status_code == 200
    sections = ["report-evaluation", "report-categories", "report-confusion", "report-training",
                "Raw data (JSON)"]
    positions = [html.index(section) for section in sections]
    assert positions == sorted(positions), "the evaluation first, then training, then raw data"
    assert "TFLite (float32)" in html and "66.67%" in html  # 4 of 6 right
    # Confusion matrix, loss, accuracy: inline SVG, no image URLs.
    assert html.count('role="img"') == 3
    assert "charts/" not in html and ".png" not in html
    assert "Not measured for this version: auto-fill precision and coverage" in html
    # The stored JSON is still there, folded away (Django renders "collapse" as <details>).
    assert "<details" in html and "&quot;best_epoch&quot;: 2" in html


@pytest.mark.django_db
def test_calibrated_version_page_states_auto_fill_and_draws_its_charts(admin_client):
    from tests.support.model_metrics import calibrated_history, calibrated_metrics

    version = stored_version(metrics=calibrated_metrics(LABELS), history=calibrated_history())

    html = admin_client.get(reverse("admin:classifier_modelversion_change",
                                    args=[version.pk])).content.decode()

    assert "At confidence ≥ 0.83, 71% of products are filled automatically, 96% of them right" \
        in html
    assert html.count('role="img"') == 5  # + reliability diagram and coverage-precision curve
    assert "Passed the quality gate" in html and "dynamic (chosen)" in html
    assert "Not measured for this version" not in html
    listed = admin_client.get(reverse("admin:classifier_modelversion_changelist")).content
    assert "96% right, 71% filled" in listed.decode()


@pytest.mark.django_db
def test_activate_action_rolls_back_to_an_older_version(admin_client):
    old = stored_version(number=1)
    stored_version(number=2, is_active=True)

    admin_client.post(reverse("admin:classifier_modelversion_changelist"),
                      {"action": "activate_version", "_selected_action": [old.pk]})

    assert ModelVersion.objects.get(is_active=True) == old


@pytest.mark.django_db
def test_retrain_button_and_form_need_the_add_trainingrun_permission(client, django_user_model):
    user = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_modelversion"))
    client.force_login(user)
    changelist = reverse("admin:classifier_modelversion_changelist")
    retrain = reverse("admin:training_trainingrun_retrain")

    assert retrain not in client.get(changelist).content.decode()
    assert client.get(retrain).status_code == 403

    user.user_permissions.add(Permission.objects.get(codename="add_trainingrun"))
    assert retrain in client.get(changelist).content.decode()
    form = client.get(retrain)
    assert form.status_code == 200
    # The folder layout in the help text shows literally instead of vanishing as HTML tags.
    assert "&lt;folder&gt;/&lt;category&gt;/&lt;image&gt;" in form.content.decode()


@pytest.mark.django_db
def test_running_training_run_page_shows_progress_eta_log_and_refreshes(admin_client):
    run = TrainingRun.objects.create(
        status=TrainingStatus.RUNNING, progress=0.45, log="Epoch 2/5 (train): loss=0.5",
        progress_detail={"epoch": 3, "epochs": 5, "batch": 4, "batches": 10,
                         "eta_seconds": 75})

    page = admin_client.get(reverse("admin:training_trainingrun_change", args=[run.pk]))

    html = page.content.decode()
    assert "epoch 3/5, batch 4/10, ETA 1m 15s" in html
    assert '<progress value="0.45"' in html and "Epoch 2/5 (train)" in html
    assert 'http-equiv="refresh"' in html


@pytest.mark.django_db
def test_retrain_form_rejects_folder_source_without_path_and_queues_nothing(admin_client):
    page = admin_client.post(reverse("admin:training_trainingrun_retrain"), {
        "source": "folder", "source_path": "", "architecture": "cnn", "weights": "none",
        "epochs": 2, "image_size": 32, "activation_policy": "if_better"})

    assert page.status_code == 200 and "Give the folder or zip" in page.content.decode()
    assert not TrainingRun.objects.exists()


@pytest.mark.django_db
def test_retrain_form_refuses_a_folder_outside_the_training_data_roots(admin_client, tmp_path,
                                                                        settings):
    settings.TRAINING_DATA_ROOTS = [tmp_path / "allowed"]
    page = admin_client.post(reverse("admin:training_trainingrun_retrain"), {
        "source": "folder", "source_path": "/etc", "architecture": "cnn", "weights": "none",
        "epochs": 2, "image_size": 32, "activation_policy": "if_better"})

    assert page.status_code == 200
    assert "must be inside a training data folder" in page.content.decode()
    assert not TrainingRun.objects.exists()


@pytest.mark.slow
def test_admin_retrain_runs_on_training_qcluster_and_links_new_version(qcluster, admin_client,
                                                                       tmp_path, settings):
    from django_q.brokers import get_broker

    settings.TRAINING_DATA_ROOTS = [tmp_path]
    get_broker("training").purge_queue()
    folder = write_dataset(tmp_path / "data", per_class=10)
    cluster = qcluster(cluster_name="training")

    response = admin_client.post(reverse("admin:training_trainingrun_retrain"), {
        "source": "folder", "source_path": str(folder), "architecture": "cnn",
        "weights": "none", "epochs": 2, "image_size": 32, "activation_policy": "if_better"})

    run = TrainingRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:training_trainingrun_change", args=[run.pk])
    cluster.wait_for(lambda: TrainingRun.objects.get(pk=run.pk).status in (
        TrainingStatus.SUCCEEDED, TrainingStatus.FAILED), "the training run to finish")
    run.refresh_from_db()
    assert run.status == TrainingStatus.SUCCEEDED, run.error
    assert run.model_version is not None and run.model_version.is_active and run.activated
    assert run.progress == 1.0 and "Epoch 2/2" in run.log
    page = admin_client.get(reverse("admin:training_trainingrun_change", args=[run.pk]))
    assert reverse("admin:classifier_modelversion_change", args=[run.model_version.pk]) in (
        page.content.decode())

    admin_client.post(reverse("admin:classifier_modelversion_changelist"),
                      {"action": "reexport_float16", "_selected_action": [run.model_version.pk]})
    cluster.wait_for(lambda: ModelVersion.objects.filter(quantization="float16").exists(),
                     "the float16 re-export")
    assert TrainingRun.objects.count() == 1


@pytest.mark.django_db
def test_retrain_form_defaults_to_the_offline_pretrained_backbone(admin_client):
    html = admin_client.get(reverse("admin:training_trainingrun_retrain")).content.decode()
    assert 'value="efficientnet_lite0" selected' in html
    assert 'value="imagenet" selected' in html and 'value="auto" selected' in html
    assert 'name="image_size" value="224"' in html


@pytest.fixture
def damaged_weights_package(monkeypatch, settings, tmp_path):
    """The installed EfficientNet-Lite0 .pth no longer has the released file's checksum."""
    import dataclasses

    from training.backbones import efficientnet_lite_weights as weights

    settings.VAR_DIR = tmp_path  # no converted cache yet
    source = weights.PRETRAINED_SOURCES["efficientnet_lite0"]
    monkeypatch.setitem(weights.PRETRAINED_SOURCES, "efficientnet_lite0",
                        dataclasses.replace(source, sha256="0" * 64))
    return weights.pretrained_source_path()


@pytest.mark.django_db
def test_unusable_weights_are_reported_on_the_form_with_file_checksum_and_fix(
        admin_client, damaged_weights_package):
    page = admin_client.post(reverse("admin:training_trainingrun_retrain"), {
        "source": "catalog", "architecture": "efficientnet_lite0", "weights": "imagenet",
        "epochs": 15, "image_size": 224, "activation_policy": "if_better"})

    html = page.content.decode()
    assert page.status_code == 200 and not TrainingRun.objects.exists()
    assert str(damaged_weights_package) in html and "SHA-256" in html
    assert "Random initialisation" in html and "--weights" not in html


@pytest.mark.django_db
def test_unusable_weights_are_a_400_naming_the_file_for_api_clients(admin_client,
                                                                     damaged_weights_package):
    response = admin_client.post("/api/v1/training-runs/", {"options": {}},
                                 content_type="application/json")

    body = response.json()
    assert response.status_code == 400 and body["code"] == "weights_unavailable"
    assert body["file"] == str(damaged_weights_package) and len(body["sha256"]) == 64
    assert '"weights": null' in body["fix"] and not TrainingRun.objects.exists()


@pytest.mark.django_db
def test_unusable_weights_stop_the_command_with_the_command_line_fix(damaged_weights_package):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="--weights PATH") as caught:
        call_command("train_classifier")
    assert str(damaged_weights_package) in str(caught.value)
