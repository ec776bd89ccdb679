"""The one function that reads a product's image bytes for classification."""

from __future__ import annotations

import logging

from catalog.exceptions import ImageNotFoundError
from catalog.storage import read_image_bytes
from classifier.exceptions import ImageFetchError, ImageMissingError

logger = logging.getLogger(__name__)


def fetch_image_bytes(product, *, preview_width: int | None = None) -> bytes:
    """Read ``product.image`` from its storage, mapping every failure to one error type.

    Classification code calls only this, so the storage backend (local files, Appwrite with its
    server-side preview) can change without touching the batch loop. Thread-safe: it never
    opens the shared ``FieldFile`` (which keeps state), only the storage by name.

    Args:
        product: A ``catalog.Product``.
        preview_width: Width of the server-side preview Appwrite may serve instead of the
            original (``classifier.preprocessing.source_side``). Ignored by local storage.

    Returns:
        The encoded image bytes (possibly empty: decoding reports that clearly).

    Raises:
        ImageMissingError: The product has no image, or storage does not have the file.
        ImageFetchError: Anything else went wrong reading it (network, permissions, a server
            error, an answer the storage client could not read): the message says what.
    """
    name = product.image.name if product.image else ""
    if not name:
        raise ImageMissingError(
            "The product has no image. Upload one, then classify the product again."
        )
    try:
        return read_image_bytes(product.image, preview_width=preview_width)
    except ImageNotFoundError as exc:
        raise ImageMissingError(
            f"The image file {name!r} was not found in storage. Upload the image again, then "
            "classify the product again."
        ) from exc
    except Exception as exc:  # noqa: BLE001 - storage code raises more than its documented types
        cause = str(exc) if isinstance(exc, OSError) else f"{type(exc).__name__}: {exc}"
        raise ImageFetchError(
            f"The image file {name!r} could not be read from storage ({cause}). Check that the "
            "storage service is reachable, then classify the product again."
        ) from exc
