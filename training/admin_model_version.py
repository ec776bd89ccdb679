"""ModelVersion admin additions: the evaluation report, raw JSON folded away, activate and
re-export actions.

A mixin so ``classifier/admin.py`` keeps its own ModelVersionAdmin and only adds one base class.
The report is built by ``training.report`` from the stored JSON (inline SVG charts: no
TensorFlow, no image endpoints) and shown above the form by
``templates/admin/classifier/modelversion/change_form.html``.
"""

import json

from django.contrib import admin, messages
from django.utils.html import format_html_join

from catalog.models import Category
from training.admin import can_retrain

# Stored JSON the report already explains; kept for whoever needs the raw numbers.
RAW_JSON_FIELDS = ["labels", "input_contract", "hyperparameters", "auto_fill_thresholds",
                   "dataset_stats", "metrics", "history"]
SUMMARY_FIELDS = ["number", "name", "is_active", "activated_at", "architecture", "quantization",
                  "embedding_backbone", "embedding_dim", "size_bytes", "checksum", "file",
                  "keras_file", "created_at", "created_by", "notes"]


class ModelVersionTrainingMixin:
    actions = ["activate_version", "reexport_float16", "reexport_int8"]

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "raw_json"]

    def get_fieldsets(self, request, obj=None):
        return [("Version", {"fields": SUMMARY_FIELDS}),
                ("Raw data (JSON)", {"classes": ["collapse"], "fields": ["raw_json"]})]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        from training.report import model_version_report

        version = self.get_object(request, object_id)
        if version is not None:
            names = dict(Category.objects.filter(slug__in=version.labels or [])
                         .values_list("slug", "name"))
            extra_context = {**(extra_context or {}), "report": model_version_report(
                metrics=version.metrics or {}, history=version.history or {}, names=names,
                quantization=version.quantization)}
        return super().change_view(request, object_id, form_url, extra_context=extra_context)

    def changelist_view(self, request, extra_context=None):
        extra = {"can_retrain": can_retrain(request), **(extra_context or {})}
        return super().changelist_view(request, extra_context=extra)

    def has_retrain_permission(self, request):
        return can_retrain(request)

    @admin.display(description="Stored JSON")
    def raw_json(self, obj):
        return format_html_join("", "<h3>{}</h3><pre class=\"raw-json\">{}</pre>", (
            (name.replace("_", " "), json.dumps(getattr(obj, name), indent=2, sort_keys=True))
            for name in RAW_JSON_FIELDS))

    @admin.action(description="Activate the selected version (also rolls back)",
                  permissions=["change"])
    def activate_version(self, request, queryset):
        from classifier.services import model_version_activate

        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to activate.", messages.ERROR)
            return
        version = model_version_activate(model_version=queryset.get())
        self.message_user(request, f"v{version.number} is now the active model.", messages.SUCCESS)

    @admin.action(description="Re-export as float16 (no retraining)", permissions=["retrain"])
    def reexport_float16(self, request, queryset):
        self._reexport(request, queryset, "float16")

    @admin.action(description="Re-export with int8 weights (dynamic range, no retraining)",
                  permissions=["retrain"])
    def reexport_int8(self, request, queryset):
        self._reexport(request, queryset, "dynamic")

    def _reexport(self, request, queryset, quantization):
        from training.services import model_version_reexport_start

        kept = [v for v in queryset if v.keras_file]
        for version in kept:
            model_version_reexport_start(model_version=version, quantization=quantization)
        skipped = queryset.count() - len(kept)
        self.message_user(request, f"{len(kept)} re-export(s) as {quantization} queued on the "
                          "training cluster; new versions appear when done."
                          + (f" {skipped} skipped: no kept Keras model." if skipped else ""),
                          messages.SUCCESS if kept else messages.WARNING)

