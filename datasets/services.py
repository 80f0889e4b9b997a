"""Writes of the datasets app: embedding-model sync, dataset builds, cleanup, export.

The build (DESIGN §4 flow 4) is a job on a ``DatasetTask`` row:

``dataset_version_request()`` validates the input (nothing is written on bad input),
creates the ``DatasetVersion`` (status ``building``) and its ``DatasetTask``
(``pending``) in one transaction and queues ``datasets.tasks.build_dataset_version``
on commit. The job body, ``dataset_version_build()``:

1. ``loading_videos`` — the requested videos with their consensus labels, one query.
2. ``preparing_text`` — drop unlabeled / (unless asked) inconsistent / empty videos,
   compose each text (``text_composition``) and its sha256 checksum.
3. ``checking_embeddings`` — which (model, checksum) vectors exist: one
   ``checksum = ANY(...)`` query per ``LOOKUP_CHUNK_CHECKSUMS`` distinct checksums.
4. ``generating_embeddings`` — only the missing distinct texts, ``EMBED_CHUNK_TEXTS``
   per chunk: the provider batches each chunk by the model's ``max_batch_size`` with
   several requests in flight; the next chunk is being embedded (worker thread) while
   the current one is stored with one binary ``COPY`` into a session temp table and
   one ``INSERT ... SELECT ... ON CONFLICT`` (3 round trips per chunk, whatever its
   size). A chunk is committed as soon as it is stored, so a failure keeps everything
   embedded so far and a resumed build reuses it. ``force_regenerate`` re-embeds every
   text and overwrites the stored vectors, except those an item of a ready version
   refers to: a frozen version's vectors never change (the build reports how many it
   kept as ``frozen_vectors_kept``). ``new_embeddings`` counts the rows the build
   actually wrote; the rest of the distinct texts count as reused.
5. ``building_dataset`` — deterministic stratified split, counts, content hash.
6. ``saving_dataset`` — ONE transaction: mark the version ``ready`` (only if it is
   still ``building``), write all items with one binary ``COPY``, mark the task
   ``completed``. A version is never half-frozen: a crash anywhere before the commit
   leaves no items and no ready version.

Progress goes into the task row (step, done/total, percentage, ETA, message) together
with a heartbeat; in-step writes are throttled to one per
``PROGRESS_MIN_INTERVAL_SECONDS``, step boundaries always write. Every write is
fenced by ``attempts`` (incremented when a worker claims the task): a worker that
lost its claim (task cancelled, or taken over after its heartbeat went stale) stops at
its next write instead of racing the new one.

Delivery semantics (Redis broker, acks late, DESIGN §6): a second delivery of a task
that is running with a fresh heartbeat returns at once; a completed, failed or
cancelled task is never rerun by a delivery (``dataset_task_resume()`` re-queues
explicitly); a running task whose heartbeat is older than ``stale_after()`` is taken
over by the next delivery, or marked failed by ``dataset_task_mark_stale()``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Max, ProtectedError, Q
from django.utils import timezone

from datasets import pgcopy
from datasets.embedding_providers import EmbeddingProviderError, provider_for
from datasets.embedding_registry import EmbeddingModelSpec, EmbeddingRegistry, EmbeddingRegistryError, load_registry
from datasets.models import (
    Dataset,
    DatasetTask,
    DatasetTaskStatus,
    DatasetTaskType,
    DatasetVersion,
    DatasetVersionItem,
    DatasetVersionStatus,
    Embedding,
    EmbeddingModel,
    Split,
)
from datasets.selectors import (
    SamplingResult,
    _as_uuid,
    dataset_version_get,
    dataset_version_member_texts,
    sampling_select,
    version_arrays,
)
from datasets.text_composition import TEXT_TEMPLATE_VERSION, compose_video_text, text_checksum
from labeling.models import Video, VideoConsensus

logger = logging.getLogger(__name__)

# --- tuning (module constants so tests and benchmarks can state / patch them) ----

#: Distinct missing texts per provider call and per stored chunk (one COPY + one upsert).
EMBED_CHUNK_TEXTS = 1024
#: The local CPU model embeds ~30-150 texts/s: smaller chunks keep progress moving and
#: make a failure lose seconds, not a minute; its round trips are cheap next to the maths.
LOCAL_EMBED_CHUNK_TEXTS = 128
#: Distinct checksums per existence lookup query.
LOOKUP_CHUNK_CHECKSUMS = 20_000
#: In-step progress writes at most this often (each costs a round trip).
PROGRESS_MIN_INTERVAL_SECONDS = 0.5
#: While waiting on a slow embedding call, write a heartbeat at least this often.
HEARTBEAT_INTERVAL_SECONDS = 30.0
#: A running task whose heartbeat is older than this counts as lost (settings override).
DEFAULT_STALE_AFTER_SECONDS = 300

DEFAULT_DATASET_NAME = "default"
DEFAULT_SPLIT_RATIOS = (0.8, 0.1, 0.1)
MAX_ERROR_AIDS_LISTED = 20

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

TRANSIENT_DATABASE_ERRORS = (OperationalError, InterfaceError)

_STAGE_TABLE = "datasets_embedding_stage"


def stale_after() -> timedelta:
    return timedelta(seconds=getattr(settings, "CVSA_DATASET_TASK_STALE_SECONDS", DEFAULT_STALE_AFTER_SECONDS))


class BuildAborted(Exception):
    """The worker lost its claim on the task (cancelled, or taken over): stop quietly."""


class BuildFailed(Exception):
    """A build cannot go on, with a message meant for the user."""


# --- embedding models -----------------------------------------------------------


def embedding_registry() -> EmbeddingRegistry:
    """The registry file named by ``settings.CVSA_EMBEDDING_MODELS_FILE``.

    Raises ``EmbeddingRegistryError`` when the file is missing or invalid (a server
    configuration problem, not bad user input).
    """
    return load_registry(settings.CVSA_EMBEDDING_MODELS_FILE)


_MODEL_COLUMNS = ("name", "provider_type", "dimensions", "api_endpoint", "max_tokens", "max_batch_size", "api_key_env")


def _model_values(spec: EmbeddingModelSpec) -> list[Any]:
    return [
        spec.key,
        spec.name,
        spec.type,
        spec.dimensions,
        spec.api_endpoint or "",
        spec.max_tokens,
        spec.max_batch_size,
        spec.api_key_env or "",
    ]


#: What a stored vector was made by: these never change under a key that has vectors.
_IDENTITY_COLUMNS = ("name", "provider_type", "dimensions")


def _identity(model_or_spec: EmbeddingModel | EmbeddingModelSpec) -> tuple[str, str, int]:
    if isinstance(model_or_spec, EmbeddingModel):
        return (model_or_spec.name, model_or_spec.provider_type, model_or_spec.dimensions)
    return (model_or_spec.name, model_or_spec.type, model_or_spec.dimensions)


def _embedding_models_upsert(specs: Sequence[EmbeddingModelSpec]) -> dict[str, EmbeddingModel]:
    """Upsert rows for ``specs`` by key and return them, in ONE statement.

    Rows whose fields did not change are not rewritten (``updated_at`` means "last
    changed"); their current version comes from the second half of the UNION.

    A key's identity is (name, provider type, dimensions): once ``Embedding`` rows exist
    for it, the statement writes nothing at all (for no key: the check is part of the
    one statement) and this raises ``ValidationError`` (``embedding_model``) naming the
    change. Endpoint, batch size, max tokens and key env may change freely.
    """
    if not specs:
        return {}
    table = EmbeddingModel._meta.db_table
    embedding_table = Embedding._meta.db_table
    values_sql = ", ".join(["(%s, %s, %s, %s::integer, %s, %s::integer, %s::integer, %s)"] * len(specs))
    params: list[Any] = [value for spec in specs for value in _model_values(spec)]
    columns = ", ".join(_MODEL_COLUMNS)
    changed = " OR ".join(f"m.{column} IS DISTINCT FROM EXCLUDED.{column}" for column in _MODEL_COLUMNS)
    identity_changed = " OR ".join(f"m.{column} IS DISTINCT FROM EXCLUDED.{column}" for column in _IDENTITY_COLUMNS)
    input_identity_changed = " OR ".join(f"m.{column} IS DISTINCT FROM i.{column}" for column in _IDENTITY_COLUMNS)
    updates = ", ".join(f"{column} = EXCLUDED.{column}" for column in _MODEL_COLUMNS)
    # ``refused``: keys whose identity would change although they have vectors. If there
    # is any, the statement writes nothing at all (one statement: atomic by itself).
    sql = f"""
        WITH input (key, {columns}) AS (VALUES {values_sql}),
        refused AS (
            SELECT m.key FROM {table} m JOIN input i ON i.key = m.key
            WHERE ({input_identity_changed})
            AND EXISTS (SELECT 1 FROM {embedding_table} e WHERE e.model_id = m.id)
        ),
        upserted AS (
            INSERT INTO {table} AS m (key, {columns}, created_at, updated_at)
            SELECT key, {columns}, now(), now() FROM input WHERE NOT EXISTS (SELECT 1 FROM refused)
            ON CONFLICT (key) DO UPDATE SET {updates}, updated_at = now()
                WHERE ({changed})
                AND NOT (({identity_changed})
                         AND EXISTS (SELECT 1 FROM {embedding_table} e WHERE e.model_id = m.id))
            RETURNING m.*
        )
        SELECT * FROM upserted
        UNION ALL
        SELECT m.* FROM {table} m JOIN input USING (key) WHERE m.key NOT IN (SELECT key FROM upserted)
    """
    models = {model.key: model for model in EmbeddingModel.objects.raw(sql, params)}
    refused = [spec for spec in specs if spec.key in models and _identity(models[spec.key]) != _identity(spec)]
    if refused:
        raise ValidationError({"embedding_model": [_identity_change_message(models[spec.key], spec) for spec in refused]})
    return models


def _identity_change_message(stored: EmbeddingModel, spec: EmbeddingModelSpec) -> str:
    was = "/".join(str(value) for value in _identity(stored))
    now = "/".join(str(value) for value in _identity(spec))
    return (
        f"embedding model {spec.key!r} already has stored vectors for name/type/dimensions {was}; "
        f"the registry now says {now}. Add the changed model under a new key"
    )


def embedding_models_sync(registry: EmbeddingRegistry | None = None) -> dict[str, EmbeddingModel]:
    """Mirror every registry entry into ``EmbeddingModel`` (upsert by key; one query).

    Rows of keys no longer in the file are kept (vectors and versions refer to them).
    Returns ``{key: EmbeddingModel}`` for the keys in the registry.
    """
    registry = registry or embedding_registry()
    return _embedding_models_upsert(list(registry))


def _spec_for_key(key: object, registry: EmbeddingRegistry | None = None) -> EmbeddingModelSpec:
    registry = registry or embedding_registry()
    if not isinstance(key, str) or key not in registry:
        known = ", ".join(registry.models) or "none"
        raise ValidationError({"embedding_model": f"Invalid embedding model: {key!r} (known models: {known})"})
    return registry.get(key)


# --- request --------------------------------------------------------------------


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
        DatasetTask.objects.filter(pk=task_id, status=DatasetTaskStatus.PENDING).update(
            status=DatasetTaskStatus.FAILED, error=message, message=f"Task failed: {message}", completed_at=timezone.now()
        )
        DatasetVersion.objects.filter(tasks__pk=task_id, status=DatasetVersionStatus.BUILDING).update(
            status=DatasetVersionStatus.FAILED, error=message
        )


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


# --- build: progress ------------------------------------------------------------


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

    def snapshot(self) -> dict[str, Any]:
        return {
            "current_step": self.step_name,
            "total_steps": len(BUILD_STEPS),
            "completed_steps": self.step_index,
            "percentage": self.percentage,
            "done": self.done,
            "total": self.total,
            "message": self.message,
            "estimated_time_remaining": self.eta_seconds,
        }

    def fields(self) -> dict[str, Any]:
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


# --- build: claim ---------------------------------------------------------------


def _task_claim(task_id: uuid.UUID, *, celery_task_id: str | None, is_retry: bool) -> bool:
    """Atomically take the task: pending, or running with a stale heartbeat (worker
    lost), or running under this very Celery task id when Celery retries it."""
    now = timezone.now()
    claimable = Q(status=DatasetTaskStatus.PENDING) | Q(
        Q(heartbeat_at__lt=now - stale_after()) | Q(heartbeat_at__isnull=True), status=DatasetTaskStatus.RUNNING
    )
    if is_retry and celery_task_id:
        claimable |= Q(status=DatasetTaskStatus.RUNNING, celery_task_id=celery_task_id)
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


# --- build: the job -------------------------------------------------------------


@dataclass
class _Member:
    video_id: int
    aid: int
    label: bool
    is_inconsistent: bool
    checksum: str
    split: str = ""


@dataclass
class _BuildState:
    members: list[_Member] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)  # checksum -> text
    embedding_ids: dict[str, int] = field(default_factory=dict)  # checksum -> Embedding.id
    counts: dict[str, int] = field(default_factory=dict)
    new_embeddings: int = 0
    reused_embeddings: int = 0
    frozen_vectors_kept: int = 0  # force_regenerate: vectors a ready version uses, left as they were


def dataset_version_build(
    *,
    task_id: uuid.UUID | str,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    celery_task_id: str | None = None,
    is_retry: bool = False,
) -> DatasetTask:
    """The build job (idempotent). Returns the task row as it ends up.

    A task that is completed, failed, cancelled, or running with a fresh heartbeat is
    returned untouched. Errors (embedding API, bad data) end as status ``failed`` with
    the message in ``error``; they are not raised. Transient database errors are
    raised (the Celery task retries them) after releasing the claim when possible.
    ``on_progress`` receives every progress snapshot (for a CLI progress bar).
    """
    task_uuid = _as_uuid(task_id, "task_id")
    if not _task_claim(task_uuid, celery_task_id=celery_task_id, is_retry=is_retry):
        task = DatasetTask.objects.get(pk=task_uuid)
        logger.info("dataset task %s not claimed (status %s): nothing to do", task_uuid, task.status)
        return task
    task = DatasetTask.objects.select_related("dataset_version__embedding_model").get(pk=task_uuid)
    progress = _BuildProgress(task.pk, task.attempts, on_progress)
    progress.step(STEP_NAMES[0], message="Loading videos and labels", write=False)  # the claim wrote it
    try:
        if task.dataset_version is None:
            raise BuildFailed("its dataset version was deleted")
        if task.dataset_version.status != DatasetVersionStatus.BUILDING:
            raise BuildFailed(f"dataset version {task.dataset_version.pk} is {task.dataset_version.status}")
        _build(task, task.dataset_version, progress)
    except BuildAborted as aborted:
        logger.warning("dataset build %s stopped: %s", task_uuid, aborted)
    except TRANSIENT_DATABASE_ERRORS:
        _task_release_after_transient_error(task_uuid, progress.attempt)
        raise
    except ValidationError as error:  # e.g. the registry changed a model's identity
        _task_fail(task, progress, "; ".join(error.messages))
    except (BuildFailed, EmbeddingProviderError, EmbeddingRegistryError, pgcopy.CopyFormatError, ValueError) as error:
        _task_fail(task, progress, str(error))
    except Exception as error:  # a bug or an unexpected database error: fail visibly, keep the trace in the log
        logger.exception("dataset build %s failed", task_uuid)
        _task_fail(task, progress, f"{type(error).__name__}: {error}")
    return DatasetTask.objects.get(pk=task_uuid)


def _task_fail(task: DatasetTask, progress: _BuildProgress, reason: str) -> None:
    stored = progress.snapshot()
    message = f"{progress.step_name}: {reason}"
    if progress.step_name == "generating_embeddings" and stored["done"]:
        message += f" ({stored['done']} new embedding(s) stored before the failure are kept; resume to continue)"
    now = timezone.now()
    try:
        with transaction.atomic():
            updated = DatasetTask.objects.filter(
                pk=task.pk, status=DatasetTaskStatus.RUNNING, attempts=progress.attempt
            ).update(
                status=DatasetTaskStatus.FAILED,
                error=message,
                message=f"Task failed: {message}",
                completed_at=now,
                heartbeat_at=now,
                eta_seconds=None,
            )
            if not updated:  # cancelled, swept or taken over meanwhile: not ours to fail
                logger.warning("dataset build %s failed after losing its claim: %s", task.pk, message)
                return
            if task.dataset_version_id:
                DatasetVersion.objects.filter(
                    pk=task.dataset_version_id, status=DatasetVersionStatus.BUILDING
                ).update(status=DatasetVersionStatus.FAILED, error=message)
    except DatabaseError:
        logger.exception("could not mark dataset task %s failed (%s)", task.pk, message)
    logger.warning("dataset build %s failed: %s", task.pk, message)


def dataset_task_fail(task_id: uuid.UUID | str, reason: str) -> bool:
    """Mark a pending or running task failed with ``reason`` (and its building version).

    Best effort for callers that are giving up (e.g. the Celery task after its last
    retry on database errors): returns False when the database cannot be reached.
    """
    task_uuid = _as_uuid(task_id, "task_id")
    now = timezone.now()
    try:
        with transaction.atomic():
            updated = DatasetTask.objects.filter(
                pk=task_uuid, status__in=[DatasetTaskStatus.PENDING, DatasetTaskStatus.RUNNING]
            ).update(
                status=DatasetTaskStatus.FAILED,
                error=reason,
                message=f"Task failed: {reason}",
                completed_at=now,
                eta_seconds=None,
            )
            if updated:
                DatasetVersion.objects.filter(tasks__pk=task_uuid, status=DatasetVersionStatus.BUILDING).update(
                    status=DatasetVersionStatus.FAILED, error=reason
                )
        return bool(updated)
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


def _build(task: DatasetTask, version: DatasetVersion, progress: _BuildProgress) -> None:
    registry = embedding_registry()
    key = version.embedding_model.key
    if key not in registry:
        raise BuildFailed(f"embedding model {key!r} is no longer in the registry ({settings.CVSA_EMBEDDING_MODELS_FILE})")
    spec = registry.get(key)
    model = _embedding_models_upsert([spec])[key]  # ValidationError when the key's identity changed
    if spec.dimensions != version.embedding_dimensions:
        raise BuildFailed(
            f"embedding model {key!r} now has {spec.dimensions} dimensions, but the build was requested with "
            f"{version.embedding_dimensions}; request a new build"
        )

    state = _BuildState()
    rows = _load_videos(version.requested_aids)

    progress.step("preparing_text", total=len(rows), message=f"Composing texts of {len(rows)} videos", write=False)
    _select_members(version, rows, state)
    if not state.members:
        counts = state.counts
        raise BuildFailed(
            f"no usable videos among the {len(version.requested_aids)} requested "
            f"(unlabeled {counts['unlabeled_excluded']}, inconsistent {counts['inconsistent_excluded']}, "
            f"empty text {counts['empty_text_excluded']}, no longer in the corpus {counts['missing_excluded']})"
        )

    distinct = list(state.texts)
    progress.step("checking_embeddings", total=len(distinct), message=f"Looking up {len(distinct)} distinct texts")
    if version.force_regenerate:
        missing = distinct
    else:
        state.embedding_ids.update(_existing_embeddings(model.pk, spec.dimensions, distinct))
        missing = [checksum for checksum in distinct if checksum not in state.embedding_ids]

    progress.step(
        "generating_embeddings",
        total=len(missing),
        message=f"Embedding {len(missing)} new texts ({len(distinct) - len(missing)} reused)",
    )
    if missing:
        _generate_embeddings(spec, model.pk, missing, state, progress, overwrite=version.force_regenerate)
    # new = rows this build actually wrote (a concurrent build may have stored some first;
    # force_regenerate keeps the vectors of ready versions); reused = the rest.
    state.reused_embeddings = len(distinct) - state.new_embeddings

    progress.step("building_dataset", total=len(state.members), message="Splitting and hashing", write=False)
    _assign_splits(state.members, version.split_ratios, version.seed)
    content_hash = _content_hash(
        state.members,
        model_key=key,
        dimensions=version.embedding_dimensions,
        template_version=version.text_template_version,
    )
    summary = _summary(state)

    progress.step("saving_dataset", total=len(state.members), message=f"Freezing {len(state.members)} records")
    _freeze(task, version, state, summary, content_hash, progress)


def _load_videos(aids: list[int]) -> list[tuple]:
    """(video_id, aid, title, description, tags, consensus value, is_inconsistent): one query."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT v.id, v.aid, v.title, v.description, v.tags, c.value, c.is_inconsistent "
            f"FROM {Video._meta.db_table} v JOIN {VideoConsensus._meta.db_table} c ON c.video_id = v.id "
            "WHERE v.aid = ANY(%s)",
            [list(aids)],
        )
        return cursor.fetchall()


