"""The build job's life on its ``DatasetTask`` row: claim, progress writes fenced by
``attempts``, failure, release after a transient error, takeover of a job whose worker
died, and the stale sweeper.

Who runs a job (DESIGN §6). A worker that claims a task holds a PostgreSQL session
advisory lock on it (``job_lock_try``) for as long as it runs the job; the server
releases that lock when the worker's connection ends, so a free lock on a running task
proves its worker is dead. A message for a running task (Celery redelivers one at once
when the worker child is killed, e.g. by the OOM killer) therefore takes the task over
when it gets the lock, or when the heartbeat is older than ``stale_after()``; the
sweeper re-queues running tasks whose heartbeat stopped. Each start counts in
``worker_starts``; once ``CVSA_JOB_MAX_ATTEMPTS`` workers have started a run, the next
takeover fails it instead (a job that kills its worker every time must stop). Every
write of an attempt is fenced by ``attempts`` (bumped on each claim, resume, cancel and
re-queue): a zombie attempt can never write after a takeover.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from datetime import timezone as dt_timezone
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from core import pgcopy
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
#: A redelivered message waits this long for the lock of the attempt it replaces: the
#: database notices a killed worker's closed connection within milliseconds, but the
#: broker can redeliver faster still.
REDELIVERY_LOCK_WAIT_SECONDS = 10.0

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


def stale_after() -> timedelta:
    return timedelta(seconds=settings.CVSA_DATASET_TASK_STALE_SECONDS)


def job_max_attempts() -> int:
    """How many workers may start one run of a job (``CVSA_JOB_MAX_ATTEMPTS``)."""
    return settings.CVSA_JOB_MAX_ATTEMPTS


class BuildAborted(Exception):
    """The worker lost its claim on the task (cancelled, or taken over): stop quietly."""


class BuildFailed(Exception):
    """A build cannot go on, with a message meant for the user."""


# --- the lock a running attempt holds -------------------------------------------------

def _job_lock_key_sql(param: str = "%s") -> str:
    return f"hashtextextended('datasets.task:' || {param}, 0)"


def job_lock_try(task_id: uuid.UUID) -> bool:
    """Take the task's session advisory lock if it is free (one round trip)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT pg_try_advisory_lock({_job_lock_key_sql()})", [str(task_id)])
        return cursor.fetchone()[0]


def _job_lock_wait(task_id: uuid.UUID, seconds: float) -> bool:
    """Wait up to ``seconds`` for the task's lock; whether it was taken."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT current_setting('lock_timeout'), set_config('lock_timeout', %s, true)",
                [f"{int(seconds * 1000)}ms"],
            )
            previous = cursor.fetchone()[0]
            cursor.execute(f"SELECT pg_advisory_lock({_job_lock_key_sql()})", [str(task_id)])
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [previous])  # for a caller's transaction
    except OperationalError as error:
        if getattr(error.__cause__, "sqlstate", None) == "55P03":  # lock_not_available: still held
            return False
        raise
    return True


def job_lock_release(task_id: uuid.UUID) -> None:
    """Best effort: a session whose lock could not be released is closed (that releases it)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT pg_advisory_unlock({_job_lock_key_sql()})", [str(task_id)])
    except DatabaseError:
        logger.warning("dataset task %s: could not release its lock; closing the connection", task_id)
        if not connection.in_atomic_block:
            connection.close()


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


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


# --- claim ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskClaim:
    attempt: int  # the fencing token this attempt writes with
    worker_starts: int  # workers that have started this run, this one included
    holds_lock: bool


