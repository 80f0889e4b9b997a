"""Reads of the compare view: any selection of 2 to 1,000 runs, side by side.

Every read here costs a fixed number of queries whatever the number of runs, params or
epochs: the runs (one query), their params (one), their metric summaries (one), the
values at one epoch (one, only when a metric asks for it), and the curves of one metric
for every run at once (one query that also downsamples each series in SQL). Nothing
reads a metric point except the "at epoch N" values and the curves.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import TextChoices

from core.api.bounds import MAX_BIGINT
from experiments.models import (
    Experiment, MetricDirection, MetricPoint, Param, Run, RunMetricSummary,
)
from experiments.selectors import NUMERIC_TEXT_PATTERN
from experiments.services.validation import clean_key

MIN_COMPARED_RUNS = 2
MAX_COMPARED_RUNS = 1000
#: Points per run and curve the browser gets: enough for a chart a few hundred pixels wide.
DEFAULT_SERIES_POINTS = 200
#: The downsampling keeps the first and the last point and two per bucket: at least one bucket.
MIN_SERIES_POINTS = 4
MAX_SERIES_POINTS = 5000
#: Curves carry values to this many significant digits (a chart cannot show more; the
#: JSON of 1,000 runs stays half as big).
SERIES_SIGNIFICANT_DIGITS = 6
_NUMERIC_TEXT = re.compile(NUMERIC_TEXT_PATTERN)


class Aggregate(TextChoices):
    """What one number of a run's metric is, in the metrics table and the scatter."""

    FINAL = "final", "final"
    BEST = "best", "best"
    MIN = "min", "min"
    MAX = "max", "max"
    EPOCH = "epoch", "at epoch N"


class XAxis(TextChoices):
    """The x of the curves. A run logs one step per epoch, so the step is the epoch."""

    STEP = "step", "epoch (step)"
    WALL = "wall", "wall time (s)"


def metric_direction(experiment: Experiment, key: str) -> str:
    """Which way ``key`` is better for runs of ``experiment``: the experiment's direction
    for its ranking metric, else lower for a loss and higher for anything else (the rule
    of the runs table's and the run search's ``best``)."""
    return experiment.direction_for(key)


# --- the selection ------------------------------------------------------------------------


def compare_run_ids(values: str | Iterable[str]) -> list[int]:
    """The run ids of a selection: ``"1,2,3"`` or repeated values (``?runs=1&runs=2``,
    what a table's checkboxes send), duplicates dropped, order kept. ``ValidationError``
    keyed ``runs`` unless they are 2 to ``MAX_COMPARED_RUNS`` positive integers."""
    if isinstance(values, str):
        values = [values]
    ids: dict[int, None] = {}
    for value in values:
        for part in str(value).split(","):
            part = part.strip()
            if not part:
                continue
            if not (part.isascii() and part.isdigit()) or not 1 <= int(part) <= MAX_BIGINT:
                shown = part if len(part) <= 20 else part[:20] + "…"
                raise ValidationError({"runs": f"{shown!r} is not a run id (run ids are positive integers)"})
            ids[int(part)] = None
            if len(ids) > MAX_COMPARED_RUNS:
                raise ValidationError({"runs": f"compare at most {MAX_COMPARED_RUNS:,} runs at a time"})
    if len(ids) < MIN_COMPARED_RUNS:
        raise ValidationError(
            {"runs": f"choose at least {MIN_COMPARED_RUNS} runs to compare (got {len(ids)})"}
        )
    return list(ids)


def compared_runs(run_ids: Sequence[int]) -> list[Run]:
    """The live runs (of live experiments) of ``run_ids``, in that order, with their
    experiment: one query. ``ValidationError`` keyed ``runs`` naming the ids that are
    unknown or deleted."""
    runs = {
        run.pk: run
        for run in Run.objects.filter(
            pk__in=run_ids, deleted_at__isnull=True, experiment__deleted_at__isnull=True
        ).select_related("experiment").only(
            "pk", "name", "status", "architecture_key", "seed", "created_at", "started_at", "finished_at",
            "experiment__id", "experiment__name", "experiment__metric_key", "experiment__metric_direction",
        )
    }
    missing = [run_id for run_id in run_ids if run_id not in runs]
    if missing:
        listed = ", ".join(str(run_id) for run_id in missing[:10]) + (" …" if len(missing) > 10 else "")
        raise ValidationError({"runs": f"no such run (unknown or deleted): {listed}"})
    return [runs[run_id] for run_id in run_ids]


