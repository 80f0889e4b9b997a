"""The build job's life on its ``DatasetTask`` row, on the shared job mechanism of
``core.jobs`` (the lock a running attempt holds, claim, takeover after a worker death,
the sweep): what a build claim resets, progress writes fenced by ``attempts``,
failure, release after a transient error, and what the sweeper does with a dead build.

Curation tasks (cleaning, deduplication, augmentation, import) run on the same
lifecycle: ``CURATION_JOB`` claims them, ``curation_job_run`` runs their runner with a
``CurationProgress`` (steps named by the runner, percentage = done/total of the current
step) and stores its result; the sweeper re-queues each dead task to its own Celery task
(``build_enqueue`` or ``curation_enqueue``).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from core import jobs, pgcopy
from core.jobs import JobClaim, job_max_attempts
from core.validation import validation_error_message
from datasets.embedding_providers import EmbeddingProviderError
from datasets.embedding_registry import EmbeddingRegistryError
from datasets.models import DatasetTask, DatasetTaskStatus, DatasetTaskType, DatasetVersion, DatasetVersionStatus
from datasets.selectors import as_uuid

logger = logging.getLogger(__name__)


#: In-step progress writes at most this often (each costs a round trip).
PROGRESS_MIN_INTERVAL_SECONDS = 0.5
#: While waiting on a slow embedding call, write a heartbeat at least this often.
HEARTBEAT_INTERVAL_SECONDS = 30.0

#: Transient database trouble (connection lost, server restarting): the Celery task retries.
TRANSIENT_DATABASE_ERRORS = (OperationalError, InterfaceError)

BUILD_STEPS: tuple[tuple[str, float, float], ...] = (
    # (name, percentage at start, percentage at end)
    ("loading_videos", 0.0, 5.0),
    ("preparing_text", 5.0, 10.0),
    ("checking_embeddings", 10.0, 15.0),
    ("generating_embeddings", 15.0, 85.0),
    ("building_dataset", 85.0, 90.0),
    ("saving_dataset", 90.0, 99.0),
)
STEP_NAMES = tuple(name for name, _, _ in BUILD_STEPS)

Clock = Callable[[], float]


#: A build claim starts the progress over at the first step.
BUILD_JOB = jobs.JobKind(
    model=DatasetTask,
    lock_namespace="datasets.task",
    queued_status=DatasetTaskStatus.PENDING,
    running_status=DatasetTaskStatus.RUNNING,
    stale_seconds_setting="CVSA_DATASET_TASK_STALE_SECONDS",
    scope_sql=f"t.type = '{DatasetTaskType.BUILD}'",
    claim_assignments=(
        "completed_at = NULL, error = '', current_step = %(build_first_step)s, "
        "total_steps = %(build_total_steps)s, completed_steps = 0, done = 0, total = 0, percentage = 0, "
        "eta_seconds = NULL, message = 'Loading videos and labels'"
    ),
    claim_parameters={"build_first_step": STEP_NAMES[0], "build_total_steps": len(BUILD_STEPS)},
)

#: The task types run by a runner of ``datasets.services.curation_jobs`` (cleaning rules,
#: duplicate search, augmentation, label import). Their steps come from the runner.
CURATION_TASK_TYPES = (
    DatasetTaskType.CLEANING,
    DatasetTaskType.DEDUPLICATION,
    DatasetTaskType.AUGMENTATION,
    DatasetTaskType.IMPORT,
)

#: A curation claim starts the progress over; the runner names its steps.
CURATION_JOB = jobs.JobKind(
    model=DatasetTask,
    lock_namespace="datasets.task",  # same namespace as builds: task ids are unique across types
    queued_status=DatasetTaskStatus.PENDING,
    running_status=DatasetTaskStatus.RUNNING,
    stale_seconds_setting="CVSA_DATASET_TASK_STALE_SECONDS",
    scope_sql="t.type IN (" + ", ".join(f"'{value}'" for value in CURATION_TASK_TYPES) + ")",
    claim_assignments=(
        "completed_at = NULL, error = '', current_step = 'starting', total_steps = 0, completed_steps = 0, "
        "done = 0, total = 0, percentage = 0, eta_seconds = NULL, message = 'Starting'"
    ),
)


def stale_after() -> timedelta:
    return BUILD_JOB.stale_after()


class BuildAborted(Exception):
    """The worker lost its claim on the task (cancelled, or taken over): stop quietly."""


class BuildFailed(Exception):
    """A build cannot go on, with a message meant for the user."""


# --- the lock a running attempt holds -------------------------------------------------


def job_lock_try(task_id: uuid.UUID) -> bool:
    # Builds and curation tasks share the lock namespace: one key function serves both.
    return jobs.job_lock_try(BUILD_JOB, task_id)


def job_lock_release(task_id: uuid.UUID) -> None:
    jobs.job_lock_release(BUILD_JOB, task_id)


# --- progress -----------------------------------------------------------------------------


class BuildProgress:
    """Writes progress + heartbeat into the task row, throttled by ``clock``; fenced by ``attempt``.

    ``clock`` (seconds, monotonic) decides when an in-step write is due: tests pass a
    fake one so the number of writes never depends on the machine's speed.
    """

    def __init__(
        self,
        task_id: uuid.UUID,
        attempt: int,
        on_progress: Callable[[dict], None] | None,
        *,
        clock: Clock = time.monotonic,
        holds_lock: bool = True,
    ) -> None:
        self.task_id = task_id
        self.attempt = attempt
        self.on_progress = on_progress
        self.clock = clock
        #: Whether this attempt holds the task's lock; one that claimed without it (the
        #: previous holder's session lingered) takes it as soon as it is free.
        self.holds_lock = holds_lock
        self.step_index = 0
        self.step_name = STEP_NAMES[0]
        self.step_started = clock()
        self.done = 0
        self.total = 0
        self.message = ""
        self.eta_seconds: float | None = None
        self.last_write = clock()
        #: An ``advance`` the throttle kept from the row (``flush`` writes it when due).
        self._unwritten = False

    @property
    def percentage(self) -> float:
        _, start, end = BUILD_STEPS[self.step_index]
        fraction = self.done / self.total if self.total else 0.0
        return round(start + (end - start) * min(1.0, fraction), 2)

    def fields(self) -> dict[str, Any]:
        """The progress columns of the ``DatasetTask`` row."""
        return {
            "current_step": self.step_name,
            "total_steps": len(BUILD_STEPS),
            "completed_steps": self.step_index,
            "percentage": self.percentage,
            "done": self.done,
            "total": self.total,
            "message": self.message,
            "eta_seconds": self.eta_seconds,
        }

    def snapshot(self) -> dict[str, Any]:
        """The same, named as ``GET /tasks/{id}`` reports progress."""
        fields = self.fields()
        fields["estimated_time_remaining"] = fields.pop("eta_seconds")
        return fields

    def step(self, name: str, *, total: int = 0, message: str = "", write: bool = True) -> None:
        self.step_index = STEP_NAMES.index(name)
        self.step_name = name
        self.step_started = self.clock()
        self.done = 0
        self.total = total
        self.message = message
        self.eta_seconds = None
        self._notify()
        if write:
            self.write()

    def advance(self, done: int, *, message: str | None = None) -> None:
        self.done = done
        if message is not None:
            self.message = message
        elapsed = self.clock() - self.step_started
        self.eta_seconds = round(elapsed / done * (self.total - done), 1) if done and self.total > done else None
        self._notify()
        if self._write_due():
            self.write()
        else:
            self._unwritten = True

    def flush(self) -> None:
        """Write the last ``advance`` the throttle held back, once a write is due again."""
        if self._unwritten and self._write_due():
            self.write()

    def heartbeat(self) -> None:
        if self.clock() - self.last_write >= HEARTBEAT_INTERVAL_SECONDS:
            self.write()

    def _write_due(self) -> bool:
        return self.clock() - self.last_write >= PROGRESS_MIN_INTERVAL_SECONDS

    def write(self, **extra: Any) -> None:
        updated = DatasetTask.objects.filter(
            pk=self.task_id, status=DatasetTaskStatus.RUNNING, attempts=self.attempt
        ).update(heartbeat_at=timezone.now(), **self.fields(), **extra)
        self.last_write = self.clock()
        self._unwritten = False
        if not updated:
            raise BuildAborted(f"task {self.task_id} was cancelled or taken over by another worker")
        if not self.holds_lock:
            self.holds_lock = job_lock_try(self.task_id)

    def _notify(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.snapshot())


class CurationProgress(BuildProgress):
    """Progress of a curation runner: its steps are named by the runner as they come
    (``step("scanning", total=n)``), so the percentage is done/total of the current
    step and ``completed_steps`` counts the steps started before it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.step_index = 0
        self.step_name = "starting"
        self.steps_seen: list[str] = []

    @property
    def percentage(self) -> float:
        fraction = self.done / self.total if self.total else 0.0
        return round(100.0 * min(1.0, fraction), 2)

    def fields(self) -> dict[str, Any]:
        fields = super().fields()
        fields["total_steps"] = max(len(self.steps_seen), 1)
        return fields

    def step(self, name: str, *, total: int = 0, message: str = "", write: bool = True) -> None:
        if not name or len(name) > 50:
            raise ValueError(f"a step name has 1 to 50 characters: {name!r}")
        if name not in self.steps_seen:
            self.steps_seen.append(name)
        self.step_index = self.steps_seen.index(name)
        self.step_name = name
        self.step_started = self.clock()
        self.done = 0
        self.total = max(0, int(total))
        self.message = message
        self.eta_seconds = None
        self._notify()
        if write:
            self.write()


