"""Curation tasks as jobs: cleaning, deduplication, augmentation and label import run on
their ``DatasetTask`` row through the builds' lifecycle (``job_lifecycle``: claim with
fencing, heartbeat, the task's advisory lock, takeover after a worker death, the sweep).

Each type has ONE runner, ``runner(task, progress) -> dict``, named here by dotted path
and imported only when a task of that type runs (the runners live beside the data they
write: ``duplicates``, ``augmentation``, ``cleaning_jobs``, ``import_jobs``). A runner
reads ``task.params``, reports with ``progress.step(name, total=, message=)``,
``progress.advance(done)`` and ``progress.heartbeat()``, raises ``ValidationError`` or
``ValueError`` for a failure the user can act on, returns the ``result`` dict, and is
safe to run again on the same task (a takeover re-runs it from the start).

``curation_task_queue`` checks the parameters with the type's ``*_params_clean`` (bad
input: ``ValidationError``, nothing written), writes the pending row and queues
``datasets.tasks.run_curation_task`` on commit; that Celery task calls
``curation_task_run``. Cancel: ``dataset_task_cancel`` (the runner stops at its next
progress write); resume: ``curation_task_resume`` (the runner starts over).
"""

from __future__ import annotations

import importlib
import time
import uuid
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from core.validation import validation_error_message
from datasets.models import DatasetTask, DatasetTaskStatus, DatasetTaskType, DatasetVersion
from datasets.selectors import as_uuid
from datasets.services.build_requests import dataset_task_cancel
from datasets.services.job_lifecycle import CURATION_TASK_TYPES, Clock, curation_enqueue, curation_job_run

#: type -> the runner, "module.function" (imported when a task of the type runs).
CURATION_RUNNERS: dict[str, str] = {
    DatasetTaskType.CLEANING: "datasets.services.cleaning_jobs.cleaning_task_run",
    DatasetTaskType.DEDUPLICATION: "datasets.services.duplicates.deduplication_run",
    DatasetTaskType.AUGMENTATION: "datasets.services.augmentation.augmentation_run",
    DatasetTaskType.IMPORT: "datasets.services.import_jobs.labeling_import_run",
}
#: type -> the check of its parameters, ``clean(params) -> dict`` (``ValidationError``).
CURATION_PARAMS_CLEANERS: dict[str, str] = {
    DatasetTaskType.CLEANING: "datasets.services.cleaning_jobs.cleaning_task_params_clean",
    DatasetTaskType.DEDUPLICATION: "datasets.services.duplicates.deduplication_params_clean",
    DatasetTaskType.AUGMENTATION: "datasets.services.augmentation.augmentation_params_clean",
    DatasetTaskType.IMPORT: "datasets.services.import_jobs.labeling_import_params_clean",
}
#: Types whose task belongs to a dataset version (the others work on the corpus).
VERSION_TASK_TYPES = frozenset({DatasetTaskType.AUGMENTATION})

Runner = Callable[[DatasetTask, Any], dict[str, Any]]


def _resolve(dotted: str) -> Callable:
    module_name, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module_name), name)


def curation_runner(task_type: str) -> Runner:
    """The runner of ``task_type`` (ImportError when its module is missing: a bug)."""
    return _resolve(CURATION_RUNNERS[task_type])


def curation_task_type_clean(task_type: Any) -> str:
    if task_type not in CURATION_RUNNERS:
        choices = ", ".join(sorted(CURATION_RUNNERS))
        raise ValidationError({"type": f"unknown curation task type {task_type!r} (choose one of {choices})"})
    return str(task_type)


def curation_params_clean(task_type: str, params: Any) -> dict[str, Any]:
    """The type's cleaned parameters; ``ValidationError`` keyed ``params`` on bad input."""
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ValidationError({"params": "must be a JSON object"})
    try:
        cleaner = _resolve(CURATION_PARAMS_CLEANERS[task_type])
    except (ImportError, AttributeError):
        raise ValidationError({"type": f"{task_type} tasks are not available in this installation"}) from None
    try:
        cleaned = cleaner(params)
    except ValidationError as error:  # "params: count: required", whatever the cleaner's keys
        raise ValidationError({"params": validation_error_message(error)}) from None
    except ValueError as error:
        raise ValidationError({"params": str(error)}) from None
    return cleaned


