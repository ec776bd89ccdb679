"""Helpers for the Django-side training tests: catalog products with tiny real images."""

from __future__ import annotations

import io

import numpy as np
from django.core.files.base import ContentFile
from PIL import Image

from catalog.models import Category, CategorySource, Product
from catalog.services import category_create, product_create
from tests.training.conftest import CLASS_COLOURS, IMAGE_SIDE

# Flags every test command run shares: tiny images, the tutorial CNN (no download), few epochs.
TINY = ["--architecture", "cnn", "--image-size", str(IMAGE_SIDE), "--batch-size", "16",
        "--min-images", "3", "--seed", "3"]


def colour_jpeg(rgb, rng: np.random.Generator) -> bytes:
    pixels = np.clip(np.array(rgb) + rng.normal(0, 25, (IMAGE_SIDE, IMAGE_SIDE, 3)), 0, 255)
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def category(slug: str) -> Category:
    return Category.objects.filter(slug=slug).first() or category_create(name=slug, slug=slug)


def person_products(colour: str, count: int, *, seed: int = 0) -> list[Product]:
    """Products whose category a person chose, each with a noisy solid-colour JPEG."""
    rng = np.random.default_rng(seed)
    return [product_create(sku=f"{colour}-{seed}-{i}", title=f"{colour} {i}",
                           category=category(colour),
                           image=ContentFile(colour_jpeg(CLASS_COLOURS[colour], rng),
                                             name=f"{colour}-{i}.jpg"))
            for i in range(count)]


def classifier_products(colour: str, count: int) -> list[Product]:
    """Products whose category only the classifier set (must never teach the model)."""
    products = []
    for product in person_products(colour, count, seed=99):
        Product.objects.filter(pk=product.pk).update(category_source=CategorySource.CLASSIFIER)
        products.append(product)
    return products