def _select_members(version: DatasetVersion, rows: list[tuple], state: _BuildState) -> None:
    counts = dict.fromkeys(
        ("unlabeled_excluded", "inconsistent_excluded", "inconsistent_included", "empty_text_excluded"), 0
    )
    counts["missing_excluded"] = len(version.requested_aids) - len(rows)
    for video_id, aid, title, description, tags, value, is_inconsistent in rows:
        if is_inconsistent:
            if not version.include_inconsistent or value is None:  # a tie has no label to include
                counts["inconsistent_excluded"] += 1
                continue
        elif value is None:
            counts["unlabeled_excluded"] += 1
            continue
        text = compose_video_text(title=title, description=description, tags=tags)
        if not text:
            counts["empty_text_excluded"] += 1
            continue
        if is_inconsistent:
            counts["inconsistent_included"] += 1
        checksum = text_checksum(text)
        state.texts.setdefault(checksum, text)
        state.members.append(_Member(video_id, aid, bool(value), bool(is_inconsistent), checksum))
    state.counts = counts


def _existing_embeddings(model_id: int, dimensions: int, checksums: list[str]) -> dict[str, int]:
    """checksum -> Embedding.id for stored vectors: one query per LOOKUP_CHUNK_CHECKSUMS."""
    found: dict[str, int] = {}
    table = Embedding._meta.db_table
    with connection.cursor() as cursor:
        for start in range(0, len(checksums), LOOKUP_CHUNK_CHECKSUMS):
            cursor.execute(
                f"SELECT checksum, id FROM {table} WHERE model_id = %s AND dimensions = %s AND checksum = ANY(%s)",
                [model_id, dimensions, checksums[start : start + LOOKUP_CHUNK_CHECKSUMS]],
            )
            found.update(cursor.fetchall())
    return found


