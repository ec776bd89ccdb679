"""Routes of the classifier API (mounted under /api/v1/)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from classifier.api.views import ClassificationJobViewSet, ClassifyView, ModelVersionViewSet

router = SimpleRouter()
router.register("classification-jobs", ClassificationJobViewSet, basename="classification-job")
router.register("model-versions", ModelVersionViewSet, basename="model-version")

urlpatterns = [path("classify/", ClassifyView.as_view(), name="classify"), *router.urls]
