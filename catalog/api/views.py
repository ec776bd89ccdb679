"""Storefront API views: categories and products (reads for anyone, writes for staff)."""

from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.filters import SearchFilter
from rest_framework.response import Response

from catalog import selectors, services
from catalog.api import serializers as api
from catalog.api.caching import ConditionalGetMixin
from catalog.api.filters import ProductFilter, StableOrderingFilter
from catalog.api.permissions import StorefrontPermissions, staff_with
from catalog.api.routing import ID_PATTERN
from classifier import services as classifier_services
from classifier.api.serializers import ClassificationJobSerializer


@extend_schema_view(
    list=extend_schema(summary="List categories as a tree"),
    retrieve=extend_schema(summary="Get a category by slug"),
)
class CategoryViewSet(ConditionalGetMixin, viewsets.ReadOnlyModelViewSet):
    """Shop categories, two levels deep, with the number of published products in each.

    The list is not paginated (a shop has tens of categories); top-level categories have
    ``parent: null`` and list their ``children``.
    """

    lookup_field = "slug"
    permission_classes = [StorefrontPermissions]
    pagination_class = None
    filter_backends = []

    def get_queryset(self):
        return selectors.category_list_for_storefront()

    def get_serializer_class(self):
        if self.action == "retrieve":
            return api.CategoryDetailSerializer
        return api.CategoryListSerializer


@extend_schema_view(
    list=extend_schema(summary="List products"),
    retrieve=extend_schema(summary="Get a product"),
    create=extend_schema(
        summary="Create a product (staff)", request=api.ProductWriteSerializer,
        responses={201: api.ProductStaffDetailSerializer},
    ),
    update=extend_schema(
        summary="Replace a product (staff)", request=api.ProductWriteSerializer,
        responses={200: api.ProductStaffDetailSerializer},
    ),
    partial_update=extend_schema(
        summary="Change a product (staff)", request=api.ProductWriteSerializer,
        responses={200: api.ProductStaffDetailSerializer},
    ),
)
class ProductViewSet(
    ConditionalGetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
    mixins.CreateModelMixin, mixins.UpdateModelMixin, viewsets.GenericViewSet,
):
    """Products of the shop. Anyone sees published products; staff with the "view product"
    permission also see unpublished ones and the classifier's fields.

    Filter with ``?category=<slug>`` (sub-categories included), search with ``?search=``
    (title, description, SKU prefix), sort with ``?ordering=`` (``created_at``, ``title``,
    ``price``; prefix ``-`` for descending) and page with ``?page=`` and ``?page_size=``.
    Responses carry an ``ETag``; send it back in ``If-None-Match`` to get ``304``.
    """

    lookup_value_regex = ID_PATTERN
    permission_classes = [StorefrontPermissions]
    filter_backends = [DjangoFilterBackend, SearchFilter, StableOrderingFilter]
    filterset_class = ProductFilter
    search_fields = ["title", "description", "^sku"]
    ordering_fields = ["created_at", "title", "price"]
    # Newest first by primary key, which grows with creation like created_at but is what every
    # index ends in: the page is read straight off an index (no sort of all matching rows), so
    # its cost stays flat as the catalog grows. SQLite cannot serve "created_at DESC, id DESC"
    # from its (is_published, created_at) index, whose implicit rowid runs ascending.
    ordering = ["-id"]

    def _staff_reader(self) -> bool:
        user = self.request.user
        return bool(user and user.is_staff and user.has_perm("catalog.view_product"))

    def get_queryset(self):
        return selectors.product_list_for_storefront(include_unpublished=self._staff_reader())

    def get_serializer_class(self):
        if self.action in ("create", "update", "partial_update"):
            return api.ProductWriteSerializer
        staff = self._staff_reader()
        if self.action == "retrieve":
            return api.ProductStaffDetailSerializer if staff else api.ProductDetailSerializer
        return api.ProductStaffListSerializer if staff else api.ProductListSerializer

    def create(self, request, *args, **kwargs):
        serializer = api.ProductWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        # A new image is classified automatically (classifier/signals.py), after commit.
        product = services.product_create(**serializer.validated_data)
        return self._staff_detail(product, status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        product = self.get_object()
        serializer = api.ProductWriteSerializer(
            product, data=request.data, partial=kwargs.get("partial", False)
        )
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        extra = {key: data.pop(key) for key in ("category", "image") if key in data}
        product = services.product_update(product=product, data=data, **extra)
        return self._staff_detail(product, status.HTTP_200_OK)

    def _staff_detail(self, product, code):
        product = selectors.product_list_for_storefront(include_unpublished=True).get(
            pk=product.pk
        )
        body = api.ProductStaffDetailSerializer(product, context=self.get_serializer_context())
        return Response(body.data, status=code)

    @extend_schema(
        summary="Classify one product now (staff)", request=None,
        responses={202: ClassificationJobSerializer, 400: OpenApiResponse(description="No image.")},
    )
    @action(detail=True, methods=["post"],
            permission_classes=[staff_with("classifier.add_classificationjob")])
    def classify(self, request, pk=None):
        """Start a background classification of this product's image; poll the returned job."""
        product = self.get_object()
        if not product.image:
            raise serializers.ValidationError({"image": "This product has no image; upload one."})
        job = classifier_services.classification_job_start(
            products=[product.pk], created_by=request.user, scope=f"product {product.sku}",
        )
        return Response(ClassificationJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)
