"""Routes of the storefront API (mounted under /api/v1/)."""

from rest_framework.routers import SimpleRouter

from catalog.api.views import CategoryViewSet, ProductViewSet

router = SimpleRouter()
router.register("categories", CategoryViewSet, basename="category")
router.register("products", ProductViewSet, basename="product")

urlpatterns = router.urls
