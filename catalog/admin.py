"""Admin for categories and products."""

from django.contrib import admin
from django.db.models import Count
from django.urls import path
from django.utils.html import format_html

from catalog import admin_exports, services
from catalog.models import Category, ExportRecord, Product
from catalog.storage import thumbnail_url
from classifier.product_admin import ConfidenceBandFilter, ProductClassificationAdminMixin


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "parent", "position", "product_count"]
    list_filter = ["parent"]
    search_fields = ["name", "slug", "description"]
    prepopulated_fields = {"slug": ["name"]}
    list_select_related = ["parent"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_product_count=Count("products"))

    @admin.display(description="Products", ordering="_product_count")
    def product_count(self, obj):
        return obj._product_count


@admin.register(Product)
class ProductAdmin(ProductClassificationAdminMixin, admin.ModelAdmin):
    # Classification columns, filters, actions and buttons: classifier/product_admin.py.
    list_display = [
        "thumbnail", "sku", "title", "category", "category_source", "prediction_display",
        "review_status", "is_published",
    ]
    list_filter = ["review_status", "category_source", "is_published", "category",
                   "image_missing", "predicted_category", ConfidenceBandFilter,
                   "prediction_model_version"]
    search_fields = ["sku", "title", "description"]
    list_select_related = ["category", "category__parent", "predicted_category",
                           "predicted_category__parent"]
    autocomplete_fields = ["category"]
    readonly_fields = [
        "category_source", "category_set_at", "predicted_category", "confidence_display",
        "prediction_model_version", "predicted_at", "review_status",
        "classification_error", "image_missing", "image_updated_at", "created_at", "updated_at",
    ]
    fieldsets = [
        (None, {"fields": ["sku", "title", "description", "price", "is_published", "image"]}),
        ("Category", {"fields": ["category", "category_source", "category_set_at"]}),
        ("Classifier", {"fields": [
            "review_status", "predicted_category", "confidence_display",
            "prediction_model_version", "predicted_at", "classification_error",
        ]}),
        ("Record", {"fields": ["image_missing", "image_updated_at", "created_at", "updated_at"]}),
    ]

    actions = [*ProductClassificationAdminMixin.actions, admin_exports.export_selected_csv,
               admin_exports.export_selected_jsonl, admin_exports.export_labelled_dataset]

    def has_export_permission(self, request):
        return admin_exports.product_export_allowed(request)

    def get_urls(self):
        import_view = self.admin_site.admin_view(
            lambda request: admin_exports.product_import_view(self, request))
        return [path("import/", import_view, name="catalog_product_import"), *super().get_urls()]
    @admin.display(description="Image")
    def thumbnail(self, obj):
        # Appwrite's preview (or the cached proxy) sizes it; local files are scaled by the browser.
        if not obj.image:
            return "—"
        return format_html('<img src="{}" width="48" height="48" style="object-fit:cover" '
                           'loading="lazy" alt="">', thumbnail_url(obj.image, size=96))

    def save_model(self, request, obj, form, change):
        # A category chosen in this form is a person's decision; the service records it so.
        super().save_model(request, obj, form, change)
        if "category" in form.changed_data:
            services.product_set_category_by_person(product=obj, category=obj.category)


@admin.register(ExportRecord)
class ExportRecordAdmin(admin.ModelAdmin):
    """Read-only audit trail: who exported or imported what, when, and how much."""

    list_display = ["created_at", "kind", "actor", "source", "count", "skipped"]
    list_filter = ["kind", "source"]
    search_fields = ["actor", "detail"]
    readonly_fields = [f.name for f in ExportRecord._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # an audit trail that can be edited proves nothing
