"""Synchronous prediction for the API, and auto-classification of new or changed images."""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import transaction

from classifier.exceptions import ClassifierError, NoActiveModelError
from classifier.inference import Prediction
from classifier.runtime import get_active_model

logger = logging.getLogger(__name__)


def predict_images(images: list[bytes], *, max_decode_pixels: int | None = None
                   ) -> list[Prediction | ClassifierError]:
    """Classify encoded images with the active model, in one batched invoke.

    For the API's "classify these images" endpoint: nothing is stored. A bad image yields its
    error in its slot; the others are classified. ``max_decode_pixels`` bounds what one image
    may decode to (``decode_image``), so an untrusted caller cannot make one request cost
    hundreds of MB.

    Raises:
        NoActiveModelError: No model version is active.
        ModelLoadError, ModelContractError: The active model cannot be used.
    """
    model = get_active_model()
    return model.classifier.predict_bytes(list(images), k=settings.CLASSIFIER["TOP_K"],
                                          max_decode_pixels=max_decode_pixels)


def product_classify_on_commit(*, product) -> None:
    """Classify a product's new or changed image once the current transaction commits.

    Auto-classification's service, called from one place: the Product ``post_save`` receiver
    (``classifier/signals.py``), so admin, API, webhook and import saves all get it and none
    asks twice. Does nothing when ``CLASSIFIER["AUTO_CLASSIFY"]`` is off or the product has no
    image; with no active model it logs and skips.
    """
    if not settings.CLASSIFIER["AUTO_CLASSIFY"] or not product.image:
        return
    product_id, sku = product.pk, product.sku
    # Robust: the product is committed by now; a broker that cannot take the job (Redis down,
    # database locked) is logged and must not fail the save that stored the product and its file.
    transaction.on_commit(lambda: _start_auto_job(product_id, sku), robust=True)


# Whether this process has said "no model is active" yet: an import of a new catalog saves
# hundreds of products before any model exists, and one line says it as well as hundreds.
_said_no_model = threading.Event()


def _start_auto_job(product_id: int, sku: str) -> None:
    from classifier.services.jobs import classification_job_start

    try:
        classification_job_start(products=[product_id], scope=f"auto: new image of {sku}")
    except NoActiveModelError:
        if not _said_no_model.is_set():
            _said_no_model.set()
            logger.info("New product images are not classified while no model is active "
                        "(first: product %s, %s); train and activate a model, then classify "
                        "the unclassified products. Further products are logged at DEBUG.",
                        product_id, sku)
        else:
            logger.debug("Product %s (%s): new image not classified, no model is active yet",
                         product_id, sku)
    else:
        _said_no_model.clear()  # a model is active again: a later gap is news
