"""Fixtures for the export/import tests: categories, products with real images, staff users."""

from __future__ import annotations

import hashlib

import pytest
from django.contrib.auth.models import Permission
from django.core.files.base import ContentFile

from catalog.models import Category, CategorySource, Product, ReviewStatus
from tests.support.tiny_model import solid_color_jpeg

COLOURS = {"red": (230, 20, 20), "green": (20, 210, 30), "blue": (20, 30, 230)}


@pytest.fixture
def categories(db) -> dict[str, Category]:
    return {slug: Category.objects.create(name=f"{slug.title()} things", slug=slug)
            for slug in COLOURS}


def make_product(sku: str, *, category: Category | None = None, source=CategorySource.PERSON,
                 image: bytes | None = None, **fields) -> Product:
    product = Product(sku=sku, title=fields.pop("title", f"Product {sku}"), **fields)
    if category is not None:
        product.category, product.category_source = category, source
    if image is not None:
        product.image.save(f"{sku}.jpg", ContentFile(image), save=False)
    product.save()
    return product


@pytest.fixture
def labelled_products(categories) -> list[Product]:
    """Two person-labelled products per colour, each with a solid-colour photo."""
    return [make_product(f"{slug.upper()}-{i}", category=categories[slug],
                         image=solid_color_jpeg(rgb))
            for slug, rgb in COLOURS.items() for i in range(2)]


@pytest.fixture
def predicted_product(categories) -> Product:
    return make_product(
        "PRED/1 ü", title="Crème brûlée, «deluxe»", category=categories["red"],
        source=CategorySource.CLASSIFIER, predicted_category=categories["red"],
        prediction_confidence=0.875, review_status=ReviewStatus.CLASSIFIED,
        prediction_top_k=[["red", 0.875], ["blue", 0.1]], image=solid_color_jpeg((200, 0, 0)),
    )


def staff_user(django_user_model, name: str, *perms: str):
    user = django_user_model.objects.create_user(name, password="pw", is_staff=True)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return django_user_model.objects.get(pk=user.pk)  # fresh: no cached permissions


@pytest.fixture
def exporter(django_user_model):
    return staff_user(django_user_model, "exporter", "catalog.view_product",
                      "catalog.export_product", "classifier.view_modelversion")


@pytest.fixture
def viewer(django_user_model):
    """Staff who may look at products and models but has no export permission."""
    return staff_user(django_user_model, "viewer", "catalog.view_product")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
