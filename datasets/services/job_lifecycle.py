"""The build job's life on its ``DatasetTask`` row: steps, progress writes fenced by
``attempts``, claim, failure, release after a transient error, and the stale sweeper.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from datasets.models import DatasetTask, DatasetTaskStatus, DatasetTaskType, DatasetVersion, DatasetVersionStatus
from datasets.selectors import _as_uuid

logger = logging.getLogger(__name__)


#: In-step progress writes at most this often (each costs a round trip).
PROGRESS_MIN_INTERVAL_SECONDS = 0.5
#: While waiting on a slow embedding call, write a heartbeat at least this often.
HEARTBEAT_INTERVAL_SECONDS = 30.0


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


def stale_after() -> timedelta:
    return timedelta(seconds=settings.CVSA_DATASET_TASK_STALE_SECONDS)


class BuildAborted(Exception):
    """The worker lost its claim on the task (cancelled, or taken over): stop quietly."""


class BuildFailed(Exception):
    """A build cannot go on, with a message meant for the user."""


class _BuildProgress:
    """Writes progress + heartbeat into the task row, throttled; fenced by ``attempt``."""

    def __init__(self, task_id: uuid.UUID, attempt: int, on_progress: Callable[[dict], None] | None) -> None:
        self.task_id = task_id
        self.attempt = attempt
        self.on_progress = on_progress
        self.step_index = 0
        self.step_name = STEP_NAMES[0]
        self.step_started = time.monotonic()
        self.done = 0
        self.total = 0
        self.message = ""
        self.eta_seconds: float | None = None
        self.last_write = time.monotonic()

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
        self.step_started = time.monotonic()
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
        elapsed = time.monotonic() - self.step_started
        self.eta_seconds = round(elapsed / done * (self.total - done), 1) if done and self.total > done else None
        self._notify()
        if time.monotonic() - self.last_write >= PROGRESS_MIN_INTERVAL_SECONDS:
            self.write()

    def heartbeat(self) -> None:
        if time.monotonic() - self.last_write >= HEARTBEAT_INTERVAL_SECONDS:
            self.write()

    def write(self, **extra: Any) -> None:
        updated = DatasetTask.objects.filter(
            pk=self.task_id, status=DatasetTaskStatus.RUNNING, attempts=self.attempt
        ).update(heartbeat_at=timezone.now(), **self.fields(), **extra)
        self.last_write = time.monotonic()
        if not updated:
            raise BuildAborted(f"task {self.task_id} was cancelled or taken over by another worker")

    def _notify(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.snapshot())


def _task_claim(task_id: uuid.UUID, *, celery_task_id: str | None, claim_attempt: int | None) -> bool:
    """Atomically take the task: pending, or running with a stale heartbeat (worker
    lost), or, for a Celery retry, still running as the very attempt that failed.

    Matching the attempt (not just the Celery id) means a copy of the retry message that
    Redis redelivers later cannot take over the run the first copy started.
    """
    now = timezone.now()
    claimable = Q(status=DatasetTaskStatus.PENDING) | Q(
        Q(heartbeat_at__lt=now - stale_after()) | Q(heartbeat_at__isnull=True), status=DatasetTaskStatus.RUNNING
    )
    if claim_attempt is not None and celery_task_id:
        claimable |= Q(status=DatasetTaskStatus.RUNNING, celery_task_id=celery_task_id, attempts=claim_attempt)
    first_step = STEP_NAMES[0]
    updates: dict[str, Any] = {
        "status": DatasetTaskStatus.RUNNING,
        "attempts": F("attempts") + 1,
        "started_at": now,
        "heartbeat_at": now,
        "completed_at": None,
        "error": "",
        "current_step": first_step,
        "total_steps": len(BUILD_STEPS),
        "completed_steps": 0,
        "done": 0,
        "total": 0,
        "percentage": 0.0,
        "eta_seconds": None,
        "message": "Loading videos and labels",
    }
    if celery_task_id:
        updates["celery_task_id"] = celery_task_id
    return bool(
        DatasetTask.objects.filter(pk=task_id, type=DatasetTaskType.BUILD).filter(claimable).update(**updates)
    )


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


def _task_fail(task: DatasetTask, progress: _BuildProgress, reason: str) -> None:
    stored = progress.snapshot()
    message = f"{progress.step_name}: {reason}"
    if progress.step_name == "generating_embeddings" and stored["done"]:
        message += f" ({stored['done']} new embedding(s) stored before the failure are kept; resume to continue)"
    try:
        with transaction.atomic():
            updated = task_mark_failed(
                task.pk, message, Q(status=DatasetTaskStatus.RUNNING, attempts=progress.attempt), heartbeat=True
            )
    except DatabaseError:
        logger.exception("could not mark dataset task %s failed (%s)", task.pk, message)
        return
    if not updated:  # cancelled, swept or taken over meanwhile: not ours to fail
        logger.warning("dataset build %s failed after losing its claim: %s", task.pk, message)
        return
    logger.warning("dataset build %s failed: %s", task.pk, message)


def dataset_task_fail(task_id: uuid.UUID | str, reason: str) -> bool:
    """Mark a pending or running task failed with ``reason`` (and its building version).

    Best effort for callers that are giving up (e.g. the Celery task after its last
    retry on database errors): returns False when the database cannot be reached.
    """
    task_uuid = _as_uuid(task_id, "task_id")
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


#: A pending task whose queue message never reached a worker: failed after the broker's
#: visibility timeout (it would have been redelivered by then) plus this margin.
PENDING_NEVER_STARTED_MARGIN = timedelta(minutes=10)


def pending_stale_after() -> timedelta:
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", None) or {}
    return timedelta(seconds=float(options.get("visibility_timeout", 3600))) + PENDING_NEVER_STARTED_MARGIN


def dataset_task_mark_stale(*, older_than: timedelta | None = None, pending_older_than: timedelta | None = None) -> int:
    """The sweeper, two cases, each marked failed with its building version:

    - a running task whose heartbeat is older than ``older_than`` (default
      ``stale_after()``): "worker lost (no heartbeat since …)";
    - a pending task queued (``heartbeat_at``, set on resume / release, else
      ``created_at``) longer ago than ``pending_older_than`` (default
      ``pending_stale_after()``: the broker's visibility timeout + 10 minutes):
      "never started (message lost?): resume it".

    Embeddings it stored are kept; resume it with ``dataset_task_resume``. Returns the
    number of tasks marked. One query, plus one per kind of failure found.
    """
    now = timezone.now()
    cutoff = now - (older_than or stale_after())
    pending_cutoff = now - (pending_older_than or pending_stale_after())
    task_table = DatasetTask._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {task_table} SET
                status = %s,
                error = CASE WHEN status = %s THEN 'never started (message lost?): resume it'
                    ELSE 'worker lost (no heartbeat since '
                    || to_char(COALESCE(heartbeat_at, started_at, created_at) AT TIME ZONE 'UTC',
                               'YYYY-MM-DD"T"HH24:MI:SS"Z"')
                    || ') during ' || current_step || '; resume the task to continue' END,
                message = CASE WHEN status = %s THEN 'Task failed: never started'
                    ELSE 'Task failed: worker lost' END,
                completed_at = now(),
                eta_seconds = NULL
            WHERE (status = %s AND (heartbeat_at < %s OR (heartbeat_at IS NULL AND started_at < %s)))
               OR (status = %s AND COALESCE(heartbeat_at, created_at) < %s)
            RETURNING id, dataset_version_id, error
            """,
            [
                DatasetTaskStatus.FAILED,
                DatasetTaskStatus.PENDING,
                DatasetTaskStatus.PENDING,
                DatasetTaskStatus.RUNNING,
                cutoff,
                cutoff,
                DatasetTaskStatus.PENDING,
                pending_cutoff,
            ],
        )
        marked = cursor.fetchall()
        by_reason: dict[str, list[uuid.UUID]] = {}
        for _, version_id, error in marked:
            if version_id:
                reason = "never started (message lost?)" if error.startswith("never started") else "worker lost"
                by_reason.setdefault(reason, []).append(version_id)
        for reason, version_ids in by_reason.items():
            DatasetVersion.objects.filter(pk__in=version_ids, status=DatasetVersionStatus.BUILDING).update(
                status=DatasetVersionStatus.FAILED, error=reason
            )
    for task_id, _, error in marked:
        logger.warning("dataset task %s: %s", task_id, error)
    return len(marked)
