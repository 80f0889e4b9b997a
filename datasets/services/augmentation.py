"""Augmentation of a frozen version's TRAIN split: the curation runner and its params.

An augmentation task (``DatasetTask`` of type augmentation, ``dataset_version`` set)
composes perturbed texts of the version's train members (``datasets.augmentation``),
embeds those not stored yet through the embedding store (by (model, checksum), with the
version's model, so an identical text is never embedded twice) and writes one
``AugmentedItem`` per (video, kind, variant) with the member's frozen label. Only
train members are augmented, and a copy whose text equals a val or test member's text
is skipped (it would leak that member into train). The version row is not touched (it
is frozen).

Idempotent: the rows of the version for the task's kinds are replaced in one
transaction at the end (a rerun after a crash, or a new task with other copies or
rate, leaves exactly the rows this run computed); vectors stored by an interrupted run
are found again by checksum and not embedded twice.
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction

from core.validation import is_int
from datasets.augmentation import (
    DEFAULT_COPIES,
    DEFAULT_NOISE_RATE,
    MAX_COPIES,
    MAX_NOISE_RATE,
    MIN_COPIES,
    MIN_NOISE_RATE,
    VideoParts,
    augment_video,
)
from datasets.models import (
    AugmentationKind,
    AugmentedItem,
    DatasetTask,
    DatasetTaskType,
    DatasetVersion,
    DatasetVersionItem,
    DatasetVersionStatus,
    Split,
)
from datasets.selectors import as_uuid
from datasets.services import embedding_store
from datasets.services.text_embeddings import texts_embed_and_store
from datasets.text_composition import TEXT_TEMPLATE_VERSION, text_checksum

PARAM_NAMES = ("kinds", "copies", "noise_rate", "seed")
#: Augmented rows per INSERT ... SELECT FROM unnest(...) statement.
WRITE_CHUNK_ROWS = 20_000
MAX_SEED = 2**31 - 1


def augmentation_params_clean(params: object) -> dict[str, Any]:
    """``{"kinds": [...], "copies": n, "noise_rate": r, "seed": s}`` checked and with
    defaults (kinds: every kind; copies: the character-noise variants per video).
    Raises ONE ``ValidationError`` keyed by param."""
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ValidationError({"params": f"must be an object (got {type(params).__name__})"})
    errors: dict[str, str] = {}
    unknown = sorted(set(params) - set(PARAM_NAMES))
    if unknown:
        errors["params"] = f"unknown param(s): {', '.join(unknown)} (known: {', '.join(PARAM_NAMES)})"
    kinds = params.get("kinds")
    if kinds is None:
        kinds = list(AugmentationKind.values)
    if isinstance(kinds, str):
        kinds = [part.strip() for part in kinds.split(",") if part.strip()]
    if not isinstance(kinds, list) or not kinds or not all(isinstance(kind, str) for kind in kinds):
        errors["kinds"] = f"must be a non-empty list of: {', '.join(AugmentationKind.values)}"
    else:
        bad = [kind for kind in kinds if kind not in AugmentationKind.values]
        if bad:
            errors["kinds"] = f"unknown kind(s) {', '.join(map(repr, bad))} (choose from: " \
                              f"{', '.join(AugmentationKind.values)})"
    copies = params.get("copies", DEFAULT_COPIES)
    if isinstance(copies, str) and copies.strip().isdigit():
        copies = int(copies)
    if not is_int(copies) or not MIN_COPIES <= copies <= MAX_COPIES:
        errors["copies"] = f"must be an integer between {MIN_COPIES} and {MAX_COPIES} (got {copies!r})"
    noise_rate = params.get("noise_rate", DEFAULT_NOISE_RATE)
    try:
        noise_rate = float(noise_rate) if not isinstance(noise_rate, bool) else None
    except (TypeError, ValueError):
        noise_rate = None
    if noise_rate is None or not MIN_NOISE_RATE <= noise_rate <= MAX_NOISE_RATE:
        errors["noise_rate"] = f"must be a number between {MIN_NOISE_RATE} and {MAX_NOISE_RATE} " \
                               f"(got {params.get('noise_rate')!r})"
    seed = params.get("seed", 0)
    if isinstance(seed, str) and seed.strip().isdigit():
        seed = int(seed)
    if not is_int(seed) or not 0 <= seed <= MAX_SEED:
        errors["seed"] = f"must be an integer between 0 and {MAX_SEED} (got {seed!r})"
    if errors:
        raise ValidationError(errors)
    ordered_kinds = [kind for kind in AugmentationKind.values if kind in kinds]
    return {"kinds": ordered_kinds, "copies": copies, "noise_rate": noise_rate, "seed": seed}


def augmentation_version_check(version: DatasetVersion) -> None:
    """Refuse (``ValidationError`` keyed ``dataset_version``) a version that cannot be
    augmented: not ready, or composed with another text template than today's."""
    if version.status != DatasetVersionStatus.READY:
        raise ValidationError({"dataset_version": f"dataset version {version.pk} is {version.status}, not ready"})
    if version.text_template_version != TEXT_TEMPLATE_VERSION:
        raise ValidationError({"dataset_version": (
            f"dataset version {version.pk} was composed with text template {version.text_template_version}, "
            f"augmentation composes {TEXT_TEMPLATE_VERSION}: build a new version first"
        )})


