"""Runs: creation (queued), the status state machine, heartbeats, soft delete.

``run_transition`` is the only writer of ``Run.status``. The moves it allows are
``models.RUN_TRANSITIONS``; a worker passes the attempt it started with
(``expected_attempt``) so that once a run is cancelled or taken over, that worker can
no longer change it (``RunAttemptStale``).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from experiments.models import (
    ACTIVE_RUN_STATUSES,
    RUN_TRANSITIONS,
    Experiment,
    Run,
    RunStatus,
)
from experiments.services.experiments import ready_dataset_version
from experiments.services.validation import (
    clean_id,
    clean_name,
    clean_non_negative_int,
    clean_run_tags,
    clean_text,
)

MAX_ERROR_LENGTH = 10_000
#: Architecture keys are the training app's registry keys: short slugs.
ARCHITECTURE_KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class RunAttemptStale(Exception):
    """The run is no longer at the attempt this writer started (cancelled, finished, or
    taken over by another worker): the writer must stop; nothing was written."""


def fence_failure(run_id: int, expected_attempt: int | None, allowed: tuple[str, ...], action: str) -> Exception:
    """Why a fenced write found no row, as the exception to raise (one query, error path only)."""
    run = Run.objects.filter(pk=run_id).values("status", "attempts", "deleted_at").first()
    if run is None:
        return Run.DoesNotExist(f"run {run_id} does not exist")
    if expected_attempt is not None and run["attempts"] != expected_attempt:
        return RunAttemptStale(
            f"run {run_id} is at attempt {run['attempts']} ({run['status']}), not {expected_attempt} "
            f"(cancelled or taken over); did not {action}"
        )
    if run["status"] not in allowed:
        if expected_attempt is not None:
            return RunAttemptStale(f"run {run_id} is {run['status']}: did not {action}")
        return ValidationError({"run_id": f"run {run_id} is {run['status']}: cannot {action} "
                                          f"(only while {' or '.join(allowed)})"})
    return ValidationError({"run_id": f"run {run_id} is deleted; restore it first"})


def _default_run_name(experiment: Experiment, architecture_key: str) -> str:
    number = Run.objects.filter(experiment=experiment).count() + 1
    return f"{architecture_key}-{number}"


def run_create(
    experiment_id: int,
    *,
    architecture_key: str,
    seed: int,
    dataset_version_id: uuid.UUID | str | None = None,
    name: str = "",
    origin_run_id: int | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    celery_task_id: str = "",
    now: datetime | None = None,
) -> Run:
    """A queued run of a live experiment, with its ``params`` (write-once) in the same
    transaction. The dataset version defaults to the experiment's and must be ready.
    ``ValidationError`` (keyed by field) on bad input: nothing written."""
    from experiments.services.tracking import run_params_log  # tracking imports this module

    if not isinstance(architecture_key, str) or not ARCHITECTURE_KEY_PATTERN.match(architecture_key):
        raise ValidationError(
            {"architecture_key": f"must be a slug of lower-case letters, digits, - and _ (got {architecture_key!r})"}
        )
    seed = clean_non_negative_int(seed, "seed")
    cleaned_tags = clean_run_tags(tags or {})
    cleaned_name = clean_name(name) if name else ""
    experiment = Experiment.objects.filter(pk=clean_id(experiment_id, "experiment_id")).first()
    if experiment is None:
        raise ValidationError({"experiment_id": f"experiment {experiment_id} does not exist"})
    if experiment.is_deleted:
        raise ValidationError({"experiment_id": f"experiment {experiment.pk} is deleted; restore it first"})
    if dataset_version_id is None:
        if experiment.default_dataset_version_id is None:
            raise ValidationError(
                {"dataset_version_id": f"required: experiment {experiment.pk} has no default dataset version"}
            )
        dataset_version_id = experiment.default_dataset_version_id
    version = ready_dataset_version(dataset_version_id, "dataset_version_id")
    if origin_run_id is not None and not Run.objects.filter(pk=clean_id(origin_run_id, "origin_run_id")).exists():
        raise ValidationError({"origin_run_id": f"run {origin_run_id} does not exist"})
    with transaction.atomic():
        run = Run.objects.create(
            experiment=experiment,
            name=cleaned_name or _default_run_name(experiment, architecture_key),
            dataset_version=version,
            architecture_key=architecture_key,
            seed=seed,
            origin_run_id=origin_run_id,
            tags=cleaned_tags,
            celery_task_id=celery_task_id,
            queued_at=now or timezone.now(),
        )
        if params:
            run_params_log(run.pk, params)
    return run


def run_transition(
    run_id: int,
    to: str,
    *,
    expected_attempt: int | None = None,
    error: str = "",
    now: datetime | None = None,
) -> Run:
    """Move the run to status ``to`` and return it.

    Legal: queued → running / cancelled / failed; running → succeeded / failed /
    cancelled. Anything else is a ``ValidationError`` and writes nothing. ``failed``
    needs an ``error``. Starting (→ running) and cancelling bump ``attempts``: the
    returned run's ``attempts`` is the token the starting worker writes with, and a
    cancel makes the running worker's next fenced write raise ``RunAttemptStale``.
    With ``expected_attempt``, the move is made only while the run is still at that
    attempt (else ``RunAttemptStale``).
    """
    if to not in RunStatus.values:
        raise ValidationError({"status": f"must be one of {', '.join(RunStatus.values)} (got {to!r})"})
    error = clean_text(error, "error")[:MAX_ERROR_LENGTH]
    if to == RunStatus.FAILED and not error:
        raise ValidationError({"error": "a failed run needs the reason it failed"})
    moment = now or timezone.now()
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=clean_id(run_id, "run_id"))
        if expected_attempt is not None and run.attempts != expected_attempt:
            raise RunAttemptStale(
                f"run {run.pk} is at attempt {run.attempts} ({run.status}), not {expected_attempt} "
                f"(cancelled or taken over); did not move it to {to}"
            )
        if to not in RUN_TRANSITIONS[run.status]:
            allowed = ", ".join(sorted(RUN_TRANSITIONS[run.status])) or "none, it is finished"
            raise ValidationError(
                {"status": f"run {run.pk} cannot go from {run.status} to {to} (allowed from {run.status}: {allowed})"}
            )
        if run.is_deleted:
            raise ValidationError({"run_id": f"run {run.pk} is deleted; restore it first"})
        updates: dict[str, Any] = {"status": to, "error": error}
        if to == RunStatus.RUNNING:
            updates.update(started_at=moment, heartbeat_at=moment, attempts=run.attempts + 1)
        else:
            updates["finished_at"] = max(moment, run.started_at) if run.started_at else moment
            if to == RunStatus.CANCELLED:
                updates["attempts"] = run.attempts + 1
        for field, value in updates.items():
            setattr(run, field, value)
        run.save(update_fields=[*updates, "updated_at"])
    return run


def run_cancel(run_id: int, *, now: datetime | None = None) -> Run:
    """Cancel a queued or running run (``ValidationError`` once it has finished).

    A queued run never starts (its worker finds it cancelled); a running one is fenced
    off (``attempts`` bumped): its worker stops at the next batch boundary and writes
    nothing more, and the curves logged so far are kept."""
    return run_transition(run_id, RunStatus.CANCELLED, now=now)


def run_heartbeat(run_id: int, *, expected_attempt: int, now: datetime | None = None) -> None:
    """Sign of life of the worker running attempt ``expected_attempt`` (one UPDATE);
    ``RunAttemptStale`` when the run was cancelled, finished or taken over."""
    updated = Run.objects.filter(pk=run_id, status=RunStatus.RUNNING, attempts=expected_attempt).update(
        heartbeat_at=now or timezone.now()
    )
    if not updated:
        raise fence_failure(run_id, expected_attempt, (RunStatus.RUNNING,), "update its heartbeat")


def run_is_current(run_id: int, attempt: int) -> bool:
    """Whether the worker of ``attempt`` still owns the run (for a cancel check between batches)."""
    return Run.objects.filter(pk=run_id, status=RunStatus.RUNNING, attempts=attempt).exists()


def run_reproducibility_update(
    run_id: int, record: Mapping[str, Any], *, expected_attempt: int | None = None
) -> None:
    """Merge ``record`` (JSON-serialisable, top-level keys replaced) into the run's
    reproducibility record, while it is queued or running (fenced by attempt)."""
    if not isinstance(record, Mapping):
        raise ValidationError({"reproducibility": f"must be an object (got {type(record).__name__})"})
    allowed = tuple(ACTIVE_RUN_STATUSES)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Run._meta.db_table} SET reproducibility = reproducibility || %s::jsonb, updated_at = now() "
            "WHERE id = %s AND status = ANY(%s) AND deleted_at IS NULL "
            "AND (%s::integer IS NULL OR attempts = %s::integer)",
            [_json(record), run_id, list(allowed), expected_attempt, expected_attempt],
        )
        if cursor.rowcount:
            return
    raise fence_failure(run_id, expected_attempt, allowed, "update its reproducibility record")


def _json(record: Mapping[str, Any]) -> str:
    try:
        return json.dumps(dict(record), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValidationError({"reproducibility": f"not JSON-serialisable: {error}"}) from None


def run_tags_set(run_id: int, tags: Mapping[str, str | None]) -> Run:
    """Set (or, with ``None``, remove) some tags of a run, at any status (tags describe,
    they are not results): one statement."""
    removed = [key for key, text in tags.items() if text is None] if isinstance(tags, Mapping) else []
    added = clean_run_tags({key: text for key, text in tags.items() if text is not None}
                           if isinstance(tags, Mapping) else tags)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Run._meta.db_table} SET tags = (tags || %s::jsonb) - %s::text[], updated_at = now() "
            "WHERE id = %s RETURNING id",
            [json.dumps(added), removed, clean_id(run_id, "run_id")],
        )
        row = cursor.fetchone()
    if row is None:
        raise Run.DoesNotExist(f"run {run_id} does not exist")
    return Run.objects.get(pk=run_id)


def run_delete(run_id: int, *, now: datetime | None = None) -> Run:
    """Soft delete (restorable until purged). Refused while the run is queued or running."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=clean_id(run_id, "run_id"))
        if run.status in ACTIVE_RUN_STATUSES:
            raise ValidationError({"run_id": f"run {run.pk} is {run.status}; cancel it first"})
        if not run.is_deleted:
            run.deleted_at = now or timezone.now()
            run.save(update_fields=["deleted_at", "updated_at"])
    return run


def run_restore(run_id: int) -> Run:
    """Undo a run's soft delete."""
    updated = Run.objects.filter(pk=clean_id(run_id, "run_id"), deleted_at__isnull=False).update(
        deleted_at=None, updated_at=timezone.now()
    )
    if not updated and not Run.objects.filter(pk=run_id).exists():
        raise Run.DoesNotExist(f"run {run_id} does not exist")
    return Run.objects.get(pk=run_id)

