"""What a run logs: params (write-once) and metric points (a batch per epoch) with the
per-run summary kept by the same statement.

Each write is ONE SQL statement, fenced: it applies only while the run is in an allowed
status (and, with ``expected_attempt``, still at that attempt), so a cancelled or
taken-over worker writes nothing. The fence is part of the statement (a row lock on
the run, re-checked after any concurrent cancel commits), never a separate read.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from experiments.models import (
    ACTIVE_RUN_STATUSES,
    MAX_PARAM_VALUE_LENGTH,
    MetricPoint,
    Param,
    Run,
    RunMetricSummary,
    RunStatus,
)
from experiments.services.runs import fence_failure
from experiments.services.validation import clean_id, clean_key, clean_non_negative_int

#: Points per ``run_metrics_log`` call (a trainer logs a dozen per epoch; importers chunk).
MAX_METRIC_BATCH = 10_000
MAX_PARAM_BATCH = 1_000
#: Conflicts listed in an error message, then a count.
MAX_CONFLICTS_LISTED = 10


class MetricValue(NamedTuple):
    """One point to log; ``wall_time`` defaults to the time of the call."""

    key: str
    step: int
    value: float
    wall_time: datetime | None = None


class MetricsLogged(NamedTuple):
    inserted: int  # new points stored
    unchanged: int  # points already stored with the same value (a re-sent batch)


def _listed(items: list[str]) -> str:
    shown = "; ".join(items[:MAX_CONFLICTS_LISTED])
    more = len(items) - MAX_CONFLICTS_LISTED
    return shown + (f"; and {more} more" if more > 0 else "")


# --- params -----------------------------------------------------------------------------


def param_value_text(value: object) -> str:
    """How a param is stored: text as given, anything else as compact JSON
    (``True`` → ``true``, ``0.001`` → ``0.001``, ``[64, 32]`` → ``[64,32]``)."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, allow_nan=False, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        raise ValueError(f"not a JSON value: {value!r}") from None


