"""API views: classify an image now, similar products, search by photo, jobs, model versions."""

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from catalog.api.permissions import StaffModelPermissions, staff_with
from catalog.api.routing import ID_PATTERN
from catalog.api.uploads import image_upload_bytes, stored_image_bytes
from catalog.selectors import product_list_for_classification, product_list_for_storefront
from classifier import selectors
from classifier.api import serializers as api
from classifier.exceptions import ClassifierError
from classifier.models import ClassificationJob, ModelVersion


class ClassifyAnonThrottle(AnonRateThrottle):
    """Anonymous classify calls per client IP; the rate is the ``CLASSIFY_ANON_RATE`` setting.

    Counted in the shared cache (Redis, or the database), so the limit holds across processes
    and machines; the client IP is REMOTE_ADDR unless ``DJANGO_TRUSTED_PROXY_COUNT`` proxies
    in front add X-Forwarded-For (DRF's ``NUM_PROXIES``).
    """

    scope = "classify_anon"


class ClassifyView(APIView):
    """Classify one image with the active model, synchronously.

    Send a multipart ``image`` (at most ``API_MAX_UPLOAD_BYTES``, else 413) or the
    ``image_name`` of a stored product image. The answer lists the ``top_k`` categories with
    probabilities. A file that is not a usable image gives 400; 503 means no model is active
    yet (train or activate one). Anonymous callers are rate-limited (429), and their image may
    decode to at most ``CLASSIFY_ANON_MAX_PIXELS`` pixels (JPEGs are decoded at a reduced
    scale first, so big photos pass; a huge PNG gets 400).
    """

    permission_classes = [AllowAny]
    throttle_classes = [ClassifyAnonThrottle]

    @extend_schema(
        summary="Classify an image",
        request={"multipart/form-data": api.ClassifyRequestSerializer,
                 "application/json": api.ClassifyRequestSerializer},
        responses={200: api.ClassifyResultSerializer,
                   400: OpenApiResponse(description="Not a usable image."),
                   413: OpenApiResponse(description="Image over the size limit."),
                   503: OpenApiResponse(description="No model version is active.")},
    )
    def post(self, request):
        from classifier import services as classifier_services

        payload = api.ClassifyRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        image, name = payload.validated_data.get("image"), payload.validated_data.get("image_name")
        data = image_upload_bytes(image, check_content=False) if image else stored_image_bytes(name)
        limit = None if request.user.is_authenticated else settings.CLASSIFY_ANON_MAX_PIXELS
        result = classifier_services.predict_images([data], max_decode_pixels=limit)[0]
        if isinstance(result, ClassifierError):
            raise result
        active = selectors.model_version_get_active()
        body = {
            "label": result.label, "confidence": result.confidence,
            "top_k": [{"label": label, "confidence": p} for label, p in result.top_k],
            "model_version": active.number if active else None,
        }
        return Response(api.ClassifyResultSerializer(body).data)


def _error(description: str, code: str, detail: str) -> OpenApiResponse:
    return OpenApiResponse(api.ErrorSerializer, description=description, examples=[
        OpenApiExample(code, value={"detail": detail, "code": code})])


_SIMILAR_RESULT_EXAMPLE = {
    "score": 0.93,
    "product": {"id": 42, "sku": "MUG-RED-2", "title": "Red mug, large", "price": "12.50",
                "category": {"name": "Mugs", "slug": "mugs", "parent": "kitchen"},
                "image_url": "https://shop.example/media/products/mug-red-2/a1b2c3d4-mug.jpg",
                "thumbnail_url": "https://shop.example/media/products/mug-red-2/a1b2c3d4-mug.jpg"},
}
_LIMIT = OpenApiParameter("limit", int, description="How many products, 1 to 50 (default 10).")


class SimilarProductsView(APIView):
    """Published products that look like this one (its image), most alike first.

    For a storefront's "you may also like" row. Products are compared by the image embeddings
    the classifier stored when it classified them; ``score`` is their cosine similarity. The
    product itself is never listed, nor unpublished products. A product not classified yet has
    no embedding: the answer is then an empty list, not an error. Unknown and unpublished
    products are 404, as on ``/products/{id}/`` (staff with the "view product" permission may
    ask about unpublished ones).
    """

    permission_classes = [AllowAny]

    @extend_schema(
        summary="Similar products", parameters=[_LIMIT],
        responses={200: api.SimilarProductsSerializer,
                   400: _error("A bad limit.", "invalid", "Ensure this value is less than or "
                               "equal to 50."),
                   404: _error("No such published product.", "not_found", "No Product matches "
                               "the given query.")},
        examples=[OpenApiExample("Two similar products", response_only=True, value={
            "product": 7, "results": [_SIMILAR_RESULT_EXAMPLE,
                                      {**_SIMILAR_RESULT_EXAMPLE, "score": 0.81}]})],
    )
    def get(self, request, pk):
        from classifier import services as classifier_services

        query = api.SimilarQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        user = request.user
        staff = bool(user and user.is_staff and user.has_perm("catalog.view_product"))
        product = get_object_or_404(product_list_for_storefront(include_unpublished=staff), pk=pk)
        similar = classifier_services.similar_products(product=product,
                                                       limit=query.validated_data["limit"])
        body = {"product": product.pk, "results": similar}
        return Response(api.SimilarProductsSerializer(body, context={"request": request}).data)