def _generate_embeddings(
    spec: EmbeddingModelSpec,
    model_id: int,
    missing: list[str],
    state: _BuildState,
    progress: _BuildProgress,
    *,
    overwrite: bool,
) -> None:
    """Embed ``missing`` chunk by chunk; chunk k+1 is embedded while chunk k is stored."""
    size = LOCAL_EMBED_CHUNK_TEXTS if spec.type == "local" else EMBED_CHUNK_TEXTS
    chunks = [missing[start : start + size] for start in range(0, len(missing), size)]
    _stage_prepare()
    provider = provider_for(spec)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"embed-{spec.key}")
    try:
        future: Future[np.ndarray] = pool.submit(provider.embed, [state.texts[c] for c in chunks[0]])
        stored = 0
        for index, chunk in enumerate(chunks):
            vectors = _wait_for(future, progress)
            if index + 1 < len(chunks):
                future = pool.submit(provider.embed, [state.texts[c] for c in chunks[index + 1]])
            outcome = _embeddings_store(model_id, chunk, vectors, overwrite=overwrite)
            state.embedding_ids.update(outcome.ids)
            state.new_embeddings += outcome.written
            state.frozen_vectors_kept += outcome.frozen_kept
            stored += len(chunk)
            progress.advance(stored, message=f"Generated {stored}/{len(missing)} embeddings")
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        provider.close()


