"""Fixtures for classification tests: categories, real tiny model versions, products."""

import hashlib
import itertools

import pytest
from django.core.files.base import ContentFile

from catalog.models import Category, Product
from classifier import runtime
from classifier.models import ModelVersion
from classifier.services import model_version_activate
from tests.support.tiny_model import (
    DEFAULT_LABELS,
    make_tiny_tflite,
    make_tiny_tflite_with_embedding,
    tiny_contract,
)

RED, GREEN, BLUE = (230, 20, 20), (20, 230, 20), (20, 20, 230)


@pytest.fixture(autouse=True)
def _fresh_model_cache():
    runtime.clear_cache()
    yield
    runtime.clear_cache()


@pytest.fixture
def no_auto_classify(settings):
    settings.CLASSIFIER = {**settings.CLASSIFIER, "AUTO_CLASSIFY": False}


@pytest.fixture
def categories(db):
    return {slug: Category.objects.create(name=slug.title(), slug=slug)
            for slug in DEFAULT_LABELS}


_numbers = itertools.count(1)


@pytest.fixture
def make_model_version(db):
    def make(labels=DEFAULT_LABELS, *, activate=True, embedding=False,
             backbone="") -> ModelVersion:
        """A tiny model; ``embedding=True`` adds the mean-colour embedding output, declared as
        ``backbone`` (empty: undeclared, as for an imported model)."""
        maker = make_tiny_tflite_with_embedding if embedding else make_tiny_tflite
        content = maker(labels=tuple(labels))
        number = next(_numbers) + ModelVersion.objects.count() * 1000
        version = ModelVersion(
            number=number, labels=list(labels), input_contract=tiny_contract().to_dict(),
            architecture="tiny", checksum=hashlib.sha256(content).hexdigest(),
            size_bytes=len(content), embedding_backbone=backbone,
            embedding_dim=3 if embedding else 0,
        )
        version.file.save(f"tiny-{number}.tflite", ContentFile(content), save=False)
        version.save()
        if activate:
            model_version_activate(model_version=version)
            version.refresh_from_db()
        return version

    return make


@pytest.fixture
def model_version(make_model_version, categories):
    return make_model_version()


@pytest.fixture
def embedding_version(make_model_version, categories):
    """The active tiny model with a 3-d embedding (the image's mean colour)."""
    return make_model_version(embedding=True, backbone=TINY_BACKBONE)


TINY_BACKBONE = "tiny-mean-colour"


@pytest.fixture
def make_product(db):
    counter = itertools.count(1)

    def make(image: bytes | None = None, *, name="photo.jpg", **fields) -> Product:
        number = next(counter)
        product = Product.objects.create(
            sku=fields.pop("sku", f"SKU-{number}"), title=fields.pop("title", f"Item {number}"),
            **fields,
        )
        if image is not None:
            product.image.save(name, ContentFile(image))
        return product

    return make
