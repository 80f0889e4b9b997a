"""Reads of cleaning exclusions and cleaning tasks (each a fixed number of queries)."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from datasets.cleaning_rules import RULES
from datasets.models import DatasetTask, DatasetTaskType, Exclusion

MANUAL_RULE = "manual"


def exclusion_rule_counts() -> list[dict]:
    """Per rule: active and reverted exclusions (one grouped query), rules in ``RULES``
    order first (with zeros), then any other rule key found (e.g. manual)."""
    rows = {
        row["rule"]: row
        for row in Exclusion.objects.order_by().values("rule").annotate(
            active=Count("id", filter=Q(reverted_at__isnull=True)),
            reverted=Count("id", filter=Q(reverted_at__isnull=False)),
        )
    }
    counts = []
    for key, spec in RULES.items():
        row = rows.pop(key, {"active": 0, "reverted": 0})
        counts.append({"rule": key, "label": spec.label, "active": row["active"], "reverted": row["reverted"]})
    for key in sorted(rows):
        counts.append({"rule": key, "label": key, "active": rows[key]["active"], "reverted": rows[key]["reverted"]})
    return counts


def exclusion_list(*, rule: str | None = None, active: bool | None = True, aid: int | None = None) -> QuerySet:
    """Exclusions newest first, with their video and task (``select_related``: one query a page)."""
    exclusions = Exclusion.objects.select_related("video", "task", "reverted_by").order_by("-created_at", "-id")
    if rule:
        exclusions = exclusions.filter(rule=rule)
    if active is not None:
        exclusions = exclusions.filter(reverted_at__isnull=active)
    if aid is not None:
        exclusions = exclusions.filter(video__aid=aid)
    return exclusions


def cleaning_tasks_recent(limit: int) -> list[DatasetTask]:
    """The latest cleaning tasks, each annotated with ``active_exclusions`` (one query)."""
    return list(
        DatasetTask.objects.filter(type=DatasetTaskType.CLEANING)
        .select_related("created_by")
        .annotate(active_exclusions=Count("exclusions", filter=Q(exclusions__reverted_at__isnull=True)))
        .order_by("-created_at")[:limit]
    )