def _wait_for(future: Future, progress: _BuildProgress) -> Any:
    while True:
        try:
            return future.result(timeout=HEARTBEAT_INTERVAL_SECONDS / 2)
        except FutureTimeoutError:
            progress.heartbeat()


def _stage_prepare() -> None:
    """A session temp table for staged vectors (emptied: a failed chunk may have left rows)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE_TABLE} (checksum text NOT NULL, vector vector NOT NULL); "
            f"TRUNCATE {_STAGE_TABLE}"
        )


@dataclass
class _StoreOutcome:
    ids: dict[str, int]  # checksum -> Embedding.id, for every checksum of the chunk
    inserted: int  # rows this statement inserted
    written: int  # rows it inserted or (overwrite) replaced
    frozen_kept: int  # overwrite: rows left as they were because a ready version uses them


def _embeddings_store(model_id: int, checksums: list[str], vectors: np.ndarray, *, overwrite: bool) -> _StoreOutcome:
    """Store one chunk: binary COPY into the stage + one upsert that empties it.

    Without ``overwrite`` an existing (model, checksum) row is kept (a concurrent build
    stored it first). With ``overwrite`` (force_regenerate) it is replaced, unless an
    item of a ready version refers to it: a frozen version's vectors never change, so
    that row is kept and counted in ``frozen_kept``. Vectors of one key always have
    the key's dimensions (``_embedding_models_upsert`` refuses to change them once
    vectors exist). Autocommit: the chunk is durable when this returns.
    """
    table = Embedding._meta.db_table
    item_table = DatasetVersionItem._meta.db_table
    pgcopy.copy_in(
        f"COPY {_STAGE_TABLE} (checksum, vector) FROM STDIN (FORMAT BINARY)",
        pgcopy.checksum_vector_rows(checksums, vectors),
    )
    if overwrite:
        # Items exist only for ready versions (written by the freezing transaction).
        on_conflict = f"""DO UPDATE
                SET dimensions = EXCLUDED.dimensions, vector = EXCLUDED.vector, created_at = EXCLUDED.created_at
                WHERE NOT EXISTS (SELECT 1 FROM {item_table} i WHERE i.embedding_id = e.id)"""
    else:
        on_conflict = "DO NOTHING"
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH staged AS (DELETE FROM {_STAGE_TABLE} RETURNING checksum, vector)
            INSERT INTO {table} AS e (model_id, checksum, dimensions, vector, created_at)
            SELECT %s, checksum, vector_dims(vector), vector, now() FROM staged
            ON CONFLICT (model_id, checksum) {on_conflict}
            RETURNING e.checksum, e.id, (e.xmax = 0) AS inserted
            """,
            [model_id],
        )
        rows = cursor.fetchall()
    ids = {checksum: embedding_id for checksum, embedding_id, _ in rows}
    inserted = sum(1 for *_, was_inserted in rows if was_inserted)
    absent = [checksum for checksum in checksums if checksum not in ids]
    if absent:  # stored meanwhile by another build, or (overwrite) used by a ready version
        ids.update(_existing_embeddings(model_id, vectors.shape[1], absent))
        lost = [checksum for checksum in absent if checksum not in ids]
        if lost:
            raise BuildFailed(
                f"{len(lost)} stored vector(s) of this model have other dimensions than {vectors.shape[1]} "
                "(stored before the model's identity was fixed); add the model under a new key"
            )
    return _StoreOutcome(ids=ids, inserted=inserted, written=len(rows), frozen_kept=len(absent) if overwrite else 0)


