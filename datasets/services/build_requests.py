"""Build requests: input cleaning, ``dataset_version_request`` (directly or from a
sampling), queueing, resume and cancel.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F, Max, Q
from django.utils import timezone

from datasets.models import (
    Dataset,
    DatasetTask,
    DatasetTaskStatus,
    DatasetTaskType,
    DatasetVersion,
    DatasetVersionStatus,
)
from datasets.selectors import SamplingResult, _as_uuid, sampling_select
from datasets.services.embedding_models import _embedding_models_upsert, _spec_for_key
from datasets.services.job_lifecycle import BUILD_STEPS, task_mark_failed
from datasets.text_composition import TEXT_TEMPLATE_VERSION
from labeling.models import Video, VideoConsensus

logger = logging.getLogger(__name__)


DEFAULT_DATASET_NAME = "default"
DEFAULT_SPLIT_RATIOS = (0.8, 0.1, 0.1)
MAX_ERROR_AIDS_LISTED = 20


def _clean_aid_list(aid_list: object) -> list[int]:
    if aid_list is None or isinstance(aid_list, (str, bytes)) or not isinstance(aid_list, Iterable):
        raise ValidationError({"aid_list": "must be a list of integer aids"})
    aids = list(aid_list)
    if not aids:
        raise ValidationError({"aid_list": "is empty: give at least one aid"})
    bad = [aid for aid in aids if not isinstance(aid, int) or isinstance(aid, bool) or aid <= 0]
    if bad:
        shown = ", ".join(repr(aid) for aid in bad[:MAX_ERROR_AIDS_LISTED])
        raise ValidationError({"aid_list": f"aids must be positive integers; invalid: {shown}"})
    return list(dict.fromkeys(aids))  # de-duplicated, first occurrence order


def _clean_split_ratios(split_ratios: object) -> tuple[float, float, float]:
    try:
        ratios = tuple(float(value) for value in split_ratios)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ValidationError({"split_ratios": "must be three numbers (train, val, test)"}) from None
    if len(ratios) != 3:
        raise ValidationError({"split_ratios": f"must be three numbers (train, val, test), got {len(ratios)}"})
    train, val, test = ratios
    if not (0 < train <= 1 and 0 <= val <= 1 and 0 <= test <= 1):
        raise ValidationError({"split_ratios": f"train must be in (0, 1], val and test in [0, 1] (got {ratios})"})
    if abs(train + val + test - 1.0) > 1e-6:
        raise ValidationError({"split_ratios": f"must sum to 1 (got {train + val + test:g})"})
    return train, val, test


def _check_aids_exist(aids: list[int]) -> None:
    """One query: unknown aids, and whether any requested video has a consensus label."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT v.aid, c.value IS NOT NULL FROM {Video._meta.db_table} v "
            f"JOIN {VideoConsensus._meta.db_table} c ON c.video_id = v.id WHERE v.aid = ANY(%s)",
            [aids],
        )
        found = dict(cursor.fetchall())
    unknown = [aid for aid in aids if aid not in found]
    if unknown:
        shown = ", ".join(str(aid) for aid in unknown[:MAX_ERROR_AIDS_LISTED])
        more = f" and {len(unknown) - MAX_ERROR_AIDS_LISTED} more" if len(unknown) > MAX_ERROR_AIDS_LISTED else ""
        raise ValidationError({"aid_list": f"{len(unknown)} aid(s) not in the corpus: {shown}{more}"})
    if not any(found.values()):
        raise ValidationError({"aid_list": f"none of the {len(aids)} video(s) has a consensus label"})


