"""Product admin actions for exports, and the "Import products" page (adapters over services)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import StreamingHttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from catalog.exports.dataset import DatasetExport, dataset_zip_stream, product_list_for_dataset
from catalog.exports.records import EXPORT_PRODUCT_PERMISSION, user_can_export
from catalog.exports.table import TableExport, catalog_export_stream, product_list_for_export
from catalog.imports.service import catalog_import_file, categories_import_file
from catalog.models import Product

CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}


def product_export_allowed(request) -> bool:
    return user_can_export(request.user, Product, extra_permission=EXPORT_PRODUCT_PERMISSION)


def _attachment(stream, content_type: str, name: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(stream, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def _table_response(request, queryset, fmt: str, *, bom: bool = False):
    if not product_export_allowed(request):
        raise PermissionDenied
    export = TableExport(queryset=product_list_for_export(queryset=queryset), fmt=fmt, bom=bom,
                         base_url=request.build_absolute_uri("/"), user=request.user,
                         filters={"selection": "admin", "format": fmt})
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    return _attachment(catalog_export_stream(export), CONTENT_TYPES[fmt],
                       f"products-{stamp}.{fmt}")


@admin.action(description="Export selected as CSV", permissions=["export"])
def export_selected_csv(modeladmin, request, queryset):
    # With a byte order mark: this download is meant for spreadsheets.
    return _table_response(request, queryset, "csv", bom=True)


@admin.action(description="Export selected as JSON Lines", permissions=["export"])
def export_selected_jsonl(modeladmin, request, queryset):
    return _table_response(request, queryset, "jsonl")


@admin.action(description="Export labelled images as dataset zip", permissions=["export"])
def export_labelled_dataset(modeladmin, request, queryset):
    if not product_export_allowed(request):
        raise PermissionDenied
    export = DatasetExport(queryset=product_list_for_dataset(queryset=queryset),
                           user=request.user, filters={"selection": "admin"})
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    return _attachment(dataset_zip_stream(export), "application/zip", f"dataset-{stamp}.zip")


class ProductImportForm(forms.Form):
    products = forms.FileField(help_text="CSV or JSON Lines: sku, title, description, "
                                         "category_slug, image, published, price, labelled.")
    categories = forms.FileField(required=False, help_text="Optional categories file (slug, "
                                 "name, description, parent_slug), imported first.")
    dry_run = forms.BooleanField(required=False, initial=True,
                                 help_text="Check every row and show what would change.")


def product_import_view(model_admin, request):
    """Upload form → import services → the per-row report, on one page."""
    opts = Product._meta
    if not (request.user.has_perm("catalog.add_product")
            and request.user.has_perm("catalog.change_product")):
        raise PermissionDenied
    form = ProductImportForm(request.POST or None, request.FILES or None)
    reports = []
    if request.method == "POST" and form.is_valid():
        dry_run, files = form.cleaned_data["dry_run"], form.cleaned_data
        if files["categories"]:
            reports.append(("Categories", categories_import_file(
                stream=files["categories"], name=files["categories"].name, dry_run=dry_run,
                user=request.user)))
        reports.append(("Products", catalog_import_file(
            stream=files["products"], name=files["products"].name, dry_run=dry_run,
            user=request.user)))
        level = messages.WARNING if any(r.errors for _, r in reports) else messages.SUCCESS
        for label, report in reports:
            model_admin.message_user(request, f"{label}: {report.summary()}", level)
    context = {**model_admin.admin_site.each_context(request), "opts": opts, "form": form,
               "reports": reports, "title": "Import products"}
    return TemplateResponse(request, "admin/catalog/product/import.html", context)
