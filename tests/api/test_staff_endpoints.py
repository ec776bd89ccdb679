"""Staff endpoints: classification jobs for a filter, model versions, training runs."""

import pytest

from classifier.models import ClassificationJob, ModelVersion
from training.models import TrainingRun


def test_job_for_a_category_filter_counts_its_products_with_images(clients, catalog, active_model):
    response = clients["staff"].post("/api/v1/classification-jobs/", {"category": "fruit"},
                                     format="json")
    assert response.status_code == 202, response.content
    job = ClassificationJob.objects.get(pk=response.json()["id"])
    assert job.total == 2  # apple and lemon have images; the draft has none
    assert job.scope == "API: category=fruit"
    detail = clients["staff"].get(f"/api/v1/classification-jobs/{job.pk}/").json()
    assert detail["progress"] == 0.0 and detail["model_version"] == 1


def test_job_progress_reflects_processed_products(clients, active_model):
    job = ClassificationJob.objects.create(model_version=active_model, total=4, done_count=2,
                                           failed_count=1)
    body = clients["staff"].get(f"/api/v1/classification-jobs/{job.pk}/").json()
    assert body["processed"] == 3 and body["progress"] == 0.75


def test_job_without_active_model_is_a_503(clients, catalog):
    response = clients["staff"].post("/api/v1/classification-jobs/", {"ids": [1]}, format="json")
    assert response.status_code == 503 and response.json()["code"] == "no_active_model"


def test_job_filter_with_bad_values_is_a_400(clients, active_model):
    response = clients["staff"].post("/api/v1/classification-jobs/",
                                     {"review_status": "nonsense", "ids": ["x"]}, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"review_status", "ids", "code"}
    assert response.json()["code"] == "invalid"


def test_classifying_a_product_without_image_is_a_400(clients, catalog, active_model):
    response = clients["staff"].post(f"/api/v1/products/{catalog['hammer'].pk}/classify/")
    assert response.status_code == 400 and "image" in response.json()


def test_model_versions_show_metrics_and_activate_switches(clients, active_model):
    other = ModelVersion.objects.create(
        number=2, labels=["a", "b"], architecture="tiny", input_contract={},
        checksum="1" * 64, metrics={"accuracy": 0.9}, file="models/other.tflite",
    )
    rows = clients["staff"].get("/api/v1/model-versions/").json()["results"]
    assert [row["number"] for row in rows] == [2, 1]
    assert rows[0]["metrics"] == {"accuracy": 0.9} and rows[1]["is_active"] is True
    response = clients["staff"].post(f"/api/v1/model-versions/{other.pk}/activate/")
    assert response.status_code == 200 and response.json()["is_active"] is True
    assert list(ModelVersion.objects.filter(is_active=True)) == [other]


def test_training_run_start_records_who_and_what(clients):
    response = clients["staff"].post("/api/v1/training-runs/",
                                     {"options": {"epochs": 2}, "activation_policy": "never"},
                                     format="json")
    assert response.status_code == 202, response.content
    run = TrainingRun.objects.get(pk=response.json()["id"])
    assert run.options["epochs"] == 2 and run.activation_policy == "never"
    assert run.created_by.username == "editor"


def test_training_run_with_bad_options_is_a_400_with_the_reason(clients):
    response = clients["staff"].post("/api/v1/training-runs/", {"options": {"epochz": 2}},
                                     format="json")
    assert response.status_code == 400
    assert "epochz" in response.json()["detail"]
    assert not TrainingRun.objects.exists()


@pytest.mark.parametrize("path", ["/root", "/etc/passwd", "/no/such/folder", "../../etc",
                                  "data/../../outside"])
def test_training_folder_outside_the_roots_is_a_400_that_does_not_say_what_exists(
        clients, settings, tmp_path, path):
    settings.TRAINING_DATA_ROOTS = [tmp_path / "training-data"]
    (tmp_path / "training-data" / "data").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    response = clients["staff"].post("/api/v1/training-runs/",
                                     {"source": "folder", "source_path": path}, format="json")
    assert response.status_code == 400
    assert response.json()["detail"] == (
        f"The training folder must be inside a training data folder ({tmp_path}/training-data)."
        " Put the images (<folder>/<category>/<image>, or a zip of it) there and give its path,"
        " or add its folder to TRAINING_DATA_ROOTS.")
    assert not TrainingRun.objects.exists()


def test_training_folder_inside_a_root_is_accepted_by_its_relative_path(clients, settings,
                                                                        tmp_path):
    settings.TRAINING_DATA_ROOTS = [tmp_path]
    (tmp_path / "flowers" / "roses").mkdir(parents=True)
    response = clients["staff"].post("/api/v1/training-runs/",
                                     {"source": "folder", "source_path": "flowers"},
                                     format="json")
    assert response.status_code == 202, response.content
    assert TrainingRun.objects.get().source_path == str(tmp_path / "flowers")
    missing = clients["staff"].post("/api/v1/training-runs/",
                                    {"source": "folder", "source_path": "tulips"}, format="json")
    assert missing.status_code == 400 and "was not found" in missing.json()["detail"]


def test_training_from_folder_needs_a_path(clients):
    response = clients["staff"].post("/api/v1/training-runs/", {"source": "folder"},
                                     format="json")
    assert response.status_code == 400 and "source_path" in response.json()
