"""Training from the catalog sees the pixels the classifier sees, Appwrite previews included.

The stripe model (tests/support/tiny_model.py) reacts to how an image was resized, so a training
fetch that asks Appwrite for another preview size than inference does changes its answer.
"""

import numpy as np
import pytest
from django.core.files.base import ContentFile

from catalog.models import Category, CategorySource, Product
from catalog.storage import read_image_bytes
from classifier.inference import LiteRTClassifier
from classifier.models import PredictionRecord
from classifier.preprocessing import decode_image
from classifier.services import classification_chunk_run, classification_job_start
from tests.support.appwrite_django import use_appwrite_storage
from tests.support.model_versions import stored_model_version
from tests.support.tiny_model import (
    DEFAULT_SIZE,
    STRIPE_LABELS,
    make_stripe_tflite,
    striped_jpeg,
    tiny_contract,
)
from training.dataset import build_cache
from training.selectors import catalog_training_items

pytest.importorskip("tensorflow")  # make_stripe_tflite converts a Keras model

# Big enough (noise) for the classifier to ask Appwrite for a preview; a stripe period that
# aliases differently at a 48 px and a 64 px wide preview.
PHOTOS = [striped_jpeg((1600, 1200), period=50, noise=8),
          striped_jpeg((1600, 1200), period=64, noise=8)]


@pytest.fixture
def catalog(settings, appwrite_bucket, monkeypatch):
    use_appwrite_storage(settings, appwrite_bucket, monkeypatch, CLASSIFY_FROM_PREVIEW=True)
    settings.CLASSIFIER = {**settings.CLASSIFIER, "AUTO_CLASSIFY": False}
    striped = Category.objects.create(name="Striped", slug="striped")
    Category.objects.create(name="Flat", slug="flat")
    tflite = make_stripe_tflite()
    stored_model_version(tflite, labels=STRIPE_LABELS, number=1, contract=tiny_contract(),
                         architecture="stripes")
    products = []
    for number, photo in enumerate(PHOTOS):
        product = Product.objects.create(sku=f"S-{number}", title="Striped shirt",
                                         category=striped, category_source=CategorySource.PERSON)
        product.image.save("shirt.jpg", ContentFile(photo))
        products.append(product)
    return products, LiteRTClassifier(tflite, labels=STRIPE_LABELS, contract=tiny_contract())


def _striped(probs: np.ndarray) -> list[float]:
    return probs[:, STRIPE_LABELS.index("striped")].tolist()


def test_training_and_the_classifier_fetch_and_decode_catalog_images_identically(
        db, catalog, appwrite_bucket, tmp_path):
    products, model = catalog
    items = catalog_training_items(image_size=DEFAULT_SIZE)
    cache = build_cache(items, size=DEFAULT_SIZE, cache_dir=tmp_path / "cache")
    trained_on = _striped(model.predict_proba(np.asarray(cache.images)))

    job = classification_job_start(products=[p.pk for p in products], enqueue=False)
    classification_chunk_run(job_id=job.pk, product_ids=[p.pk for p in products])
    records = {r.product_id: r for r in PredictionRecord.objects.filter(job=job)}
    inferred = [records[p.pk].confidence if records[p.pk].label == "striped"
                else 1 - records[p.pk].confidence for p in products]

    assert inferred == pytest.approx(trained_on, abs=1e-5)
    previews = appwrite_bucket.emulator.requests_to(r"/preview$")
    assert {r.query["width"] for r in previews} == {"48"}  # both paths asked for one size
    # The model does see resizing: the preview size training used to ask for (2x the input)
    # gives answers far from what the classifier computes.
    old = [decode_image(read_image_bytes(p.image.name, preview_width=64), size=DEFAULT_SIZE)
           for p in products]
    drift = np.abs(np.array(_striped(model.predict_proba(np.stack(old)))) - np.array(inferred))
    assert drift.max() > 0.3
