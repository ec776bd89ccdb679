"""Classifying a batch of products in memory: fetch, decode and predict, one result each.

Nothing is written here (``classifier.services.jobs`` records the results); whatever goes wrong
with one product becomes that product's error, so a chunk always has a result per product.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
from django.conf import settings

from catalog.models import Product
from classifier.exceptions import ClassifierError, ImageDecodeError, ImageFetchError
from classifier.fetch import fetch_image_bytes
from classifier.inference import Prediction, top_k
from classifier.preprocessing import decode_image, source_size
from classifier.runtime import LoadedModel
from classifier.services.results import ItemResult

logger = logging.getLogger(__name__)

# Decoding threads per chunk: one per core (see classify_products).
DECODE_WORKERS = os.cpu_count() or 2

def classify_products(
    products: list[Product], model: LoadedModel,
) -> tuple[list[ItemResult], dict[str, float]]:
    """Fetch, decode and classify products, inferring in batches while later images decode;
    nothing is written.

    Returns:
        One ``ItemResult`` per product (in order) and per-phase timings in seconds: time spent
        waiting for decoded images and time spent in inference.
    """
    size = model.contract.size
    # Two pools: fetching waits on storage (many threads hide latency), decoding is CPU work
    # (one thread per core; Pillow releases the GIL while decoding, more threads only fight
    # over it). Each decode waits for its own fetch, so decoding starts with the first bytes.
    # Fetched-but-undecoded files are bounded, so a chunk of 12 MP photos never holds all its
    # originals in memory at once. Inference runs one invoke batch at a time, in order, as soon
    # as that batch is decoded: LiteRT releases the GIL, so the next images decode meanwhile.
    fetch_workers = settings.CLASSIFIER["FETCH_WORKERS"]
    read_ahead = _ReadAhead(limit=2 * fetch_workers + DECODE_WORKERS)
    batch = model.classifier.max_batch
    outcomes: list[Prediction | ClassifierError] = []
    timings = {"decode": 0.0, "infer": 0.0}
    with ThreadPoolExecutor(max_workers=fetch_workers) as fetchers, \
            ThreadPoolExecutor(max_workers=DECODE_WORKERS) as decoders:
        decoding = [
            decoders.submit(_decode, fetchers.submit(_fetch, product, size, read_ahead, index),
                            product, size, read_ahead)
            for index, product in enumerate(products)
        ]
        for first in range(0, len(decoding), batch):
            waited = time.perf_counter()
            loaded = [future.result() for future in decoding[first:first + batch]]
            inferred = time.perf_counter()
            good = [i for i, item in enumerate(loaded) if not isinstance(item, ClassifierError)]
            predicted = dict(zip(good, _predict(model, [loaded[i] for i in good]), strict=True))
            outcomes += [predicted.get(i, item) for i, item in enumerate(loaded)]
            timings["decode"] += inferred - waited
            timings["infer"] += time.perf_counter() - inferred
    results = [
        ItemResult(product_id=p.pk, prediction=outcome) if isinstance(outcome, Prediction)
        else ItemResult(product_id=p.pk, error=outcome.message)
        for p, outcome in zip(products, outcomes, strict=True)
    ]
    return results, timings


def _predict(model: LoadedModel, images: list[np.ndarray]) -> list[Prediction | ClassifierError]:
    """Top-k per image in one batched invoke; if the batch fails, image by image, so only the
    image that breaks the interpreter fails."""
    if not images:
        return []
    try:
        probs, embeddings = model.classifier.predict(np.stack(images))
        return top_k(probs, model.labels, k=settings.CLASSIFIER["TOP_K"], embeddings=embeddings)
    except Exception as exc:  # noqa: BLE001 - LiteRT raises RuntimeError, ValueError, ...
        if len(images) == 1:
            return [ClassifierError(
                f"The model could not classify this image ({exception_text(exc)}). Classify "
                "the product again; if it keeps failing, re-export the model version.")]
        return [result for image in images for result in _predict(model, [image])]


class _ReadAhead:
    """Lets fetch number ``i`` start only once ``i - limit`` images are decoded.

    A ticket gate rather than a semaphore: every image below the lowest undecoded one is
    decoded, so that image's fetch can always start and the pipeline cannot deadlock, whatever
    order waiting threads wake in.
    """

    def __init__(self, *, limit: int):
        self._limit = limit
        self._decoded = 0
        self._changed = threading.Condition()

    def wait_turn(self, index: int) -> None:
        with self._changed:
            self._changed.wait_for(lambda: index < self._decoded + self._limit)

    def done(self) -> None:
        with self._changed:
            self._decoded += 1
            self._changed.notify_all()


def _fetch(product: Product, size: tuple[int, int], read_ahead: _ReadAhead, index: int
           ) -> bytes | ClassifierError:
    read_ahead.wait_turn(index)
    try:
        return fetch_image_bytes(product, preview_width=source_size(size)[1])
    except ClassifierError as exc:
        _log_item_failure(product, None, exc)
        return exc
    except Exception as exc:  # noqa: BLE001 - one product's bad luck never sinks the chunk
        error = ImageFetchError(f"Reading the image failed unexpectedly ({exception_text(exc)}). "
                                "Classify the product again.")
        _log_item_failure(product, None, error)
        return error


def _decode(fetched: Future, product: Product, size: tuple[int, int],
            read_ahead: _ReadAhead) -> np.ndarray | ClassifierError:
    """One product's pixels, or the error that product hit (logged with context)."""
    data = None
    try:
        data = fetched.result()
        if isinstance(data, ClassifierError):
            return data
        return decode_image(data, size=size)
    except ClassifierError as exc:
        _log_item_failure(product, len(data), exc)
        return exc
    except Exception as exc:  # noqa: BLE001 - Pillow and NumPy raise beyond their documented set
        error = ImageDecodeError(f"Decoding the image failed unexpectedly ({exception_text(exc)}). "
                                 "Re-export the image and upload it again.")
        _log_item_failure(product, len(data) if isinstance(data, bytes) else None, error)
        return error
    finally:
        read_ahead.done()


def exception_text(exc: BaseException) -> str:
    """``Type: message``, for reasons that name an unexpected exception."""
    return f"{type(exc).__name__}: {exc}"


def _log_item_failure(product: Product, nbytes: int | None, exc: ClassifierError) -> None:
    logger.warning("Product %s (sku %s, image %r, %s bytes) not classified: %s", product.pk,
                   product.sku, product.image.name, "?" if nbytes is None else nbytes,
                   exc.message)