def _cleaned_params(params: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    if not isinstance(params, Mapping):
        raise ValidationError({"params": f"must be an object of key: value (got {type(params).__name__})"})
    if len(params) > MAX_PARAM_BATCH:
        raise ValidationError({"params": f"at most {MAX_PARAM_BATCH} params per call (got {len(params)})"})
    keys, values, errors = [], [], {}
    for key, value in params.items():
        try:
            keys.append(clean_key(key, "key"))
        except ValidationError as error:
            errors[f"params.{key}"] = error.message_dict["key"]
            continue
        try:
            text = param_value_text(value)
        except ValueError as error:
            errors[f"params.{key}"] = [str(error)]
            continue
        if len(text) > MAX_PARAM_VALUE_LENGTH:
            errors[f"params.{key}"] = [f"at most {MAX_PARAM_VALUE_LENGTH} characters (got {len(text)})"]
        elif "\x00" in text:
            errors[f"params.{key}"] = ["must not contain NUL (\\u0000) characters"]
        values.append(text)
    if errors:
        raise ValidationError(errors)
    return keys, values


def run_params_log(run_id: int, params: Mapping[str, Any], *, expected_attempt: int | None = None) -> int:
    """Store ``params`` (key → value) of a queued or running run; returns how many were new.

    Write-once, as MLflow: a key already stored with the same value is a no-op, with a
    different value a ``ValidationError`` naming each such key, and then nothing of the
    batch is written. One statement (no transaction needed). A key another writer
    stores at the same instant (only possible unfenced) keeps that writer's value.
    """
    run_id = clean_id(run_id, "run_id")
    keys, values = _cleaned_params(params)
    if not keys:
        return 0
    run_table, param_table = Run._meta.db_table, Param._meta.db_table
    sql = f"""
        WITH fence AS (
            SELECT id FROM {run_table}
            WHERE id = %(run)s AND status = ANY(%(allowed)s) AND deleted_at IS NULL
              AND (%(attempt)s::integer IS NULL OR attempts = %(attempt)s::integer)
            FOR SHARE
        ),
        batch AS (SELECT * FROM unnest(%(keys)s::text[], %(values)s::text[]) AS b(key, value)),
        existing AS (
            SELECT p.key, p.value FROM {param_table} p JOIN batch b ON b.key = p.key WHERE p.run_id = %(run)s
        ),
        inserted AS (
            INSERT INTO {param_table} (run_id, key, value)
            SELECT fence.id, b.key, b.value FROM batch b CROSS JOIN fence
            WHERE NOT EXISTS (SELECT 1 FROM existing e WHERE e.key = b.key)
              AND NOT EXISTS (SELECT 1 FROM existing e JOIN batch c USING (key) WHERE e.value <> c.value)
            ON CONFLICT (run_id, key) DO NOTHING
            RETURNING key
        )
        SELECT (SELECT count(*) FROM fence), (SELECT count(*) FROM inserted), (SELECT count(*) FROM existing),
               (SELECT coalesce(json_agg(json_build_array(e.key, e.value, b.value) ORDER BY e.key), '[]')::text
                FROM existing e JOIN batch b USING (key) WHERE e.value <> b.value)
    """
    allowed = list(ACTIVE_RUN_STATUSES)
    with connection.cursor() as cursor:
        cursor.execute(sql, {"run": run_id, "allowed": allowed, "attempt": expected_attempt,
                             "keys": keys, "values": values})
        fenced, inserted, _existing, conflicts = cursor.fetchone()
    if not fenced:
        raise fence_failure(run_id, expected_attempt, tuple(allowed), "log params")
    conflicts = json.loads(conflicts)
    if conflicts:  # the statement wrote nothing
        raise ValidationError({"params": (
            f"params are written once; run {run_id} already has " +
            _listed([f"{key}={stored!r} (not {given!r})" for key, stored, given in conflicts])
        )})
    return inserted


# --- metrics ------------------------------------------------------------------------------


def _cleaned_points(points: Iterable[MetricValue | tuple], now: datetime) -> tuple[list, list, list, list]:
    keys: list[str] = []
    steps: list[int] = []
    values: list[float] = []
    times: list[datetime] = []
    seen: set[tuple[str, int]] = set()
    for index, point in enumerate(points):
        if index >= MAX_METRIC_BATCH:
            raise ValidationError({"metrics": f"at most {MAX_METRIC_BATCH} points per batch"})
        field = f"metrics[{index}]"
        if not isinstance(point, tuple) or len(point) not in (3, 4):
            raise ValidationError({field: f"must be (key, step, value[, wall_time]) (got {point!r})"})
        key, step, value, wall_time = (*point, None) if len(point) == 3 else point
        key = clean_key(key, f"{field}.key")
        step = clean_non_negative_int(step, f"{field}.step")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValidationError({f"{field}.value": f"must be a finite number (got {value!r})"})
        if wall_time is None:
            wall_time = now
        elif not isinstance(wall_time, datetime) or timezone.is_naive(wall_time):
            raise ValidationError({f"{field}.wall_time": f"must be a timezone-aware datetime (got {wall_time!r})"})
        if (key, step) in seen:
            raise ValidationError({field: f"{key} at step {step} is in the batch twice"})
        seen.add((key, step))
        keys.append(key)
        steps.append(step)
        values.append(float(value))
        times.append(wall_time)
    return keys, steps, values, times


def _metrics_sql() -> str:
    run_table = Run._meta.db_table
    point_table = MetricPoint._meta.db_table
    summary_table = RunMetricSummary._meta.db_table
    return f"""
        WITH fence AS (
            UPDATE {run_table} SET heartbeat_at = %(now)s
            WHERE id = %(run)s AND status = %(running)s AND deleted_at IS NULL
              AND (%(attempt)s::integer IS NULL OR attempts = %(attempt)s::integer)
            RETURNING id
        ),
        batch AS (
            SELECT * FROM unnest(%(keys)s::text[], %(steps)s::bigint[], %(values)s::float8[],
                                 %(times)s::timestamptz[]) AS b(key, step, value, wall_time)
        ),
        existing AS (
            SELECT p.key, p.step, p.value FROM {point_table} p
            JOIN batch b ON p.key = b.key AND p.step = b.step WHERE p.run_id = %(run)s
        ),
        inserted AS (
            INSERT INTO {point_table} (run_id, key, step, value, wall_time)
            SELECT fence.id, b.key, b.step, b.value, b.wall_time FROM batch b CROSS JOIN fence
            WHERE NOT EXISTS (SELECT 1 FROM existing e WHERE e.key = b.key AND e.step = b.step)
              AND NOT EXISTS (SELECT 1 FROM existing e JOIN batch c USING (key, step) WHERE e.value <> c.value)
            ON CONFLICT (run_id, key, step) DO NOTHING
            RETURNING run_id, key, step, value
        ),
        batch_summary AS (
            -- ties keep the earliest step: "best" is when the value was first reached
            SELECT run_id, key, count(*) AS point_count,
                   (array_agg(step ORDER BY step DESC))[1] AS latest_step,
                   (array_agg(value ORDER BY step DESC))[1] AS latest_value,
                   (array_agg(value ORDER BY value, step))[1] AS min_value,
                   (array_agg(step ORDER BY value, step))[1] AS min_step,
                   (array_agg(value ORDER BY value DESC, step))[1] AS max_value,
                   (array_agg(step ORDER BY value DESC, step))[1] AS max_step
            FROM inserted GROUP BY run_id, key
        ),
        summary AS (
            INSERT INTO {summary_table} AS s
                (run_id, key, point_count, latest_step, latest_value, min_value, min_step, max_value, max_step,
                 updated_at)
            SELECT run_id, key, point_count, latest_step, latest_value, min_value, min_step, max_value, max_step,
                   %(now)s
            FROM batch_summary
            ON CONFLICT (run_id, key) DO UPDATE SET
                point_count = s.point_count + EXCLUDED.point_count,
                latest_step = GREATEST(s.latest_step, EXCLUDED.latest_step),
                latest_value = CASE WHEN EXCLUDED.latest_step > s.latest_step
                                    THEN EXCLUDED.latest_value ELSE s.latest_value END,
                min_value = LEAST(s.min_value, EXCLUDED.min_value),
                min_step = CASE WHEN EXCLUDED.min_value < s.min_value
                                  OR (EXCLUDED.min_value = s.min_value AND EXCLUDED.min_step < s.min_step)
                                THEN EXCLUDED.min_step ELSE s.min_step END,
                max_value = GREATEST(s.max_value, EXCLUDED.max_value),
                max_step = CASE WHEN EXCLUDED.max_value > s.max_value
                                  OR (EXCLUDED.max_value = s.max_value AND EXCLUDED.max_step < s.max_step)
                                THEN EXCLUDED.max_step ELSE s.max_step END,
                updated_at = EXCLUDED.updated_at
        )
        SELECT (SELECT count(*) FROM fence), (SELECT count(*) FROM inserted), (SELECT count(*) FROM existing),
               (SELECT coalesce(json_agg(json_build_array(e.key, e.step, e.value, b.value)
                                         ORDER BY e.key, e.step), '[]')::text
                FROM existing e JOIN batch b USING (key, step) WHERE e.value <> b.value)
    """


def run_metrics_log(
    run_id: int,
    points: Iterable[MetricValue | tuple],
    *,
    expected_attempt: int | None = None,
    now: datetime | None = None,
) -> MetricsLogged:
    """Store a batch of metric points of a running run and update its summaries: ONE
    statement (one round trip), which also serves as the run's heartbeat.

    ``points``: ``(key, step, value[, wall_time])``. A point already stored at (key,
    step) with the same value is a no-op (a re-sent batch); with another value it is a
    ``ValidationError`` listing the conflicts, and nothing of the batch is written.
    Values must be finite. ``RunAttemptStale`` when ``expected_attempt`` is no longer
    the run's (cancelled or taken over): nothing is written. The statement is atomic by
    itself (no transaction needed); a point another writer stores at the same instant
    (only possible unfenced) keeps that writer's value.
    """
    run_id = clean_id(run_id, "run_id")
    moment = now or timezone.now()
    keys, steps, values, times = _cleaned_points(points, moment)
    if not keys:
        return MetricsLogged(0, 0)
    with connection.cursor() as cursor:
        cursor.execute(_metrics_sql(), {
            "run": run_id, "running": RunStatus.RUNNING, "attempt": expected_attempt, "now": moment,
            "keys": keys, "steps": steps, "values": values, "times": times,
        })
        fenced, inserted, _existing, conflicts = cursor.fetchone()
    if not fenced:
        raise fence_failure(run_id, expected_attempt, (RunStatus.RUNNING,), "log metrics")
    conflicts = json.loads(conflicts)
    if conflicts:  # the statement wrote no point and no summary
        raise ValidationError({"metrics": (
            f"metric points are written once; run {run_id} already has " +
            _listed([f"{key} at step {step} = {stored!r} (not {given!r})" for key, step, stored, given in conflicts])
        )})
    return MetricsLogged(inserted=inserted, unchanged=len(keys) - inserted)


def run_metrics_clear(run_id: int, *, expected_attempt: int) -> int:
    """Delete every metric point and summary of a running run, fenced by
    ``expected_attempt``: a worker that takes a run over after its worker died trains
    from the start, and the dead attempt's curves would otherwise clash with the new
    ones (points are written once). Returns the number of points deleted."""
    run_id = clean_id(run_id, "run_id")
    with transaction.atomic():
        fenced = Run.objects.select_for_update().filter(
            pk=run_id, status=RunStatus.RUNNING, attempts=expected_attempt, deleted_at__isnull=True
        ).exists()
        if not fenced:
            raise fence_failure(run_id, expected_attempt, (RunStatus.RUNNING,), "clear its metrics")
        deleted, _ = MetricPoint.objects.filter(run_id=run_id).delete()
        RunMetricSummary.objects.filter(run_id=run_id).delete()
    return deleted
