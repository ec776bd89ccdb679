"""Dataset export: person-labelled images as <category>/<sku>.<ext>, read back and trained on."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.core.management import call_command

from catalog.exports.dataset import DatasetExport, dataset_zip_stream, product_list_for_dataset
from catalog.models import CategorySource, ExportKind, ExportRecord
from tests.exports.conftest import COLOURS, make_product
from tests.support.tiny_model import solid_color_jpeg

CHANGELIST = "/admin/catalog/product/"


@pytest.mark.django_db
def test_only_person_labelled_products_with_images_are_written_under_their_category(
        tmp_path, categories, labelled_products, predicted_product):
    make_product("NO-IMAGE", category=categories["red"])
    make_product("UNLABELLED", image=solid_color_jpeg((1, 2, 3)))
    call_command("export_dataset", "--output", str(tmp_path / "d.zip"), stdout=io.StringIO())
    with zipfile.ZipFile(tmp_path / "d.zip") as archive:
        names = archive.namelist()
        assert archive.read("labels.txt").decode() == "blue\ngreen\nred\n"
        readme = archive.read("README.txt").decode()
        assert archive.read("red/RED-0.jpg") == labelled_products[0].image.open("rb").read()
    images = sorted(n for n in names if n.endswith(".jpg"))
    assert images == sorted(f"{slug}/{slug.upper()}-{i}.jpg" for slug in COLOURS for i in (0, 1))
    assert "Images: 6" in readme and "Skipped: 0" in readme


@pytest.mark.django_db
def test_missing_image_is_skipped_and_reported_while_the_rest_are_written(
        tmp_path, labelled_products):
    gone = labelled_products[1]
    gone.image.storage.delete(gone.image.name)
    out, err = io.StringIO(), io.StringIO()
    call_command("export_dataset", "--output", str(tmp_path / "d.zip"), stdout=out, stderr=err)
    with zipfile.ZipFile(tmp_path / "d.zip") as archive:
        assert f"red/{gone.sku}.jpg" not in archive.namelist()
        assert len([n for n in archive.namelist() if n.endswith(".jpg")]) == 5
        assert f"{gone.sku}: image" in archive.read("README.txt").decode()
    assert f"Skipped {gone.sku}" in err.getvalue()
    record = ExportRecord.objects.get()
    assert (record.kind, record.count, record.skipped) == (ExportKind.DATASET_ZIP, 5, 1)
    assert gone.sku in record.detail


@pytest.mark.django_db
def test_skus_are_sanitised_into_safe_unique_file_names(categories):
    image = solid_color_jpeg((200, 10, 10))
    make_product("A/1", category=categories["red"], image=image)
    make_product("A 1", category=categories["red"], image=image)
    make_product("../../etc", category=categories["red"], image=image)
    export = DatasetExport(queryset=product_list_for_dataset())
    data = b"".join(dataset_zip_stream(export))
    names = [n for n in zipfile.ZipFile(io.BytesIO(data)).namelist() if n.endswith(".jpg")]
    assert len(set(names)) == 3
    assert all(n.startswith("red/") and n.count("/") == 1 and ".." not in n for n in names)


@pytest.mark.django_db
def test_admin_action_streams_the_dataset_of_selected_products(client, exporter,
                                                               labelled_products):
    client.force_login(exporter)
    response = client.post(CHANGELIST, {"action": "export_labelled_dataset",
                                        "_selected_action": [p.pk for p in labelled_products[:3]]})
    assert response.streaming and response["Content-Type"] == "application/zip"
    chunks = list(response.streaming_content)
    assert len(chunks) >= 4  # one piece per image, then the index
    with zipfile.ZipFile(io.BytesIO(b"".join(chunks))) as archive:
        assert len([n for n in archive.namelist() if n.endswith(".jpg")]) == 3
    record = ExportRecord.objects.get()
    assert record.user == exporter and record.count == 3


@pytest.mark.django_db
def test_staff_without_export_permission_gets_no_dataset(client, viewer, labelled_products):
    client.force_login(viewer)
    response = client.post(CHANGELIST, {"action": "export_labelled_dataset",
                                        "_selected_action": [p.pk for p in labelled_products]})
    assert not getattr(response, "streaming", False) and ExportRecord.objects.count() == 0


@pytest.mark.slow
@pytest.mark.django_db
def test_exported_dataset_trains_a_model_whose_labels_are_the_categories(tmp_path, categories):
    pytest.importorskip("tensorflow")
    import numpy as np

    from training.dataset import image_folder_items
    from training.hparams import HParams
    from training.pipeline import run_training

    rng = np.random.default_rng(0)
    for slug, rgb in COLOURS.items():
        for i in range(8):
            noisy = tuple(int(v) for v in np.clip(np.array(rgb) + rng.integers(-20, 20, 3), 0, 255))
            make_product(f"{slug}-{i}", category=categories[slug], image=solid_color_jpeg(noisy))
    make_product("CLASSIFIED", category=categories["red"], source=CategorySource.CLASSIFIER,
                 image=solid_color_jpeg((0, 0, 0)))
    call_command("export_dataset", "--output", str(tmp_path / "d.zip"), stdout=io.StringIO())
    items = image_folder_items(tmp_path / "d.zip")
    images = [i for i in items if i.label]  # labels.txt and README.txt are listed as skipped
    assert len(images) == 24 and {i.label for i in images} == set(COLOURS)
    assert sorted(i.key for i in items if not i.label) == ["README.txt", "labels.txt"]
    outcome = run_training(items, HParams(architecture="cnn", image_size=(32, 32), epochs=2,
                                          batch_size=8, weights=None, min_images_per_class=5),
                           workdir=tmp_path / "run")
    assert outcome.labels == sorted(categories)
    assert len(outcome.tflite_bytes) > 0