# --- params -------------------------------------------------------------------------------


class ParamsTable(NamedTuple):
    """Every param key of the runs (sorted) and each run's values."""

    keys: list[str]
    #: The keys whose value is not the same for every run (a run without it differs too).
    differing_keys: list[str]
    #: run id → key → value (a run without the param has no entry).
    values: dict[int, dict[str, str]]
    #: key → the first run's value (None without it): what a highlighted cell differs from.
    reference: dict[str, str | None]


def compare_params(runs: Sequence[Run]) -> ParamsTable:
    """The params of ``runs``: one query."""
    values: dict[int, dict[str, str]] = {run.pk: {} for run in runs}
    for run_id, key, value in Param.objects.filter(run_id__in=list(values)).values_list("run_id", "key", "value"):
        values[run_id][key] = value
    keys = sorted({key for params in values.values() for key in params})
    differing = [
        key for key in keys
        if len({params.get(key) for params in values.values()}) > 1
    ]
    first = values[runs[0].pk] if runs else {}
    return ParamsTable(keys=keys, differing_keys=differing, values=values,
                       reference={key: first.get(key) for key in keys})


# --- metrics ------------------------------------------------------------------------------


class MetricChoice(NamedTuple):
    """A metric's column: its key and the aggregate it shows."""

    key: str
    aggregate: str


class MetricValue(NamedTuple):
    value: float
    #: The step (epoch) the value was logged at.
    step: int


class MetricsTable(NamedTuple):
    """Every metric key of the runs with its chosen aggregate, and each run's value."""

    columns: list[MetricChoice]
    #: The epoch of the "at epoch N" aggregate (None when no metric asks for it).
    epoch: int | None
    #: run id → key → value (a run without the metric, or without a point at that
    #: epoch, has no entry).
    values: dict[int, dict[str, MetricValue]]
    #: key → the best value of the column (by the first run's experiment's direction).
    best: dict[str, float]
    #: key → "max" or "min": which way the column is better.
    directions: dict[str, str]
    #: The keys some run logged more than once (a curve, not one final value).
    curve_keys: list[str]


def clean_aggregates(choices: Mapping[str, str], epoch: object = None) -> tuple[dict[str, str], int | None]:
    """Metric key → aggregate (``Aggregate`` values) and the epoch of "at epoch N",
    checked: ``ValidationError`` keyed ``aggregates`` or ``epoch``."""
    cleaned: dict[str, str] = {}
    for key, aggregate in choices.items():
        clean_key(key, "aggregates")
        if aggregate not in Aggregate.values:
            raise ValidationError(
                {"aggregates": f"{key}: {aggregate!r} is not one of {', '.join(Aggregate.values)}"}
            )
        cleaned[key] = aggregate
    if epoch in (None, ""):
        epoch = None
    elif isinstance(epoch, str):
        if not (epoch.isascii() and epoch.isdigit()) or int(epoch) > MAX_BIGINT:
            raise ValidationError({"epoch": f"must be a whole number of at least 0 (got {epoch[:20]!r})"})
        epoch = int(epoch)
    elif isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch <= MAX_BIGINT:
        raise ValidationError({"epoch": f"must be a whole number of at least 0 (got {epoch!r})"})
    if epoch is None and Aggregate.EPOCH in cleaned.values():
        raise ValidationError({"epoch": "choose the epoch N of the metrics shown “at epoch N”"})
    return cleaned, epoch