# --- claim ------------------------------------------------------------------------------


def task_claim(
    task_id: uuid.UUID,
    *,
    celery_task_id: str | None = None,
    claim_attempt: int | None = None,
    lock_wait_seconds: float = 0.0,
    kind: jobs.JobKind = BUILD_JOB,
) -> JobClaim | None:
    """Claim the task (a build, or a curation task with ``kind=CURATION_JOB``) for this
    process (``core.jobs.job_claim``), or None. A running task whose worker is dead and
    that has used up its attempts is marked failed here."""
    claim = jobs.job_claim(
        kind, task_id, celery_task_id=celery_task_id, claim_attempt=claim_attempt,
        lock_wait_seconds=lock_wait_seconds,
        on_attempts_exhausted=lambda refused: _task_fail_attempts_exhausted(
            task_id, refused.attempts, refused.worker_starts
        ),
    )
    return claim if isinstance(claim, JobClaim) else None


def _task_fail_attempts_exhausted(task_id: uuid.UUID, attempts: int, worker_starts: int) -> None:
    step = DatasetTask.objects.filter(pk=task_id).values_list("current_step", flat=True).first()
    message = (
        f"its worker died during {step} (killed, e.g. out of memory?) and {worker_starts} of "
        f"{job_max_attempts()} attempts are used up; embeddings stored so far are kept: resume the task to continue"
    )
    with transaction.atomic():
        marked = task_mark_failed(task_id, message, Q(status=DatasetTaskStatus.RUNNING, attempts=attempts))
    if marked:
        logger.warning("dataset task %s: %s", task_id, message)


