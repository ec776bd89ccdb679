"""Admin for training runs."""

from django.contrib import admin

from training.models import TrainingRun


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ["id", "status", "source", "progress", "model_version", "activated",
                    "created_by", "created_at", "finished_at"]
    list_filter = ["status", "source"]
    readonly_fields = [f.name for f in TrainingRun._meta.fields]
    list_select_related = ["model_version", "created_by"]

    def has_add_permission(self, request):
        return False
