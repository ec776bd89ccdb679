"""API views for training runs: start one (permission-gated) and follow it."""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.response import Response

from catalog.api.permissions import StaffModelPermissions
from catalog.api.routing import ID_PATTERN
from training.api import serializers as api
from training.models import TrainingRun


@extend_schema_view(
    list=extend_schema(summary="List training runs (staff)"),
    retrieve=extend_schema(summary="Get a training run's progress (staff)"),
    create=extend_schema(summary="Start a training run (staff)",
                         request=api.TrainingRunCreateSerializer,
                         responses={202: api.TrainingRunSerializer}),
)
class TrainingRunViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """Training runs. Starting one needs staff with the "add training run" permission; the run
    trains in the background and, by its activation policy, may activate the new version."""

    lookup_value_regex = ID_PATTERN
    permission_classes = [StaffModelPermissions]
    serializer_class = api.TrainingRunSerializer
    queryset = TrainingRun.objects.select_related("model_version")
    filter_backends = []

    def create(self, request, *args, **kwargs):
        from training import services as training_services

        payload = api.TrainingRunCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        run = training_services.training_run_start(**payload.validated_data,
                                                   created_by=request.user)
        return Response(api.TrainingRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)
