"""Classification jobs: start one, run its chunks (in workers or in-process), finish it."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from catalog.models import Product
from classifier.exceptions import ClassifierError
from classifier.fetch import fetch_image_bytes
from classifier.inference import top_k
from classifier.models import ClassificationJob, JobStatus, PredictionRecord
from classifier.preprocessing import DRAFT_OVERSAMPLE, decode_image
from classifier.runtime import LoadedModel, active_model_key, get_active_model
from classifier.services.embeddings import product_embeddings_store
from classifier.services.results import ItemResult, results_apply
from classifier.services.similarity_index import similarity_index_refresh_on_commit

logger = logging.getLogger(__name__)

CHUNK_TASK = "classifier.tasks.classification_chunk_run"
CHUNK_HOOK = "classifier.tasks.classification_chunk_hook"

# Decoding threads per chunk: one per core (see classify_products).
DECODE_WORKERS = os.cpu_count() or 2

# A job whose last progress is older than the broker's retry plus this margin counts as stalled:
# the ORM broker re-delivers a dead worker's chunk after ``retry`` seconds, so it gets its chance
# first (no duplicate work), and since retry > timeout no chunk can still be running by then.
# The margin covers the re-delivered chunk's own fetch and inference before it writes.
STALL_MARGIN_SECONDS = 120

# A job resumed this often without finishing has a chunk that kills its worker (or the queue is
# broken): fail it with a reason instead of re-enqueueing forever.
MAX_RESUMES = 3

# Ids per existence query: under SQLite's smallest bound-parameter limit (999).
ID_BATCH = 900


def classification_job_start(
    *, products: QuerySet | Iterable[int], created_by=None, scope: str = "",
    enqueue: bool = True,
) -> ClassificationJob:
    """Create a job for these products and enqueue its chunks once the transaction commits.

    Products are passed to tasks as ids (task arguments are pickled), in chunks of
    ``CLASSIFIER["CHUNK_SIZE"]`` so several workers share a job.

    Args:
        products: A Product queryset, or product ids (Product objects are accepted too).
        created_by: The user who asked, if any.
        scope: What was asked for, shown in the admin ("admin: 12 selected", "auto: new image").
        enqueue: ``False`` creates the job only (``classification_job_run_sync`` runs it).

    Raises:
        NoActiveModelError: No model version is active.
    """
    version_id, _ = active_model_key()
    ids = _product_ids(products)
    chunks = _chunks(ids, settings.CLASSIFIER["CHUNK_SIZE"])
    with transaction.atomic():
        job = ClassificationJob.objects.create(
            model_version_id=version_id, scope=scope[:200], total=len(ids),
            chunk_count=len(chunks), created_by=created_by, product_ids=ids,
            last_progress_at=timezone.now(),
        )
        if not ids:
            _finish(job.pk)
            job.refresh_from_db()
        elif enqueue:
            transaction.on_commit(lambda: _enqueue_chunks(job.pk, chunks))
    logger.info("Classification job %s: %s products in %s chunks (%s)", job.pk, len(ids),
                len(chunks), scope or "no scope")
    return job


def classification_chunk_run(*, job_id: int, product_ids: list[int]) -> dict:
    """Classify one chunk of a job; idempotent, so a re-delivered chunk is harmless.

    Products already recorded for the job are skipped. Image bytes are fetched and decoded by a
    thread pool (I/O overlaps decoding, and Pillow decodes on both cores), then one batched
    inference runs and all results are written in one transaction holding the job row's lock,
    which re-checks what is recorded so counts stay exact even if two runs race.

    Returns:
        ``{"done": n, "failed": n, "skipped": n}`` for this run.

    Raises:
        NoActiveModelError, ModelLoadError, ModelContractError: The whole chunk cannot run; the
            task fails and its hook records the reason on the job.
    """
    started = time.perf_counter()
    ClassificationJob.objects.filter(pk=job_id, started_at__isnull=True).update(
        started_at=timezone.now()
    )
    # A chunk starting is progress too: a job waiting behind a long queue is not stalled.
    ClassificationJob.objects.filter(pk=job_id).update(last_progress_at=timezone.now())
    ClassificationJob.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING
    )
    recorded = _recorded(job_id, product_ids)
    products = list(Product.objects.filter(pk__in=product_ids).exclude(pk__in=recorded))
    if not products:
        _finish_if_complete(job_id)
        return {"done": 0, "failed": 0, "skipped": len(recorded)}
    model = get_active_model()
    results, timings = classify_products(products, model)
    with transaction.atomic():
        ClassificationJob.objects.select_for_update().filter(pk=job_id).first()
        recorded_now = _recorded(job_id, product_ids)
        results = [r for r in results if r.product_id not in recorded_now]
        done, failed = results_apply(results=results, model_version_id=model.version_id,
                                     job_id=job_id)
        vanished = len(set(product_ids) - recorded_now - {p.pk for p in products})
        ClassificationJob.objects.filter(pk=job_id).update(
            done_count=F("done_count") + done, failed_count=F("failed_count") + failed,
            total=F("total") - vanished, last_progress_at=timezone.now(),
        )
        product_embeddings_store(results=results, products=products,
                                 model_version_id=model.version_id)
        _finish_if_complete(job_id)
    logger.info("Job %s chunk: %s done, %s failed, %s skipped; fetch+decode %.2fs, infer "
                "%.2fs, total %.2fs", job_id, done, failed, len(recorded), timings["decode"],
                timings["infer"], time.perf_counter() - started)
    return {"done": done, "failed": failed, "skipped": len(recorded)}


def classify_products(
    products: list[Product], model: LoadedModel,
) -> tuple[list[ItemResult], dict[str, float]]:
    """Fetch, decode and classify products with one batched invoke; nothing is written.

    Returns:
        One ``ItemResult`` per product (in order) and per-phase timings in seconds.
    """
    size = model.contract.size
    start = time.perf_counter()
    # Two pools: fetching waits on storage (many threads hide latency), decoding is CPU work
    # (one thread per core; Pillow releases the GIL while decoding, more threads only fight
    # over it). Each decode waits for its own fetch, so decoding starts with the first bytes.
    # Fetched-but-undecoded files are bounded, so a chunk of 12 MP photos never holds all its
    # originals in memory at once.
    fetch_workers = settings.CLASSIFIER["FETCH_WORKERS"]
    read_ahead = _ReadAhead(limit=2 * fetch_workers + DECODE_WORKERS)
    with ThreadPoolExecutor(max_workers=fetch_workers) as fetchers, \
            ThreadPoolExecutor(max_workers=DECODE_WORKERS) as decoders:
        decoding = [
            decoders.submit(_decode, fetchers.submit(_fetch, product, size, read_ahead, index),
                            product, size, read_ahead)
            for index, product in enumerate(products)
        ]
        loaded = [future.result() for future in decoding]
    decoded = time.perf_counter()
    good = [i for i, item in enumerate(loaded) if not isinstance(item, ClassifierError)]
    batch = np.stack([loaded[i] for i in good]) if good else np.zeros((0, *size, 3), np.uint8)
    probs, embeddings = model.classifier.predict(batch)
    predictions = dict(zip(good, top_k(probs, model.labels, k=settings.CLASSIFIER["TOP_K"],
                                       embeddings=embeddings), strict=True))
    results = [
        ItemResult(product_id=p.pk, prediction=predictions[i]) if i in predictions
        else ItemResult(product_id=p.pk, error=loaded[i].message)
        for i, p in enumerate(products)
    ]
    timings = {"decode": decoded - start, "infer": time.perf_counter() - decoded}
    return results, timings


def classification_chunk_failed(*, job_id: int, error: str) -> None:
    """Record that a chunk task failed as a whole (no model, a crash): the job fails with why."""
    with transaction.atomic():
        job = ClassificationJob.objects.select_for_update().get(pk=job_id)
        job.error = (f"{job.error}\n{error}" if job.error else error)[-5000:]
        job.status = JobStatus.FAILED
        job.finished_at = job.finished_at or timezone.now()
        job.save(update_fields=["error", "status", "finished_at"])
    logger.error("Classification job %s: a chunk failed: %s", job_id, error)


def classification_job_run_sync(
    *, products: QuerySet | Iterable[int], created_by=None, scope: str = "",
    progress: Callable[[int], None] | None = None,
) -> ClassificationJob:
    """Create a job and run its chunks in this process (``classify_catalog --sync``, benchmarks).

    The same chunk code the workers run, so results are identical; ``progress`` receives the
    number of products each chunk processed.
    """
    ids = _product_ids(products)
    job = classification_job_start(products=ids, created_by=created_by, scope=scope,
                                   enqueue=False)
    for chunk in _chunks(ids, settings.CLASSIFIER["CHUNK_SIZE"]):
        outcome = classification_chunk_run(job_id=job.pk, product_ids=chunk)
        if progress:
            progress(outcome["done"] + outcome["failed"] + outcome["skipped"])
    job.refresh_from_db()
    return job


def classification_jobs_resume_stalled(*, stalled_after: float | None = None) -> int:
    """Re-enqueue the unrecorded products of unfinished jobs that stopped making progress.

    django-q2's Redis broker never re-delivers a task whose worker was killed, so without this
    the job would stay "running" forever; the scheduled task runs it every few minutes on any
    broker. Chunk tasks skip products already recorded for the job, so a chunk that is also
    re-delivered late (ORM broker) or still queued only costs a no-op run.

    Args:
        stalled_after: Seconds without progress before a job counts as stalled; default the
            broker's retry plus ``STALL_MARGIN_SECONDS``.

    Returns:
        The number of chunk tasks enqueued (on commit).
    """
    if stalled_after is None:
        stalled_after = settings.Q_CLUSTER["retry"] + STALL_MARGIN_SECONDS
    cutoff = timezone.now() - timedelta(seconds=stalled_after)
    stalled = ClassificationJob.objects.filter(
        finished_at__isnull=True, status__in=[JobStatus.QUEUED, JobStatus.RUNNING],
        last_progress_at__lte=cutoff,
    ).values_list("pk", flat=True)
    enqueued = 0
    for job_id in list(stalled):
        enqueued += _job_resume(job_id, cutoff)
    if enqueued:
        logger.warning("Resumed stalled classification jobs: %s chunks enqueued", enqueued)
    return enqueued


def _job_resume(job_id: int, cutoff) -> int:
    """Enqueue chunks for one stalled job's unrecorded products; the number enqueued."""
    with transaction.atomic():
        job = (ClassificationJob.objects.select_for_update()
               .filter(pk=job_id, finished_at__isnull=True, last_progress_at__lte=cutoff).first())
        if job is None:  # progressed or finished meanwhile
            return 0
        recorded = set(PredictionRecord.objects.filter(job_id=job_id)
                       .values_list("product_id", flat=True))
        missing = [pk for pk in job.product_ids if pk not in recorded]
        if not missing:  # every product recorded but the counts never closed the job
            _finish_if_complete(job_id)
            return 0
        if job.resume_count >= MAX_RESUMES:
            classification_chunk_failed(
                job_id=job_id, error=f"Stalled: {len(missing)} products still unclassified "
                f"after {job.resume_count} resumes (a chunk keeps killing its worker?)")
            return 0
        chunks = _chunks(missing, settings.CLASSIFIER["CHUNK_SIZE"])
        # Progress stamp now: the next scheduled check waits a full window for these chunks.
        ClassificationJob.objects.filter(pk=job_id).update(
            last_progress_at=timezone.now(), resume_count=F("resume_count") + 1,
        )
        transaction.on_commit(lambda: _enqueue_chunks(job_id, chunks, resumed=True))
    logger.warning("Classification job %s stalled: re-enqueued %s products in %s chunks",
                   job_id, len(missing), len(chunks))
    return len(chunks)


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
        return fetch_image_bytes(product, for_size=int(DRAFT_OVERSAMPLE * max(size)))
    except ClassifierError as exc:
        _log_item_failure(product, None, exc)
        return exc