# --- the job --------------------------------------------------------------------------


def build_job_run(
    task_id: uuid.UUID | str,
    body: Callable[[DatasetTask, DatasetVersion, BuildProgress], None],
    *,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    celery_task_id: str | None = None,
    claim_attempt: int | None = None,
    lock_wait_seconds: float = 0.0,
    clock: Clock = time.monotonic,
) -> DatasetTask:
    """Claim the task, run ``body`` under its lock, and record how it ended.

    Errors a user can act on (embedding API, registry, bad data) end as ``failed`` with
    their message; a bug too (its trace in the log). A lost claim (``BuildAborted``)
    stops quietly. Transient database errors are raised after releasing the claim when
    possible, carrying the attempt as ``claim_attempt`` (the Celery retry takes over
    that very attempt). Returns the task row as it ends up.
    """
    task_uuid = as_uuid(task_id, "task_id")
    claim = task_claim(
        task_uuid, celery_task_id=celery_task_id, claim_attempt=claim_attempt, lock_wait_seconds=lock_wait_seconds
    )
    if claim is None:
        task = DatasetTask.objects.get(pk=task_uuid)
        logger.info("dataset task %s not claimed (status %s): nothing to do", task_uuid, task.status)
        return task
    progress = BuildProgress(task_uuid, claim.attempt, on_progress, clock=clock, holds_lock=claim.holds_lock)
    try:
        task = DatasetTask.objects.select_related("dataset_version__embedding_model").get(pk=task_uuid)
        if claim.worker_starts > 1:
            logger.warning(
                "dataset task %s taken over from a dead worker (attempt %d of %d)",
                task_uuid, claim.worker_starts, job_max_attempts(),
            )
        progress.step(STEP_NAMES[0], message="Loading videos and labels", write=False)  # the claim wrote it

        def run() -> None:
            version = task.dataset_version
            if version is None:
                raise BuildFailed("its dataset version was deleted")
            if version.status != DatasetVersionStatus.BUILDING:
                raise BuildFailed(f"dataset version {version.pk} is {version.status}")
            body(task, version, progress)

        _run_guarded(task_uuid, progress, run, "dataset build")
    finally:
        if progress.holds_lock:
            job_lock_release(task_uuid)
    return DatasetTask.objects.get(pk=task_uuid)


