"""The API's one exception handler: domain errors become JSON 4xx/503 with an actionable message."""

import importlib
import logging

from django.core.exceptions import SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)

# Most specific first: the first matching class decides. Image problems are the caller's (400);
# a missing or broken active model, or unreachable storage, is the service's (503), and the
# message says how an operator fixes it.
_STATUS_BY_ERROR: list[tuple[str, int, str]] = [
    ("classifier.exceptions.NoActiveModelError", 503, "no_active_model"),
    ("classifier.exceptions.ModelLoadError", 503, "model_unavailable"),
    ("classifier.exceptions.ModelContractError", 503, "model_unavailable"),
    ("classifier.exceptions.NoEmbeddingModelError", 503, "no_embedding_model"),
    ("classifier.exceptions.ImageError", 400, "invalid_image"),
    ("classifier.exceptions.ClassifierError", 400, "classifier_error"),
    ("catalog.exceptions.ImageNotFoundError", 404, "image_not_found"),
    ("catalog.exceptions.StorageError", 503, "storage_unavailable"),
    ("training.exceptions.WeightsUnavailableError", 400, "weights_unavailable"),
    ("training.exceptions.TrainingError", 400, "training_error"),
]


def _error_classes() -> list[tuple[type, int, str]]:
    """Resolve the table lazily: ``catalog.exceptions`` may not exist in every deployment."""
    resolved = []
    for dotted, code, slug in _STATUS_BY_ERROR:
        module_name, _, name = dotted.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module_name), name, None)
        except ImportError:
            cls = None
        if cls is not None:
            resolved.append((cls, code, slug))
    return resolved


def _domain_response(exc: Exception) -> Response | None:
    for cls, code, slug in _error_classes():
        if isinstance(exc, cls):
            message = getattr(exc, "message", None) or str(exc) or cls.__doc__
            if code >= 500:
                logger.warning("API answered %s: %s", code, message)
            if slug == "weights_unavailable":
                return Response(_weights_body(exc), status=code)
            return Response({"detail": message, "code": slug}, status=code)
    return None


def _weights_body(exc) -> dict:
    """A weights error worded for an API client: the file, its checksum and the options to send."""
    return {"detail": exc.problem, "code": "weights_unavailable", "file": exc.path,
            "sha256": exc.sha256,
            "fix": "Reinstall the project's requirements on the training machine, or send "
                   '"options": {"weights": null} (random initialisation) or another '
                   '"architecture".'}


def _with_code(response: Response, exc: Exception) -> Response:
    """Give a DRF error body its machine-readable ``code`` (401, 403, 404, 405, 413, 429, ...).

    ``{"detail": ...}`` bodies get the exception's code (``not_authenticated``, ``throttled``);
    field errors keep their ``{"field": [...]}`` shape and get ``"code": "invalid"`` beside
    them; a bare list of messages becomes ``{"detail": [...], "code": "invalid"}``.
    """
    data = response.data
    if isinstance(data, list):
        response.data = {"detail": data, "code": "invalid"}
    elif isinstance(data, dict) and "code" not in data:
        detail = data.get("detail")
        code = getattr(detail, "code", None) or getattr(exc, "default_code", None)
        data["code"] = code if "detail" in data and code else "invalid"
    return response


def exception_handler(exc, context):
    """DRF's handler, plus our errors, Django validation errors and suspicious file names.

    Everything a client can cause maps to a 4xx with ``{"detail": ..., "code": ...}`` (field
    errors: ``{"field": [...], "code": "invalid"}``); only genuine bugs fall through to
    Django's 500.
    """
    response = drf_exception_handler(exc, context)
    if response is not None:
        return _with_code(response, exc)
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        return Response({**detail, "code": "invalid"}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, SuspiciousOperation):
        return Response({"detail": "The request names a file or value that is not allowed.",
                         "code": "suspicious"}, status=status.HTTP_400_BAD_REQUEST)
    return _domain_response(exc)
