"""ModelVersion admin additions: evaluation tables, chart images, activate and re-export actions.

A mixin so ``classifier/admin.py`` keeps its own ModelVersionAdmin and only adds one base class.
Charts are drawn by ``training.report`` (Pillow only: no TensorFlow in the web process).
"""

from django.contrib import admin, messages
from django.http import Http404, HttpResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from training.admin import can_retrain

EVALUATION_FIELDS = ["metrics_summary", "per_category_table", "confusion_matrix_image",
                     "curves_image"]


def _evaluated(version) -> dict | None:
    """The held-out metrics: out-of-fold (or validation split) predictions of the version."""
    metrics = version.metrics or {}
    return metrics.get("oof") or metrics.get(metrics.get("evaluated", "tflite_validation"))


class ModelVersionTrainingMixin:
    actions = ["activate_version", "reexport_float16", "reexport_int8"]

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), *EVALUATION_FIELDS]

    def get_fieldsets(self, request, obj=None):
        fields = [f for f in self.get_fields(request, obj) if f not in EVALUATION_FIELDS]
        return [(None, {"fields": fields}), ("Evaluation", {"fields": EVALUATION_FIELDS})]

    def get_urls(self):
        view = self.admin_site.admin_view
        return [path("<path:object_id>/charts/confusion.png", view(self.confusion_png),
                     name="classifier_modelversion_confusion_png"),
                path("<path:object_id>/charts/curves.png", view(self.curves_png),
                     name="classifier_modelversion_curves_png"),
                *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        extra = {"can_retrain": can_retrain(request), **(extra_context or {})}
        return super().changelist_view(request, extra_context=extra)

    def has_retrain_permission(self, request):
        return can_retrain(request)

    def _chart_source(self, request, object_id):
        version = self.get_object(request, object_id)
        if version is None or not self.has_view_permission(request, version):
            raise Http404("No such model version.")
        return version

    def confusion_png(self, request, object_id):
        from training.report import plot_confusion_matrix_png

        metrics = _evaluated(self._chart_source(request, object_id))
        if not metrics:
            raise Http404("This version has no evaluation metrics.")
        return HttpResponse(plot_confusion_matrix_png(metrics), content_type="image/png")

    def curves_png(self, request, object_id):
        from training.report import plot_curves_png

        version = self._chart_source(request, object_id)
        return HttpResponse(plot_curves_png(version.history or {}), content_type="image/png")

    @admin.display(description="Validation metrics")
    def metrics_summary(self, obj):
        metrics = obj.metrics or {}
        keras, tflite = metrics.get("keras_validation"), metrics.get("tflite_validation")
        if not keras:
            heldout = _evaluated(obj)
            if not heldout:
                return "—"
            return format_html("<p>Held-out accuracy {} on {} images ({}).</p>",
                               f"{heldout['accuracy']:.2%}", heldout["count"],
                               metrics.get("evaluated", ""))
        rows = [("accuracy", "accuracy"), ("top-3 accuracy", "top3_accuracy"),
                ("macro-F1", "macro_f1")]
        body = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", (
            (name, f"{keras[key]:.2%}", f"{tflite[key]:.2%}" if tflite else "not measured")
            for name, key in rows))
        return format_html("<table><tr><th></th><th>Keras</th><th>TFLite ({})</th></tr>{}"
                           "</table><p>{} validation images; best epoch {}.</p>",
                           obj.quantization, body, keras["count"], metrics.get("best_epoch"))

    @admin.display(description="Per category")
    def per_category_table(self, obj):
        metrics = _evaluated(obj)
        if not metrics:
            return "—"
        body = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
                                "</tr>", ((label, f"{m['precision']:.3f}", f"{m['recall']:.3f}",
                                           f"{m['f1']:.3f}", m["support"])
                                          for label, m in metrics["per_class"].items()))
        return format_html("<table><tr><th>Category</th><th>Precision</th><th>Recall</th>"
                           "<th>F1</th><th>Support</th></tr>{}</table>", body)

    @admin.display(description="Confusion matrix")
    def confusion_matrix_image(self, obj):
        if not _evaluated(obj):
            return "—"
        url = reverse("admin:classifier_modelversion_confusion_png", args=[obj.pk])
        return format_html('<img src="{}" alt="Confusion matrix">', url)

    @admin.display(description="Training curves")
    def curves_image(self, obj):
        if not obj.history:
            return "—"
        url = reverse("admin:classifier_modelversion_curves_png", args=[obj.pk])
        return format_html('<img src="{}" alt="Loss and accuracy per epoch">', url)

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
