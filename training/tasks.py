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
