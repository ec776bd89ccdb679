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
    version = ModelVersion(
        number=overrides.pop("number", 1), labels=LABELS,
        input_contract=tiny_contract().to_dict(), architecture="cnn", checksum="0" * 64,
        metrics={"accuracy": metrics["accuracy"], "keras_validation": metrics,
                 "tflite_validation": metrics, "best_epoch": 2},
        history={"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "accuracy": [0.5, 0.8],
                 "val_accuracy": [0.4, 0.7]}, **overrides)
    version.file.save("tiny.tflite", ContentFile(make_tiny_tflite()), save=False)
    version.save()
    return version


@pytest.mark.django_db
def test_model_version_page_shows_keras_vs_tflite_table_and_chart_images(admin_client):
    version = stored_version()

    page = admin_client.get(reverse("admin:classifier_modelversion_change", args=[version.pk]))

    html = page.content.decode()
    assert page.status_code == 200
    assert "TFLite (float32)" in html and "66.67%" in html  # 4 of 6 right
    assert "Confusion matrix" in html and "Training curves" in html
    for name in ("confusion_png", "curves_png"):
        chart = admin_client.get(reverse(f"admin:classifier_modelversion_{name}",
                                         args=[version.pk]))
        assert chart.status_code == 200 and chart["Content-Type"] == "image/png"
        assert chart.content.startswith(b"\x89PNG")


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
    assert client.get(retrain).status_code == 200


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
