"""URL routes: the admin, the storefront API and (when debugging) local media."""

from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from catalog import views as catalog_views
from catalog import webhooks as catalog_webhooks

urlpatterns = [
    # The admin's "View site": the published catalog, as the API gives it to a storefront.
    path("", catalog_views.storefront, name="storefront"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("catalog.api.urls")),
    path("api/v1/", include("classifier.api.urls")),
    path("api/v1/", include("training.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    # Appwrite Storage: webhook deliveries, and images of a private bucket (README).
    path("webhooks/appwrite/", catalog_webhooks.appwrite_webhook, name="appwrite-webhook"),
    path("media-proxy/<path:name>", catalog_views.media_proxy, name="media-proxy"),
]

if settings.DEBUG and not settings.USE_APPWRITE:
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
