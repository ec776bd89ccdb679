"""Routes of the classifier API (mounted under /api/v1/)."""

from django.urls import path, re_path
from rest_framework.routers import SimpleRouter

from catalog.api.routing import ID_PATTERN
from classifier.api.views import (
    ClassificationJobViewSet,
    ClassifyView,
    ModelVersionViewSet,
    SearchByImageView,
    SimilarProductsView,
)

router = SimpleRouter()
router.register("classification-jobs", ClassificationJobViewSet, basename="classification-job")
router.register("model-versions", ModelVersionViewSet, basename="model-version")

urlpatterns = [
    path("classify/", ClassifyView.as_view(), name="classify"),
    # Beside the catalog's /products/{id}/ routes (mounted first under the same prefix).
    re_path(rf"^products/(?P<pk>{ID_PATTERN})/similar/$", SimilarProductsView.as_view(),
            name="product-similar"),
    path("search/by-image/", SearchByImageView.as_view(), name="search-by-image"),
    *router.urls,
]
