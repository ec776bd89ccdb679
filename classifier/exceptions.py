"""Errors raised by the classifier core, each with a message a shop operator can act on."""


class ClassifierError(Exception):
    """Base error of the classifier app.

    ``message`` says what went wrong and how to fix it; it is safe to show to staff in the admin
    and to return from the API (it never contains image bytes or secrets).
    """

    default_message = "The image classifier failed."

    def __init__(self, message: str | None = None):
        self.message = message or self.default_message
        super().__init__(self.message)


class ImageError(ClassifierError):
    """An image cannot be used for classification or training (base of the image errors)."""

    default_message = "The image cannot be used. Upload a JPEG, PNG, GIF, WebP, BMP or TIFF file."


class ImageEmptyError(ImageError):
    """The image has no bytes at all (an empty upload or a missing/zero-length stored file)."""

    default_message = "The image file is empty (0 bytes). Upload the image again."


class ImageDecodeError(ImageError):
    """The bytes are corrupt, truncated, not an image, or an unsupported image type."""

    default_message = (
        "The image file is corrupt, truncated or not a supported image. Re-export it as JPEG or "
        "PNG and upload it again."
    )


class ImageTooLargeError(ImageError):
    """The image exceeds the byte or pixel limit (a decompression bomb is refused unread)."""

    default_message = "The image is too large. Resize it (e.g. to at most 4000 x 4000 pixels)."


class ModelLoadError(ClassifierError):
    """The stored model file is not a usable TFLite/LiteRT model."""

    default_message = (
        "The model file cannot be loaded. Re-export the model version or activate another one."
    )


class ModelContractError(ClassifierError):
    """The model's tensors do not match its stored input contract (size, dtype, label count)."""

    default_message = (
        "The model does not match its stored input contract. Re-export the model version from "
        "its training run, or activate another version."
    )


class NoActiveModelError(ClassifierError):
    """Classification was asked for while no model version is active."""

    default_message = (
        "No classifier model is active. Train a model or activate an existing model version in "
        "the admin."
    )


class ImageFetchError(ClassifierError):
    """A product's image could not be read from storage (the storage answered with an error)."""

    default_message = (
        "The product image could not be read from storage. Check that the storage service is "
        "reachable, then classify the product again."
    )


class ImageMissingError(ImageFetchError):
    """The product has no image, or its file is not found in storage."""

    default_message = (
        "The product image was not found in storage. Upload the image again, then classify the "
        "product again."
    )


class NoPredictionError(ClassifierError):
    """A prediction was to be accepted for a product that has none."""

    default_message = "The product has no predicted category to accept. Classify it first."


class PredictionLabelError(ClassifierError):
    """The model predicted a label that is not the slug of any category."""

    default_message = (
        "The model predicted a label that is not a category slug. Create the category or train "
        "a new model version on the current categories."
    )


class ReviewPermissionError(ClassifierError):
    """A user without the permission to change products tried to decide a category."""

    default_message = (
        "You may not change product categories. Ask an administrator for the \"Can change "
        "product\" permission."
    )


class SimilarityError(ClassifierError):
    """Base error of the similarity index (similar products, search by photo, duplicates)."""

    default_message = "The similarity index failed. Rebuild it from the stored embeddings."


class EmbeddingFormatError(SimilarityError):
    """An embedding is malformed: wrong shape, all zeros/NaN, or stored bytes that are corrupt."""

    default_message = (
        "An embedding is malformed. Classify the product's image again to store a fresh one."
    )


class BackboneMismatchError(SimilarityError):
    """A query embedding comes from another backbone (or width) than the index was built with."""

    default_message = (
        "The embedding comes from another backbone than the similarity index. Rebuild the index "
        "after changing the backbone, or backfill embeddings with the active model."
    )


class IndexFileError(SimilarityError):
    """The similarity index file is missing, truncated, or written by another format version."""

    default_message = (
        "The similarity index file is missing or unreadable. Rebuild the similarity index."
    )


class NoEmbeddingModelError(SimilarityError):
    """The active model outputs no image embedding (trained before embeddings, or imported)."""

    default_message = (
        "The active model outputs no image embedding. Train a model with a pretrained backbone "
        "(the default) and activate it to compare products by image."
    )


class DuplicatePermissionError(SimilarityError):
    """A user without the permission to change products tried to decide on a duplicate pair."""

    default_message = (
        "You may not change products. Ask an administrator for the \"Can change product\" "
        "permission."
    )
