"""django-q2 tasks for classification (thin wrappers over services, referred to by dotted path)."""

from classifier import services


def classification_chunk_run(job_id: int, product_ids: list[int]) -> dict:
    return services.classification_chunk_run(job_id=job_id, product_ids=product_ids)


def classification_chunk_hook(task) -> None:
    """After each chunk task: a chunk that failed as a whole fails its job with the reason."""
    if not task.success:
        services.classification_chunk_failed(job_id=task.args[0], error=str(task.result))


def classification_jobs_resume_stalled() -> int:
    """Scheduled (see migration 0003): re-enqueue chunks lost with a killed worker."""
    return services.classification_jobs_resume_stalled()


def similarity_index_refresh(min_age_seconds: float = 0, force: bool = False) -> str:
    """Scheduled (see migration 0006) and enqueued after classification jobs: rebuild the
    similarity index and duplicate candidates when the stored embeddings changed."""
    return services.similarity_index_refresh(force=force, min_age_seconds=min_age_seconds).status
