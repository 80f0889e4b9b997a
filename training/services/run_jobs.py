"""A training run's life as a job (``core.jobs``): its claim, and what the sweeper does
with a run whose worker died. Runs are the ``experiments`` app's rows; executing them is
the training app's business, so their job mechanism is wired here."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q

from core import jobs
from experiments import services as tracking
from experiments.models import Run, RunStatus

logger = logging.getLogger(__name__)

RUN_JOB = jobs.JobKind(
    model=Run,
    lock_namespace="experiments.run",
    queued_status=RunStatus.QUEUED,
    running_status=RunStatus.RUNNING,
    stale_seconds_setting="CVSA_RUN_STALE_SECONDS",
    scope_sql="t.deleted_at IS NULL",
    scope=Q(deleted_at__isnull=True),
)


def run_fail(run_id: int, reason: str, *, expected_attempt: int | None = None) -> bool:
    """Mark the run failed with ``reason`` while it is queued or running (and, with
    ``expected_attempt``, still at it); whether it was marked."""
    try:
        tracking.run_transition(run_id, RunStatus.FAILED, error=reason, expected_attempt=expected_attempt)
    except (ValidationError, tracking.RunAttemptStale, Run.DoesNotExist):
        return False
    logger.warning("training run %s failed: %s", run_id, reason)
    return True


def run_fail_attempts_exhausted(run_id: int, refused: jobs.ClaimRefused) -> None:
    run_fail(
        run_id,
        f"its worker died (killed, e.g. out of memory?) and {refused.worker_starts} of "
        f"{jobs.job_max_attempts()} attempts are used up; reproduce the run to try again",
        expected_attempt=refused.attempts,
    )


def training_runs_mark_stale(
    *, older_than: timedelta | None = None, pending_older_than: timedelta | None = None, wait: bool = True
) -> int:
    """The sweeper of training runs; returns how many runs it re-queued or failed.

    A running run whose heartbeat is older than ``older_than`` (default
    ``CVSA_RUN_STALE_SECONDS``) lost its worker: re-queued while fewer than
    ``CVSA_JOB_MAX_ATTEMPTS`` workers started it (the new worker trains it from the
    start), else failed "worker lost (no heartbeat since …)". A queued run waiting since
    before ``pending_older_than`` (the broker's visibility timeout + 10 minutes) is
    failed "never started". One sweep at a time across workers (``core.jobs.sweep_lock``).
    """
    from training.services.queueing import run_enqueue

    max_attempts = jobs.job_max_attempts()
    handled = 0
    with transaction.atomic():
        if not jobs.sweep_lock(wait=wait):
            return 0
        stale = jobs.dead_jobs(RUN_JOB, older_than=older_than, pending_older_than=pending_older_than)
        for run in stale:
            if run.status == RunStatus.QUEUED:
                handled += run_fail(
                    run.pk, "never started (its queue message was lost?): reproduce it", expected_attempt=run.attempts
                )
            elif run.worker_starts < max_attempts:
                updates, attempt, celery_task_id = jobs.requeue_assignments(run)
                if Run.objects.filter(run.fence, pk=run.pk).update(**updates):
                    handled += 1
                    run_id = run.pk
                    transaction.on_commit(
                        lambda run_id=run_id, celery_task_id=celery_task_id, attempt=attempt: run_enqueue(
                            run_id, celery_task_id, claim_attempt=attempt
                        )
                    )
            else:
                handled += run_fail(
                    run.pk,
                    f"worker lost (no heartbeat since {run.last_seen}) after {run.worker_starts} of "
                    f"{max_attempts} attempts; reproduce the run to try again",
                    expected_attempt=run.attempts,
                )
    for run in stale:
        logger.warning("training run %s (%s since %s) swept", run.pk, run.status, run.last_seen)
    return handled
