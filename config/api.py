"""The API's one exception handler: domain errors become JSON 4xx/503 with an actionable message."""

import logging

from django.core.exceptions import SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from catalog.exceptions import ImageNotFoundError, StorageError
from classifier.exceptions import (
    ClassifierError,
    ImageError,
    ModelContractError,
    ModelLoadError,
    NoActiveModelError,
)
from training.exceptions import TrainingError

logger = logging.getLogger(__name__)

# Most specific first: the first matching class decides. Image problems are the caller's (400);
# a missing or broken active model, or unreachable storage, is the service's (503), and the
# message says how an operator fixes it.
_STATUS_BY_ERROR: list[tuple[type[Exception], int, str]] = [
    (NoActiveModelError, 503, "no_active_model"),
    (ModelLoadError, 503, "model_unavailable"),
    (ModelContractError, 503, "model_unavailable"),
    (ImageError, 400, "invalid_image"),
    (ClassifierError, 400, "classifier_error"),
    (ImageNotFoundError, 404, "image_not_found"),
    (StorageError, 503, "storage_unavailable"),
    (TrainingError, 400, "training_error"),
]


def _domain_response(exc: Exception) -> Response | None:
    for cls, code, slug in _STATUS_BY_ERROR:
        if isinstance(exc, cls):
            message = getattr(exc, "message", None) or str(exc) or cls.__doc__
            if code >= 500:
                logger.warning("API answered %s: %s", code, message)
            return Response({"detail": message, "code": slug}, status=code)
    return None


def exception_handler(exc, context):
    """DRF's handler, plus our errors, Django validation errors and suspicious file names.

    Everything a client can cause maps to a 4xx with ``{"detail": ..., "code": ...}``; only
    genuine bugs fall through to Django's 500.
    """
    response = drf_exception_handler(exc, context)
    if response is not None:
        return response
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        return Response(detail, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, SuspiciousOperation):
        return Response({"detail": "The request names a file or value that is not allowed.",
                         "code": "suspicious"}, status=status.HTTP_400_BAD_REQUEST)
    return _domain_response(exc)
