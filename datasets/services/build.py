"""The build job: ``dataset_version_build()`` and its steps.

The build (DESIGN §4 flow 4) is a job on a ``DatasetTask`` row:

``dataset_build_request()`` validates the input (nothing is written on bad input),
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
5. ``building_dataset`` — deterministic stratified split that keeps duplicate groups
   and identical texts inside one split (``splits.assign_splits``; the groups come with the
   videos in step 1's query), counts, content hash.
6. ``saving_dataset`` — ONE transaction: mark the version ``ready`` (only if it is
   still ``building``), write all items with one binary ``COPY``, mark the task
   ``completed``. A version is never half-frozen: a crash anywhere before the commit
   leaves no items and no ready version.

Progress goes into the task row (step, done/total, percentage, ETA, message) together
with a heartbeat; in-step writes are throttled to one per
``PROGRESS_MIN_INTERVAL_SECONDS`` of the job's clock, step boundaries always write.
Every write is fenced by ``attempts`` (incremented when a worker claims the task): a
worker that lost its claim (task cancelled, or taken over) stops at its next write
instead of racing the new one.

Delivery semantics (Redis broker, acks late, DESIGN §6; ``job_lifecycle``): a second
delivery of a task whose worker is alive (it holds the task's advisory lock) returns at
once; a completed, failed or cancelled task is never rerun by a delivery
(``dataset_task_resume()`` re-queues explicitly); a running task whose worker died
(lock free, or heartbeat older than ``stale_after()``) is taken over by the next
delivery or re-queued by the sweeper, up to ``CVSA_JOB_MAX_ATTEMPTS`` worker starts,
and resumes from the embeddings already stored.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from core import pgcopy
from datasets.models import (
    DatasetTask,
    DatasetTaskStatus,
    DatasetVersion,
    DatasetVersionItem,
    DatasetVersionStatus,
    DuplicateGroupMember,
    Exclusion,
)
from datasets.selectors import VIDEO_CONSENSUS_FROM
from datasets.services.build_state import BuildMember, BuildState
from datasets.services.embedding_models import embedding_models_upsert, embedding_registry
from datasets.services.embedding_store import existing_embeddings, generate_embeddings
from datasets.services.job_lifecycle import (
    BUILD_STEPS,
    BuildAborted,
    BuildFailed,
    BuildProgress,
    Clock,
    build_job_run,
)
from datasets.services.splits import assign_splits, build_summary, content_hash
from datasets.text_composition import compose_video_text, text_checksum

def dataset_version_build(
    *,
    task_id: uuid.UUID | str,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    celery_task_id: str | None = None,
    claim_attempt: int | None = None,
    lock_wait_seconds: float = 0.0,
    clock: Clock = time.monotonic,
) -> DatasetTask:
    """The build job (idempotent). Returns the task row as it ends up.

    A task that is completed, failed, cancelled, or running in a live worker is
    returned untouched. Errors (embedding API, bad data) end as status ``failed`` with
    the message in ``error``; they are not raised. Transient database errors are
    raised (the Celery task retries them) after releasing the claim when possible.
    ``on_progress`` receives every progress snapshot (for a CLI progress bar).
    ``claim_attempt`` is set by a Celery retry or a sweeper re-queue: the attempt this
    message may take over. ``lock_wait_seconds``: how long a redelivered message waits
    for a dying worker's lock (``job_lifecycle.task_claim``). ``clock`` paces the
    progress writes (tests pass a fake one).
    """
    return build_job_run(
        task_id,
        _build,
        on_progress=on_progress,
        celery_task_id=celery_task_id,
        claim_attempt=claim_attempt,
        lock_wait_seconds=lock_wait_seconds,
        clock=clock,
    )


def _build(task: DatasetTask, version: DatasetVersion, progress: BuildProgress) -> None:
    registry = embedding_registry()
    key = version.embedding_model.key
    if key not in registry:
        raise BuildFailed(f"embedding model {key!r} is no longer in the registry ({settings.CVSA_EMBEDDING_MODELS_FILE})")
    spec = registry.get(key)
    model = embedding_models_upsert([spec])[key]  # ValidationError when the key's identity changed
    if spec.dimensions != version.embedding_dimensions:
        raise BuildFailed(
            f"embedding model {key!r} now has {spec.dimensions} dimensions, but the build was requested with "
            f"{version.embedding_dimensions}; request a new build"
        )

    state = BuildState()
    rows = _load_videos(version.requested_aids)

    progress.step("preparing_text", total=len(rows), message=f"Composing texts of {len(rows)} videos", write=False)
    _select_members(version, rows, state)
    if not state.members:
        counts = state.counts
        raise BuildFailed(
            f"no usable videos among the {len(version.requested_aids)} requested "
            f"(unlabeled {counts['unlabeled_excluded']}, inconsistent {counts['inconsistent_excluded']}, "
            f"empty text {counts['empty_text_excluded']}, excluded by cleaning rules {counts['cleaning_excluded']}, "
            f"no longer in the corpus {counts['missing_excluded']})"
        )

    distinct = list(state.texts)
    progress.step("checking_embeddings", total=len(distinct), message=f"Looking up {len(distinct)} distinct texts")
    if version.force_regenerate:
        missing = distinct
    else:
        state.embedding_ids.update(existing_embeddings(model.pk, spec.dimensions, distinct))
        missing = [checksum for checksum in distinct if checksum not in state.embedding_ids]

    progress.step(
        "generating_embeddings",
        total=len(missing),
        message=f"Embedding {len(missing)} new texts ({len(distinct) - len(missing)} reused)",
    )
    if missing:
        generate_embeddings(spec, model.pk, missing, state, progress, overwrite=version.force_regenerate)
    # new = rows this build actually wrote (a concurrent build may have stored some first;
    # force_regenerate keeps the vectors of ready versions); reused = the rest.
    state.reused_embeddings = len(distinct) - state.new_embeddings

    progress.step("building_dataset", total=len(state.members), message="Splitting and hashing", write=False)
    state.split_groups_kept = assign_splits(state.members, version.split_ratios, version.seed)
    members_hash = content_hash(
        state.members,
        model_key=key,
        dimensions=version.embedding_dimensions,
        template_version=version.text_template_version,
    )
    summary = build_summary(state)

    progress.step("saving_dataset", total=len(state.members), message=f"Freezing {len(state.members)} records")
    _freeze(task, version, state, summary, members_hash, progress)


def _load_videos(aids: list[int]) -> list[tuple]:
    """(video_id, aid, title, description, tags, consensus value, is_inconsistent, excluded,
    duplicate groups): one query. ``excluded``: the video has an active cleaning exclusion
    (the partial unique index of ``Exclusion`` answers the EXISTS); duplicate groups: the
    ``DuplicateGroup`` ids (of any deduplication task) the video is in, read from the
    (video, group) index, so that the split keeps each group whole."""
    excluded = f"EXISTS (SELECT 1 FROM {Exclusion._meta.db_table} e WHERE e.video_id = v.id AND e.reverted_at IS NULL)"
    groups = f"ARRAY(SELECT g.group_id FROM {DuplicateGroupMember._meta.db_table} g WHERE g.video_id = v.id)"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT v.id, v.aid, v.title, v.description, v.tags, c.value, c.is_inconsistent, {excluded}, {groups} "
            f"FROM {VIDEO_CONSENSUS_FROM} WHERE v.aid = ANY(%s)",
            [list(aids)],
        )
        return cursor.fetchall()


def _select_members(version: DatasetVersion, rows: list[tuple], state: BuildState) -> None:
    counts = dict.fromkeys(
        ("unlabeled_excluded", "inconsistent_excluded", "inconsistent_included", "empty_text_excluded",
         "cleaning_excluded"), 0
    )
    counts["missing_excluded"] = len(version.requested_aids) - len(rows)
    for video_id, aid, title, description, tags, value, is_inconsistent, excluded, groups in rows:
        if excluded and not version.include_excluded:
            counts["cleaning_excluded"] += 1
            continue
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
        state.members.append(
            BuildMember(video_id, aid, bool(value), bool(is_inconsistent), checksum, groups=tuple(groups))
        )
    state.counts = counts


def _item_rows(version_id: uuid.UUID, state: BuildState) -> Iterable[tuple]:
    for member in state.members:
        yield (version_id, member.video_id, state.embedding_ids[member.checksum], member.label, member.split, member.is_inconsistent)


def _items_copy(version_id: uuid.UUID, state: BuildState) -> None:
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
    state: BuildState,
    summary: dict[str, Any],
    members_hash: str,
    progress: BuildProgress,
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
        "content_hash": members_hash,
        "counts": summary,
        "frozen_vectors_kept": state.frozen_vectors_kept,
        "split_groups_kept": state.split_groups_kept,
    }
    message = "Dataset building completed successfully"
    if state.frozen_vectors_kept:
        message += (
            f" ({state.frozen_vectors_kept} vector(s) used by ready versions were kept, not regenerated:"
            " frozen versions never change)"
        )
    with transaction.atomic():
        frozen = DatasetVersion.objects.filter(pk=version.pk, status=DatasetVersionStatus.BUILDING).update(
            status=DatasetVersionStatus.READY, frozen_at=now, content_hash=members_hash, error="",
            # How many groups (duplicates, identical texts) the split kept whole.
            selection={**version.selection, "split_groups_kept": state.split_groups_kept},
            **summary,
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
