"""Admin for training runs (retrain form, live progress) and the ModelVersion training mixin."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from training.exceptions import TrainingError, WeightsUnavailableError
from training.forms import RetrainForm
from training.models import TrainingRun, TrainingStatus

# Starting a run is "adding" one: the standard add permission gates the Retrain button.
RETRAIN_PERMISSION = "training.add_trainingrun"
# While a run is queued or running its page reloads itself this often (seconds).
REFRESH_SECONDS = 3


def can_retrain(request) -> bool:
    return request.user.has_perm(RETRAIN_PERMISSION)


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ["id", "status", "source", "progress_percent", "epoch_eta", "model_version",
                    "activated", "started_by", "created_at", "finished_at"]
    list_filter = ["status", "source"]
    list_select_related = ["model_version", "created_by"]
    readonly_fields = ["progress_bar", "epoch_eta", "version_link", "log_tail"]
    fieldsets = [
        (None, {"fields": ["status", "progress_bar", "epoch_eta", "version_link", "activated",
                           "error"]}),
        ("Log (last lines)", {"fields": ["log_tail"]}),
        ("Request", {"fields": ["trigger", "source", "source_path", "options",
                                "activation_policy", "created_by", "created_at", "started_at",
                                "finished_at", "task_id"]}),
    ]

    def has_add_permission(self, request):
        return False  # Runs start from the Retrain form, which validates the options.

    def has_change_permission(self, request, obj=None):
        return False  # A run is a record: its page is read-only.

    def get_urls(self):
        retrain = self.admin_site.admin_view(self.retrain_view)
        return [path("retrain/", retrain, name="training_trainingrun_retrain"),
                *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        extra = {"can_retrain": can_retrain(request), **(extra_context or {})}
        return super().changelist_view(request, extra_context=extra)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = self.get_object(request, object_id)
        live = run is not None and run.status in (TrainingStatus.QUEUED, TrainingStatus.RUNNING)
        extra = {"refresh_seconds": REFRESH_SECONDS if live else None, **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def retrain_view(self, request):
        """The Retrain form: validate, start the run on the training cluster, show its page."""
        from training.services import training_run_start

        if not can_retrain(request):
            raise PermissionDenied
        form = RetrainForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                run = training_run_start(**form.start_kwargs(), created_by=request.user)
            except WeightsUnavailableError as exc:
                form.add_error("weights", weights_error_for_form(exc))
            except TrainingError as exc:
                form.add_error(None, str(exc))
            else:
                self.message_user(request, f"Training run #{run.pk} queued.", messages.SUCCESS)
                return redirect("admin:training_trainingrun_change", run.pk)
        context = {**self.admin_site.each_context(request), "form": form, "opts": self.model._meta,
                   "title": "Train a new model"}
        return TemplateResponse(request, "admin/training/trainingrun/retrain.html", context)

    @admin.display(description="Started by", ordering="trigger")
    def started_by(self, obj):
        """The schedule's reason for an automatic run, else the person (or command) who asked."""
        return obj.trigger or (obj.created_by.get_username() if obj.created_by else "a command")

    @admin.display(description="Progress")
    def progress_percent(self, obj):
        return f"{obj.progress:.0%}"

    @admin.display(description="Progress")
    def progress_bar(self, obj):
        return format_html('<progress value="{}" max="1" style="width:20em"></progress> {}',
                           obj.progress, f"{obj.progress:.0%}")

    @admin.display(description="Epoch / ETA")
    def epoch_eta(self, obj):
        detail = obj.progress_detail or {}
        if "epoch" not in detail or obj.status != TrainingStatus.RUNNING:
            return "—"
        eta = detail.get("eta_seconds")
        eta_text = "?" if eta is None else f"{eta // 60}m {eta % 60:02d}s"
        return (f"epoch {detail['epoch']}/{detail['epochs']}, batch "
                f"{detail['batch']}/{detail['batches']}, ETA {eta_text}")

    @admin.display(description="Model version")
    def version_link(self, obj):
        if obj.model_version_id is None:
            return "—"
        url = reverse("admin:classifier_modelversion_change", args=[obj.model_version_id])
        return format_html('<a href="{}">{}</a>', url, obj.model_version)

    @admin.display(description="Log")
    def log_tail(self, obj):
        return format_html('<pre style="max-height:30em;overflow:auto;white-space:pre-wrap">'
                           "{}</pre>", obj.log or "(empty)")


def weights_error_for_form(exc: WeightsUnavailableError) -> str:
    """The weights error worded for the Retrain form (its fields, not command-line flags)."""
    checksum = exc.sha256 or "unknown (not readable)"
    where = f" File {exc.path}, SHA-256 {checksum}." if exc.path else ""
    return (f"{exc.problem}{where} Ask whoever runs the training worker to reinstall the "
            "requirements (pip install -r requirements.txt), or choose another architecture "
            "or \"Random initialisation\" above.")
