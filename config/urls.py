"""URL routes: the admin, the storefront API and (when debugging) local media."""

from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import path

admin.site.site_header = "Catalog Classifier"
admin.site.site_title = "Catalog Classifier"
admin.site.index_title = "Catalog administration"

urlpatterns = [
    path("admin/", admin.site.urls),
]

if settings.DEBUG and not settings.USE_APPWRITE:
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
