"""The project's admin site: branding, a dashboard above the app list, "View site" = storefront."""

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig


class CatalogAdminSite(admin.AdminSite):
    site_header = "Catalog Classifier"
    site_title = "Catalog Classifier"
    index_title = "Catalog administration"
    index_template = "admin/catalog_index.html"

    # The shop's own apps first; authentication and background-task internals after them.
    APP_ORDER = ("catalog", "classifier", "training")

    def get_app_list(self, request, app_label=None):
        apps = super().get_app_list(request, app_label)
        rank = {label: i for i, label in enumerate(self.APP_ORDER)}
        return sorted(apps, key=lambda app: rank.get(app["app_label"], len(rank)))

    def index(self, request, extra_context=None):
        from config.dashboard import dashboard_drift, dashboard_tiles

        extra = {"dashboard": dashboard_tiles(request.user),
                 "drift": dashboard_drift(request.user), **(extra_context or {})}
        return super().index(request, extra_context=extra)


class CatalogAdminConfig(AdminConfig):
    """Installed instead of ``django.contrib.admin``, so ``admin.site`` is a CatalogAdminSite."""

    default_site = "config.admin_site.CatalogAdminSite"