def _split_rank_key(seed: int, aid: int) -> bytes:
    return hashlib.blake2b(f"{seed}:{aid}".encode(), digest_size=8).digest()


def _split_sizes(count: int, ratios: tuple[float, float, float]) -> tuple[int, int, int]:
    """Largest-remainder rounding of ``count * ratios`` (ties favour train, then val)."""
    shares = [count * ratio for ratio in ratios]
    sizes = [int(share) for share in shares]
    order = sorted(range(3), key=lambda index: (-(shares[index] - sizes[index]), index))
    for index in order[: count - sum(sizes)]:
        sizes[index] += 1
    return sizes[0], sizes[1], sizes[2]


def _assign_splits(members: list[_Member], ratios: tuple[float, float, float], seed: int) -> None:
    """Deterministic, stratified by label: within each label, members are ranked by
    blake2b(seed:aid) and cut by the ratios. The same seed keeps a video in the same
    split across versions except near the cut points."""
    for label in (False, True):
        group = sorted((m for m in members if m.label is label), key=lambda m: _split_rank_key(seed, m.aid))
        train, val, _ = _split_sizes(len(group), ratios)
        for position, member in enumerate(group):
            member.split = Split.TRAIN if position < train else Split.VAL if position < train + val else Split.TEST


def _content_hash(members: list[_Member], *, model_key: str, dimensions: int, template_version: str) -> str:
    """sha256 over a header line ``model_key\\tdimensions\\ttemplate_version\\n``, then
    the lines ``aid\\tchecksum\\tlabel(0/1)\\tsplit\\n`` sorted by aid.

    The header makes the same videos embedded by two models (or two dimensionalities,
    or two text templates) hash differently.
    """
    digest = hashlib.sha256()
    digest.update(f"{model_key}\t{dimensions}\t{template_version}\n".encode())
    for member in sorted(members, key=lambda m: m.aid):
        digest.update(f"{member.aid}\t{member.checksum}\t{int(member.label)}\t{member.split}\n".encode())
    return digest.hexdigest()


