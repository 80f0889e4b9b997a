"""Celery tasks of the training app (queue ``training``, see ``CELERY_TASK_ROUTES``).

Tasks take ids only and call a service; the ``Run`` row is the source of truth for
status and progress.
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from core.jobs import REDELIVERY_LOCK_WAIT_SECONDS
from training import services

# Transient database trouble (connection lost, server restarting): retry with backoff.
DB_RETRY_DELAYS_SECONDS = (10, 60, 300)
#: After the soft limit the run is failed with that reason; the hard limit kills a worker
#: child that does not get there (its run is then swept).
HARD_TIME_LIMIT_MARGIN_SECONDS = 60


#: Training runs and label-issue scans: acks late (a killed worker's message is
#: redelivered), retried on database errors, with the training time limits.
JOB_TASK_OPTIONS = {
    "bind": True,
    "acks_late": True,
    "max_retries": len(DB_RETRY_DELAYS_SECONDS),
    "soft_time_limit": settings.CVSA_TRAINING_TIME_LIMIT_SECONDS,
    "time_limit": settings.CVSA_TRAINING_TIME_LIMIT_SECONDS + HARD_TIME_LIMIT_MARGIN_SECONDS,
}


def _run_job(task, job_field: str, job_id: int, claim_attempt: int | None, run, fail):
    """Run a job-row task: ``run(job_id, celery_task_id=, claim_attempt=, lock_wait_seconds=)``.

    A redelivered message (its worker child was killed: acks late + reject on worker
    lost) waits a moment for the dead attempt's lock, then takes the job over.
    Transient database errors retry with backoff, handing the same attempt over
    (``claim_attempt``); after the last retry the job is failed with the reason.
    """
    redelivered = bool((task.request.delivery_info or {}).get("redelivered"))
    try:
        return run(
            job_id,
            celery_task_id=task.request.id,
            claim_attempt=claim_attempt,
            lock_wait_seconds=REDELIVERY_LOCK_WAIT_SECONDS if redelivered else 0.0,
        )
    except services.TRANSIENT_DATABASE_ERRORS as error:
        if task.request.retries >= task.max_retries:
            fail(job_id, f"database unavailable after {task.request.retries} retries: {error}")
            raise
        retry_kwargs = {job_field: job_id, "claim_attempt": getattr(error, "claim_attempt", None)}
        raise task.retry(exc=error, countdown=_retry_delay(task), kwargs=retry_kwargs) from error


def _retry_delay(task) -> int:
    return DB_RETRY_DELAYS_SECONDS[min(task.request.retries, len(DB_RETRY_DELAYS_SECONDS) - 1)]


@shared_task(**JOB_TASK_OPTIONS)
def train_run(self, run_id: int, claim_attempt: int | None = None) -> dict:
    """Train run ``run_id`` (idempotent: a finished or another worker's run is left as
    is; a dead worker's run is taken over, see ``_run_job``)."""
    run = _run_job(self, "run_id", run_id, claim_attempt, services.run_train, services.run_fail)
    return {"run_id": run.pk, "status": run.status, "error": run.error or None}


@shared_task(**JOB_TASK_OPTIONS)
def label_issue_scan(self, scan_id: int, claim_attempt: int | None = None) -> dict:
    """Run label-issue scan ``scan_id`` (idempotent: a finished or another worker's scan
    is left as is); a redelivered message takes a dead worker's scan over, as for runs."""
    scan = _run_job(
        self, "scan_id", scan_id, claim_attempt, services.label_issue_scan_run, services.label_issue_scan_fail
    )
    return {"scan_id": scan.pk, "status": scan.status, "issue_count": scan.issue_count, "error": scan.error or None}


@shared_task(acks_late=True, max_retries=len(DB_RETRY_DELAYS_SECONDS), bind=True)
def sweep_advance(self, sweep_id: int) -> dict:
    """Advance sweep ``sweep_id`` (idempotent: tell the study how its finished trials
    went, queue the next ones). Queued to ``default`` by the end of a trial's run, by a
    cancel and by the sweeper's safety net."""
    try:
        sweep = services.sweep_advance(sweep_id)
    except services.TRANSIENT_DATABASE_ERRORS as error:
        raise self.retry(exc=error, countdown=_retry_delay(self)) from error
    return {"sweep_id": sweep.pk, "status": sweep.status, "error": sweep.error or None}


@shared_task(**JOB_TASK_OPTIONS)
def evaluation_run(self, evaluation_id: int, claim_attempt: int | None = None) -> dict:
    """Run evaluation ``evaluation_id`` (idempotent: a finished or another worker's
    evaluation is left as is); a redelivered message takes a dead worker's one over."""
    evaluation = _run_job(
        self, "evaluation_id", evaluation_id, claim_attempt, services.evaluation_run, services.evaluation_fail
    )
    return {"evaluation_id": evaluation.pk, "status": evaluation.status, "error": evaluation.error or None}


@shared_task(**JOB_TASK_OPTIONS)
def scoring_job_run(self, job_id: int, claim_attempt: int | None = None) -> dict:
    """Run scoring job ``job_id`` (idempotent: a finished or another worker's job is
    left as is); a redelivered message takes a dead worker's job over, as for runs."""
    job = _run_job(self, "job_id", job_id, claim_attempt, services.scoring_job_run, services.scoring_job_fail)
    return {"job_id": job.pk, "status": job.status, "done": job.done, "total": job.total,
            "error": job.error or None}
