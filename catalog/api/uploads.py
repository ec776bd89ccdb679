"""Image uploads and stored images for the API: size limit (413) and content check (400)."""

import posixpath

from django.conf import settings
from django.core.files.storage import default_storage
from rest_framework import serializers, status
from rest_framework.exceptions import APIException
from rest_framework.parsers import MultiPartParser

from classifier.exceptions import ImageError
from classifier.preprocessing import decode_image

# Room for the multipart boundaries, headers and small form fields around the image itself, so
# a request holding an image just under the limit is not refused by the early length check.
MULTIPART_OVERHEAD_BYTES = 64 * 1024

# Uploads are test-decoded to this size: a full decode catches truncated and corrupt files,
# while JPEG draft decoding keeps a large photo cheap to check.
CHECK_DECODE_SIZE = (16, 16)

# Storage names the classify endpoint may read: product images only, never model files.
READABLE_STORAGE_PREFIX = "products/"


class UploadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "upload_too_large"
    default_detail = "The upload is too large."


def max_upload_bytes() -> int:
    return settings.API_MAX_UPLOAD_BYTES


def _too_large(size: int) -> UploadTooLarge:
    limit = max_upload_bytes()
    return UploadTooLarge(
        f"The image is {size:,} bytes; the limit is {limit:,} bytes "
        f"({limit / 1024 / 1024:.0f} MiB). Save it smaller (e.g. JPEG, at most 4000 x 4000 "
        "pixels) and upload it again."
    )


class LimitedMultiPartParser(MultiPartParser):
    """Multipart parsing that refuses an oversized body from its Content-Length, unread."""

    def parse(self, stream, media_type=None, parser_context=None):
        request = parser_context["request"]
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > max_upload_bytes() + MULTIPART_OVERHEAD_BYTES:
            raise _too_large(length)
        return super().parse(stream, media_type, parser_context)


def _check_image_bytes(data: bytes) -> None:
    try:
        decode_image(data, size=CHECK_DECODE_SIZE, max_bytes=max_upload_bytes())
    except ImageError as exc:
        raise serializers.ValidationError(exc.message, code="invalid_image") from exc


def image_upload_bytes(upload, *, check_content: bool = True) -> bytes:
    """Check an uploaded file is a usable image under the size limit; return its bytes.

    The file is left rewound so it can still be saved to storage. ``check_content=False`` skips
    the test decode for callers that decode anyway (classification reports bad images itself).

    Raises:
        UploadTooLarge: Over ``API_MAX_UPLOAD_BYTES`` (413).
        serializers.ValidationError: Empty, not an image, corrupt, or too many pixels (400).
    """
    if upload.size is not None and upload.size > max_upload_bytes():
        raise _too_large(upload.size)
    upload.seek(0)
    data = upload.read()
    upload.seek(0)
    if check_content:
        _check_image_bytes(data)
    return data


def stored_image_bytes(name: str) -> bytes:
    """Read a product image from the configured storage by its name, with the size limit.

    The content is not test-decoded: the classifier reports a bad image itself.

    Raises:
        serializers.ValidationError: The name is not a product image path, or it is missing.
        UploadTooLarge: The stored file is over the limit.
    """
    clean = posixpath.normpath(name.strip())
    if not clean.startswith(READABLE_STORAGE_PREFIX) or ".." in clean.split("/"):
        raise serializers.ValidationError(
            {"image_name": f"Give the storage name of a product image ('{READABLE_STORAGE_PREFIX}"
                           "...'), as returned in a product's image_name."}
        )
    if not default_storage.exists(clean):
        raise serializers.ValidationError(
            {"image_name": f"No stored file is named {clean!r}. Check the product's image_name."}
        )
    size = default_storage.size(clean)
    if size > max_upload_bytes():
        raise _too_large(size)
    with default_storage.open(clean, "rb") as handle:
        return handle.read()
