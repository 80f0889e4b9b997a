"""Cleaning tasks: preview a rule, run it (exclusions written), revert exclusions.

A cleaning task never deletes or changes a video: it writes ``Exclusion`` rows, which
dataset builds respect unless asked ``include_excluded``. The preview and the run read
the matches the same way (``cleaning_rules.rule_matches``, minus the videos the rule
already excludes), so the count a preview shows is the count the run writes on the same
corpus.

Runs are synchronous (in the request, the command, or whoever calls): a rule is one
streamed scan of the videos (text rules) or one query (SQL rules), and the exclusions
are ONE ``INSERT ... SELECT FROM unnest(...)``; the ``DatasetTask`` row (type
``cleaning``) is written completed in the same transaction, with the rule, its
parameters and the counts, so a run is all or nothing and needs no worker, sweeper or
progress polling. (Measured: see the README; a run over 100k videos takes seconds, not
minutes. Should a rule ever need minutes, it moves onto the builds' job lifecycle.)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from datasets.cleaning_rules import Match, rule_get, rule_matches, rule_params_clean
from datasets.models import DatasetTask, DatasetTaskStatus, DatasetTaskType, Exclusion

#: Examples a preview lists (and a run's result keeps).
PREVIEW_EXAMPLES = 20
#: Exclusions one revert request may name by id.
MAX_REVERT_IDS = 1000


@dataclass(frozen=True)
class CleaningPreview:
    rule: str
    params: dict[str, Any]
    matched: int  # videos the rule matches
    already_excluded: int  # of those, already actively excluded by this rule
    examples: list[Match] = field(default_factory=list)  # the first new ones, by aid

    @property
    def would_exclude(self) -> int:
        return self.matched - self.already_excluded

    def as_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "params": self.params,
            "matched": self.matched,
            "already_excluded": self.already_excluded,
            "would_exclude": self.would_exclude,
            "examples": [
                {"video_id": m.video_id, "aid": m.aid, "title": m.title, "reason": m.reason} for m in self.examples
            ],
        }


def _active_video_ids(rule: str) -> set[int]:
    return set(Exclusion.objects.filter(rule=rule, reverted_at__isnull=True).values_list("video_id", flat=True))


def _new_matches(rule: str, params: dict[str, Any]) -> tuple[list[Match], int]:
    """(the matches not yet excluded by this rule, how many matches were already excluded)."""
    active = _active_video_ids(rule)
    fresh: list[Match] = []
    already = 0
    for match in rule_matches(rule, params):
        if match.video_id in active:
            already += 1
        else:
            fresh.append(match)
    return fresh, already


def cleaning_preview(rule: object, params: Any = None) -> CleaningPreview:
    """What ``cleaning_run`` would exclude now. ``ValidationError`` on a bad rule or parameters."""
    key = rule_get(rule).key
    cleaned = rule_params_clean(key, params)
    fresh, already = _new_matches(key, cleaned)
    return CleaningPreview(key, cleaned, len(fresh) + already, already, fresh[:PREVIEW_EXAMPLES])


def _insert_exclusions(rule: str, task_id: uuid.UUID | None, matches: list[Match], now) -> int:
    """All rows in ONE statement; a video this rule already excludes (a concurrent run) is skipped."""
    if not matches:
        return 0
    table = Exclusion._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (video_id, rule, reason, task_id, created_at) "
            "SELECT u.video_id, %s, u.reason, %s, %s "
            "FROM unnest(%s::bigint[], %s::text[]) AS u(video_id, reason) "
            "JOIN labeling_video v ON v.id = u.video_id "
            "ON CONFLICT (video_id, rule) WHERE reverted_at IS NULL DO NOTHING",
            [rule, task_id, now, [m.video_id for m in matches], [m.reason for m in matches]],
        )
        return cursor.rowcount


def cleaning_run(rule: object, params: Any = None, *, user=None) -> DatasetTask:
    """Run a rule: exclusions for every match not yet excluded by it, and the completed
    ``cleaning`` task that records them (``result``: matched, excluded, already_excluded,
    examples). Bad input raises ``ValidationError`` before anything is written."""
    key = rule_get(rule).key
    cleaned = rule_params_clean(key, params)
    user_id = getattr(user, "pk", None)
    with transaction.atomic():
        fresh, already = _new_matches(key, cleaned)
        now = timezone.now()
        task = DatasetTask.objects.create(
            type=DatasetTaskType.CLEANING,
            status=DatasetTaskStatus.RUNNING,
            params={"rule": key, "params": cleaned},
            created_by_id=user_id,
            current_step="excluding",
            total_steps=1,
            started_at=now,
            heartbeat_at=now,
        )
        excluded = _insert_exclusions(key, task.pk, fresh, now)
        preview = CleaningPreview(key, cleaned, len(fresh) + already, already, fresh[:PREVIEW_EXAMPLES])
        result = {**preview.as_json(), "excluded": excluded}
        result.pop("would_exclude")
        DatasetTask.objects.filter(pk=task.pk).update(
            status=DatasetTaskStatus.COMPLETED,
            current_step="completed",
            completed_steps=1,
            done=excluded,
            total=len(fresh) + already,
            percentage=100.0,
            message=f"{rule_get(key).label}: excluded {excluded} video(s) ({already} already excluded)",
            result=result,
            completed_at=timezone.now(),
        )
    task.refresh_from_db()
    return task


def exclusions_revert(
    *,
    exclusion_ids: Any = None,
    aid: Any = None,
    task_id: Any = None,
    user=None,
) -> int:
    """Revert active exclusions, chosen by exactly one of: ``exclusion_ids`` (a list),
    ``aid`` (every active exclusion of that video), ``task_id`` (every active exclusion
    that cleaning task wrote). Rows are kept, stamped ``reverted_at``/``reverted_by``.
    Returns how many were reverted; ``ValidationError`` on bad input (nothing written)."""
    given = [name for name, value in (("exclusion_ids", exclusion_ids), ("aid", aid), ("task_id", task_id))
             if value is not None]
    if len(given) != 1:
        raise ValidationError({"non_field_errors": "give exactly one of exclusion_ids, aid, task_id"})
    active = Exclusion.objects.filter(reverted_at__isnull=True)
    if exclusion_ids is not None:
        if (not isinstance(exclusion_ids, list) or not exclusion_ids
                or not all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in exclusion_ids)):
            raise ValidationError({"exclusion_ids": "must be a non-empty list of positive integers"})
        if len(exclusion_ids) > MAX_REVERT_IDS:
            raise ValidationError({"exclusion_ids": f"at most {MAX_REVERT_IDS} ids"})
        chosen = active.filter(pk__in=exclusion_ids)
    elif aid is not None:
        if isinstance(aid, bool) or not isinstance(aid, int) or aid <= 0:
            raise ValidationError({"aid": "must be a positive integer"})
        chosen = active.filter(video__aid=aid)
    else:
        try:
            task_uuid = uuid.UUID(str(task_id))
        except ValueError:
            raise ValidationError({"task_id": f"not a task id: {task_id!r}"}) from None
        if not DatasetTask.objects.filter(pk=task_uuid, type=DatasetTaskType.CLEANING).exists():
            raise ValidationError({"task_id": f"no cleaning task {task_uuid}"})
        chosen = active.filter(task_id=task_uuid)
    return chosen.update(reverted_at=timezone.now(), reverted_by_id=getattr(user, "pk", None))