def augmentation_queue(
    *, version_id: uuid.UUID | str, params: object, user=None, enqueue: bool = True
) -> DatasetTask:
    """A pending augmentation task of a ready version (``curation_jobs``' lifecycle),
    its job queued on commit unless ``enqueue`` is False. Raises
    ``DatasetVersion.DoesNotExist`` and ONE ``ValidationError`` (nothing written) for
    bad params, a version that cannot be augmented or one with a live task."""
    from datasets.services.curation_jobs import curation_task_queue  # it loads the runners lazily

    version = DatasetVersion.objects.only("id", "status", "text_template_version").get(
        pk=as_uuid(version_id, "dataset_id")
    )
    augmentation_version_check(version)
    return curation_task_queue(task_type=DatasetTaskType.AUGMENTATION, params=params, user=user,
                               dataset_version=version, enqueue=enqueue)


def augmentation_run(task: DatasetTask, progress) -> dict[str, Any]:
    """The curation runner of an augmentation task (see the module docstring)."""
    params = augmentation_params_clean(task.params)
    if task.dataset_version_id is None:
        raise ValidationError({"dataset_version": "an augmentation task needs a dataset version"})
    version = DatasetVersion.objects.select_related("embedding_model").only(
        "id", "status", "text_template_version", "embedding_dimensions", "embedding_model",
    ).get(pk=task.dataset_version_id)
    augmentation_version_check(version)

    progress.step("compose", message="Composing augmented texts of the train split")
    members = list(
        DatasetVersionItem.objects.filter(version_id=version.pk, split=Split.TRAIN)
        .order_by("video__aid")
        .values_list("video_id", "video__aid", "video__title", "video__description", "video__tags", "label")
    )
    rows: list[tuple[int, str, int, str, str, bool]] = []  # video_id, kind, variant, text, checksum, label
    for video_id, aid, title, description, tags, label in members:
        parts = VideoParts(aid=aid, title=title or "", description=description or "", tags=tags or "")
        for kind in params["kinds"]:
            for augmented in augment_video(parts, kind, copies=params["copies"], noise_rate=params["noise_rate"],
                                           seed=params["seed"]):
                rows.append((video_id, augmented.kind, augmented.variant, augmented.text,
                             text_checksum(augmented.text), label))
    # A copy whose text IS a val or test member's text would put that member's vector in
    # train (e.g. the title-only copy of a video whose test twin has only that title).
    held_out = set(
        DatasetVersionItem.objects.filter(version_id=version.pk).exclude(split=Split.TRAIN)
        .values_list("embedding__checksum", flat=True)
    )
    kept = [row for row in rows if row[4] not in held_out]
    skipped_held_out = len(rows) - len(kept)
    rows = kept
    texts = {checksum: text for _, _, _, text, checksum, _ in rows}

    model = version.embedding_model
    if model.dimensions != version.embedding_dimensions:
        raise ValidationError({"dataset_version": (
            f"the version's vectors have {version.embedding_dimensions} dimensions, its model "
            f"{model.key} now {model.dimensions}"
        )})
    stored = embedding_store.existing_embeddings(model.pk, model.dimensions, list(texts))
    to_embed = len(texts) - len(stored)
    progress.step("embed", total=to_embed, message=f"Embedding {to_embed} new texts with {model.key} "
                                                  f"({len(stored)} stored already)")

    def chunk_stored(embedded: int, total: int) -> None:
        progress.advance(embedded, message=f"Embedded {embedded}/{total} texts")
        progress.heartbeat()

    embedding_ids = texts_embed_and_store(model, texts, on_chunk=chunk_stored).ids if texts else {}

    progress.step("write", total=len(rows), message=f"Writing {len(rows)} augmented rows")
    with transaction.atomic():
        AugmentedItem.objects.filter(version_id=version.pk, kind__in=params["kinds"]).delete()
        for start in range(0, len(rows), WRITE_CHUNK_ROWS):
            _augmented_items_insert(version, task, rows[start:start + WRITE_CHUNK_ROWS], embedding_ids)
            progress.advance(min(start + WRITE_CHUNK_ROWS, len(rows)))
    by_kind = Counter(kind for _, kind, *_ in rows)
    return {
        "dataset_version": str(version.pk),
        "params": params,
        "train_members": len(members),
        "rows": len(rows),
        "by_kind": {kind: by_kind.get(kind, 0) for kind in params["kinds"]},
        "skipped_held_out_texts": skipped_held_out,
        "distinct_texts": len(texts),
        "new_embeddings": to_embed,
        "reused_embeddings": len(stored),
    }


def _augmented_items_insert(version: DatasetVersion, task: DatasetTask, rows: list, embedding_ids: dict) -> None:
    """One INSERT ... SELECT FROM unnest(...) for ``rows`` (one round trip whatever their number)."""
    if not rows:
        return
    video_ids, kinds, variants, texts, checksums, labels = (list(column) for column in zip(*rows))
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {AugmentedItem._meta.db_table}
                (version_id, video_id, kind, variant, text, embedding_id, label, task_id, created_at)
            SELECT %s, video_id, kind, variant, text, embedding_id, label, %s, now()
            FROM unnest(%s::bigint[], %s::text[], %s::int2[], %s::text[], %s::bigint[], %s::bool[])
                AS incoming(video_id, kind, variant, text, embedding_id, label)
            """,
            [version.pk, task.pk, video_ids, kinds, variants, texts,
             [embedding_ids[checksum] for checksum in checksums], labels],
        )


__all__ = [
    "PARAM_NAMES",
    "WRITE_CHUNK_ROWS",
    "augmentation_params_clean",
    "augmentation_queue",
    "augmentation_run",
    "augmentation_version_check",
]
