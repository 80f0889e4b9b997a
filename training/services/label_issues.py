"""Label-issue scans as jobs: queue one (from a dataset version, or from a run's
architecture and params), run it (claim through ``core.jobs``, out-of-fold
probabilities fold by fold, cleanlab's ranking written in one bulk insert), cancel it,
and sweep the scans whose worker died.

The scan row is the truth, as a run's is: every write of an attempt is fenced by
``attempts`` (a cancel or a takeover bumps it, and the old attempt's next write finds
no row and stops: ``LabelIssueScanStale``); progress (``folds_done``, ``message``) and
the heartbeat are written at most every ``core.jobs.OWNERSHIP_CHECK_INTERVAL_SECONDS`` while a
fold trains and after each fold; the issues and the final status are written in one
transaction, so a scan never shows half its issues.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta

import torch
from celery.exceptions import SoftTimeLimitExceeded
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core import jobs
from core.roles import can_run_experiments
from core.validation import validation_error_message
from datasets.models import DatasetVersion, DatasetVersionItem
from datasets.selectors import dataset_version_arrays
from experiments.models import Param, Run
from experiments.services.experiments import ready_dataset_version
from experiments.services.validation import clean_id
from labeling.services import MAX_REVIEW_REQUEST_SOURCE_LENGTH, ReviewRequestCounts, review_request_create_many
from training.architectures import get_architecture, resolve_config
from training.label_issue_selectors import label_issues_by_video
from training.label_issues import FoldDone, check_foldable, out_of_fold_probabilities, rank_label_issues
from training.models import ACTIVE_JOB_STATUSES, MAX_FOLDS, MIN_FOLDS, JobStatus, LabelIssue, LabelIssueScan
from training.services.execution import TRANSIENT_DATABASE_ERRORS
from training.trainer import TrainingError

logger = logging.getLogger(__name__)

DEFAULT_FOLDS = 5
MAX_ERROR_LENGTH = 10_000
MAX_MESSAGE_LENGTH = 500
#: Rows per INSERT statement when writing a scan's issues (6 parameters a row).
ISSUE_INSERT_BATCH = 5000

LABEL_ISSUE_SCAN_JOB = jobs.JobKind(
    model=LabelIssueScan,
    lock_namespace="training.labelissuescan",
    queued_status=JobStatus.QUEUED,
    running_status=JobStatus.RUNNING,
    # A scan heartbeats as often as a run (every second while a fold trains).
    stale_seconds_setting="CVSA_RUN_STALE_SECONDS",
    claim_assignments="folds_done = 0, message = '', error = '', issue_count = NULL, finished_at = NULL, "
                      "updated_at = now()",
)

Clock = Callable[[], float]


class LabelIssueScanStale(Exception):
    """The scan is no longer at the attempt this worker started (cancelled, failed, or
    taken over): the worker stops; nothing was written."""


# --- queueing --------------------------------------------------------------------------


def _clean_folds(folds: object) -> int:
    if isinstance(folds, bool) or not isinstance(folds, int) or not MIN_FOLDS <= folds <= MAX_FOLDS:
        raise ValidationError({"folds": f"must be an integer from {MIN_FOLDS} to {MAX_FOLDS} (got {folds!r})"})
    return folds


def _source_run(run_id: object) -> Run:
    run = Run.objects.filter(pk=clean_id(run_id, "run_id"), deleted_at__isnull=True).first()
    if run is None:
        raise ValidationError({"run_id": f"run {run_id} does not exist (or is deleted)"})
    return run


def label_issue_scan_create(
    *,
    dataset_version_id: uuid.UUID | str | None = None,
    run_id: int | None = None,
    architecture_key: str | None = None,
    hyperparameters: Mapping[str, object] | None = None,
    folds: int = DEFAULT_FOLDS,
    user,
    enqueue: bool = True,
) -> LabelIssueScan:
    """A queued scan, its job sent to the ``training`` queue once the transaction commits.

    From a run (``run_id``): its architecture and params (``hyperparameters`` given here
    override some of them), over the run's dataset version unless ``dataset_version_id``
    names another. Without a run, ``architecture_key`` is required (missing
    hyperparameters take their defaults). The hyperparameters are validated by the
    architecture's schema; the version must be ready and hold at least ``folds`` rows
    of each class. Raises ONE ``ValidationError`` keyed by field (``run_id``,
    ``architecture``, a hyperparameter's name, ``dataset_version_id``, ``folds``) or
    ``PermissionDenied`` (admins only); nothing is written then.
    """
    if not can_run_experiments(user):
        raise PermissionDenied("only admins can start label-issue scans")
    folds = _clean_folds(folds)
    run = _source_run(run_id) if run_id is not None else None
    raw: dict[str, object] = {}
    if run is not None:
        if architecture_key not in (None, "", run.architecture_key):
            raise ValidationError({"architecture": f"run {run.pk} trained {run.architecture_key!r}, not "
                                                   f"{architecture_key!r}: leave the architecture out"})
        architecture_key = run.architecture_key
        raw.update(Param.objects.filter(run_id=run.pk).values_list("key", "value"))
        # Params the architecture does not know (logged by hand) are not hyperparameters.
        raw = {key: value for key, value in raw.items() if key in get_architecture(architecture_key).schema}
        if dataset_version_id is None:
            dataset_version_id = run.dataset_version_id
    elif not architecture_key:
        raise ValidationError({"architecture": "required when no run_id is given"})
    if hyperparameters is not None and not isinstance(hyperparameters, Mapping):
        raise ValidationError({"hyperparameters": f"must be an object (got {type(hyperparameters).__name__})"})
    raw.update(hyperparameters or {})
    config = resolve_config(architecture_key, raw)
    if dataset_version_id is None:
        raise ValidationError({"dataset_version_id": "required when no run_id is given"})
    ready_dataset_version(dataset_version_id, "dataset_version_id")
    version = DatasetVersion.objects.only("id", "positives", "negatives").get(pk=dataset_version_id)
    if min(version.positives, version.negatives) < folds:
        raise ValidationError({"folds": f"{folds} folds need at least {folds} rows of each class; dataset version "
                                        f"{version.pk} has {version.positives} positive and {version.negatives} "
                                        "negative rows"})
    celery_task_id = str(uuid.uuid4())
    with transaction.atomic():
        scan = LabelIssueScan.objects.create(
            dataset_version_id=version.pk,
            source_run=run,
            architecture_key=config.architecture,
            hyperparameters=config.hyperparameters.as_dict(),
            folds=folds,
            created_by=user,
            celery_task_id=celery_task_id,
            message="queued",
        )
        if enqueue:
            scan_id = scan.pk
            transaction.on_commit(lambda: label_issue_scan_enqueue(scan_id, celery_task_id))
    return scan


def label_issue_scan_enqueue(scan_id: int, celery_task_id: str, *, claim_attempt: int | None = None) -> bool:
    """Send the scan's message to the ``training`` queue; when the broker cannot be
    reached the scan is failed with that reason and this returns False."""
    from training.tasks import label_issue_scan  # tasks import services

    kwargs = {} if claim_attempt is None else {"claim_attempt": claim_attempt}
    try:
        label_issue_scan.apply_async(args=[scan_id], kwargs=kwargs, task_id=celery_task_id)
    except Exception as error:  # broker unreachable: say so on the scan instead of losing it
        if label_issue_scan.app.conf.task_always_eager:
            raise
        logger.exception("could not queue label-issue scan %s", scan_id)
        label_issue_scan_fail(scan_id, f"could not queue the scan (broker unavailable: {error}); start it again")
        return False
    return True


# --- state changes ------------------------------------------------------------------------


def label_issue_scan_cancel(scan_id: int) -> LabelIssueScan:
    """Cancel a queued or running scan: a queued one never starts, a running one is
    fenced off (stops at its next batch, writes nothing more). ``ValidationError`` once
    it has finished; ``LabelIssueScan.DoesNotExist`` for an unknown id."""
    now = timezone.now()
    updated = LabelIssueScan.objects.filter(pk=scan_id, status__in=ACTIVE_JOB_STATUSES).update(
        status=JobStatus.CANCELLED, attempts=F("attempts") + 1, finished_at=now, updated_at=now,
        message="cancelled",
    )
    scan = LabelIssueScan.objects.get(pk=scan_id)
    if not updated:
        raise ValidationError({"scan_id": f"label-issue scan {scan_id} is {scan.status}: only a queued or running "
                                          "scan can be cancelled"})
    return scan


def label_issue_scan_fail(scan_id: int, reason: str, *, expected_attempt: int | None = None) -> bool:
    """Mark the scan failed with ``reason`` while it is queued or running (and, with
    ``expected_attempt``, still at it); whether it was marked."""
    scans = LabelIssueScan.objects.filter(pk=scan_id, status__in=ACTIVE_JOB_STATUSES)
    if expected_attempt is not None:
        scans = scans.filter(attempts=expected_attempt)
    now = timezone.now()
    updated = scans.update(status=JobStatus.FAILED, error=(reason or "failed")[:MAX_ERROR_LENGTH],
                           finished_at=now, updated_at=now)
    if updated:
        logger.warning("label-issue scan %s failed: %s", scan_id, reason)
    return bool(updated)


def _progress(scan_id: int, attempt: int, **fields) -> None:
    """One fenced UPDATE: the heartbeat and the given progress columns."""
    if "message" in fields:
        fields["message"] = fields["message"][:MAX_MESSAGE_LENGTH]
    now = timezone.now()
    updated = LabelIssueScan.objects.filter(pk=scan_id, status=JobStatus.RUNNING, attempts=attempt).update(
        heartbeat_at=now, updated_at=now, **fields
    )
    if not updated:
        raise LabelIssueScanStale(f"label-issue scan {scan_id} is no longer at attempt {attempt} "
                                  "(cancelled, failed or taken over)")


# --- execution --------------------------------------------------------------------------


def _scan_heartbeat(scan_id: int, attempt: int) -> Callable[[], bool]:
    """The scan's fenced heartbeat: False once the scan is no longer this attempt's."""

    def heartbeat() -> bool:
        try:
            _progress(scan_id, attempt)
        except LabelIssueScanStale:
            return False
        return True

    return heartbeat


def _fail_exhausted(scan_id: int, refused: jobs.ClaimRefused) -> None:
    label_issue_scan_fail(
        scan_id,
        f"its worker died (killed, e.g. out of memory?) and {refused.worker_starts} of "
        f"{jobs.job_max_attempts()} attempts are used up; start a new scan to try again",
        expected_attempt=refused.attempts,
    )


def label_issue_scan_run(
    scan_id: int,
    *,
    celery_task_id: str | None = None,
    claim_attempt: int | None = None,
    lock_wait_seconds: float = 0.0,
    device: str | torch.device | None = None,
    clock: Clock = time.monotonic,
    on_fold: Callable[[FoldDone], None] | None = None,
) -> LabelIssueScan:
    """Run the queued scan ``scan_id`` in this process (what the Celery task does) and
    return it as it ends up; one that is not claimable (finished, cancelled, another
    live worker's) is returned untouched. Transient database errors are raised with the
    attempt as ``claim_attempt`` (the task's retry takes that very attempt over);
    anything else ends the scan: failed with the reason, or as its canceller left it."""
    claim = jobs.job_claim(
        LABEL_ISSUE_SCAN_JOB, scan_id, celery_task_id=celery_task_id, claim_attempt=claim_attempt,
        lock_wait_seconds=lock_wait_seconds,
        on_attempts_exhausted=lambda refused: _fail_exhausted(scan_id, refused),
    )
    if not isinstance(claim, jobs.JobClaim):
        scan = LabelIssueScan.objects.get(pk=scan_id)
        logger.info("label-issue scan %s not claimed (status %s): nothing to do", scan_id, scan.status)
        return scan
    watch = jobs.OwnershipWatch(
        LABEL_ISSUE_SCAN_JOB, scan_id, _scan_heartbeat(scan_id, claim.attempt), holds_lock=claim.holds_lock,
        clock=clock,
    )
    try:
        _execute(scan_id, claim, watch, device=device, on_fold=on_fold)
    except TRANSIENT_DATABASE_ERRORS as error:
        error.claim_attempt = claim.attempt
        raise
    except LabelIssueScanStale as stale:
        logger.warning("label-issue scan %s stopped: %s", scan_id, stale)
    except SoftTimeLimitExceeded:
        label_issue_scan_fail(scan_id, "the training time limit was reached (CVSA_TRAINING_TIME_LIMIT_SECONDS)",
                              expected_attempt=claim.attempt)
    except ValidationError as error:
        label_issue_scan_fail(scan_id, validation_error_message(error, with_fields=True),
                              expected_attempt=claim.attempt)
    except (TrainingError, ValueError) as error:
        label_issue_scan_fail(scan_id, str(error), expected_attempt=claim.attempt)
    except Exception as error:  # a bug or an unexpected database error: fail visibly
        logger.exception("label-issue scan %s failed", scan_id)
        label_issue_scan_fail(scan_id, f"{type(error).__name__}: {error}", expected_attempt=claim.attempt)
    finally:
        if watch.holds_lock:
            jobs.job_lock_release(LABEL_ISSUE_SCAN_JOB, scan_id)
    return LabelIssueScan.objects.get(pk=scan_id)


def _execute(
    scan_id: int,
    claim: jobs.JobClaim,
    watch: jobs.OwnershipWatch,
    *,
    device: str | torch.device | None,
    on_fold: Callable[[FoldDone], None] | None,
) -> None:
    attempt = claim.attempt
    scan = LabelIssueScan.objects.get(pk=scan_id)
    config = resolve_config(scan.architecture_key, scan.hyperparameters)
    taken_over = " (taken over after its worker died)" if claim.worker_starts > 1 else ""
    _progress(scan_id, attempt, message=f"loading the dataset version{taken_over}")
    arrays = dataset_version_arrays(scan.dataset_version_id)
    check_foldable(arrays.y, scan.folds)
    _progress(scan_id, attempt, message=f"training fold 1 of {scan.folds} on {len(arrays.y)} rows")

    def fold_done(done: FoldDone) -> None:
        following = f"; training fold {done.fold + 1}" if done.fold < done.folds else "; ranking with cleanlab"
        _progress(scan_id, attempt, folds_done=done.fold,
                  message=f"fold {done.fold} of {done.folds} done ({done.epochs_run} epochs){following}")
        if on_fold is not None:
            on_fold(done)

    out_of_fold = out_of_fold_probabilities(arrays.X, arrays.y, config, folds=scan.folds, on_fold=fold_done,
                                            should_stop=watch.should_stop, device=device)
    if out_of_fold.cancelled or watch.lost:
        logger.info("label-issue scan %s stopped after %s folds (cancelled or taken over)", scan_id,
                    out_of_fold.folds_done)
        return
    ranked = rank_label_issues(arrays.y, out_of_fold.probabilities)
    video_by_aid = dict(
        DatasetVersionItem.objects.filter(version_id=scan.dataset_version_id).values_list("video__aid", "video_id")
    )
    issues = [
        LabelIssue(
            scan_id=scan_id,
            video_id=video_by_aid[int(arrays.aids[index])],
            given_label=bool(arrays.y[index]),
            probability=float(out_of_fold.probabilities[index]),
            label_quality=float(quality),
            rank=rank,
        )
        for rank, (index, quality) in enumerate(zip(ranked.indices, ranked.label_quality), start=1)
    ]
    _finish(scan_id, attempt, issues, rows=len(arrays.y))


def _finish(scan_id: int, attempt: int, issues: list[LabelIssue], *, rows: int) -> None:
    """The issues and the final status in one transaction, fenced by the attempt."""
    with transaction.atomic():
        current = LabelIssueScan.objects.select_for_update().filter(
            pk=scan_id, status=JobStatus.RUNNING, attempts=attempt
        )
        if not current.exists():
            raise LabelIssueScanStale(f"label-issue scan {scan_id} is no longer at attempt {attempt}; "
                                      "its issues were not written")
        LabelIssue.objects.filter(scan_id=scan_id).delete()  # none, unless a bug left some
        LabelIssue.objects.bulk_create(issues, batch_size=ISSUE_INSERT_BATCH)
        now = timezone.now()
        current.update(status=JobStatus.SUCCEEDED, issue_count=len(issues), finished_at=now, heartbeat_at=now,
                       updated_at=now, message=f"{len(issues)} likely label issues among {rows} rows")
    logger.info("label-issue scan %s: %s issues among %s rows", scan_id, len(issues), rows)


# --- send to review -----------------------------------------------------------------------

#: ``ReviewRequest.source`` of the requests a scan sends.
REVIEW_REQUEST_SOURCE_PREFIX = "label issues of "


def label_issue_default_reason(issue: LabelIssue) -> str:
    """What the reviewer reads when the sender wrote no reason of their own."""
    given = "yes" if issue.given_label else "no"
    return (f"A model trained on the other folds predicts {issue.probability:.2f} (probability of yes) for this "
            f"video, labeled {given}")


def label_issue_review_source(scan: LabelIssueScan) -> str:
    """``label issues of <dataset> v<n>``, clipped to the column's length."""
    limit = MAX_REVIEW_REQUEST_SOURCE_LENGTH
    version = scan.dataset_version
    suffix = f" v{version.number}"
    name = version.dataset.name
    room = limit - len(REVIEW_REQUEST_SOURCE_PREFIX) - len(suffix)
    if len(name) > room:
        name = name[: room - 1] + "…"
    return f"{REVIEW_REQUEST_SOURCE_PREFIX}{name}{suffix}"


def label_issue_review_requests_create(
    *, scan_id: int, video_ids: Iterable[int], reason: str | None = None, user
) -> ReviewRequestCounts:
    """Send these videos of the scan's issues to the review queue (``labeling``'s review
    requests), each with ``reason`` or, when blank, the default one naming its
    out-of-fold probability and given label. Videos that are not issues of the scan are
    refused (``ValidationError``, nothing written); videos with an open request are
    skipped (see the returned counts)."""
    scan = LabelIssueScan.objects.select_related("dataset_version__dataset").get(pk=scan_id)
    ids = list(dict.fromkeys(video_ids))
    issues = label_issues_by_video(scan.pk, ids)
    strangers = [video_id for video_id in ids if video_id not in issues]
    if strangers:
        shown = ", ".join(str(video_id) for video_id in strangers[:10])
        raise ValidationError({"video_ids": f"not label issues of scan {scan.pk}: {shown}"
                                            f"{' …' if len(strangers) > 10 else ''}"})
    reason = (reason or "").strip()
    reasons = reason or {video_id: label_issue_default_reason(issue) for video_id, issue in issues.items()}
    return review_request_create_many(ids, reason=reasons, source=label_issue_review_source(scan), user=user)


# --- the sweeper -------------------------------------------------------------------------


def label_issue_scans_mark_stale(
    *, older_than: timedelta | None = None, pending_older_than: timedelta | None = None, wait: bool = True
) -> int:
    """The sweeper of label-issue scans; returns how many it re-queued or failed.

    A running scan whose heartbeat is older than ``older_than`` (default
    ``CVSA_RUN_STALE_SECONDS``) lost its worker: re-queued while fewer than
    ``CVSA_JOB_MAX_ATTEMPTS`` workers started it (the new worker starts from fold 1),
    else failed. A queued one waiting since before ``pending_older_than`` (the broker's
    visibility timeout + 10 minutes) is failed "never started". One sweep at a time
    across workers and kinds of job (``core.jobs.sweep_lock``).
    """
    max_attempts = jobs.job_max_attempts()
    handled = 0
    with transaction.atomic():
        if not jobs.sweep_lock(wait=wait):
            return 0
        stale = jobs.dead_jobs(LABEL_ISSUE_SCAN_JOB, older_than=older_than, pending_older_than=pending_older_than)
        for scan in stale:
            if scan.status == JobStatus.QUEUED:
                handled += label_issue_scan_fail(
                    scan.pk, "never started (its queue message was lost?): start a new scan",
                    expected_attempt=scan.attempts,
                )
            elif scan.worker_starts < max_attempts:
                updates, attempt, celery_task_id = jobs.requeue_assignments(scan)
                updates["message"] = f"re-queued: its worker stopped (no heartbeat since {scan.last_seen})"
                if LabelIssueScan.objects.filter(scan.fence, pk=scan.pk).update(**updates):
                    handled += 1
                    scan_id = scan.pk
                    transaction.on_commit(
                        lambda scan_id=scan_id, celery_task_id=celery_task_id, attempt=attempt: (
                            label_issue_scan_enqueue(scan_id, celery_task_id, claim_attempt=attempt)
                        )
                    )
            else:
                handled += label_issue_scan_fail(
                    scan.pk,
                    f"worker lost (no heartbeat since {scan.last_seen}) after {scan.worker_starts} of "
                    f"{max_attempts} attempts; start a new scan to try again",
                    expected_attempt=scan.attempts,
                )
    for scan in stale:
        logger.warning("label-issue scan %s (%s since %s) swept", scan.pk, scan.status, scan.last_seen)
    return handled
