"""The model version admin's "Download model" action (an adapter over classifier.exports)."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse

from catalog.exports.records import user_can_export
from classifier.bundle import BundleError
from classifier.exports import model_version_bundle
from classifier.models import ModelVersion


def model_export_allowed(request) -> bool:
    return user_can_export(request.user, ModelVersion)


@admin.action(description="Download model", permissions=["export"])
def download_model(modeladmin, request, queryset):
    if not model_export_allowed(request):
        raise PermissionDenied
    if queryset.count() != 1:
        modeladmin.message_user(request, "Select exactly one model version to download.",
                                messages.WARNING)
        return None
    try:
        name, data = model_version_bundle(model_version=queryset.get(), user=request.user)
    except BundleError as exc:
        modeladmin.message_user(request, exc.message, messages.ERROR)
        return None
    response = HttpResponse(data, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
