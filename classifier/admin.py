"""Admin for model versions, classification jobs and prediction history."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from classifier import admin_exports, selectors
from classifier.models import ClassificationJob, ModelVersion, PredictionRecord
from training.admin_model_version import ModelVersionTrainingMixin


@admin.register(ModelVersion)
class ModelVersionAdmin(ModelVersionTrainingMixin, admin.ModelAdmin):
    list_display = ["number", "name", "architecture", "quantization", "accuracy_display",
                    "is_active", "created_at", "created_by"]
    list_filter = ["is_active", "architecture", "quantization"]
    search_fields = ["name", "notes"]
    readonly_fields = [f.name for f in ModelVersion._meta.fields if f.name not in ("name", "notes")]
    # The mixin brings activate and re-export; keep them beside the export action.
    actions = [*ModelVersionTrainingMixin.actions, admin_exports.download_model]

    def has_export_permission(self, request):
        return admin_exports.model_export_allowed(request)

    @admin.display(description="Accuracy")
    def accuracy_display(self, obj):
        return "—" if obj.accuracy is None else f"{obj.accuracy:.1%}"

    def has_add_permission(self, request):
        return False  # Versions come from training, never from a hand-filled form.


@admin.register(ClassificationJob)
class ClassificationJobAdmin(admin.ModelAdmin):
    list_display = ["id", "status", "progress_bar", "model_version", "scope", "total",
                    "done_count", "failed_count", "created_at", "finished_at"]
    list_filter = ["status", "model_version"]
    # The page reloads itself while the job runs (templates/admin/classifier/classificationjob).
    # product_ids (for resuming stalled jobs) can hold a whole catalog's ids: not shown.
    exclude = ["product_ids"]
    readonly_fields = ["progress_bar", *[f.name for f in ClassificationJob._meta.fields
                                         if f.name != "product_ids"], "failures"]
    list_select_related = ["model_version"]

    @admin.display(description="Progress")
    def progress_bar(self, obj):
        return format_html('<progress value="{}" max="{}" style="width:12em"></progress> {} / {}',
                           obj.processed, max(obj.total, 1), obj.processed, obj.total)

    @admin.display(description="Failed products")
    def failures(self, obj):
        records = selectors.job_failed_records(job=obj)
        if not records:
            return "None"
        rows = format_html_join("", '<li><a href="{}">{}</a>: {}</li>', (
            (reverse("admin:catalog_product_change", args=[r.product_id]), r.product.sku,
             r.error) for r in records))
        return format_html("<ul>{}</ul>", rows)

    def has_add_permission(self, request):
        return False


@admin.register(PredictionRecord)
class PredictionRecordAdmin(admin.ModelAdmin):
    list_display = ["product", "label", "confidence", "outcome", "model_version", "job",
                    "created_at"]
    list_filter = ["outcome", "model_version"]
    search_fields = ["product__sku", "product__title", "label"]
    list_select_related = ["product", "model_version", "job"]
    readonly_fields = [f.name for f in PredictionRecord._meta.fields]

    def has_add_permission(self, request):
        return False