def dataset_version_request(
    *,
    aid_list: Iterable[int],
    embedding_model_key: str,
    description: str | None = "",
    split_ratios: Sequence[float] = DEFAULT_SPLIT_RATIOS,
    seed: int = 42,
    force_regenerate: bool = False,
    include_inconsistent: bool = False,
    dataset_name: str | None = None,
    user=None,
    selection: dict[str, Any] | None = None,
    enqueue: bool = True,
) -> DatasetTask:
    """Validate a build request, create the version + task, queue the job on commit.

    Returns the ``DatasetTask`` (``task.id`` is the client's ``task_id``;
    ``task.dataset_version_id`` its ``dataset_id``). Raises ``ValidationError`` keyed by
    field (``aid_list``, ``embedding_model``, ``split_ratios``, ``seed``,
    ``dataset_name``, ``description``) with nothing written. ``dataset_name`` None
    files the version under the dataset ``"default"``. ``selection`` records how the
    aids were chosen (e.g. ``SamplingResult.selection()``). ``enqueue=False`` leaves
    the task pending for an in-process ``dataset_version_build`` (``--sync``).
    """
    aids = _clean_aid_list(aid_list)
    ratios = _clean_split_ratios(split_ratios)
    errors: dict[str, str] = {}
    if not isinstance(seed, int) or isinstance(seed, bool) or not -(2**63) <= seed < 2**63:
        errors["seed"] = f"must be an integer (got {seed!r})"
    if description is not None and not isinstance(description, str):
        errors["description"] = "must be a string"
    name = DEFAULT_DATASET_NAME if dataset_name is None else dataset_name
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        errors["dataset_name"] = "must be a non-empty string of at most 200 characters"
    if selection is not None and not isinstance(selection, dict):
        errors["selection"] = "must be an object"
    if errors:
        raise ValidationError(errors)
    spec = _spec_for_key(embedding_model_key)
    _check_aids_exist(aids)

    user_id = getattr(user, "pk", None) if user is not None and getattr(user, "is_authenticated", False) else None
    with transaction.atomic():
        model = _embedding_models_upsert([spec])[spec.key]
        dataset, _ = Dataset.objects.select_for_update().get_or_create(
            name=name.strip(), defaults={"created_by_id": user_id}
        )
        number = (dataset.versions.aggregate(highest=Max("number"))["highest"] or 0) + 1
        version = DatasetVersion.objects.create(
            dataset=dataset,
            number=number,
            description=description or "",
            created_by_id=user_id,
            embedding_model=model,
            embedding_dimensions=spec.dimensions,
            selection=selection or {"strategy": "aid_list"},
            requested_aids=aids,
            text_template_version=TEXT_TEMPLATE_VERSION,
            train_ratio=ratios[0],
            val_ratio=ratios[1],
            test_ratio=ratios[2],
            seed=seed,
            force_regenerate=bool(force_regenerate),
            include_inconsistent=bool(include_inconsistent),
        )
        task = DatasetTask.objects.create(
            type=DatasetTaskType.BUILD,
            dataset_version=version,
            created_by_id=user_id,
            params={
                "aid_count": len(aids),
                "embedding_model": spec.key,
                "force_regenerate": bool(force_regenerate),
                "include_inconsistent": bool(include_inconsistent),
                "split_ratios": list(ratios),
                "seed": seed,
                "dataset_name": dataset.name,
                "description": description or None,
            },
            total_steps=len(BUILD_STEPS),
            message="Task initialized",
            celery_task_id=str(uuid.uuid4()) if enqueue else "",
        )
        if enqueue:
            transaction.on_commit(lambda: _enqueue_build(task.pk, task.celery_task_id))
    return task


def dataset_version_request_from_sampling(
    *,
    sampling: dict[str, Any],
    embedding_model_key: str,
    description: str | None = "",
    **build_kwargs: Any,
) -> tuple[DatasetTask, SamplingResult]:
    """Sample aids (``selectors.sampling_select``), then request a build of them.

    ``sampling`` holds ``strategy``, ``limit``, ``label_value``, ``metadata_filter`` and
    ``seed`` (missing keys: the selector's defaults); the version's ``selection`` is
    ``SamplingResult.selection()``. Other keyword arguments go to
    ``dataset_version_request``. Raises ``ValidationError`` (``sampling``: "No AIDs
    found matching the sampling criteria") when nothing matches, and the selector's and
    ``dataset_version_request``'s errors; nothing is written then.
    """
    if not isinstance(sampling, dict):
        raise ValidationError({"sampling": "must be an object"})
    unknown = sorted(set(sampling) - _SAMPLING_KEYS)
    if unknown:
        raise ValidationError({"sampling": f"unknown key(s): {', '.join(unknown)}"})
    if "selection" in build_kwargs or "aid_list" in build_kwargs:
        raise TypeError("dataset_version_request_from_sampling() chooses aid_list and selection itself")
    result = sampling_select(**sampling)
    if not result.aid_list:
        raise ValidationError({"sampling": "No AIDs found matching the sampling criteria"})
    task = dataset_version_request(
        aid_list=result.aid_list,
        embedding_model_key=embedding_model_key,
        description=description,
        selection=result.selection(),
        **build_kwargs,
    )
    return task, result


