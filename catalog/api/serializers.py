"""Serializers for the storefront API: what shoppers see, what staff see, what staff send."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from catalog.api.uploads import image_upload_bytes
from catalog.models import Category, Product
from catalog.storage import image_url, thumbnail_url

# Thumbnail edge in pixels for product lists: a 2x-density grid cell of 160 CSS pixels.
LIST_THUMBNAIL_SIZE = 320


class CategorySlugField(serializers.SlugRelatedField):
    """A category by slug; a slug holding NUL is "not found" instead of a database error.

    PostgreSQL rejects NUL in text parameters outright, so the lookup must never be sent.
    """

    def to_internal_value(self, data):
        if isinstance(data, str) and "\x00" in data:
            self.fail("does_not_exist", slug_name=self.slug_field, value=data.replace("\x00", ""))
        return super().to_internal_value(data)


def _absolute(request, url: str | None) -> str | None:
    if not url:
        return None
    return request.build_absolute_uri(url) if request is not None else url


def image_urls(file, request) -> tuple[str | None, str | None]:
    """The image's URL and a thumbnail URL, absolute, or ``(None, None)`` without an image.

    Appwrite-aware (``catalog.storage``): a public bucket's ``/view`` and ``/preview``, the
    site's media proxy for a private one, the media URL (thumbnail = the image) for local files.
    """
    if not file:
        return None, None
    full, thumb = image_url(file), thumbnail_url(file, size=LIST_THUMBNAIL_SIZE)
    return _absolute(request, full), _absolute(request, thumb)


class CategoryRefSerializer(serializers.ModelSerializer):
    """A product's category as a storefront shows it in a breadcrumb."""

    parent = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Category
        fields = ["name", "slug", "parent"]


class CategoryChildSerializer(serializers.ModelSerializer):
    product_count = serializers.IntegerField(source="own_product_count", read_only=True)

    class Meta:
        model = Category
        fields = ["name", "slug", "position", "product_count"]


class CategoryListSerializer(serializers.ModelSerializer):
    """A category in the navigation tree, with published-product counts.

    ``product_count`` includes the products of its sub-categories.
    """

    parent = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    children = CategoryChildSerializer(many=True, read_only=True)
    product_count = serializers.SerializerMethodField()

    class Meta:
        model = Category
        fields = ["name", "slug", "parent", "position", "children", "product_count"]

    def get_product_count(self, category) -> int:
        own = category.own_product_count or 0
        return own + sum(child.own_product_count or 0 for child in category.children.all())


class CategoryDetailSerializer(CategoryListSerializer):
    class Meta(CategoryListSerializer.Meta):
        fields = [*CategoryListSerializer.Meta.fields, "description"]


class ProductListSerializer(serializers.ModelSerializer):
    """A product tile: what a storefront grid needs, nothing internal."""

    category = CategoryRefSerializer(read_only=True)
    image_url = serializers.SerializerMethodField()
    thumbnail_url = serializers.SerializerMethodField()

    class Meta:
        model = Product
        fields = ["id", "sku", "title", "price", "category", "image_url", "thumbnail_url"]

    def _urls(self, product):
        cache = self.context.setdefault("_image_urls", {})
        if product.pk not in cache:
            cache[product.pk] = image_urls(product.image, self.context.get("request"))
        return cache[product.pk]

    @extend_schema_field(OpenApiTypes.URI)
    def get_image_url(self, product) -> str | None:
        return self._urls(product)[0]

    @extend_schema_field(OpenApiTypes.URI)
    def get_thumbnail_url(self, product) -> str | None:
        return self._urls(product)[1]


class ProductDetailSerializer(ProductListSerializer):
    class Meta(ProductListSerializer.Meta):
        fields = [*ProductListSerializer.Meta.fields, "description", "created_at", "updated_at"]


# The classifier's view of a product, shown to staff only.
STAFF_PRODUCT_FIELDS = [
    "is_published", "image_name", "image_missing", "category_source", "predicted_category",
    "prediction_confidence", "prediction_top_k", "prediction_model_version", "predicted_at",
    "review_status", "classification_error",
]


class _StaffFieldsMixin(serializers.Serializer):
    image_name = serializers.CharField(source="image.name", read_only=True, allow_null=True)
    predicted_category = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    prediction_model_version = serializers.SlugRelatedField(slug_field="number", read_only=True)


class ProductStaffListSerializer(_StaffFieldsMixin, ProductListSerializer):
    """A product row for staff: the tile plus publication and classifier state."""

    class Meta(ProductListSerializer.Meta):
        fields = [*ProductListSerializer.Meta.fields, *STAFF_PRODUCT_FIELDS]


class ProductStaffDetailSerializer(_StaffFieldsMixin, ProductDetailSerializer):
    class Meta(ProductDetailSerializer.Meta):
        fields = [*ProductDetailSerializer.Meta.fields, *STAFF_PRODUCT_FIELDS]


class ProductWriteSerializer(serializers.ModelSerializer):
    """What staff send to create or change a product (multipart when it carries an image).

    A category given here is a person's decision and the classifier never overrides it. A new
    image is checked (type, integrity, size) and, once saved, classified in the background.
    """

    category = CategorySlugField(
        slug_field="slug", queryset=Category.objects.all(), required=False, allow_null=True,
    )
    image = serializers.FileField(required=False, write_only=True)

    class Meta:
        model = Product
        fields = ["sku", "title", "description", "is_published", "price", "category", "image"]

    def validate_image(self, upload):
        image_upload_bytes(upload)
        return upload
