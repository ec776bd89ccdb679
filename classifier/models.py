"""Model versions, classification jobs and the per-product prediction history."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from catalog.storage import model_files_storage
from classifier.thresholds import auto_fill_threshold


class ModelVersion(models.Model):
    """One trained, exported classifier, with everything needed to use and judge it.

    The labels and input contract are stored here, not inside the model file, so inference can
    check a model before trusting it and an export bundle can carry them as plain files.
    """

    number = models.PositiveIntegerField(unique=True, help_text="Increases with every model.")
    name = models.CharField(max_length=120, blank=True)
    file = models.FileField(
        "TFLite file", upload_to="models/", storage=model_files_storage, max_length=255
    )
    checksum = models.CharField(max_length=64, help_text="SHA-256 of the TFLite file.")
    size_bytes = models.PositiveBigIntegerField(default=0)
    # Kept Keras weights make re-export to another quantisation possible without retraining.
    keras_file = models.FileField(
        upload_to="models/keras/", storage=model_files_storage, max_length=255, blank=True
    )
    labels = models.JSONField(help_text="Category slugs in the model's output order.")
    input_contract = models.JSONField(
        help_text="Input size, dtype, value range and resize method the model expects."
    )
    architecture = models.CharField(max_length=40)
    quantization = models.CharField(max_length=16, default="float32")
    hyperparameters = models.JSONField(default=dict, blank=True)
    dataset_stats = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    history = models.JSONField(default=dict, blank=True, help_text="Per-epoch training curves.")
    # Chosen at training time for a target precision (see training/calibration.py):
    # {"target_precision": 0.95, "global": 0.83 | None, "per_category": {slug: threshold}}.
    # Empty for versions trained before thresholds existed: the settings' threshold applies.
    auto_fill_thresholds = models.JSONField(
        default=dict, blank=True,
        help_text="Confidence at or above which a prediction fills the shop category.",
    )
    # Embeddings are comparable only between models sharing a backbone and its weights.
    embedding_backbone = models.CharField(
        max_length=120, blank=True,
        help_text="Backbone (and weights) that produced this model's image embeddings.",
    )
    embedding_dim = models.PositiveIntegerField(default=0)
    # The person-labelled images' embeddings this version was trained on (see
    # training/references.py): a near-duplicate of one of them is filed the same way.
    reference_file = models.FileField(
        "labelled embeddings", upload_to="models/references/", storage=model_files_storage,
        max_length=255, blank=True,
    )
    notes = models.TextField(blank=True)

    is_active = models.BooleanField(default=False)
    activated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"],
                condition=Q(is_active=True),
                name="classifier_one_active_model_version",
                violation_error_message="Only one model version can be active.",
            ),
        ]

    def __str__(self) -> str:
        label = f"v{self.number}"
        if self.name:
            label += f" {self.name}"
        return label + (" (active)" if self.is_active else "")

    @property
    def accuracy(self) -> float | None:
        return self.metrics.get("accuracy") if isinstance(self.metrics, dict) else None

    def auto_fill_threshold(self, label: str, default: float) -> float:
        """The confidence a prediction of ``label`` needs to fill the shop category.

        A category's own threshold when training chose one, else the version's global one;
        ``default`` (the settings' threshold) for versions without thresholds. A version whose
        thresholds say no confidence is precise enough (``None``) never fills a category.
        """
        return auto_fill_threshold(self.auto_fill_thresholds, label, default)



class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


# Scope of the job an activation starts to re-classify products in review or filed by the
# classifier: a biased sample (the uncertain ones), which drift figures leave out.
RECLASSIFY_SCOPE_PREFIX = "re-classify: "


class ClassificationJob(models.Model):
    """A request to classify a set of products, split into chunks that workers share."""

    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, related_name="jobs"
    )
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    scope = models.CharField(max_length=200, blank=True, help_text="What was asked for.")
    total = models.PositiveIntegerField(default=0)
    done_count = models.PositiveIntegerField(default=0, help_text="Products classified.")
    failed_count = models.PositiveIntegerField(default=0, help_text="Products that failed.")
    chunk_count = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # What the job covers and when it last moved: lets classification_jobs_resume_stalled
    # re-enqueue the products of a chunk whose worker died (the Redis broker never re-delivers).
    product_ids = models.JSONField(default=list, blank=True, help_text="Products the job covers.")
    last_progress_at = models.DateTimeField(
        null=True, blank=True, help_text="When the job started or a chunk last wrote results.",
    )
    resume_count = models.PositiveSmallIntegerField(
        default=0, help_text="Times stalled chunks were enqueued again.",
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Classification job #{self.pk} ({self.get_status_display()})"

    @property
    def processed(self) -> int:
        return self.done_count + self.failed_count

    @property
    def progress(self) -> float:
        return 1.0 if not self.total else min(1.0, self.processed / self.total)


class PredictionOutcome(models.TextChoices):
    CLASSIFIED = "classified", "Classified"
    NEEDS_REVIEW = "needs_review", "Needs review"
    FAILED = "failed", "Failed"


class PredictionRecord(models.Model):
    """History: what a model version said about a product (one row per job and product)."""

    product = models.ForeignKey(
        "catalog.Product", on_delete=models.CASCADE, related_name="prediction_records"
    )
    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.CASCADE, related_name="prediction_records"
    )
    job = models.ForeignKey(
        ClassificationJob, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="records",
    )
    outcome = models.CharField(max_length=16, choices=PredictionOutcome.choices)
    category = models.ForeignKey(
        "catalog.Category", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    label = models.CharField(max_length=100, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    top_k = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # Makes a re-run chunk harmless: a product is recorded once per job.
            models.UniqueConstraint(
                fields=["job", "product"], condition=Q(job__isnull=False),
                name="classifier_one_record_per_job_product",
            ),
        ]
        indexes = [
            models.Index(fields=["product", "-created_at"], name="record_product_idx"),
            # The weekly drift figures read a date range of every product's records.
            models.Index(fields=["created_at"], name="record_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.product_id} → {self.label or self.outcome} (v{self.model_version_id})"


class ProductEmbedding(models.Model):
    """The embedding of a product's image, as the classification pass computed it.

    Stored compactly (``classifier.similarity.encoding``: L2-normalised float16, 2 bytes per
    dimension) and tagged with the backbone that computed it: vectors of two backbones live in
    different spaces and are never compared. ``image_name`` is the storage name of the image the
    vector came from; a new upload gets a new name, so a differing name means "re-embed".
    """

    product = models.OneToOneField(
        "catalog.Product", on_delete=models.CASCADE, primary_key=True, related_name="embedding",
    )
    backbone = models.CharField(
        max_length=120, help_text="Backbone (and weights) that computed the vector.",
    )
    dim = models.PositiveIntegerField(help_text="Dimensions of the vector.")
    vector = models.BinaryField(help_text="Encoded unit vector (classifier.similarity.encoding).")
    # Similarity needs only the direction; a retrain on stored embeddings needs the backbone's raw
    # output (the head is fitted and folded onto it), which is ``norm * unit vector``. Empty for
    # rows stored before it was recorded: those products' images are read when training.
    norm = models.FloatField(
        null=True, blank=True, help_text="Length of the raw vector before normalisation.",
    )
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
    )
    image_name = models.CharField(max_length=255, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            # Reading a backbone's vectors in id order (index rebuilds, the exact fallback).
            models.Index(fields=["backbone", "product"], name="embedding_backbone_idx"),
            # "Changed since the last rebuild?": the newest row of a backbone.
            models.Index(fields=["backbone", "updated_at"], name="embedding_updated_idx"),
        ]

    def __str__(self) -> str:
        return f"embedding of product {self.product_id} ({self.backbone})"


def ordered_pair(a: int, b: int) -> tuple[int, int]:
    """A product pair with the smaller id first: one row per pair, whichever way it was found."""
    return (a, b) if a < b else (b, a)


class ProductPair(models.Model):
    """Two products, the smaller id in ``product_a`` (see ``ordered_pair``), one row per pair."""

    product_a = models.ForeignKey("catalog.Product", on_delete=models.CASCADE, related_name="+")
    product_b = models.ForeignKey("catalog.Product", on_delete=models.CASCADE, related_name="+")

    class Meta:
        abstract = True
        constraints = [
            models.UniqueConstraint(fields=["product_a", "product_b"],
                                    name="%(app_label)s_%(class)s_one_per_pair"),
            models.CheckConstraint(condition=Q(product_a__lt=models.F("product_b")),
                                   name="%(app_label)s_%(class)s_pair_ordered"),
        ]


class DuplicateCandidate(ProductPair):
    """Two products whose images look near-identical, found by the last similarity scan.

    Rewritten for the active backbone by every index rebuild; the duplicates page lists the
    ones nobody has decided on yet (see ``DuplicateDecision``).
    """

    score = models.FloatField(help_text="Cosine similarity of the two image embeddings.")
    backbone = models.CharField(max_length=120)
    found_at = models.DateTimeField()

    class Meta(ProductPair.Meta):
        ordering = ["-score", "product_a", "product_b"]

    def __str__(self) -> str:
        return f"{self.product_a_id} ~ {self.product_b_id} ({self.score:.3f})"


class DuplicateDecisionKind(models.TextChoices):
    NOT_DUPLICATE = "not_duplicate", "Not a duplicate"
    COPY_UNPUBLISHED = "copy_unpublished", "Copy unpublished"


class DuplicateDecision(ProductPair):
    """A person's answer about a pair of products: it is never listed as a duplicate again."""

    kind = models.CharField(max_length=20, choices=DuplicateDecisionKind.choices)
    unpublished = models.ForeignKey(
        "catalog.Product", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The copy that was unpublished.",
    )
    score = models.FloatField(null=True, blank=True, help_text="Similarity when decided.")
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    decided_at = models.DateTimeField(auto_now_add=True)

    class Meta(ProductPair.Meta):
        ordering = ["-decided_at", "-id"]

    def __str__(self) -> str:
        return f"{self.product_a_id} / {self.product_b_id}: {self.get_kind_display()}"