def compare_metrics(runs: Sequence[Run], aggregates: Mapping[str, str] | None = None,
                    epoch: int | None = None) -> MetricsTable:
    """The metrics of ``runs``, each by the aggregate ``aggregates`` names for its key
    (final by default): final (the latest value), best (by ``metric_direction``), min,
    max from the runs' summaries (one query), or the value at step ``epoch`` (one query
    over the points of those keys at that step, only when a metric asks for it)."""
    aggregates, epoch = clean_aggregates(aggregates or {}, epoch)
    run_ids = [run.pk for run in runs]
    experiments = {run.pk: run.experiment for run in runs}
    # Tuples, not model instances: 1,000 runs × a dozen metrics are read in one go.
    summaries = list(RunMetricSummary.objects.filter(run_id__in=run_ids).values_list(
        "run_id", "key", "point_count", "latest_value", "latest_step", "min_value", "min_step", "max_value",
        "max_step",
    ))
    keys = sorted({summary[1] for summary in summaries})
    columns = [MetricChoice(key, aggregates.get(key, Aggregate.FINAL)) for key in keys]
    chosen = dict(columns)
    values: dict[int, dict[str, MetricValue]] = {run_id: {} for run_id in run_ids}
    for run_id, key, _count, latest, latest_step, low, low_step, high, high_step in summaries:
        aggregate = chosen[key]
        if aggregate == Aggregate.BEST:
            minimize = metric_direction(experiments[run_id], key) == MetricDirection.MINIMIZE
            aggregate = Aggregate.MIN if minimize else Aggregate.MAX
        if aggregate == Aggregate.FINAL:
            values[run_id][key] = MetricValue(latest, latest_step)
        elif aggregate == Aggregate.MIN:
            values[run_id][key] = MetricValue(low, low_step)
        elif aggregate == Aggregate.MAX:
            values[run_id][key] = MetricValue(high, high_step)
    epoch_keys = [key for key, aggregate in columns if aggregate == Aggregate.EPOCH]
    if epoch_keys:
        points = MetricPoint.objects.filter(run_id__in=run_ids, key__in=epoch_keys, step=epoch)
        for run_id, key, value in points.values_list("run_id", "key", "value"):
            values[run_id][key] = MetricValue(value, epoch)
    directions = {key: metric_direction(runs[0].experiment, key) for key in keys} if runs else {}
    best: dict[str, float] = {}
    for key in keys:
        column = [row[key].value for row in values.values() if key in row]
        if column:
            best[key] = min(column) if directions[key] == MetricDirection.MINIMIZE else max(column)
    curve_keys = sorted({key for _run_id, key, count, *_values in summaries if count > 1})
    return MetricsTable(columns=columns, epoch=epoch if epoch_keys else None, values=values, best=best,
                        directions=directions, curve_keys=curve_keys)


# --- curves -------------------------------------------------------------------------------


class RunSeries(NamedTuple):
    """One run's curve of one metric, downsampled: x (the step, or seconds since the
    run's first point of that metric) and y, ordered by step."""

    xs: list[float]
    ys: list[float]
    #: Points the run has for the metric (before downsampling).
    total: int


# One statement for every run: each run's points of the metric get their position and
# count (window functions on the (run, key, step) index); a run with more than
# %(max_points)s points is cut into %(buckets)s buckets of equal point counts, and only
# the first and last point of the run and the lowest and highest point of each bucket are
# kept (min/max per bucket: a spike is never averaged away, and the count is bounded).
_SERIES_SQL = f"""
WITH points AS (
    SELECT run_id, step, value, wall_time,
           row_number() OVER (PARTITION BY run_id ORDER BY step) - 1 AS position,
           count(*) OVER (PARTITION BY run_id) AS total,
           min(wall_time) OVER (PARTITION BY run_id) AS first_time
    FROM {MetricPoint._meta.db_table}
    WHERE key = %(key)s AND run_id = ANY(%(run_ids)s)
), bucketed AS (
    SELECT *, position * %(buckets)s / total AS bucket
    FROM points
), ranked AS (
    SELECT *,
           row_number() OVER (PARTITION BY run_id, bucket ORDER BY value, step) AS low_rank,
           row_number() OVER (PARTITION BY run_id, bucket ORDER BY value DESC, step) AS high_rank
    FROM bucketed
)
SELECT run_id, step, value, EXTRACT(EPOCH FROM wall_time - first_time)::float8, total
FROM ranked
WHERE total <= %(max_points)s OR position = 0 OR position = total - 1 OR low_rank = 1 OR high_rank = 1
ORDER BY run_id, step
"""


