"""Serializers for classifying on demand, jobs, model versions, similar products, photo search."""

from rest_framework import serializers

from catalog.api.serializers import ProductListSerializer
from catalog.models import ReviewStatus
from classifier.models import ClassificationJob, ModelVersion
from classifier.services.similar import DEFAULT_LIMIT as DEFAULT_SIMILAR_LIMIT
from classifier.services.similar import MAX_LIMIT as MAX_SIMILAR_LIMIT

# Products one job request may name by id: a page of staff selections, not a whole catalog
# (use a filter for that). Keeps the request body and the IN (...) list bounded.
MAX_JOB_PRODUCT_IDS = 1000

# Largest primary key the databases store (signed 64-bit); bigger ids are a 400, not a crash.
MAX_ID = 2**63 - 1


class ClassificationJobSerializer(serializers.ModelSerializer):
    """A classification job and how far it got (poll it until ``status`` is final)."""

    model_version = serializers.SlugRelatedField(slug_field="number", read_only=True)
    processed = serializers.IntegerField(read_only=True)
    progress = serializers.FloatField(read_only=True, help_text="0 to 1.")

    class Meta:
        model = ClassificationJob
        fields = [
            "id", "status", "scope", "model_version", "total", "done_count", "failed_count",
            "processed", "progress", "chunk_count", "error", "created_at", "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class ClassificationJobCreateSerializer(serializers.Serializer):
    """Which products to classify; every given filter narrows the set, none means all."""

    category = serializers.SlugField(required=False, allow_blank=True,
                                     help_text="Category slug; sub-categories included.")
    review_status = serializers.ChoiceField(choices=ReviewStatus.choices, required=False,
                                            allow_blank=True)
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID), required=False,
        max_length=MAX_JOB_PRODUCT_IDS, help_text="Product ids.",
    )
    published_only = serializers.BooleanField(required=False, default=False)

    def scope(self) -> str:
        """A short human description of the filter, stored on the job for the admin."""
        data = self.validated_data
        parts = [f"category={data['category']}"] if data.get("category") else []
        if data.get("review_status"):
            parts.append(f"status={data['review_status']}")
        if data.get("ids"):
            parts.append(f"{len(data['ids'])} selected")
        if data.get("published_only"):
            parts.append("published")
        return ("API: " + ", ".join(parts) if parts else "API: all products")[:200]


class ModelVersionListSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelVersion
        fields = [
            "id", "number", "name", "architecture", "quantization", "labels", "metrics",
            "size_bytes", "is_active", "activated_at", "created_at",
        ]
        read_only_fields = fields


class ModelVersionDetailSerializer(ModelVersionListSerializer):
    """A model version with its metrics, training curves and input contract."""

    class Meta(ModelVersionListSerializer.Meta):
        fields = [
            *ModelVersionListSerializer.Meta.fields, "checksum", "input_contract",
            "hyperparameters", "dataset_stats", "history", "notes",
        ]
        read_only_fields = fields


class ClassifyRequestSerializer(serializers.Serializer):
    """One image: uploaded as ``image`` (multipart) or named by ``image_name`` in storage."""

    image = serializers.FileField(required=False, help_text="JPEG, PNG, GIF, WebP, BMP or TIFF.")
    image_name = serializers.CharField(
        required=False, max_length=255,
        help_text="Storage name of a product image (a product's image_name), instead of a file.",
    )

    def validate(self, attrs):
        if bool(attrs.get("image")) == bool(attrs.get("image_name")):
            raise serializers.ValidationError("Send exactly one of 'image' or 'image_name'.")
        return attrs


class ScoredLabelSerializer(serializers.Serializer):
    label = serializers.CharField(help_text="Category slug.")
    confidence = serializers.FloatField(help_text="Probability, 0 to 1.")


class ClassifyResultSerializer(serializers.Serializer):
    """The active model's answer: the best category and the top-k with probabilities."""

    label = serializers.CharField(help_text="The most probable category slug.")
    confidence = serializers.FloatField()
    top_k = ScoredLabelSerializer(many=True)
    model_version = serializers.IntegerField(allow_null=True,
                                             help_text="Number of the model version used.")


# --- Similar products and search by photo --------------------------------------------------------

class SimilarQuerySerializer(serializers.Serializer):
    """``?limit=``: how many products to return."""

    limit = serializers.IntegerField(required=False, default=DEFAULT_SIMILAR_LIMIT, min_value=1,
                                     max_value=MAX_SIMILAR_LIMIT,
                                     help_text=f"1 to {MAX_SIMILAR_LIMIT}.")


class SimilarProductSerializer(serializers.Serializer):
    """One result: how alike the images are, and the product as a storefront tile."""

    score = serializers.FloatField(
        help_text="Cosine similarity of the two images' embeddings: 1 is the same picture, "
                  "above ~0.9 near-identical, below ~0.5 unrelated.")
    product = ProductListSerializer()


class SimilarProductsSerializer(serializers.Serializer):
    """Published products whose images look most like this product's, most alike first."""

    product = serializers.IntegerField(help_text="The id the products are similar to.")
    results = SimilarProductSerializer(many=True)


class SearchByImageRequestSerializer(serializers.Serializer):
    """The photo to search with (multipart)."""

    image = serializers.FileField(help_text="JPEG, PNG, GIF, WebP, BMP or TIFF.")


class SearchByImageResultSerializer(serializers.Serializer):
    """Published products whose images look most like the photo, most alike first."""

    model_version = serializers.IntegerField(
        help_text="Number of the model version that embedded the photo.")
    results = SimilarProductSerializer(many=True)


class ErrorSerializer(serializers.Serializer):
    """Every error body: a message saying how to fix it, and a machine-readable code."""

    detail = serializers.CharField()
    code = serializers.CharField()