def _claim_statement(
    task_id: uuid.UUID, *, celery_task_id: str | None, claim_attempt: int | None, lock_held: bool
) -> tuple[str, bool, int, int, int | None, int | None] | None:
    """ONE statement: take the task's lock (unless ``lock_held``) and claim the task.

    Claimable: ``pending`` (a fresh run: ``worker_starts`` = 1); ``running`` as the very
    attempt a Celery retry or a sweeper re-queue handed over (``celery_task_id`` and
    ``claim_attempt`` match; counted by whoever handed it over); ``running`` whose
    worker is dead: the lock was free, or the heartbeat is stale, and fewer than
    ``job_max_attempts()`` workers started this run.

    Returns the row as it was (status, lock taken, worker_starts, attempts) and, when
    claimed, the new (attempts, worker_starts); None when there is no such build task.
    """
    table = DatasetTask._meta.db_table
    now = timezone.now()
    handover = "(%(claim_attempt)s::integer IS NOT NULL AND t.celery_task_id = %(celery_task_id)s " \
        "AND t.attempts = %(claim_attempt)s::integer)"
    first_step = STEP_NAMES[0]
    set_celery_id = ", celery_task_id = %(celery_task_id)s" if celery_task_id else ""
    sql = f"""
        WITH current AS (
            SELECT status, worker_starts, attempts FROM {table} WHERE id = %(id)s AND type = %(build)s
        ),
        lock AS MATERIALIZED (
            SELECT CASE WHEN %(lock_held)s THEN true
                        WHEN status IN (%(pending)s, %(running)s) THEN pg_try_advisory_lock({_job_lock_key_sql('%(id_text)s')})
                        ELSE false END AS held
            FROM current
        ),
        claimed AS (
            UPDATE {table} AS t SET
                status = %(running)s,
                attempts = t.attempts + 1,
                worker_starts = CASE WHEN t.status = %(pending)s THEN 1
                                     WHEN {handover} THEN t.worker_starts
                                     ELSE t.worker_starts + 1 END,
                worker = %(worker)s,
                started_at = %(now)s, heartbeat_at = %(now)s, completed_at = NULL, error = '',
                current_step = %(first_step)s, total_steps = %(total_steps)s, completed_steps = 0,
                done = 0, total = 0, percentage = 0, eta_seconds = NULL,
                message = 'Loading videos and labels'{set_celery_id}
            FROM lock
            WHERE t.id = %(id)s AND t.type = %(build)s AND (
                t.status = %(pending)s
                OR (t.status = %(running)s AND {handover})
                OR (t.status = %(running)s AND t.worker_starts < %(max_attempts)s
                    AND (lock.held OR t.heartbeat_at IS NULL OR t.heartbeat_at < %(stale_before)s))
            )
            RETURNING t.attempts, t.worker_starts
        )
        SELECT current.status, lock.held, current.worker_starts, current.attempts,
               claimed.attempts, claimed.worker_starts
        FROM current CROSS JOIN lock LEFT JOIN claimed ON true
    """
    params = {
        "id": task_id,
        "id_text": str(task_id),
        "build": DatasetTaskType.BUILD,
        "pending": DatasetTaskStatus.PENDING,
        "running": DatasetTaskStatus.RUNNING,
        "lock_held": lock_held,
        "celery_task_id": celery_task_id or "",
        "claim_attempt": claim_attempt,
        "worker": _worker_name(),
        "now": now,
        "first_step": first_step,
        "total_steps": len(BUILD_STEPS),
        "max_attempts": job_max_attempts(),
        "stale_before": now - stale_after(),
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def task_claim(
    task_id: uuid.UUID,
    *,
    celery_task_id: str | None = None,
    claim_attempt: int | None = None,
    lock_wait_seconds: float = 0.0,
) -> TaskClaim | None:
    """Claim the task for this process (see ``_claim_statement``), or None.

    ``lock_wait_seconds`` (a redelivered message): when the task runs with a fresh
    heartbeat and its lock is held, wait that long for the lock before concluding that
    its worker is alive. A running task whose worker is dead and that has used up its
    attempts is marked failed here.
    """
    row = _claim_statement(task_id, celery_task_id=celery_task_id, claim_attempt=claim_attempt, lock_held=False)
    if row is None:
        return None
    status, held, worker_starts, attempts, claimed_attempt, claimed_starts = row
    if claimed_attempt is None and not held and status == DatasetTaskStatus.RUNNING and lock_wait_seconds > 0:
        if _job_lock_wait(task_id, lock_wait_seconds):
            row = _claim_statement(task_id, celery_task_id=celery_task_id, claim_attempt=claim_attempt, lock_held=True)
            status, held, worker_starts, attempts, claimed_attempt, claimed_starts = row
    if claimed_attempt is not None:
        return TaskClaim(attempt=claimed_attempt, worker_starts=claimed_starts, holds_lock=held)
    if held:
        if status == DatasetTaskStatus.RUNNING and worker_starts >= job_max_attempts():
            _task_fail_attempts_exhausted(task_id, attempts, worker_starts)
        job_lock_release(task_id)
    return None


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
        try:
            version = task.dataset_version
            if version is None:
                raise BuildFailed("its dataset version was deleted")
            if version.status != DatasetVersionStatus.BUILDING:
                raise BuildFailed(f"dataset version {version.pk} is {version.status}")
            body(task, version, progress)
        except BuildAborted as aborted:
            logger.warning("dataset build %s stopped: %s", task_uuid, aborted)
        except TRANSIENT_DATABASE_ERRORS as error:
            _task_release_after_transient_error(task_uuid, progress.attempt)
            error.claim_attempt = progress.attempt
            raise
        except ValidationError as error:  # e.g. the registry changed a model's identity
            _task_fail(task_uuid, progress, validation_error_message(error, with_fields=False))
        except (BuildFailed, EmbeddingProviderError, EmbeddingRegistryError, pgcopy.CopyFormatError, ValueError) as error:
            _task_fail(task_uuid, progress, str(error))
        except Exception as error:  # a bug or an unexpected database error: fail visibly, keep the trace in the log
            logger.exception("dataset build %s failed", task_uuid)
            _task_fail(task_uuid, progress, f"{type(error).__name__}: {error}")
    finally:
        if progress.holds_lock:
            job_lock_release(task_uuid)
    return DatasetTask.objects.get(pk=task_uuid)


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

#: A pending task whose queue message never reached a worker: failed after the broker's
#: visibility timeout (it would have been redelivered by then) plus this margin.
PENDING_NEVER_STARTED_MARGIN = timedelta(minutes=10)

_SWEEP_LOCK_KEY_SQL = "hashtextextended('datasets.sweeper', 0)"


def pending_stale_after() -> timedelta:
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", None) or {}
    return timedelta(seconds=float(options.get("visibility_timeout", 3600))) + PENDING_NEVER_STARTED_MARGIN


def _utc_iso(moment) -> str:
    return moment.astimezone(dt_timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else "never"


def dataset_task_mark_stale(
    *, older_than: timedelta | None = None, pending_older_than: timedelta | None = None, wait: bool = True
) -> int:
    """The sweeper. Returns the number of tasks it re-queued or failed.

    - a running task whose heartbeat is older than ``older_than`` (default
      ``stale_after()``) lost its worker: while fewer than ``job_max_attempts()``
      workers started this run it is re-queued (fenced: ``attempts`` + 1; the message
      takes over exactly that attempt and resumes from what was stored), else marked
      failed "worker lost (no heartbeat since …)";
    - a pending task queued (``heartbeat_at``, set on resume / release, else
      ``created_at``) longer ago than ``pending_older_than`` (default
      ``pending_stale_after()``: the broker's visibility timeout + 10 minutes) is
      marked failed "never started (message lost?): resume it".

    One sweep at a time across all workers (a transaction-level advisory lock): with
    ``wait=False`` (the worker's timer) it returns 0 at once while another one runs.
    """
    now = timezone.now()
    cutoff = now - (older_than or stale_after())
    pending_cutoff = now - (pending_older_than or pending_stale_after())
    max_attempts = job_max_attempts()
    handled = 0
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {'pg_advisory_xact_lock' if wait else 'pg_try_advisory_xact_lock'}"
                           f"({_SWEEP_LOCK_KEY_SQL})")
            if not wait and not cursor.fetchone()[0]:
                return 0
        dead = Q(status=DatasetTaskStatus.RUNNING) & (
            Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
        )
        never_started = Q(status=DatasetTaskStatus.PENDING)
        stale = list(
            DatasetTask.objects.select_for_update(skip_locked=True)
            .annotate(queued_at=Coalesce("heartbeat_at", "created_at"))
            .filter(dead | (never_started & Q(queued_at__lt=pending_cutoff)))
            .values("pk", "status", "attempts", "worker_starts", "current_step", "heartbeat_at", "started_at")
        )
        for task in stale:
            fence = Q(status=task["status"], attempts=task["attempts"])
            if task["status"] == DatasetTaskStatus.PENDING:
                handled += task_mark_failed(task["pk"], "never started (message lost?): resume it", fence)
                continue
            since = _utc_iso(task["heartbeat_at"] or task["started_at"])
            if task["worker_starts"] < max_attempts:
                handled += _task_requeue(task, fence, since, max_attempts)
                continue
            message = (
                f"worker lost (no heartbeat since {since}) during {task['current_step']}, "
                f"after {task['worker_starts']} of {max_attempts} attempts; resume the task to continue"
            )
            handled += task_mark_failed(task["pk"], message, fence)
    for task in stale:
        logger.warning("dataset task %s (%s since %s) swept", task["pk"], task["status"], task["heartbeat_at"])
    return handled


def _task_requeue(task: dict[str, Any], fence: Q, since: str, max_attempts: int) -> bool:
    """Hand a dead worker's running task over to a new message (after commit)."""
    attempt = task["attempts"] + 1
    starts = task["worker_starts"] + 1
    celery_task_id = str(uuid.uuid4())
    updated = DatasetTask.objects.filter(fence, pk=task["pk"]).update(
        attempts=F("attempts") + 1,  # the dead worker's writes, should it come back, no longer apply
        worker_starts=F("worker_starts") + 1,
        worker="",
        heartbeat_at=timezone.now(),  # "re-queued at": swept again if no worker takes it
        celery_task_id=celery_task_id,
        eta_seconds=None,
        message=f"Worker lost (no heartbeat since {since}) during {task['current_step']}: "
        f"re-queued, attempt {starts} of {max_attempts}",
    )
    if updated:
        task_id = task["pk"]
        transaction.on_commit(lambda: build_enqueue(task_id, celery_task_id, claim_attempt=attempt))
    return bool(updated)
