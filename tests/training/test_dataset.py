"""Dataset sources, the decode-once cache, stratified splits, filtering and class weights."""

from __future__ import annotations

import numpy as np
import pytest

from classifier.preprocessing import InputContract, decode_image, to_model_input
from tests.training.conftest import CLASS_COLOURS, PER_CLASS, write_dataset, zip_folder
from training.dataset import (
    LabelledItem,
    build_cache,
    class_weights,
    filter_small_classes,
    image_folder_items,
    stratified_split,
)
from training.exceptions import DatasetReadError, NotEnoughDataError

SIZE = (32, 32)


def test_folder_items_are_labelled_by_subfolder_and_sorted(dataset_dir):
    items = image_folder_items(dataset_dir)
    assert len(items) == PER_CLASS * len(CLASS_COLOURS)
    assert {i.label for i in items} == set(CLASS_COLOURS)
    assert [i.key for i in items] == sorted(i.key for i in items)
    assert items[0].load()[:2] == b"\xff\xd8"  # JPEG bytes


def test_every_format_the_classifier_reads_is_a_training_image(tmp_path):
    """Training and the classifier accept the same files: TIFF and BMP included."""
    from PIL import Image

    for index, (fmt, suffix) in enumerate([("JPEG", ".jpg"), ("PNG", ".png"), ("TIFF", ".tif"),
                                           ("TIFF", ".tiff"), ("BMP", ".bmp"), ("GIF", ".gif"),
                                           ("WEBP", ".webp"), ("JPEG", ".JPEG")]):
        folder = tmp_path / "data" / f"class{index % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40, 30), (200, 30, 30)).save(folder / f"{index}{suffix}", format=fmt)
    cache = build_cache(image_folder_items(tmp_path / "data"), size=SIZE,
                        cache_dir=tmp_path / "cache")
    assert len(cache) == 8 and cache.skipped == []


def test_every_file_that_is_not_a_training_image_is_listed_with_the_reason(dataset_dir,
                                                                           tmp_path):
    (dataset_dir / "red" / "logo.svg").write_text("<svg/>")
    (dataset_dir / "red" / "notes.txt").write_text("not an image")
    (dataset_dir / "README").write_text("about this dataset")
    (dataset_dir / "blue" / "old").mkdir()
    (dataset_dir / "blue" / "old" / "1.jpg").write_bytes((dataset_dir / "blue" / "000.jpg")
                                                         .read_bytes())
    (dataset_dir / "red" / ".DS_Store").write_bytes(b"\0")  # OS litter: ignored silently

    for source in (dataset_dir, zip_folder(dataset_dir, tmp_path / "d.zip", wrap="shop")):
        cache = build_cache(image_folder_items(source), size=SIZE, cache_dir=tmp_path / "c")
        reasons = {s.key.removeprefix("shop/"): s.reason for s in cache.skipped}
        assert set(reasons) == {"red/logo.svg", "red/notes.txt", "README", "blue/old/1.jpg"}
        assert reasons["red/logo.svg"].startswith("a .svg file, not an image type")
        assert ".tiff" in reasons["red/logo.svg"]
        assert "not in a category folder" in reasons["README"]
        assert "nested in a subfolder" in reasons["blue/old/1.jpg"]
        assert len(cache) == PER_CLASS * len(CLASS_COLOURS)


@pytest.mark.parametrize("wrap", [None, "shop-export"])
def test_zip_items_match_folder_items_with_or_without_a_top_folder(dataset_dir, tmp_path, wrap):
    archive = zip_folder(dataset_dir, tmp_path / "data.zip", wrap=wrap)
    from_zip = image_folder_items(archive)
    from_folder = image_folder_items(dataset_dir)
    assert [i.label for i in from_zip] == [i.label for i in from_folder]
    assert [i.load() for i in from_zip[:3]] == [i.load() for i in from_folder[:3]]


def test_missing_folder_raises_dataset_read_error(tmp_path):
    with pytest.raises(DatasetReadError, match="does not exist"):
        image_folder_items(tmp_path / "nope")


def test_file_that_is_not_a_zip_raises_dataset_read_error(tmp_path):
    path = tmp_path / "data.zip"
    path.write_bytes(b"not a zip")
    with pytest.raises(DatasetReadError, match="not a folder or a .zip"):
        image_folder_items(path)


def test_empty_folder_raises_not_enough_data(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotEnoughDataError, match="No labelled images"):
        build_cache(image_folder_items(tmp_path / "empty"), size=SIZE, cache_dir=tmp_path / "c")