def _summary(state: _BuildState) -> dict[str, Any]:
    split_counts = {split: {"total": 0, "positives": 0, "negatives": 0} for split in Split.values}
    for member in state.members:
        bucket = split_counts[member.split]
        bucket["total"] += 1
        bucket["positives" if member.label else "negatives"] += 1
    positives = sum(bucket["positives"] for bucket in split_counts.values())
    return {
        "total_records": len(state.members),
        "positives": positives,
        "negatives": len(state.members) - positives,
        "train_count": split_counts[Split.TRAIN]["total"],
        "val_count": split_counts[Split.VAL]["total"],
        "test_count": split_counts[Split.TEST]["total"],
        "split_counts": split_counts,
        "new_embeddings": state.new_embeddings,
        "reused_embeddings": state.reused_embeddings,
        **state.counts,
    }


def _item_rows(version_id: uuid.UUID, state: _BuildState) -> Iterable[tuple]:
    for member in state.members:
        yield (version_id, member.video_id, state.embedding_ids[member.checksum], member.label, member.split, member.is_inconsistent)


def _items_copy(version_id: uuid.UUID, state: _BuildState) -> None:
    """All items in ONE binary COPY statement (one round trip for any number of rows).

    psycopg streams the rows to the server in blocks as they are written (its copy
    buffer, tens of KiB) without waiting for replies, so memory stays bounded.
    """
    table = DatasetVersionItem._meta.db_table
    sql = f"COPY {table} (version_id, video_id, embedding_id, label, split, is_inconsistent) FROM STDIN (FORMAT BINARY)"

    def operation(raw_cursor):
        with raw_cursor.copy(sql) as copy:
            copy.set_types(["uuid", "int8", "int8", "bool", "text", "bool"])
            for row in _item_rows(version_id, state):
                copy.write_row(row)

    pgcopy.copy_statement(sql, operation)


