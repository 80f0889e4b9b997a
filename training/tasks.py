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


@shared_task(
    bind=True,
    acks_late=True,
    max_retries=len(DB_RETRY_DELAYS_SECONDS),
    soft_time_limit=settings.CVSA_TRAINING_TIME_LIMIT_SECONDS,
    time_limit=settings.CVSA_TRAINING_TIME_LIMIT_SECONDS + HARD_TIME_LIMIT_MARGIN_SECONDS,
)
def train_run(self, run_id: int, claim_attempt: int | None = None) -> dict:
    """Train run ``run_id`` (idempotent: a finished or another worker's run is left as is).

    A redelivered message (its worker child was killed: acks late + reject on worker
    lost) waits a moment for the dead attempt's lock, then takes the run over.
    """
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    try:
        run = services.run_train(
            run_id,
            celery_task_id=self.request.id,
            claim_attempt=claim_attempt,
            lock_wait_seconds=REDELIVERY_LOCK_WAIT_SECONDS if redelivered else 0.0,
        )
    except services.TRANSIENT_DATABASE_ERRORS as error:
        if self.request.retries >= self.max_retries:
            services.run_fail(run_id, f"database unavailable after {self.request.retries} retries: {error}")
            raise
        delay = DB_RETRY_DELAYS_SECONDS[min(self.request.retries, len(DB_RETRY_DELAYS_SECONDS) - 1)]
        retry_kwargs = {"run_id": run_id, "claim_attempt": getattr(error, "claim_attempt", None)}
        raise self.retry(exc=error, countdown=delay, kwargs=retry_kwargs) from error
    return {"run_id": run.pk, "status": run.status, "error": run.error or None}


@shared_task(
    bind=True,
    acks_late=True,
    max_retries=len(DB_RETRY_DELAYS_SECONDS),
    soft_time_limit=settings.CVSA_TRAINING_TIME_LIMIT_SECONDS,
    time_limit=settings.CVSA_TRAINING_TIME_LIMIT_SECONDS + HARD_TIME_LIMIT_MARGIN_SECONDS,
)
def label_issue_scan(self, scan_id: int, claim_attempt: int | None = None) -> dict:
    """Run label-issue scan ``scan_id`` (idempotent: a finished or another worker's scan
    is left as is); a redelivered message takes a dead worker's scan over, as for runs."""
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    try:
        scan = services.label_issue_scan_run(
            scan_id,
            celery_task_id=self.request.id,
            claim_attempt=claim_attempt,
            lock_wait_seconds=REDELIVERY_LOCK_WAIT_SECONDS if redelivered else 0.0,
        )
    except services.TRANSIENT_DATABASE_ERRORS as error:
        if self.request.retries >= self.max_retries:
            services.label_issue_scan_fail(
                scan_id, f"database unavailable after {self.request.retries} retries: {error}"
            )
            raise
        delay = DB_RETRY_DELAYS_SECONDS[min(self.request.retries, len(DB_RETRY_DELAYS_SECONDS) - 1)]
        retry_kwargs = {"scan_id": scan_id, "claim_attempt": getattr(error, "claim_attempt", None)}
        raise self.retry(exc=error, countdown=delay, kwargs=retry_kwargs) from error
    return {"scan_id": scan.pk, "status": scan.status, "issue_count": scan.issue_count, "error": scan.error or None}


@shared_task(acks_late=True, max_retries=len(DB_RETRY_DELAYS_SECONDS), bind=True)
def sweep_advance(self, sweep_id: int) -> dict:
    """Advance sweep ``sweep_id`` (idempotent: tell the study how its finished trials
    went, queue the next ones). Queued to ``default`` by the end of a trial's run, by a
    cancel and by the sweeper's safety net."""
    try:
        sweep = services.sweep_advance(sweep_id)
    except services.TRANSIENT_DATABASE_ERRORS as error:
        delay = DB_RETRY_DELAYS_SECONDS[min(self.request.retries, len(DB_RETRY_DELAYS_SECONDS) - 1)]
        raise self.retry(exc=error, countdown=delay) from error
    return {"sweep_id": sweep.pk, "status": sweep.status, "error": sweep.error or None}
