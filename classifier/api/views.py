"""API views: classify an image now, classification jobs, model versions."""

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from catalog.api.permissions import StaffModelPermissions, staff_with
from catalog.api.routing import ID_PATTERN
from catalog.api.uploads import image_upload_bytes, stored_image_bytes
from catalog.selectors import product_list_for_classification
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

