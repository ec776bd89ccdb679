"""Fixtures for the API tests: users per role, a small catalog, the tiny active model."""

import hashlib

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.core.files.base import ContentFile
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from catalog.models import Category, Product
from classifier.models import ModelVersion
from classifier.services import model_version_activate
from tests.support.tiny_model import (
    make_tiny_tflite,
    make_tiny_tflite_with_embedding,
    solid_color_jpeg,
    tiny_contract,
)

# Every permission the staff role holds in these tests: the API's write and read rights.
STAFF_PERMISSIONS = [
    "catalog.add_product", "catalog.change_product", "catalog.view_product",
    "classifier.add_classificationjob", "classifier.view_classificationjob",
    "classifier.view_modelversion", "classifier.change_modelversion",
    "training.add_trainingrun", "training.view_trainingrun",
]


@pytest.fixture(autouse=True)
def _fresh_throttles():
    cache.clear()  # throttle counters live in the cache; each test starts with none used


def _client_for(user) -> APIClient:
    client = APIClient()
    if user is not None:
        token = Token.objects.create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def _user(django_user_model, name, *, staff, perms=()):
    # No password: these clients authenticate by token, and hashing costs a second per test.
    user = django_user_model.objects.create_user(name, password=None, is_staff=staff)
    for dotted in perms:
        app_label, codename = dotted.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


@pytest.fixture
def clients(db, django_user_model) -> dict[str, APIClient]:
    """API clients per role: anonymous, user, staff (all API perms), staff without perms."""
    return {
        "anonymous": _client_for(None),
        "user": _client_for(_user(django_user_model, "shopper", staff=False)),
        "staff": _client_for(_user(django_user_model, "editor", staff=True,
                                   perms=STAFF_PERMISSIONS)),
        "staff_noperm": _client_for(_user(django_user_model, "intern", staff=True)),
    }


@pytest.fixture
def catalog(db) -> dict:
    """Fruit › citrus, tools; published and unpublished products, some with images."""
    fruit = Category.objects.create(name="Fruit", slug="fruit")
    citrus = Category.objects.create(name="Citrus", slug="citrus", parent=fruit)
    tools = Category.objects.create(name="Tools", slug="tools", position=1)

    def product(sku, title, category, *, published=True, image_rgb=None):
        item = Product(sku=sku, title=title, is_published=published, category=category,
                       category_source="person" if category else "none",
                       description=f"A fine {title.lower()}.")
        if image_rgb:
            item.image.save(f"{sku}.jpg", ContentFile(solid_color_jpeg(image_rgb)), save=False)
        item.save()
        return item

    return {
        "fruit": fruit, "citrus": citrus, "tools": tools,
        "apple": product("APL-1", "Apple", fruit, image_rgb=(200, 20, 20)),
        "lemon": product("LEM-1", "Lemon", citrus, image_rgb=(20, 200, 20)),
        "hammer": product("HAM-1", "Hammer", tools),
        "draft": product("DRF-1", "Secret draft", fruit, published=False),
    }


def store_tiny_model(*, embedding: bool, number: int = 1) -> ModelVersion:
    """The tiny red/green/blue classifier stored and active; with ``embedding`` it also outputs
    the image's mean colour as a 3-d embedding (two outputs, like the pretrained pipeline's)."""
    content = make_tiny_tflite_with_embedding() if embedding else make_tiny_tflite()
    # The serving runtime verifies the file against this checksum before loading it.
    version = ModelVersion(number=number, labels=["red", "green", "blue"], architecture="tiny",
                           input_contract=tiny_contract().to_dict(),
                           checksum=hashlib.sha256(content).hexdigest(),
                           embedding_dim=3 if embedding else 0,
                           embedding_backbone="tiny-mean-colour" if embedding else "")
    version.file.save(f"tiny-{number}.tflite", ContentFile(content), save=False)
    version.save()
    return model_version_activate(model_version=version)


@pytest.fixture
def active_model(db) -> ModelVersion:
    """The tiny classifier with an embedding output, stored and active."""
    return store_tiny_model(embedding=True)
