"""The one function that reads a product's image bytes for classification."""

from __future__ import annotations

import logging

from catalog import storage as _catalog_storage
from classifier.exceptions import ImageFetchError, ImageMissingError

logger = logging.getLogger(__name__)

# The storage helper's reader (Appwrite previews, retries) and errors once its branch is merged;
# until then, plain ``Storage.open`` with the standard library's errors.
_read_image_bytes = getattr(_catalog_storage, "read_image_bytes", None)
try:
    from catalog import exceptions as _catalog_exceptions
except ImportError:  # pragma: no cover - depends on which branches are merged
    _catalog_exceptions = None
_StorageNotFound = getattr(_catalog_exceptions, "ImageNotFoundError", FileNotFoundError)
_StorageFailure = getattr(_catalog_exceptions, "StorageError", OSError)


def fetch_image_bytes(product, *, for_size: int | None = None) -> bytes:
    """Read ``product.image`` from its storage, mapping every storage failure to one error type.

    Classification code calls only this, so the storage backend (local files, Appwrite with its
    server-side preview) can change without touching the batch loop. Thread-safe: it never
    opens the shared ``FieldFile`` (which keeps state), only the storage by name.

    Args:
        product: A ``catalog.Product``.
        for_size: The largest edge the caller needs; Appwrite may serve a preview this big
            instead of the original. Ignored by local storage.

    Returns:
        The encoded image bytes (possibly empty: decoding reports that clearly).

    Raises:
        ImageMissingError: The product has no image, or storage does not have the file.
        ImageFetchError: Storage failed (network, permissions, server error).
    """
    name = product.image.name if product.image else ""
    if not name:
        raise ImageMissingError(
            "The product has no image. Upload one, then classify the product again."
        )
    try:
        if _read_image_bytes is not None:
            return _read_image_bytes(product.image, for_size=for_size)
        with product.image.storage.open(name, "rb") as handle:
            return handle.read()
    except (_StorageNotFound, FileNotFoundError) as exc:
        raise ImageMissingError(
            f"The image file {name!r} was not found in storage. Upload the image again, then "
            "classify the product again."
        ) from exc
    except (_StorageFailure, OSError) as exc:
        raise ImageFetchError(
            f"The image file {name!r} could not be read from storage ({exc}). Check that the "
            "storage service is reachable, then classify the product again."
        ) from exc
