"""Tiny, separable image datasets generated on the fly for the training tests."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# Three colours far apart in RGB: a 2-epoch CNN separates them, so parity checks are meaningful.
CLASS_COLOURS = {"blue": (30, 60, 220), "green": (40, 200, 60), "red": (220, 40, 40)}
IMAGE_SIDE = 32
PER_CLASS = 20


def write_dataset(root: Path, *, per_class: int = PER_CLASS, colours: dict | None = None,
                  seed: int = 0) -> Path:
    """Write ``root/<colour>/<i>.jpg``: noisy solid colours with a random darker square."""
    rng = np.random.default_rng(seed)
    for label, rgb in (colours or CLASS_COLOURS).items():
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = np.clip(np.array(rgb) + rng.normal(0, 25, (IMAGE_SIDE, IMAGE_SIDE, 3)), 0, 255)
            x, y = rng.integers(0, IMAGE_SIDE - 8, 2)
            pixels[y:y + 8, x:x + 8] *= 0.5
            Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i:03d}.jpg", quality=90)
    return root


def zip_folder(folder: Path, target: Path, *, wrap: str | None = None) -> Path:
    """Zip ``folder``'s class folders, optionally inside one top-level folder ``wrap``."""
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                name = path.relative_to(folder).as_posix()
                archive.write(path, f"{wrap}/{name}" if wrap else name)
    return target


@pytest.fixture
def dataset_dir(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "data")


@pytest.fixture(scope="session")
def lite0_weights_cache(tmp_path_factory) -> Path:
    """A weights cache holding the installed EfficientNet-Lite0 .pth converted once per session.

    Conversion (read without torch, build, assign, save) takes seconds; the backbone tests share
    its result instead of converting again in each module.
    """
    from training.backbones.efficientnet_lite_weights import efficientnet_lite_weights_file

    cache_dir = tmp_path_factory.mktemp("weights")
    efficientnet_lite_weights_file("imagenet", cache_dir=cache_dir)
    return cache_dir