def _freeze(
    task: DatasetTask,
    version: DatasetVersion,
    state: _BuildState,
    summary: dict[str, Any],
    content_hash: str,
    progress: _BuildProgress,
) -> None:
    """ONE transaction: version ready (only if still building) + items + task completed."""
    now = timezone.now()
    model_key = version.embedding_model.key
    result = {
        "dataset_id": str(version.pk),
        "stats": {
            "total_records": summary["total_records"],
            "new_embeddings": summary["new_embeddings"],
            "reused_embeddings": summary["reused_embeddings"],
            "inconsistent_labels": summary["inconsistent_excluded"] + summary["inconsistent_included"],
            "embedding_model": model_key,
        },
        "content_hash": content_hash,
        "counts": summary,
        "frozen_vectors_kept": state.frozen_vectors_kept,
    }
    message = "Dataset building completed successfully"
    if state.frozen_vectors_kept:
        message += (
            f" ({state.frozen_vectors_kept} vector(s) used by ready versions were kept, not regenerated:"
            " frozen versions never change)"
        )
    with transaction.atomic():
        frozen = DatasetVersion.objects.filter(pk=version.pk, status=DatasetVersionStatus.BUILDING).update(
            status=DatasetVersionStatus.READY, frozen_at=now, content_hash=content_hash, error="", **summary
        )
        if not frozen:
            raise BuildAborted(f"dataset version {version.pk} is no longer building (frozen or cancelled meanwhile)")
        _items_copy(version.pk, state)
        updated = DatasetTask.objects.filter(
            pk=task.pk, status=DatasetTaskStatus.RUNNING, attempts=progress.attempt
        ).update(
            status=DatasetTaskStatus.COMPLETED,
            current_step="completed",
            completed_steps=len(BUILD_STEPS),
            done=progress.total,
            total=progress.total,
            percentage=100.0,
            eta_seconds=None,
            message=message,
            result=result,
            completed_at=now,
            heartbeat_at=now,
        )
        if not updated:
            raise BuildAborted(f"task {task.pk} was cancelled or taken over while freezing")
    if progress.on_progress is not None:
        progress.on_progress(
            {**progress.snapshot(), "current_step": "completed", "completed_steps": len(BUILD_STEPS), "percentage": 100.0}
        )


# --- deletion, cleanup, stale sweeper -------------------------------------------


def _active_build_q(now) -> Q:
    return Q(status=DatasetTaskStatus.PENDING) | Q(
        status=DatasetTaskStatus.RUNNING, heartbeat_at__gte=now - stale_after()
    )


def dataset_version_delete(version_id: uuid.UUID | str) -> None:
    """Delete a version and its items (its tasks stay, unlinked).

    Raises ``DatasetVersion.DoesNotExist``; ``ValidationError`` (``dataset_id``) while its
    build is pending or running, or when something else (e.g. an experiment run)
    still refers to it.
    """
    version_uuid = _as_uuid(version_id, "dataset_id")
    now = timezone.now()
    with transaction.atomic():
        version = DatasetVersion.objects.select_for_update().get(pk=version_uuid)
        if version.tasks.filter(_active_build_q(now)).exists():
            raise ValidationError({"dataset_id": f"dataset version {version.pk} is being built; cancel the build first"})
        try:
            version.delete()
        except ProtectedError as error:
            users = sorted({str(obj._meta.verbose_name_plural) for obj in error.protected_objects})
            raise ValidationError(
                {"dataset_id": f"dataset version {version.pk} is still used by {', '.join(users)}"}
            ) from None


def dataset_tasks_cleanup(max_age_hours: float = 24) -> int:
    """Delete finished tasks (completed, failed, cancelled) that ended more than
    ``max_age_hours`` ago; pending and running tasks always stay. Returns the count."""
    if not isinstance(max_age_hours, (int, float)) or isinstance(max_age_hours, bool) or max_age_hours < 0:
        raise ValidationError({"max_age_hours": f"must be a non-negative number (got {max_age_hours!r})"})
    cutoff = timezone.now() - timedelta(hours=max_age_hours)
    deleted, _ = DatasetTask.objects.filter(
        status__in=[DatasetTaskStatus.COMPLETED, DatasetTaskStatus.FAILED, DatasetTaskStatus.CANCELLED],
        completed_at__lt=cutoff,
    ).delete()
    return deleted


