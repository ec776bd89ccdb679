"""Errors raised by the catalog's storage layer, each with a message a shop operator can act on."""


class StorageError(OSError):
    """Base error of image/model storage (Appwrite or local files).

    An ``OSError`` so code that already guards file access (Django's file handling, the
    classifier's per-item error capture) treats it as the I/O failure it is. ``message`` is safe
    to show to staff: it names the file and bucket, never the API key.
    """

    default_message = (
        "Image storage failed. Check the APPWRITE_* settings and that Appwrite is reachable."
    )

    def __init__(self, message: str | None = None):
        self.message = message or self.default_message
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class ImageNotFoundError(StorageError, FileNotFoundError):
    """The named file is not in the bucket (deleted in the console, or never uploaded)."""

    def __init__(self, name: str, where: str):
        self.name = name
        self.where = where
        super().__init__(
            f"image {name} not found in {where}. Upload the image again on the product, or run "
            "`manage.py import_appwrite_bucket` if it was re-uploaded in the Appwrite console."
        )


class StorageUnavailableError(StorageError):
    """Appwrite kept failing (connection errors, timeouts, 429 or 5xx) after every retry."""

    def __init__(self, what: str, attempts: int, cause: str):
        super().__init__(
            f"Appwrite did not answer {what} after {attempts} attempts (last error: {cause}). "
            "Check that APPWRITE_ENDPOINT is reachable and Appwrite is healthy, then retry; "
            "raise APPWRITE_TIMEOUT or APPWRITE_MAX_RETRIES if it is only slow."
        )