def _decode(fetched: Future, product: Product, size: tuple[int, int],
            read_ahead: _ReadAhead) -> np.ndarray | ClassifierError:
    """One product's pixels, or the error that product hit (logged with context)."""
    try:
        data = fetched.result()
        if isinstance(data, ClassifierError):
            return data
        return decode_image(data, size=size)
    except ClassifierError as exc:
        _log_item_failure(product, len(data), exc)
        return exc
    finally:
        read_ahead.done()


def _log_item_failure(product: Product, nbytes: int | None, exc: ClassifierError) -> None:
    logger.warning("Product %s (sku %s, image %r, %s bytes) not classified: %s", product.pk,
                   product.sku, product.image.name, "?" if nbytes is None else nbytes,
                   exc.message)


def _recorded(job_id: int, product_ids: list[int]) -> set[int]:
    return set(PredictionRecord.objects.filter(job_id=job_id, product_id__in=product_ids)
               .values_list("product_id", flat=True))


def _finish_if_complete(job_id: int) -> None:
    job = ClassificationJob.objects.get(pk=job_id)
    if job.processed >= job.total and job.finished_at is None:
        _finish(job_id)


def _finish(job_id: int) -> None:
    job = ClassificationJob.objects.get(pk=job_id)
    failed_all = job.total > 0 and job.done_count == 0
    ClassificationJob.objects.filter(pk=job_id, finished_at__isnull=True).update(
        status=JobStatus.FAILED if failed_all else JobStatus.SUCCEEDED,
        finished_at=timezone.now(),
    )
    similarity_index_refresh_on_commit()


def _enqueue_chunks(job_id: int, chunks: list[list[int]], *, resumed: bool = False) -> None:
    from django_q.tasks import async_task

    prefix = f"job-{job_id}-resumed" if resumed else f"job-{job_id}"
    for number, chunk in enumerate(chunks, 1):
        async_task(CHUNK_TASK, job_id, chunk, group=f"job-{job_id}", hook=CHUNK_HOOK,
                   task_name=f"{prefix}-chunk-{number}")


def _product_ids(products) -> list[int]:
    """Existing product ids, sorted and unique (ids are checked in batches: SQLite caps
    the parameters of one query)."""
    if isinstance(products, QuerySet):
        return sorted(set(products.order_by().values_list("pk", flat=True)))
    wanted = sorted({int(getattr(p, "pk", p)) for p in products})
    found: set[int] = set()
    for batch in _chunks(wanted, ID_BATCH):
        found.update(Product.objects.filter(pk__in=batch).values_list("pk", flat=True))
    return sorted(found)


def _chunks(ids: list[int], size: int) -> list[list[int]]:
    size = max(1, size)
    return [ids[start:start + size] for start in range(0, len(ids), size)]

