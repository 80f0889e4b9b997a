"""Evaluations as jobs: queue one (a model version on a split of a dataset version), run
it (claim through ``core.jobs``, score with ``evaluation_compute``, store the metrics,
the confusion matrix and the row counts with the final status in one fenced write),
cancel it, and sweep the evaluations whose worker died.

The evaluation row is the truth, as a run's is: every write of an attempt is fenced by
``attempts`` (a cancel or a takeover bumps it, and the old attempt's next write finds no
row and stops: ``EvaluationStale``). The work is one pass over the vectors (seconds),
so the heartbeat is written when the attempt starts and before it writes its result.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core import jobs
from core.roles import can_run_experiments
from core.validation import validation_error_message
from datasets.models import DatasetVersion
from experiments.services.validation import clean_id
from training.models import ACTIVE_JOB_STATUSES, Evaluation, EvaluationSplit, JobStatus, ModelVersion
from training.services.evaluations import EvaluationOutcome, evaluation_check_inputs, evaluation_compute
from training.services.execution import TRANSIENT_DATABASE_ERRORS

logger = logging.getLogger(__name__)

MAX_ERROR_LENGTH = 10_000
MAX_MESSAGE_LENGTH = 500

EVALUATION_JOB = jobs.JobKind(
    model=Evaluation,
    lock_namespace="training.evaluation",
    queued_status=JobStatus.QUEUED,
    running_status=JobStatus.RUNNING,
    stale_seconds_setting="CVSA_RUN_STALE_SECONDS",
    claim_assignments="message = '', error = '', rows = NULL, positives = NULL, metrics = '{}'::jsonb, "
                      "confusion_matrix = '[]'::jsonb, finished_at = NULL, updated_at = now()",
)


class EvaluationStale(Exception):
    """The evaluation is no longer at the attempt this worker started (cancelled, failed
    or taken over): the worker stops; nothing was written."""


# --- queueing --------------------------------------------------------------------------


def _model_version(version_id: object) -> ModelVersion:
    version = ModelVersion.objects.select_related("embedding_model").filter(
        pk=clean_id(version_id, "version_id")
    ).first()
    if version is None:
        raise ValidationError({"version_id": f"model version {version_id} does not exist"})
    return version


def _dataset_version(dataset_version_id: object) -> DatasetVersion:
    if dataset_version_id in (None, ""):
        raise ValidationError({"dataset_version_id": "choose a dataset version"})
    try:
        pk = uuid.UUID(str(dataset_version_id))
    except ValueError:
        raise ValidationError({"dataset_version_id": f"not a dataset version id: {dataset_version_id!r}"}) from None
    version = DatasetVersion.objects.defer("requested_aids", "selection").filter(pk=pk).first()
    if version is None:
        raise ValidationError({"dataset_version_id": f"dataset version {pk} does not exist"})
    return version


def evaluation_create(
    *,
    version_id: int,
    dataset_version_id: uuid.UUID | str,
    split: str = EvaluationSplit.TEST,
    user=None,
    enqueue: bool = True,
) -> Evaluation:
    """A queued evaluation of model version ``version_id`` on ``split`` of the dataset
    version, its job sent to the ``training`` queue once the transaction commits.

    Raises ONE ``ValidationError`` keyed by field (``version_id``,
    ``dataset_version_id``: unknown, not ready, other embedding model or dimensions;
    ``split``: unknown or empty) or ``PermissionDenied`` when ``user`` is not an admin
    (``user`` None: a trusted caller, e.g. a management command); nothing is written then.
    """
    if user is not None and not can_run_experiments(user):
        raise PermissionDenied("only admins can evaluate model versions")
    version = _model_version(version_id)
    dataset_version = _dataset_version(dataset_version_id)
    evaluation_check_inputs(version, dataset_version, split)
    celery_task_id = str(uuid.uuid4())
    with transaction.atomic():
        evaluation = Evaluation.objects.create(
            version=version, dataset_version=dataset_version, split=split, created_by=user,
            celery_task_id=celery_task_id, message="queued",
        )
        if enqueue:
            evaluation_id = evaluation.pk
            transaction.on_commit(lambda: evaluation_enqueue(evaluation_id, celery_task_id))
    return evaluation


def evaluation_enqueue(evaluation_id: int, celery_task_id: str, *, claim_attempt: int | None = None) -> bool:
    """Send the evaluation's message to the ``training`` queue; when the broker cannot be
    reached the evaluation is failed with that reason and this returns False."""
    from training.tasks import evaluation_run  # tasks import services

    kwargs = {} if claim_attempt is None else {"claim_attempt": claim_attempt}
    try:
        evaluation_run.apply_async(args=[evaluation_id], kwargs=kwargs, task_id=celery_task_id)
    except Exception as error:  # broker unreachable: say so on the evaluation instead of losing it
        if evaluation_run.app.conf.task_always_eager:
            raise
        logger.exception("could not queue evaluation %s", evaluation_id)
        evaluation_fail(evaluation_id, f"could not queue the evaluation (broker unavailable: {error}); start it again")
        return False
    return True


# --- state changes ------------------------------------------------------------------------


def evaluation_cancel(evaluation_id: int) -> Evaluation:
    """Cancel a queued or running evaluation: a queued one never starts, a running one
    is fenced off (writes no result). ``ValidationError`` once it has finished;
    ``Evaluation.DoesNotExist`` for an unknown id."""
    now = timezone.now()
    updated = Evaluation.objects.filter(pk=evaluation_id, status__in=ACTIVE_JOB_STATUSES).update(
        status=JobStatus.CANCELLED, attempts=F("attempts") + 1, finished_at=now, updated_at=now, message="cancelled",
    )
    evaluation = Evaluation.objects.get(pk=evaluation_id)
    if not updated:
        raise ValidationError({"evaluation_id": f"evaluation {evaluation_id} is {evaluation.status}: only a queued "
                                                "or running evaluation can be cancelled"})
    return evaluation


def evaluation_fail(evaluation_id: int, reason: str, *, expected_attempt: int | None = None) -> bool:
    """Mark the evaluation failed with ``reason`` while it is queued or running (and,
    with ``expected_attempt``, still at it); whether it was marked."""
    evaluations = Evaluation.objects.filter(pk=evaluation_id, status__in=ACTIVE_JOB_STATUSES)
    if expected_attempt is not None:
        evaluations = evaluations.filter(attempts=expected_attempt)
    now = timezone.now()
    updated = evaluations.update(status=JobStatus.FAILED, error=(reason or "failed")[:MAX_ERROR_LENGTH],
                                 finished_at=now, updated_at=now)
    if updated:
        logger.warning("evaluation %s failed: %s", evaluation_id, reason)
    return bool(updated)


def _progress(evaluation_id: int, attempt: int, message: str) -> None:
    """One fenced UPDATE: the heartbeat and the message."""
    now = timezone.now()
    updated = Evaluation.objects.filter(pk=evaluation_id, status=JobStatus.RUNNING, attempts=attempt).update(
        heartbeat_at=now, updated_at=now, message=message[:MAX_MESSAGE_LENGTH]
    )
    if not updated:
        raise EvaluationStale(f"evaluation {evaluation_id} is no longer at attempt {attempt} "
                              "(cancelled, failed or taken over)")


# --- execution --------------------------------------------------------------------------


def _fail_exhausted(evaluation_id: int, refused: jobs.ClaimRefused) -> None:
    evaluation_fail(
        evaluation_id,
        f"its worker died (killed, e.g. out of memory?) and {refused.worker_starts} of "
        f"{jobs.job_max_attempts()} attempts are used up; start a new evaluation to try again",
        expected_attempt=refused.attempts,
    )


def evaluation_run(
    evaluation_id: int,
    *,
    celery_task_id: str | None = None,
    claim_attempt: int | None = None,
    lock_wait_seconds: float = 0.0,
) -> Evaluation:
    """Run the queued evaluation in this process (what the Celery task does) and return
    it as it ends up; one that is not claimable (finished, cancelled, another live
    worker's) is returned untouched. Transient database errors are raised with the
    attempt as ``claim_attempt`` (the task's retry takes that very attempt over);
    anything else ends the evaluation: failed with the reason, or as its canceller left it."""
    claim = jobs.job_claim(
        EVALUATION_JOB, evaluation_id, celery_task_id=celery_task_id, claim_attempt=claim_attempt,
        lock_wait_seconds=lock_wait_seconds,
        on_attempts_exhausted=lambda refused: _fail_exhausted(evaluation_id, refused),
    )
    if not isinstance(claim, jobs.JobClaim):
        evaluation = Evaluation.objects.get(pk=evaluation_id)
        logger.info("evaluation %s not claimed (status %s): nothing to do", evaluation_id, evaluation.status)
        return evaluation
    holds_lock = claim.holds_lock
    try:
        _execute(evaluation_id, claim)
    except TRANSIENT_DATABASE_ERRORS as error:
        error.claim_attempt = claim.attempt
        raise
    except EvaluationStale as stale:
        logger.warning("evaluation %s stopped: %s", evaluation_id, stale)
    except SoftTimeLimitExceeded:
        evaluation_fail(evaluation_id, "the training time limit was reached (CVSA_TRAINING_TIME_LIMIT_SECONDS)",
                        expected_attempt=claim.attempt)
    except ValidationError as error:
        evaluation_fail(evaluation_id, validation_error_message(error, with_fields=True),
                        expected_attempt=claim.attempt)
    except Exception as error:  # a bug or an unexpected database error: fail visibly
        logger.exception("evaluation %s failed", evaluation_id)
        evaluation_fail(evaluation_id, f"{type(error).__name__}: {error}", expected_attempt=claim.attempt)
    finally:
        if holds_lock:
            jobs.job_lock_release(EVALUATION_JOB, evaluation_id)
    return Evaluation.objects.get(pk=evaluation_id)


def _execute(evaluation_id: int, claim: jobs.JobClaim) -> None:
    attempt = claim.attempt
    evaluation = Evaluation.objects.select_related("version__embedding_model").get(pk=evaluation_id)
    dataset_version = DatasetVersion.objects.defer("requested_aids", "selection").get(
        pk=evaluation.dataset_version_id
    )
    taken_over = " (taken over after its worker died)" if claim.worker_starts > 1 else ""
    _progress(evaluation_id, attempt, f"scoring the {evaluation.split} split of {dataset_version}{taken_over}")
    outcome = evaluation_compute(evaluation.version, dataset_version, evaluation.split)
    _finish(evaluation_id, attempt, outcome)


def _finish(evaluation_id: int, attempt: int, outcome: EvaluationOutcome) -> None:
    """The result and the final status in one fenced UPDATE."""
    now = timezone.now()
    f1 = outcome.metrics.get("f1")
    summary = f"{outcome.rows} rows" + ("" if f1 is None else f", F1 {f1:.4f}")
    updated = Evaluation.objects.filter(pk=evaluation_id, status=JobStatus.RUNNING, attempts=attempt).update(
        status=JobStatus.SUCCEEDED, rows=outcome.rows, positives=outcome.positives, metrics=outcome.metrics,
        confusion_matrix=outcome.confusion_matrix, finished_at=now, heartbeat_at=now, updated_at=now,
        message=summary,
    )
    if not updated:
        raise EvaluationStale(f"evaluation {evaluation_id} is no longer at attempt {attempt}; "
                              "its result was not written")
    logger.info("evaluation %s: %s", evaluation_id, summary)


# --- the sweeper -------------------------------------------------------------------------


def evaluations_mark_stale(
    *, older_than: timedelta | None = None, pending_older_than: timedelta | None = None, wait: bool = True
) -> int:
    """The sweeper of evaluations; returns how many it re-queued or failed.

    A running evaluation whose heartbeat is older than ``older_than`` (default
    ``CVSA_RUN_STALE_SECONDS``) lost its worker: re-queued while fewer than
    ``CVSA_JOB_MAX_ATTEMPTS`` workers started it, else failed. A queued one waiting
    since before ``pending_older_than`` (the broker's visibility timeout + 10 minutes)
    is failed "never started". One sweep at a time across workers and kinds of job.
    """
    max_attempts = jobs.job_max_attempts()
    handled = 0
    with transaction.atomic():
        if not jobs.sweep_lock(wait=wait):
            return 0
        stale = jobs.dead_jobs(EVALUATION_JOB, older_than=older_than, pending_older_than=pending_older_than)
        for evaluation in stale:
            if evaluation.status == JobStatus.QUEUED:
                handled += evaluation_fail(
                    evaluation.pk, "never started (its queue message was lost?): start a new evaluation",
                    expected_attempt=evaluation.attempts,
                )
            elif evaluation.worker_starts < max_attempts:
                updates, attempt, celery_task_id = jobs.requeue_assignments(evaluation)
                updates["message"] = f"re-queued: its worker stopped (no heartbeat since {evaluation.last_seen})"
                if Evaluation.objects.filter(evaluation.fence, pk=evaluation.pk).update(**updates):
                    handled += 1
                    evaluation_id = evaluation.pk
                    transaction.on_commit(
                        lambda evaluation_id=evaluation_id, celery_task_id=celery_task_id, attempt=attempt: (
                            evaluation_enqueue(evaluation_id, celery_task_id, claim_attempt=attempt)
                        )
                    )
            else:
                handled += evaluation_fail(
                    evaluation.pk,
                    f"worker lost (no heartbeat since {evaluation.last_seen}) after {evaluation.worker_starts} of "
                    f"{max_attempts} attempts; start a new evaluation to try again",
                    expected_attempt=evaluation.attempts,
                )
    for evaluation in stale:
        logger.warning("evaluation %s (%s since %s) swept", evaluation.pk, evaluation.status, evaluation.last_seen)
    return handled
