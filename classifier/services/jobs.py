"""Classification jobs: start one, run its chunks (in workers or in-process), finish it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from catalog.models import Product
from classifier.exceptions import ClassifierError, ModelContractError, NoActiveModelError
from classifier.models import ClassificationJob, JobStatus, PredictionRecord
from classifier.runtime import LoadedModel, active_model_key, get_active_model
from classifier.services.classify import classify_products, exception_text
from classifier.services.embeddings import product_embeddings_store
from classifier.services.results import ItemResult, results_apply
from classifier.services.similarity_index import similarity_index_refresh_on_commit

logger = logging.getLogger(__name__)

CHUNK_TASK = "classifier.tasks.classification_chunk_run"
CHUNK_HOOK = "classifier.tasks.classification_chunk_hook"

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

# A chunk that cannot load the model (storage down, a garbled download failing its checksum)
# tries this often, waiting base * 2**attempt between tries (2 s, 4 s: a blip passes, and the
# whole wait stays far below the task timeout), then leaves its products to the stalled-job
# resume, which retries them later and fails them with the reason after MAX_RESUMES.
MODEL_LOAD_ATTEMPTS = 3
MODEL_LOAD_BACKOFF_SECONDS = 2.0
# Errors no retry can fix: the products of the chunk are failed at once, with the message.
PERMANENT_MODEL_ERRORS = (NoActiveModelError, ModelContractError)


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

    Whatever goes wrong with one product (fetch, decode, prediction) fails that product with the
    reason. A model that cannot be loaded is retried (``MODEL_LOAD_ATTEMPTS``); if it still
    fails, the reason is noted on the job and its products are left for the stalled-job resume
    (``classification_jobs_resume_stalled``), which fails them with the reason in the end. A
    model that can never work here (none active, a broken contract) fails the products at once.

    Returns:
        ``{"done": n, "failed": n, "skipped": n}`` for this run, plus ``"deferred": n`` when
        the model could not be loaded.
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
        # Recorded earlier, or deleted since the job started: the latter leave the job's total.
        _record(job_id, product_ids, [], [], model_version_id=None)
        return {"done": 0, "failed": 0, "skipped": len(recorded)}
    try:
        model = _chunk_model(job_id)
    except PERMANENT_MODEL_ERRORS as exc:
        results = [ItemResult(product_id=p.pk, error=exc.message) for p in products]
        done, failed = _record(job_id, product_ids, products, results, model_version_id=None)
        return {"done": done, "failed": failed, "skipped": len(recorded)}
    if model is None:
        return {"done": 0, "failed": 0, "skipped": len(recorded), "deferred": len(products)}
    results, timings = classify_products(products, model)
    done, failed = _record(job_id, product_ids, products, results,
                           model_version_id=model.version_id)
    logger.info("Job %s chunk: %s done, %s failed, %s skipped; fetch+decode %.2fs, infer "
                "%.2fs, total %.2fs", job_id, done, failed, len(recorded), timings["decode"],
                timings["infer"], time.perf_counter() - started)
    return {"done": done, "failed": failed, "skipped": len(recorded)}


def _record(job_id: int, product_ids: list[int], products: list[Product],
            results: list[ItemResult], *, model_version_id: int | None) -> tuple[int, int]:
    """Write a chunk's results under the job lock, skipping what a racing run recorded first."""
    with transaction.atomic():
        job = ClassificationJob.objects.select_for_update().filter(pk=job_id).first()
        recorded_now = _recorded(job_id, product_ids)
        results = [r for r in results if r.product_id not in recorded_now]
        done, failed = results_apply(results=results, job_id=job_id,
                                     model_version_id=model_version_id or job.model_version_id)
        # Products deleted since the job started leave it, once: a re-delivered or resumed
        # chunk finds them gone from the job's list and counts nothing twice.
        gone = set(product_ids) - recorded_now - {p.pk for p in products}
        left = {}
        if gone:
            listed = [pk for pk in job.product_ids if pk not in gone]
            left = {"product_ids": listed, "total": F("total") - (len(job.product_ids)
                                                                 - len(listed))}
        ClassificationJob.objects.filter(pk=job_id).update(
            done_count=F("done_count") + done, failed_count=F("failed_count") + failed,
            last_progress_at=timezone.now(), **left,
        )
        if model_version_id is not None:
            product_embeddings_store(results=results, products=products,
                                     model_version_id=model_version_id)
        _finish_if_complete(job_id)
    return done, failed


