"""Routes of the training API (mounted under /api/v1/)."""

from rest_framework.routers import SimpleRouter

from training.api.views import TrainingRunViewSet

router = SimpleRouter()
router.register("training-runs", TrainingRunViewSet, basename="training-run")

urlpatterns = router.urls