def curation_task_queue(
    *,
    task_type: Any,
    params: Any,
    user=None,
    dataset_version: DatasetVersion | None = None,
    enqueue: bool = True,
) -> DatasetTask:
    """Check the parameters, write the pending task, queue its job on commit.

    ``ValidationError`` (nothing written) on an unknown type, bad parameters, a missing
    or superfluous dataset version, or a version that already has a live task."""
    task_type = curation_task_type_clean(task_type)
    if task_type in VERSION_TASK_TYPES and dataset_version is None:
        raise ValidationError({"dataset_id": f"a {task_type} task needs a dataset version"})
    if task_type not in VERSION_TASK_TYPES and dataset_version is not None:
        raise ValidationError({"dataset_id": f"a {task_type} task works on the corpus, not on a dataset version"})
    cleaned = curation_params_clean(task_type, params)
    celery_task_id = str(uuid.uuid4()) if enqueue else ""
    try:
        with transaction.atomic():
            task = DatasetTask.objects.create(
                type=task_type,
                dataset_version=dataset_version,
                params=cleaned,
                created_by_id=getattr(user, "pk", None),
                message="Waiting for a worker",
                celery_task_id=celery_task_id,
            )
            if enqueue:
                transaction.on_commit(lambda: curation_enqueue(task.pk, celery_task_id))
    except IntegrityError:  # dataset_task_one_active_per_version
        raise ValidationError(
            {"dataset_id": f"dataset version {dataset_version.pk} already has a pending or running task"}
        ) from None
    return task


def curation_task_run(
    task_id: uuid.UUID | str,
    *,
    celery_task_id: str | None = None,
    claim_attempt: int | None = None,
    lock_wait_seconds: float = 0.0,
    clock: Clock = time.monotonic,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
) -> DatasetTask:
    """Run a curation task's job (idempotent; see ``job_lifecycle.curation_job_run``).
    Returns the task row as it ends up; a task that is not a pending curation task (or
    a running one whose worker died) is returned untouched."""

    def run(task: DatasetTask, progress) -> dict[str, Any]:
        return curation_runner(task.type)(task, progress)

    return curation_job_run(
        task_id, run, on_progress=on_progress, celery_task_id=celery_task_id, claim_attempt=claim_attempt,
        lock_wait_seconds=lock_wait_seconds, clock=clock,
    )


def _curation_task_locked(task_uuid: uuid.UUID) -> DatasetTask:
    task = DatasetTask.objects.select_for_update().get(pk=task_uuid)
    if task.type not in CURATION_TASK_TYPES:
        raise ValidationError({"task_id": f"task {task.pk} is a {task.type} task, not a curation task"})
    return task


def curation_task_cancel(task_id: uuid.UUID | str) -> DatasetTask:
    """Cancel a pending or running curation task (``DatasetTask.DoesNotExist``,
    ``ValidationError`` when it is finished or not a curation task)."""
    task_uuid = as_uuid(task_id, "task_id")
    with transaction.atomic():
        _curation_task_locked(task_uuid)
        return dataset_task_cancel(task_uuid)


def curation_task_resume(task_id: uuid.UUID | str, *, enqueue: bool = True) -> DatasetTask:
    """Re-queue a failed or cancelled curation task; its runner starts over (runners are
    idempotent). ``ValidationError`` when it is pending, running or completed."""
    task_uuid = as_uuid(task_id, "task_id")
    celery_task_id = str(uuid.uuid4()) if enqueue else ""
    with transaction.atomic():
        task = _curation_task_locked(task_uuid)
        if task.status not in (DatasetTaskStatus.FAILED, DatasetTaskStatus.CANCELLED):
            raise ValidationError({"task_id": f"task {task.pk} is {task.status}; only failed or cancelled tasks resume"})
        DatasetTask.objects.filter(pk=task.pk).update(
            status=DatasetTaskStatus.PENDING,
            attempts=F("attempts") + 1,  # fences out the late writes of an earlier worker
            heartbeat_at=timezone.now(),  # "queued at": the sweeper fails it if it never starts
            error="", result=None, message="Resumed: waiting for a worker", current_step="initialized",
            completed_steps=0, done=0, total=0, percentage=0.0, eta_seconds=None, completed_at=None,
            celery_task_id=celery_task_id,
        )
        if enqueue:
            transaction.on_commit(lambda: curation_enqueue(task.pk, celery_task_id))
    task.refresh_from_db()
    return task