def _chunk_model(job_id: int) -> LoadedModel | None:
    """The active model, tried ``MODEL_LOAD_ATTEMPTS`` times; ``None`` (noted on the job) when
    it still cannot be loaded.

    Raises:
        NoActiveModelError, ModelContractError: no retry can help.
    """
    for attempt in range(MODEL_LOAD_ATTEMPTS):
        try:
            return get_active_model()
        except PERMANENT_MODEL_ERRORS:
            raise
        except Exception as exc:  # noqa: BLE001 - storage and LiteRT raise many types
            reason = exc.message if isinstance(exc, ClassifierError) else exception_text(exc)
            if attempt + 1 < MODEL_LOAD_ATTEMPTS:
                delay = MODEL_LOAD_BACKOFF_SECONDS * 2**attempt
                logger.warning("Job %s: loading the model failed (%s); retry in %.0fs", job_id,
                               reason, delay)
                time.sleep(delay)
    classification_job_note(job_id=job_id, error=(
        f"A chunk could not load the model after {MODEL_LOAD_ATTEMPTS} attempts: {reason} "
        "Its products will be retried by the stalled-job resume."))
    return None


def classification_job_note(*, job_id: int, error: str) -> None:
    """Note why a chunk could not run on its job (shown in the admin); the job goes on.

    Used when a chunk task fails as a whole (its hook) or defers its products: the stalled-job
    resume retries the products later and, after ``MAX_RESUMES``, fails them with this reason.
    """
    with transaction.atomic():
        job = ClassificationJob.objects.select_for_update().get(pk=job_id)
        job.error = (f"{job.error}\n{error}" if job.error else error)[-5000:]
        job.save(update_fields=["error"])
    logger.error("Classification job %s: a chunk could not run: %s", job_id, error)


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
    )
    # A job none of whose chunks has started is waiting, not stalled, while the workers are
    # busy with others (an activation re-classifying a big catalog takes hours): resuming it
    # would queue duplicates, and giving up would fail products nothing went wrong with.
    if ClassificationJob.objects.filter(started_at__isnull=False,
                                        last_progress_at__gt=cutoff).exists():
        stalled = stalled.exclude(started_at__isnull=True)
    stalled = stalled.values_list("pk", flat=True)
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
            _job_give_up(job, missing)
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


def _job_give_up(job: ClassificationJob, missing: list[int]) -> None:
    """Fail a job that stalled ``MAX_RESUMES`` times: each unrecorded product gets a failed
    record with the last reason the job noted, so none is left without one."""
    last = job.error.strip().splitlines()[-1] if job.error.strip() else "no chunk reported why"
    reason = (f"Not classified: the job stalled after {job.resume_count} resumes. Last "
              f"reason: {last}")
    products = list(Product.objects.filter(pk__in=missing))
    _record(job.pk, missing, products, [ItemResult(product_id=p.pk, error=reason)
                                        for p in products], model_version_id=None)
    ClassificationJob.objects.filter(pk=job.pk).update(
        status=JobStatus.FAILED, finished_at=timezone.now(),
        error=(f"{job.error}\nStalled: {len(missing)} products failed after "
               f"{job.resume_count} resumes.").strip()[-5000:])
    logger.error("Classification job %s failed: %s products still unclassified after %s "
                 "resumes", job.pk, len(missing), job.resume_count)


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
    # A batch refreshes the similarity index at once; the one-image jobs that uploads and
    # imports start (thousands in an import) leave it to the 5-minute schedule, rather than
    # each queueing a refresh that checks the whole catalog's embeddings.
    if job.total > 1:
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