def _rounded(value: float) -> float:
    return float(f"{value:.{SERIES_SIGNIFICANT_DIGITS}g}")


def clean_max_points(value: object) -> int:
    if value in (None, ""):
        return DEFAULT_SERIES_POINTS
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_SERIES_POINTS <= value <= MAX_SERIES_POINTS:
        raise ValidationError(
            {"points": f"must be a whole number from {MIN_SERIES_POINTS} to {MAX_SERIES_POINTS} (got {value!r})"}
        )
    return value


def compare_series(run_ids: Sequence[int], key: str, *, x_axis: str = XAxis.STEP,
                   max_points: int = DEFAULT_SERIES_POINTS) -> dict[int, RunSeries]:
    """The curve of metric ``key`` for every run of ``run_ids``, each downsampled to at
    most ``max_points`` points (the first and last point, and the lowest and highest of
    each of ``(max_points - 2) // 2`` buckets): ONE query whatever the number of runs and
    points. Runs without the metric are left out."""
    key = clean_key(key, "metric")
    if x_axis not in XAxis.values:
        raise ValidationError({"x": f"must be one of {', '.join(XAxis.values)} (got {x_axis!r})"})
    max_points = clean_max_points(max_points)
    buckets = (max_points - 2) // 2
    series: dict[int, RunSeries] = {}
    with connection.cursor() as cursor:
        cursor.execute(_SERIES_SQL, {"key": key, "run_ids": list(run_ids), "buckets": buckets,
                                     "max_points": max_points})
        for run_id, step, value, seconds, total in cursor.fetchall():
            curve = series.get(run_id)
            if curve is None:
                curve = series[run_id] = RunSeries([], [], total)
            curve.xs.append(float(step) if x_axis == XAxis.STEP else round(seconds, 3))
            curve.ys.append(_rounded(value))
    return series


def compare_param_values(run_ids: Sequence[int], key: str) -> dict[int, str]:
    """Run id → its value of param ``key`` (what the curves are coloured by): one query."""
    key = clean_key(key, "color")
    return dict(Param.objects.filter(run_id__in=list(run_ids), key=key).values_list("run_id", "value"))


# --- scatter ------------------------------------------------------------------------------


class ScatterPoint(NamedTuple):
    run: Run
    #: The param's value: a number when every run's value reads as one, else its text.
    x: float | str
    y: float


class Scatter(NamedTuple):
    """One param against one metric (by the metrics table's aggregate) across runs."""

    param_key: str
    metric_key: str
    aggregate: str
    #: True when every value of the param reads as a finite number.
    numeric: bool
    points: list[ScatterPoint]
    #: The categories in order (text params; empty when numeric).
    categories: list[str]
    #: Runs left out: without the param or without the metric's value.
    left_out: int


def _as_number(text: str) -> float | None:
    if not _NUMERIC_TEXT.match(text.strip()):
        return None
    number = float(text)
    return number if math.isfinite(number) else None


def compare_scatter(runs: Sequence[Run], params: ParamsTable, metrics: MetricsTable,
                    param_key: str, metric_key: str) -> Scatter:
    """The scatter of ``param_key`` against ``metric_key`` from tables already read (no query)."""
    aggregate = dict(metrics.columns).get(metric_key, Aggregate.FINAL)
    pairs = []
    for run in runs:
        text = params.values[run.pk].get(param_key)
        value = metrics.values[run.pk].get(metric_key)
        if text is not None and value is not None:
            pairs.append((run, text, value.value))
    numbers = [_as_number(text) for _run, text, _value in pairs]
    numeric = bool(pairs) and all(number is not None for number in numbers)
    if numeric:
        points = [ScatterPoint(run, number, value) for (run, _text, value), number in zip(pairs, numbers)]
        categories: list[str] = []
    else:
        points = [ScatterPoint(run, text, value) for run, text, value in pairs]
        categories = sorted({text for _run, text, _value in pairs})
    return Scatter(param_key=param_key, metric_key=metric_key, aggregate=aggregate, numeric=numeric,
                   points=points, categories=categories, left_out=len(runs) - len(points))