def _run_guarded(task_uuid: uuid.UUID, progress: BuildProgress, run: Callable[[], None], noun: str) -> None:
    """Run a claimed job's body and record how it ended (see ``build_job_run``)."""
    try:
        run()
    except BuildAborted as aborted:
        logger.warning("%s %s stopped: %s", noun, task_uuid, aborted)
    except TRANSIENT_DATABASE_ERRORS as error:
        _task_release_after_transient_error(task_uuid, progress.attempt)
        error.claim_attempt = progress.attempt
        raise
    except ValidationError as error:  # e.g. the registry changed a model's identity
        _task_fail(task_uuid, progress, validation_error_message(error, with_fields=False))
    except (BuildFailed, EmbeddingProviderError, EmbeddingRegistryError, pgcopy.CopyFormatError, ValueError) as error:
        _task_fail(task_uuid, progress, str(error))
    except Exception as error:  # a bug or an unexpected database error: fail visibly, keep the trace in the log
        logger.exception("%s %s failed", noun, task_uuid)
        _task_fail(task_uuid, progress, f"{type(error).__name__}: {error}")


def curation_job_run(
    task_id: uuid.UUID | str,
    runner: Callable[[DatasetTask, CurationProgress], dict[str, Any]],
    *,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    celery_task_id: str | None = None,
    claim_attempt: int | None = None,
    lock_wait_seconds: float = 0.0,
    clock: Clock = time.monotonic,
) -> DatasetTask:
    """``build_job_run`` for a curation task: claim (``CURATION_JOB``), run
    ``runner(task, progress)`` under the task's lock, store the dict it returns as
    ``result`` and mark the task completed (fenced: a cancel or takeover meanwhile wins).
    Failures end as ``failed`` exactly as for builds."""
    task_uuid = as_uuid(task_id, "task_id")
    claim = task_claim(
        task_uuid, celery_task_id=celery_task_id, claim_attempt=claim_attempt,
        lock_wait_seconds=lock_wait_seconds, kind=CURATION_JOB,
    )
    if claim is None:
        task = DatasetTask.objects.get(pk=task_uuid)
        logger.info("curation task %s not claimed (status %s): nothing to do", task_uuid, task.status)
        return task
    progress = CurationProgress(task_uuid, claim.attempt, on_progress, clock=clock, holds_lock=claim.holds_lock)
    try:
        task = DatasetTask.objects.select_related("dataset_version").get(pk=task_uuid)
        if claim.worker_starts > 1:
            logger.warning(
                "curation task %s taken over from a dead worker (attempt %d of %d)",
                task_uuid, claim.worker_starts, job_max_attempts(),
            )

        def run() -> None:
            result = runner(task, progress)
            _curation_task_complete(task_uuid, progress, result)

        _run_guarded(task_uuid, progress, run, f"{task.type} task")
    finally:
        if progress.holds_lock:
            job_lock_release(task_uuid)
    return DatasetTask.objects.get(pk=task_uuid)