def dataset_versions_cleanup(max_age_days: float = 30, *, include_ready: bool = False) -> dict[str, int]:
    """Delete dataset versions created more than ``max_age_days`` ago that never became
    usable: ``failed`` builds, and ``building`` ones with no live task (orphans of a
    lost queue message). Ready versions are frozen records that experiments refer to, so
    they are only removed with ``include_ready=True`` — and even then not while
    something protects them. Items go with their version; embeddings are kept (shared,
    and re-embedding costs money).

    The filter (status, age, no live task) is applied inside the deleting transaction,
    after locking the candidates' tasks and then the versions themselves (the order
    ``dataset_task_resume`` takes them in), so a version resumed meanwhile is not deleted.

    Returns ``{"removed": n, "kept_in_use": m}``.
    """
    if not isinstance(max_age_days, (int, float)) or isinstance(max_age_days, bool) or max_age_days < 0:
        raise ValidationError({"max_age_days": f"must be a non-negative number (got {max_age_days!r})"})
    cutoff = timezone.now() - timedelta(days=max_age_days)
    statuses = [DatasetVersionStatus.FAILED, DatasetVersionStatus.BUILDING]
    if include_ready:
        statuses.append(DatasetVersionStatus.READY)

    def candidates():
        now = timezone.now()
        return DatasetVersion.objects.filter(created_at__lt=cutoff, status__in=statuses).exclude(
            tasks__in=DatasetTask.objects.filter(_active_build_q(now))
        )

    def lock_and_filter(version_filter: Q) -> list[uuid.UUID]:
        # Tasks first (resume locks its task, then updates the version), then the versions,
        # re-filtered by a statement that starts after those locks are held.
        list(
            DatasetTask.objects.select_for_update()
            .filter(dataset_version__in=candidates().filter(version_filter).values("pk"))
            .values_list("pk", flat=True)
        )
        return list(candidates().filter(version_filter).select_for_update().values_list("pk", flat=True))

    removed = kept = 0
    try:
        with transaction.atomic():
            ids = lock_and_filter(Q())
            if ids:
                removed = DatasetVersion.objects.filter(pk__in=ids).delete()[1].get(DatasetVersion._meta.label, 0)
    except ProtectedError:
        for version_id in list(candidates().values_list("pk", flat=True)):  # some are in use: one by one
            try:
                with transaction.atomic():
                    if lock_and_filter(Q(pk=version_id)):
                        DatasetVersion.objects.filter(pk=version_id).delete()
                        removed += 1
            except ProtectedError:
                kept += 1
    return {"removed": removed, "kept_in_use": kept}


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


# --- export ---------------------------------------------------------------------

EXPORT_FORMATS = ("parquet", "npz")


def dataset_version_export(
    version: DatasetVersion | uuid.UUID | str, *, format: str, path: str | os.PathLike[str]
) -> Path:
    """Write a ready version to ``path``; three queries whatever its size (the version,
    one binary COPY of the vectors, one query for titles and checksums).

    - ``parquet``: columns aid (int64), label (bool), split (string), title (string),
      text_checksum (string), vector (fixed_size_list<float32>[dimensions]); schema
      metadata holds the version id, model key, dimensions, template version and
      content hash.
    - ``npz``: arrays X (float32 n×d), y (int8), aid (int64), split ('<U5').

    Rows are ordered by aid. Returns the path written.
    """
    if format not in EXPORT_FORMATS:
        raise ValidationError({"format": f"unknown export format {format!r} (one of: {', '.join(EXPORT_FORMATS)})"})
    version = dataset_version_get(version.pk if isinstance(version, DatasetVersion) else version)
    arrays = version_arrays(version)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if format == "npz":
        with open(target, "wb") as handle:  # keep the exact name (np.savez would append .npz)
            np.savez(handle, X=arrays.X, y=arrays.y, aid=arrays.aids, split=arrays.splits)
        return target

    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = dataset_version_member_texts(version.pk)
    if [aid for aid, _, _ in texts] != arrays.aids.tolist():
        raise RuntimeError(f"dataset version {version.pk} changed while exporting")
    dimensions = arrays.X.shape[1]
    vector = pa.FixedSizeListArray.from_arrays(pa.array(arrays.X.reshape(-1), type=pa.float32()), dimensions)
    table = pa.table(
        {
            "aid": pa.array(arrays.aids, type=pa.int64()),
            "label": pa.array(arrays.y.astype(bool), type=pa.bool_()),
            "split": pa.array(arrays.splits.tolist(), type=pa.string()),
            "title": pa.array([title for _, title, _ in texts], type=pa.string()),
            "text_checksum": pa.array([checksum for _, _, checksum in texts], type=pa.string()),
            "vector": vector,
        }
    )
    metadata = {
        "cvsa.dataset_version": str(version.pk),
        "cvsa.dataset": version.dataset.name,
        "cvsa.version_number": str(version.number),
        "cvsa.embedding_model": version.embedding_model.key,
        "cvsa.dimensions": str(version.embedding_dimensions),
        "cvsa.text_template_version": version.text_template_version,
        "cvsa.content_hash": version.content_hash,
    }
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    pq.write_table(table, target)
    return target