def test_corrupt_and_unreadable_images_are_skipped_and_listed(dataset_dir, tmp_path):
    (dataset_dir / "red" / "broken.jpg").write_bytes(b"\xff\xd8 truncated garbage")

    def fail() -> bytes:
        raise OSError("storage unavailable")

    items = image_folder_items(dataset_dir) + [LabelledItem("remote/1", "blue", fail)]
    cache = build_cache(items, size=SIZE, cache_dir=tmp_path / "cache", workers=2)
    assert len(cache) == len(items) - 2
    assert {s.key for s in cache.skipped} == {"red/broken.jpg", "remote/1"}
    assert any("storage unavailable" in s.reason for s in cache.skipped)
    assert "red/broken.jpg" not in cache.keys


def test_cache_rows_equal_decode_image_of_each_file_in_item_order(dataset_dir, tmp_path):
    items = image_folder_items(dataset_dir)
    (dataset_dir / "blue" / "000.jpg").write_bytes(b"corrupt")  # forces compaction of rows
    cache = build_cache(items, size=SIZE, cache_dir=tmp_path / "cache", workers=3)
    assert isinstance(cache.images, np.memmap)
    by_key = {i.key: i for i in items}
    for row in (0, 7, len(cache) - 1):
        expected = decode_image(by_key[cache.keys[row]].load(), size=SIZE)
        np.testing.assert_array_equal(cache.images[row], expected)
        assert cache.label_names[cache.labels[row]] == by_key[cache.keys[row]].label


def test_training_batches_equal_inference_model_input_for_the_same_files(dataset_dir, tmp_path):
    """Parity: what the Keras model is fed in training == what LiteRTClassifier feeds."""
    tf = pytest.importorskip("tensorflow")
    from training.hparams import HParams
    from training.train import _dataset

    items = image_folder_items(dataset_dir)
    cache = build_cache(items, size=SIZE, cache_dir=tmp_path / "cache")
    indices = np.arange(5)
    hp = HParams(architecture="cnn", image_size=SIZE, batch_size=5, weights=None)
    fed, _ = next(iter(_dataset(cache, indices, hp, training=False, num_classes=3)))
    contract = InputContract(height=SIZE[0], width=SIZE[1])
    decoded = np.stack([decode_image(items[i].load(), size=SIZE) for i in indices])
    assert fed.dtype == tf.float32
    np.testing.assert_array_equal(fed.numpy(), to_model_input(decoded, contract))


def test_split_is_stratified_and_reproducible():
    labels = np.repeat([0, 1, 2], [30, 10, 2])
    a = stratified_split(labels, validation_split=0.2, test_split=0.1, seed=7)
    b = stratified_split(labels, validation_split=0.2, test_split=0.1, seed=7)
    c = stratified_split(labels, validation_split=0.2, test_split=0.1, seed=8)
    for part in ("train", "validation", "test"):
        np.testing.assert_array_equal(getattr(a, part), getattr(b, part))
    assert not np.array_equal(a.validation, c.validation)
    assert np.bincount(labels[a.validation], minlength=3).tolist() == [6, 2, 1]
    assert np.bincount(labels[a.test], minlength=3).tolist() == [3, 1, 0]
    everything = np.concatenate([a.train, a.validation, a.test])
    assert sorted(everything.tolist()) == list(range(len(labels)))


def test_small_classes_are_dropped_with_a_warning_and_labels_renumbered(tmp_path):
    root = write_dataset(tmp_path / "d", per_class=6)
    write_dataset(root, per_class=2, colours={"amber": (250, 190, 0)}, seed=1)
    cache = build_cache(image_folder_items(root), size=SIZE, cache_dir=tmp_path / "c")
    kept, warnings = filter_small_classes(cache, min_images=5)
    assert kept.label_names == ["blue", "green", "red"]
    assert (kept.labels == -1).sum() == 2
    assert len(warnings) == 1 and "'amber' has only 2" in warnings[0]
    split = stratified_split(kept.labels, validation_split=0.2, seed=0)
    assert (kept.labels[np.concatenate([split.train, split.validation])] >= 0).all()


def test_one_category_raises_not_enough_data(tmp_path):
    root = write_dataset(tmp_path / "d", per_class=6, colours={"red": (220, 40, 40)})
    cache = build_cache(image_folder_items(root), size=SIZE, cache_dir=tmp_path / "c")
    with pytest.raises(NotEnoughDataError, match="at least two categories"):
        filter_small_classes(cache, min_images=5)


def test_balanced_class_weights_favour_rare_classes():
    weights = class_weights(np.repeat([0, 1], [30, 10]), 2)
    assert weights == {0: pytest.approx(40 / 60), 1: pytest.approx(40 / 20)}