class SearchByImageView(APIView):
    """Search by photo: the published products whose images look most like an uploaded photo.

    Send a multipart ``image`` (at most ``API_MAX_UPLOAD_BYTES``, else 413) and optionally
    ``?limit=``. The active model embeds the photo (the same model and preprocessing as
    classification) and the catalog's stored embeddings are searched by cosine similarity; no
    threshold is applied, so look at ``score`` (above ~0.9: the same item; below ~0.5:
    unrelated). A file that is not a usable image gives 400; 503 means no active model can
    embed photos (none active, or one without an embedding output). Anonymous callers share the
    classify endpoint's rate limit (429).
    """

    permission_classes = [AllowAny]
    throttle_classes = [ClassifyAnonThrottle]

    @extend_schema(
        summary="Search products by photo", parameters=[_LIMIT],
        request={"multipart/form-data": api.SearchByImageRequestSerializer},
        responses={200: api.SearchByImageResultSerializer,
                   400: _error("Not a usable image (or a bad limit).", "invalid_image",
                               "The image file is corrupt, truncated or not a supported image. "
                               "Re-export it as JPEG or PNG and upload it again."),
                   413: _error("Image over the size limit.", "upload_too_large",
                               "The image is 12,000,000 bytes; the limit is 10,485,760 bytes."),
                   429: _error("Too many anonymous requests.", "throttled",
                               "Request was throttled. Expected available in 42 seconds."),
                   503: _error("No active model can embed photos.", "no_active_model",
                               "No classifier model is active. Train a model or activate one.")},
        examples=[OpenApiExample("One match", response_only=True, value={
            "model_version": 3, "results": [_SIMILAR_RESULT_EXAMPLE]})],
    )
    def post(self, request):
        from classifier import services as classifier_services

        query = api.SimilarQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        payload = api.SearchByImageRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = image_upload_bytes(payload.validated_data["image"], check_content=False)
        # Anonymous photos decode to at most CLASSIFY_ANON_MAX_PIXELS, as on /classify/.
        pixels = None if request.user.is_authenticated else settings.CLASSIFY_ANON_MAX_PIXELS
        results, number = classifier_services.products_like_image(
            data=data, limit=query.validated_data["limit"], max_decode_pixels=pixels)
        body = {"model_version": number, "results": results}
        return Response(api.SearchByImageResultSerializer(body, context={"request": request}).data)


@extend_schema_view(
    list=extend_schema(summary="List classification jobs (staff)"),
    retrieve=extend_schema(summary="Get a classification job's progress (staff)"),
    create=extend_schema(summary="Classify the products matching a filter (staff)",
                         request=api.ClassificationJobCreateSerializer,
                         responses={202: api.ClassificationJobSerializer}),
)
class ClassificationJobViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """Background classification jobs: start one for a filter, then poll its progress."""

    lookup_value_regex = ID_PATTERN
    permission_classes = [StaffModelPermissions]
    serializer_class = api.ClassificationJobSerializer
    queryset = ClassificationJob.objects.select_related("model_version")
    filter_backends = []

    def create(self, request, *args, **kwargs):
        from classifier import services as classifier_services

        payload = api.ClassificationJobCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        products = product_list_for_classification(
            category_slug=data.get("category", ""), review_status=data.get("review_status", ""),
            ids=data.get("ids"), published_only=data.get("published_only", False),
        )
        job = classifier_services.classification_job_start(
            products=products, created_by=request.user, scope=payload.scope(),
        )
        return Response(api.ClassificationJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


@extend_schema_view(
    list=extend_schema(summary="List model versions with metrics (staff)"),
    retrieve=extend_schema(summary="Get a model version (staff)"),
)
class ModelVersionViewSet(viewsets.ReadOnlyModelViewSet):
    """Trained model versions, newest first, with their evaluation metrics."""

    lookup_value_regex = ID_PATTERN
    permission_classes = [StaffModelPermissions]
    queryset = ModelVersion.objects.all()
    filter_backends = []

    def get_serializer_class(self):
        if self.action == "list":
            return api.ModelVersionListSerializer
        return api.ModelVersionDetailSerializer

    @extend_schema(summary="Activate this model version (staff)", request=None,
                   responses={200: api.ModelVersionDetailSerializer})
    @action(detail=True, methods=["post"],
            permission_classes=[staff_with("classifier.change_modelversion")])
    def activate(self, request, pk=None):
        """Make this version the one classification uses (also how to roll back)."""
        from classifier.services import model_version_activate

        version = model_version_activate(model_version=self.get_object())
        return Response(api.ModelVersionDetailSerializer(version).data)

