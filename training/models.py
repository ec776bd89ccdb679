"""Training runs: a request to train a model, its progress, log and resulting version."""

from django.conf import settings
from django.db import models

# A training run moves through the same states as a classification job (training depends on
# classifier, never the other way), so the admin and API show one vocabulary.
from classifier.models import JobStatus as TrainingStatus


class ActivationPolicy(models.TextChoices):
    IF_BETTER = "if_better", "Activate if it beats the active model"
    ALWAYS = "always", "Always activate"
    NEVER = "never", "Never activate"


class TrainingSource(models.TextChoices):
    CATALOG = "catalog", "Catalog (person-labelled products)"
    FOLDER = "folder", "Image folder or zip"


class TrainingRun(models.Model):
    status = models.CharField(
        max_length=16, choices=TrainingStatus.choices, default=TrainingStatus.QUEUED
    )
    source = models.CharField(
        max_length=16, choices=TrainingSource.choices, default=TrainingSource.CATALOG
    )
    source_path = models.CharField(max_length=500, blank=True)
    options = models.JSONField(default=dict, blank=True, help_text="Hyper-parameters asked for.")
    activation_policy = models.CharField(
        max_length=16, choices=ActivationPolicy.choices, default=ActivationPolicy.IF_BETTER
    )
    progress = models.FloatField(default=0.0, help_text="0 to 1.")
    progress_detail = models.JSONField(default=dict, blank=True)
    log = models.TextField(blank=True, help_text="The last lines of the training log.")
    error = models.TextField(blank=True)
    model_version = models.OneToOneField(
        "classifier.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="training_run",
    )
    activated = models.BooleanField(default=False)
    # Who or what asked for the run, in words ("schedule: 57 new labels since v3"); empty for a
    # person's request (``created_by`` says who).
    trigger = models.CharField(max_length=200, blank=True, help_text="Why the run started.")
    task_id = models.CharField(max_length=64, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Training run #{self.pk} ({self.get_status_display()})"
