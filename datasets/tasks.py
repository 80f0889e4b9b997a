"""Celery tasks of the datasets app (builds and curation tasks: queue ``embeddings``; the sweeper: ``default``;
see ``CELERY_TASK_ROUTES``). Every worker also sweeps on a timer (``cvsa_ml.celery``).

Tasks take ids only and call a service; the ``DatasetTask`` row is the source of truth
for status and progress (the Celery result just echoes it).
"""

from __future__ import annotations

from celery import shared_task

from datasets import services

# Transient database trouble (connection lost, server restarting): retry with backoff.
# Everything else ends the build as "failed" inside the service, with its message.
DB_RETRY_DELAYS_SECONDS = (10, 60, 300)


def _run_job(celery_task, run, task_id: str, claim_attempt: int | None):
    """Run one data job through ``run`` (a service taking the task id and the claim
    arguments): a redelivered message (its worker child was killed: acks late + reject on
    worker lost) waits a moment for the dead attempt's lock, then takes the job over;
    transient database errors retry with backoff, carrying the attempt they claimed."""
    redelivered = bool((celery_task.request.delivery_info or {}).get("redelivered"))
    try:
        return run(
            task_id,
            celery_task_id=celery_task.request.id,
            claim_attempt=claim_attempt,
            lock_wait_seconds=services.REDELIVERY_LOCK_WAIT_SECONDS if redelivered else 0.0,
        )
    except services.TRANSIENT_DATABASE_ERRORS as error:
        retries = celery_task.request.retries
        if retries >= celery_task.max_retries:
            services.dataset_task_fail(task_id, f"database unavailable after {retries} retries: {error}; resume the task")
            raise
        delay = DB_RETRY_DELAYS_SECONDS[min(retries, len(DB_RETRY_DELAYS_SECONDS) - 1)]
        retry_kwargs = {"task_id": task_id, "claim_attempt": getattr(error, "claim_attempt", None)}
        raise celery_task.retry(exc=error, countdown=delay, kwargs=retry_kwargs) from error


@shared_task(bind=True, acks_late=True, max_retries=len(DB_RETRY_DELAYS_SECONDS))
def build_dataset_version(self, task_id: str, claim_attempt: int | None = None) -> dict:
    """Build the dataset version of ``DatasetTask`` ``task_id`` (idempotent)."""
    task = _run_job(self, lambda task_id, **claim: services.dataset_version_build(task_id=task_id, **claim),
                    task_id, claim_attempt)
    return {
        "task_id": str(task.pk),
        "status": task.status,
        "dataset_id": str(task.dataset_version_id) if task.dataset_version_id else None,
        "error": task.error or None,
    }


@shared_task(bind=True, acks_late=True, max_retries=len(DB_RETRY_DELAYS_SECONDS))
def run_curation_task(self, task_id: str, claim_attempt: int | None = None) -> dict:
    """Run the curation task ``task_id`` (cleaning, deduplication, augmentation, import;
    idempotent): the same delivery, takeover and retry rules as builds."""
    task = _run_job(self, services.curation_task_run, task_id, claim_attempt)
    return {"task_id": str(task.pk), "type": task.type, "status": task.status, "error": task.error or None}


@shared_task(acks_late=True, queue="default")
def sweep_stale_dataset_tasks() -> int:
    """Re-queue (or, attempts used up, fail) running dataset tasks whose heartbeat
    stopped, and fail pending ones that never started (their queue message was lost).
    Every worker already sweeps on a timer; this task is for an explicit sweep (on the
    ``default`` queue, ``CELERY_TASK_ROUTES``, so it never waits behind builds)."""
    return services.dataset_task_mark_stale()
