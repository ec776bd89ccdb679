"""Categories and products: what a shop sells and where the classifier files it."""

import posixpath
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils.text import slugify

# A shallow tree keeps storefront navigation and the classifier's label set simple:
# a top-level category and one level of children.
MAX_CATEGORY_DEPTH = 2


class Category(models.Model):
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    position = models.PositiveIntegerField(default=0, help_text="Lower numbers come first.")

    class Meta:
        ordering = ["position", "name"]
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return f"{self.parent.name} › {self.name}" if self.parent_id and self.parent else self.name

    def clean(self):
        if self.parent_id is None:
            return
        if self.pk and self.parent_id == self.pk:
            raise ValidationError({"parent": "A category cannot be its own parent."})
        if self.parent.parent_id is not None:
            raise ValidationError(
                {"parent": f"Categories nest at most {MAX_CATEGORY_DEPTH} levels deep; choose a "
                           "top-level category as the parent."}
            )
        if self.pk and self.children.exists():
            raise ValidationError(
                {"parent": "This category has sub-categories, so it must stay top-level."}
            )


def product_image_upload_to(instance: "Product", filename: str) -> str:
    """Store images under a per-product folder so the SKU is visible in storage listings.

    A short random part keeps a replaced image from colliding with the old file (which a CDN
    may still cache) while the original file name stays readable.
    """
    base = posixpath.basename(filename)
    sku = slugify(instance.sku or "") or "unsorted"
    return f"products/{sku}/{uuid.uuid4().hex[:8]}-{base}"


class CategorySource(models.TextChoices):
    NONE = "none", "Not set"
    PERSON = "person", "Set by a person"
    CLASSIFIER = "classifier", "Set by the classifier"


class ReviewStatus(models.TextChoices):
    UNCLASSIFIED = "unclassified", "Unclassified"
    CLASSIFIED = "classified", "Classified"
    NEEDS_REVIEW = "needs_review", "Needs review"
    FAILED = "failed", "Failed"


class Product(models.Model):
    sku = models.CharField("SKU", max_length=64, unique=True)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    is_published = models.BooleanField("published", default=False)
    price = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    image = models.ImageField(upload_to=product_image_upload_to, max_length=255, blank=True)
    # Set when storage reports the image gone (e.g. an Appwrite delete webhook); the product and
    # its history stay.
    image_missing = models.BooleanField(default=False)
    image_updated_at = models.DateTimeField(null=True, blank=True)

    # The category the shop shows, and who decided it.
    category = models.ForeignKey(
        Category, null=True, blank=True, on_delete=models.PROTECT, related_name="products"
    )
    category_source = models.CharField(
        max_length=16, choices=CategorySource.choices, default=CategorySource.NONE
    )
    category_set_at = models.DateTimeField(null=True, blank=True)

    # The classifier's latest opinion, kept apart from the shop category so a prediction never
    # silently replaces a person's decision.
    predicted_category = models.ForeignKey(
        Category, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    prediction_confidence = models.FloatField(null=True, blank=True)
    prediction_top_k = models.JSONField(default=list, blank=True)
    prediction_model_version = models.ForeignKey(
        "classifier.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    predicted_at = models.DateTimeField(null=True, blank=True)
    review_status = models.CharField(
        max_length=16, choices=ReviewStatus.choices, default=ReviewStatus.UNCLASSIFIED
    )
    classification_error = models.TextField(blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [
            # Exports copy the whole catalogue (and its photos) out of the shop, so they need more
            # than the view permission every staff member may have.
            ("export_product", "Can export products and labelled image datasets"),
        ]
        indexes = [
            # Storefront: published products of a category, newest first.
            models.Index(
                fields=["is_published", "category", "-created_at"], name="product_storefront_idx"
            ),
            models.Index(fields=["is_published", "-created_at"], name="product_published_idx"),
            # Review queue: least confident first within a status.
            models.Index(
                fields=["review_status", "prediction_confidence"], name="product_review_idx"
            ),
            models.Index(fields=["predicted_category"], name="product_predicted_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(category__isnull=True, category_source=CategorySource.NONE)
                    | Q(
                        category__isnull=False,
                        category_source__in=[CategorySource.PERSON, CategorySource.CLASSIFIER],
                    )
                ),
                name="product_category_has_source",
                violation_error_message="A product's category must say where it came from.",
            ),
            models.CheckConstraint(
                condition=Q(prediction_confidence__isnull=True)
                | Q(prediction_confidence__gte=0, prediction_confidence__lte=1),
                name="product_confidence_in_unit_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sku} — {self.title}"

    @property
    def category_is_from_person(self) -> bool:
        return self.category_source == CategorySource.PERSON



class ExportKind(models.TextChoices):
    CATALOG_CSV = "catalog_csv", "Catalog as CSV"
    CATALOG_JSONL = "catalog_jsonl", "Catalog as JSON Lines"
    DATASET_ZIP = "dataset_zip", "Labelled images as dataset zip"
    MODEL_BUNDLE = "model_bundle", "Model bundle"
    CATALOG_IMPORT = "catalog_import", "Catalog import"


class ExportRecord(models.Model):
    """Who exported (or imported) what, when and how much: the audit trail of data leaving the shop.

    One row per export, not one admin LogEntry per product: exporting 10,000 products must not
    write 10,000 history rows. Command-line runs have no user, so ``actor`` keeps who ran them.
    """

    kind = models.CharField(max_length=20, choices=ExportKind.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    actor = models.CharField(max_length=150, help_text="User name, or the OS user of a command.")
    source = models.CharField(max_length=16, help_text="admin or command")
    count = models.PositiveIntegerField(default=0, help_text="Products (or files) written.")
    skipped = models.PositiveIntegerField(default=0)
    filters = models.JSONField(default=dict, blank=True, help_text="What was asked for.")
    detail = models.TextField(blank=True, help_text="Skipped items, target path, errors.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.count:,} by {self.actor}"