def _curation_task_complete(task_id: uuid.UUID, progress: CurationProgress, result: Any) -> None:
    if not isinstance(result, dict):
        raise TypeError(f"a curation runner returns a dict, not {type(result).__name__}")
    now = timezone.now()
    message = str(result.get("message") or f"Completed ({progress.step_name})")
    updated = DatasetTask.objects.filter(
        pk=task_id, status=DatasetTaskStatus.RUNNING, attempts=progress.attempt
    ).update(
        status=DatasetTaskStatus.COMPLETED,
        current_step="completed",
        completed_steps=max(len(progress.steps_seen), 1),
        total_steps=max(len(progress.steps_seen), 1),
        done=progress.total or progress.done,
        total=progress.total,
        percentage=100.0,
        eta_seconds=None,
        message=message[:1000],
        result=result,
        completed_at=now,
        heartbeat_at=now,
    )
    if not updated:
        raise BuildAborted(f"task {task_id} was cancelled or taken over before it completed")
    if progress.on_progress is not None:
        progress.on_progress({**progress.snapshot(), "current_step": "completed", "percentage": 100.0})


def task_mark_failed(task_id: uuid.UUID, message: str, only_if: Q, *, heartbeat: bool = False) -> bool:
    """Mark the task failed with ``message`` (when it still matches ``only_if``) and its
    version too while that is building. Returns whether the task was marked."""
    now = timezone.now()
    updates: dict[str, Any] = {
        "status": DatasetTaskStatus.FAILED,
        "error": message,
        "message": f"Task failed: {message}",
        "completed_at": now,
        "eta_seconds": None,
    }
    if heartbeat:
        updates["heartbeat_at"] = now
    if not DatasetTask.objects.filter(only_if, pk=task_id).update(**updates):
        return False
    DatasetVersion.objects.filter(tasks__pk=task_id, status=DatasetVersionStatus.BUILDING).update(
        status=DatasetVersionStatus.FAILED, error=message
    )
    return True


def _task_fail(task_id: uuid.UUID, progress: BuildProgress, reason: str) -> None:
    stored = progress.snapshot()
    message = f"{progress.step_name}: {reason}"
    if progress.step_name == "generating_embeddings" and stored["done"]:
        message += f" ({stored['done']} new embedding(s) stored before the failure are kept; resume to continue)"
    try:
        with transaction.atomic():
            updated = task_mark_failed(
                task_id, message, Q(status=DatasetTaskStatus.RUNNING, attempts=progress.attempt), heartbeat=True
            )
    except DatabaseError:
        logger.exception("could not mark dataset task %s failed (%s)", task_id, message)
        return
    if not updated:  # cancelled, swept or taken over meanwhile: not ours to fail
        logger.warning("dataset build %s failed after losing its claim: %s", task_id, message)
        return
    logger.warning("dataset build %s failed: %s", task_id, message)


def dataset_task_fail(task_id: uuid.UUID | str, reason: str) -> bool:
    """Mark a pending or running task failed with ``reason`` (and its building version).

    Best effort for callers that are giving up (e.g. the Celery task after its last
    retry on database errors): returns False when the database cannot be reached.
    """
    task_uuid = as_uuid(task_id, "task_id")
    try:
        with transaction.atomic():
            return task_mark_failed(
                task_uuid, reason, Q(status__in=[DatasetTaskStatus.PENDING, DatasetTaskStatus.RUNNING])
            )
    except DatabaseError:
        logger.exception("could not mark dataset task %s failed (%s)", task_uuid, reason)
        return False


def _task_release_after_transient_error(task_id: uuid.UUID, attempt: int) -> None:
    """Best effort: put the task back to pending so the Celery retry can claim it."""
    try:
        DatasetTask.objects.filter(pk=task_id, attempts=attempt, status=DatasetTaskStatus.RUNNING).update(
            status=DatasetTaskStatus.PENDING, message="Database error; retrying", heartbeat_at=timezone.now()
        )
    except DatabaseError:
        logger.warning("dataset task %s: database still unreachable; the retry will claim it by Celery id", task_id)


def build_enqueue(task_id: uuid.UUID, celery_task_id: str, *, claim_attempt: int | None = None) -> bool:
    """Queue the build message (``claim_attempt``: the attempt it may take over).

    When the broker cannot be reached the task is marked failed with that reason
    (resume it when the broker is back) and this returns False.
    """
    from datasets.tasks import build_dataset_version  # tasks import services

    kwargs = {} if claim_attempt is None else {"claim_attempt": claim_attempt}
    try:
        build_dataset_version.apply_async(args=[str(task_id)], kwargs=kwargs, task_id=celery_task_id)
    except Exception as error:  # broker unreachable: say so on the task instead of losing it
        if build_dataset_version.app.conf.task_always_eager:
            raise
        logger.exception("could not queue dataset build %s", task_id)
        message = f"could not queue the build (broker unavailable: {error}); resume the task when it is back"
        task_mark_failed(task_id, message, Q(status__in=[DatasetTaskStatus.PENDING, DatasetTaskStatus.RUNNING]))
        return False
    return True


