"""URL routes: the admin, the storefront API and (when debugging) local media."""

from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import path

from catalog import views as catalog_views
from catalog import webhooks as catalog_webhooks

admin.site.site_header = "Catalog Classifier"
admin.site.site_title = "Catalog Classifier"
admin.site.index_title = "Catalog administration"

urlpatterns = [
    path("admin/", admin.site.urls),
    # Appwrite Storage: webhook deliveries, and images of a private bucket (README).
    path("webhooks/appwrite/", catalog_webhooks.appwrite_webhook, name="appwrite-webhook"),
    path("media-proxy/<path:name>", catalog_views.media_proxy, name="media-proxy"),
]

if settings.DEBUG and not settings.USE_APPWRITE:
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
