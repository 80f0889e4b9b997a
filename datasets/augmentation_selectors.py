"""Reads of a version's augmented rows (``AugmentedItem``) for the pages and the API."""

from __future__ import annotations

import uuid

from django.db.models import Count

from datasets.models import AugmentationKind, AugmentedItem, DatasetTask, DatasetTaskType


def augmented_counts(version_id: uuid.UUID | str) -> dict[str, int]:
    """Augmented rows of a version per kind (every kind, 0 when none): one query."""
    counts = dict(
        AugmentedItem.objects.filter(version_id=version_id).order_by().values("kind")
        .annotate(rows=Count("id")).values_list("kind", "rows")
    )
    return {kind: counts.get(kind, 0) for kind in AugmentationKind.values}


def augmentation_tasks(version_id: uuid.UUID | str, *, limit: int = 5) -> list[DatasetTask]:
    """The version's latest augmentation tasks, newest first."""
    return list(
        DatasetTask.objects.filter(dataset_version_id=version_id, type=DatasetTaskType.AUGMENTATION)
        .order_by("-created_at")[:limit]
    )


def has_augmented_rows(version_id: uuid.UUID | str) -> bool:
    return AugmentedItem.objects.filter(version_id=version_id).exists()