_SAMPLING_KEYS = frozenset({"strategy", "limit", "label_value", "metadata_filter", "seed"})


def _enqueue_build(task_id: uuid.UUID, celery_task_id: str) -> None:
    from datasets.tasks import build_dataset_version  # tasks import services

    try:
        build_dataset_version.apply_async(args=[str(task_id)], task_id=celery_task_id)
    except Exception as error:  # broker unreachable: say so on the task instead of a 500
        if getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False) or build_dataset_version.app.conf.task_always_eager:
            raise
        logger.exception("could not queue dataset build %s", task_id)
        message = f"could not queue the build (broker unavailable: {error}); resume the task when it is back"
        task_mark_failed(task_id, message, Q(status=DatasetTaskStatus.PENDING))


def dataset_task_resume(task_id: uuid.UUID | str, *, enqueue: bool = True) -> DatasetTask:
    """Re-queue a failed or cancelled build; it reuses every embedding already stored.

    Raises ``DatasetTask.DoesNotExist`` or ``ValidationError`` (``task_id``) when the task
    is not a resumable build.
    """
    task_uuid = _as_uuid(task_id, "task_id")
    with transaction.atomic():
        task = DatasetTask.objects.select_for_update(of=("self",)).select_related("dataset_version").get(pk=task_uuid)
        if task.type != DatasetTaskType.BUILD:
            raise ValidationError({"task_id": f"task {task.pk} is a {task.type} task, not a build"})
        if task.status in (DatasetTaskStatus.PENDING, DatasetTaskStatus.RUNNING, DatasetTaskStatus.COMPLETED):
            raise ValidationError({"task_id": f"task {task.pk} is {task.status}; only failed or cancelled builds resume"})
        version = task.dataset_version
        if version is None:
            raise ValidationError({"task_id": f"task {task.pk}: its dataset version was deleted"})
        if version.status == DatasetVersionStatus.READY:
            raise ValidationError({"task_id": f"task {task.pk}: dataset version {version.pk} is already ready"})
        other = (
            DatasetTask.objects.filter(
                dataset_version_id=version.pk, status__in=[DatasetTaskStatus.PENDING, DatasetTaskStatus.RUNNING]
            )
            .exclude(pk=task.pk)
            .values_list("pk", flat=True)
            .first()
        )
        if other is not None:
            raise ValidationError({"task_id": f"dataset version {version.pk} is already being built by task {other}"})
        DatasetVersion.objects.filter(pk=version.pk).update(status=DatasetVersionStatus.BUILDING, error="")
        celery_task_id = str(uuid.uuid4()) if enqueue else ""
        DatasetTask.objects.filter(pk=task.pk).update(
            status=DatasetTaskStatus.PENDING,
            attempts=F("attempts") + 1,  # fences out the late writes of an earlier worker
            heartbeat_at=timezone.now(),  # "queued at": the sweeper fails it if it never starts
            error="",
            result=None,
            message="Resumed: waiting for a worker",
            current_step="initialized",
            completed_steps=0,
            done=0,
            total=0,
            percentage=0.0,
            eta_seconds=None,
            completed_at=None,
            celery_task_id=celery_task_id,
        )
        if enqueue:
            transaction.on_commit(lambda: _enqueue_build(task.pk, celery_task_id))
    task.refresh_from_db()
    return task


def dataset_task_cancel(task_id: uuid.UUID | str) -> DatasetTask:
    """Cancel a pending or running build; the worker stops at its next progress write."""
    task_uuid = _as_uuid(task_id, "task_id")
    now = timezone.now()
    with transaction.atomic():
        task = DatasetTask.objects.select_for_update().get(pk=task_uuid)
        if task.status not in (DatasetTaskStatus.PENDING, DatasetTaskStatus.RUNNING):
            raise ValidationError({"task_id": f"task {task.pk} is {task.status}; only pending or running tasks cancel"})
        DatasetTask.objects.filter(pk=task.pk).update(
            status=DatasetTaskStatus.CANCELLED,
            attempts=F("attempts") + 1,  # the worker's next fenced write fails: it stops
            message="Cancelled",
            completed_at=now,
            eta_seconds=None,
        )
        if task.dataset_version_id:
            DatasetVersion.objects.filter(pk=task.dataset_version_id, status=DatasetVersionStatus.BUILDING).update(
                status=DatasetVersionStatus.FAILED, error="build cancelled"
            )
    task.refresh_from_db()
    return task
