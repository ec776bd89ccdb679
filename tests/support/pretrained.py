"""A real pretrained model for tests, and real product photos (the demo catalog's) to feed it.

EfficientNet-Lite0 with its offline ImageNet weights, at 64x64 so it trains in about a minute,
exported float32 by ``training.pipeline.run_training``: its second output is the real backbone
embedding that similar products and duplicates use. Registered as a pytest plugin (root
conftest), so the model is trained once per session for every test folder that asks for it.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_IMAGES = REPO_ROOT / "demo" / "catalog" / "images"
CATEGORIES = ("fruit", "tools", "clothing")
# The head needs min_images_per_class examples per category; the backbone is frozen, so the
# embeddings do not depend on which images the head saw.
TRAIN_PER_CATEGORY = 5
IMAGE_SIZE = (64, 64)


def demo_photos(category: str, count: int, *, variant: int = 1) -> list[Path]:
    """``count`` demo photos of different items of ``category`` (``<item>-<variant>.jpg``)."""
    return sorted((DEMO_IMAGES / category).glob(f"*-{variant}.jpg"))[:count]


def train_pretrained(workdir: Path):
    """Train the default architecture on a few demo photos; returns the TrainingOutcome."""
    from training.dataset import LabelledItem
    from training.hparams import HParams
    from training.pipeline import run_training

    items = [LabelledItem(f"{category}/{path.name}", category, path.read_bytes)
             for category in CATEGORIES for path in demo_photos(category, TRAIN_PER_CATEGORY)]
    hparams = HParams(image_size=IMAGE_SIZE, quantization="float32", seed=1,
                      min_images_per_class=TRAIN_PER_CATEGORY)
    return run_training(items, hparams, workdir=workdir)


def photographed_again(data: bytes, *, crop: float = 0.03, quality: int = 70) -> bytes:
    """The same photo as a shop's second copy of it would be: cropped a little at two edges
    and saved again as a JPEG of another quality."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    dx, dy = round(image.width * crop), round(image.height * crop)
    out = io.BytesIO()
    image.crop((dx, dy, image.width, image.height)).save(out, format="JPEG", quality=quality)
    return out.getvalue()


@pytest.fixture(scope="session")
def pretrained_outcome(tmp_path_factory):
    """The pretrained model, trained once per test session (about a minute on two cores)."""
    pytest.importorskip("tensorflow")
    return train_pretrained(tmp_path_factory.mktemp("pretrained"))


@pytest.fixture
def pretrained_version(db, pretrained_outcome):
    """The pretrained model stored as the active ModelVersion, with its categories."""
    from catalog.models import Category
    from classifier.services import model_version_activate
    from training.services.versions import model_version_create_from_outcome

    for slug in pretrained_outcome.labels:
        Category.objects.get_or_create(slug=slug, defaults={"name": slug.title()})
    version = model_version_create_from_outcome(outcome=pretrained_outcome, name="pretrained")
    return model_version_activate(model_version=version)
