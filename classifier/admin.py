"""Admin for model versions, classification jobs and prediction history."""

from django.contrib import admin
from django.core.paginator import Paginator
from django.utils.html import format_html

from classifier import admin_exports, selectors
from classifier.models import (
    ClassificationJob,
    DuplicateDecision,
    ModelVersion,
    PredictionRecord,
)
from training.admin_model_version import ModelVersionTrainingMixin

# Products listed per page on a job's page (a job may cover a whole catalog).
JOB_RECORDS_PER_PAGE = 50


@admin.register(ModelVersion)
class ModelVersionAdmin(ModelVersionTrainingMixin, admin.ModelAdmin):
    list_display = ["number", "name", "architecture", "quantization", "accuracy_display",
                    "auto_fill_display", "is_active", "created_at", "created_by"]
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

    @admin.display(description="Auto-fill")
    def auto_fill_display(self, obj):
        auto = (obj.metrics or {}).get("auto_fill") if isinstance(obj.metrics, dict) else None
        if not isinstance(auto, dict) or auto.get("precision") is None:
            return "—"
        return f"{auto['precision']:.0%} right, {auto.get('coverage') or 0:.0%} filled"

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
                                         if f.name != "product_ids"]]
    list_select_related = ["model_version"]

    @admin.display(description="Progress")
    def progress_bar(self, obj):
        return format_html('<progress value="{}" max="{}" style="width:12em"></progress> {} / {}',
                           obj.processed, max(obj.total, 1), obj.processed, obj.total)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # A job is a record of work done: its page is read-only (no Save buttons).

    def change_view(self, request, object_id, form_url="", extra_context=None):
        job = self.get_object(request, object_id)
        if job is not None:
            records = Paginator(selectors.job_records(job=job), JOB_RECORDS_PER_PAGE)
            extra_context = {**(extra_context or {}),
                             "records_page": records.get_page(request.GET.get("p"))}
        return super().change_view(request, object_id, form_url, extra_context=extra_context)


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

    def has_change_permission(self, request, obj=None):
        return False  # History: what a model said; nothing on its page can be saved.


@admin.register(DuplicateDecision)
class DuplicateDecisionAdmin(admin.ModelAdmin):
    """What people decided on the duplicates page. Deleting a decision lists its pair there
    again (as long as the scan still finds it)."""

    list_display = ["product_a", "product_b", "kind", "unpublished", "score", "decided_by",
                    "decided_at"]
    list_filter = ["kind"]
    search_fields = ["product_a__sku", "product_b__sku", "product_a__title", "product_b__title"]
    list_select_related = ["product_a", "product_b", "unpublished", "decided_by"]
    readonly_fields = [f.name for f in DuplicateDecision._meta.fields]

    def has_add_permission(self, request):
        return False  # decisions are made on the duplicates page

    def has_change_permission(self, request, obj=None):
        return False
