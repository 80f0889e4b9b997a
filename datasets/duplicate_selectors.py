"""Reads of deduplication tasks and their groups (each a fixed number of queries)."""

from __future__ import annotations

from django.db.models import Count, Exists, OuterRef, Prefetch, Q, QuerySet

from datasets.models import (
    DatasetTask,
    DatasetTaskType,
    DuplicateGroup,
    DuplicateGroupMember,
    Embedding,
    EmbeddingModel,
)


def deduplication_tasks_recent(limit: int) -> list[DatasetTask]:
    """The latest deduplication tasks, newest first (one query)."""
    return list(
        DatasetTask.objects.filter(type=DatasetTaskType.DEDUPLICATION).select_related("created_by")
        .order_by("-created_at")[:limit]
    )


def deduplication_task_get(task_id) -> DatasetTask | None:
    return DatasetTask.objects.filter(pk=task_id, type=DatasetTaskType.DEDUPLICATION).first()


def _members() -> Prefetch:
    return Prefetch(
        "members", queryset=DuplicateGroupMember.objects.select_related("video").order_by("distance", "video__aid")
    )


def duplicate_groups(task: DatasetTask, *, kind: str | None = None, unresolved: bool = False) -> QuerySet:
    """The task's groups, largest first, each with its members (and their videos) by
    distance then aid: a page is one query for the groups and one for the members."""
    groups = (
        DuplicateGroup.objects.filter(task=task).select_related("embedding_model", "resolved_by")
        .prefetch_related(_members()).order_by("-size", "id")
    )
    if kind:
        groups = groups.filter(kind=kind)
    if unresolved:
        groups = groups.filter(resolved_at__isnull=True)
    return groups


def duplicate_group_get(group_id: int) -> DuplicateGroup | None:
    """One group with its members (two queries)."""
    return (
        DuplicateGroup.objects.select_related("embedding_model", "resolved_by", "task")
        .prefetch_related(_members()).filter(pk=group_id).first()
    )


def duplicate_group_counts(task: DatasetTask) -> dict[str, int]:
    """Groups of the task by kind, and how many are resolved (one query)."""
    return DuplicateGroup.objects.filter(task=task).aggregate(
        exact=Count("id", filter=Q(kind="exact")),
        near=Count("id", filter=Q(kind="near")),
        resolved=Count("id", filter=Q(resolved_at__isnull=False)),
        total=Count("id"),
    )


def embedding_models_with_vectors() -> list[EmbeddingModel]:
    """Models that have stored vectors: the ones near-duplicate search can use (one query)."""
    has_vectors = Exists(Embedding.objects.filter(model=OuterRef("pk")))  # an index probe per model
    return list(EmbeddingModel.objects.filter(has_vectors).order_by("key"))