# --- the sweeper -----------------------------------------------------------------------


def dataset_task_mark_stale(
    *, older_than: timedelta | None = None, pending_older_than: timedelta | None = None, wait: bool = True
) -> int:
    """The sweeper of dataset tasks. Returns the number of tasks it re-queued or failed.

    - a running task whose heartbeat is older than ``older_than`` (default
      ``stale_after()``) lost its worker: while fewer than ``job_max_attempts()``
      workers started this run it is re-queued (fenced: ``attempts`` + 1; the message
      takes over exactly that attempt and resumes from what was stored), else marked
      failed "worker lost (no heartbeat since …)";
    - a pending task queued longer ago than ``pending_older_than`` (default
      ``pending_stale_after()``: the broker's visibility timeout + 10 minutes) is
      marked failed "never started (message lost?): resume it".

    One sweep at a time across all workers (``core.jobs.sweep_lock``): with
    ``wait=False`` (the worker's timer) it returns 0 at once while another one runs.
    """
    max_attempts = job_max_attempts()
    handled = 0
    with transaction.atomic():
        if not jobs.sweep_lock(wait=wait):
            return 0
        stale = jobs.dead_jobs(
            BUILD_JOB, older_than=older_than, pending_older_than=pending_older_than,
            extra_fields=("current_step", "type"),
        )
        for task in stale:
            if task.status == DatasetTaskStatus.PENDING:
                handled += task_mark_failed(task.pk, "never started (message lost?): resume it", task.fence)
            elif task.worker_starts < max_attempts:
                handled += _task_requeue(task, max_attempts)
            else:
                message = (
                    f"worker lost (no heartbeat since {task.last_seen}) during {task.extra['current_step']}, "
                    f"after {task.worker_starts} of {max_attempts} attempts; resume the task to continue"
                )
                handled += task_mark_failed(task.pk, message, task.fence)
    for task in stale:
        logger.warning("dataset task %s (%s since %s) swept", task.pk, task.status, task.last_seen)
    return handled


def _task_requeue(task: jobs.DeadJob, max_attempts: int) -> bool:
    """Hand a dead worker's running task over to a new message (after commit)."""
    updates, attempt, celery_task_id = jobs.requeue_assignments(task)
    updated = DatasetTask.objects.filter(task.fence, pk=task.pk).update(
        **updates,
        eta_seconds=None,
        message=f"Worker lost (no heartbeat since {task.last_seen}) during {task.extra['current_step']}: "
        f"re-queued, attempt {task.worker_starts + 1} of {max_attempts}",
    )
    if updated:
        task_id = task.pk
        # Builds and curation tasks are different Celery tasks: each goes back to its own.
        enqueue = curation_enqueue if task.extra["type"] in CURATION_TASK_TYPES else build_enqueue
        transaction.on_commit(lambda: enqueue(task_id, celery_task_id, claim_attempt=attempt))
    return bool(updated)


def curation_enqueue(task_id: uuid.UUID, celery_task_id: str, *, claim_attempt: int | None = None) -> bool:
    """``build_enqueue`` for a curation task (``datasets.tasks.run_curation_task``)."""
    from datasets.tasks import run_curation_task  # tasks import services

    kwargs = {} if claim_attempt is None else {"claim_attempt": claim_attempt}
    try:
        run_curation_task.apply_async(args=[str(task_id)], kwargs=kwargs, task_id=celery_task_id)
    except Exception as error:  # broker unreachable: say so on the task instead of losing it
        if run_curation_task.app.conf.task_always_eager:
            raise
        logger.exception("could not queue curation task %s", task_id)
        message = f"could not queue the task (broker unavailable: {error}); resume the task when it is back"
        task_mark_failed(task_id, message, Q(status__in=[DatasetTaskStatus.PENDING, DatasetTaskStatus.RUNNING]))
        return False
    return True
