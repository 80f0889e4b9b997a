"""Reads of the experiments app. Every list costs a fixed number of queries whatever the
number of experiments, runs or epochs: counts are aggregated in SQL, params and metric
summaries prefetched, and nothing here reads metric points except the series of one run."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import NamedTuple

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import (
    Case,
    Count,
    DecimalField,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    Func,
    OrderBy,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    When,
)

from core.api.bounds import MAX_BIGINT
from datasets.selectors import as_uuid
from experiments.models import (
    Artifact,
    Experiment,
    MetricDirection,
    MetricPoint,
    Param,
    Run,
    RunMetricSummary,
    RunStatus,
)
from experiments.services.artifacts import RUN_LOG_PATH, run_artifact_dir
from experiments.services.validation import clean_id, clean_key

MAX_SERIES_KEYS = 50
#: A dataset version's aid list can hold a whole corpus: lists never load it.
_DEFAULT_VERSION_DEFERRED = ("default_dataset_version__requested_aids", "default_dataset_version__selection")


def _run_counts() -> dict[str, Count]:
    live = Q(runs__deleted_at__isnull=True)
    counts = {"run_count": Count("runs", filter=live)}
    for status in RunStatus.values:
        counts[f"{status}_count"] = Count("runs", filter=live & Q(runs__status=status))
    return counts


def experiment_list(
    *,
    search: str | None = None,
    tag: str | None = None,
    status: str | None = None,
    dataset_version_id: uuid.UUID | str | None = None,
    deleted: bool = False,
) -> QuerySet[Experiment]:
    """Experiments, newest first, with ``run_count`` and ``<status>_count`` (live runs)
    annotated: one query.

    ``search``: words of the name or description; ``tag``: experiments carrying it (the
    GIN index); ``status``: experiments with a live run in that status;
    ``dataset_version_id``: its default version, or a live run on it; ``deleted``: the
    soft-deleted ones instead (the restore list).
    """
    experiments = (
        Experiment.objects.filter(deleted_at__isnull=not deleted)
        .select_related("owner", "default_dataset_version__dataset")
        .defer(*_DEFAULT_VERSION_DEFERRED)
    )
    if search:
        for word in search.split():
            experiments = experiments.filter(Q(name__icontains=word) | Q(description__icontains=word))
    if tag:
        experiments = experiments.filter(tags__contains=[" ".join(tag.split()).lower()])
    live_runs = Run.objects.filter(experiment=OuterRef("pk"), deleted_at__isnull=True)
    if status is not None:
        if status not in RunStatus.values:
            raise ValidationError({"status": f"must be one of {', '.join(RunStatus.values)} (got {status!r})"})
        experiments = experiments.filter(Exists(live_runs.filter(status=status)))
    if dataset_version_id is not None:
        version_uuid = as_uuid(dataset_version_id, "dataset_version_id")
        experiments = experiments.filter(
            Q(default_dataset_version_id=version_uuid) | Exists(live_runs.filter(dataset_version_id=version_uuid))
        )
    return experiments.annotate(**_run_counts()).order_by("-created_at", "-id")


def experiment_get(experiment_id: int, *, include_deleted: bool = False) -> Experiment:
    """One experiment with its owner and default version; raises ``Experiment.DoesNotExist``."""
    experiments = Experiment.objects.select_related("owner", "default_dataset_version__dataset").defer(
        *_DEFAULT_VERSION_DEFERRED
    )
    if not include_deleted:
        experiments = experiments.filter(deleted_at__isnull=True)
    return experiments.get(pk=clean_id(experiment_id, "experiment_id"))


def experiment_by_id_or_name(id_or_name: str) -> Experiment | None:
    """The live experiment whose id (when ``id_or_name`` is a number) or else whose exact
    name is ``id_or_name``; None when there is none (how a command names one)."""
    live = Experiment.objects.filter(deleted_at__isnull=True)
    if id_or_name.isascii() and id_or_name.isdigit() and 0 < int(id_or_name) <= MAX_BIGINT:
        found = live.filter(pk=int(id_or_name)).first()
        if found is not None:
            return found
    return live.filter(name=id_or_name).first()


class RunRow(NamedTuple):
    """One line of a runs table: the run, its params (key → text) and its metric
    summaries (key → ``RunMetricSummary``; best = ``summary.best(direction)``)."""

    run: Run
    params: dict[str, str]
    metrics: dict[str, RunMetricSummary]


#: The columns of a runs table that sort by a field of the run (``run_order``).
RUN_SORT_COLUMNS = ("name", "status", "architecture", "dataset", "seed", "created", "duration")
#: Prefixes of the columns that sort by a run's metric (latest value, or best by the
#: experiment's direction) or param.
RUN_SORT_PREFIXES = ("metric", "best", "param")
#: A param's text that reads as a decimal number (``1e-3``, ``.5``, ``-2``, ``64``); the
#: exponent is bounded so the cast to ``numeric`` can never overflow.
NUMERIC_TEXT_PATTERN = r"^[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]{1,3})?$"


class RunOrder(NamedTuple):
    """How a runs table is sorted: ``column`` is one of ``RUN_SORT_COLUMNS`` or
    ``metric:<key>`` / ``best:<key>`` / ``param:<key>``. Runs without the value sort
    last whichever the direction; ties keep newest first."""

    column: str
    descending: bool = False

    @property
    def kind(self) -> str:
        return self.column.split(":", 1)[0]

    @property
    def key(self) -> str:
        return self.column.split(":", 1)[1] if ":" in self.column else ""


def run_order(sort: str | None, direction: str | None = None) -> RunOrder | None:
    """The ``sort`` / ``dir`` query parameters of a runs table as a ``RunOrder`` (None
    when no sort is asked for); ``ValidationError`` keyed ``sort`` or ``dir`` otherwise."""
    if direction not in (None, "", "asc", "desc"):
        raise ValidationError({"dir": f"must be asc or desc (got {direction!r})"})
    if not sort:
        return None
    if ":" in sort:
        prefix, key = sort.split(":", 1)
        if prefix not in RUN_SORT_PREFIXES:
            raise ValidationError({"sort": f"{prefix!r} is not metric:, best: or param: (got {sort!r})"})
        sort = f"{prefix}:{clean_key(key, 'sort')}"
    elif sort not in RUN_SORT_COLUMNS:
        raise ValidationError(
            {"sort": f"must be one of {', '.join(RUN_SORT_COLUMNS)}, or metric:, best: or param: and a key "
                     f"(got {sort!r})"}
        )
    return RunOrder(sort, descending=direction == "desc")


def _ordered(expression, descending: bool) -> OrderBy:
    return OrderBy(expression, descending=descending, nulls_last=True)


def _run_ordering(order: RunOrder, experiment: Experiment) -> list[OrderBy | str]:
    """ORDER BY of a runs table: one subquery per sort value on the (run, key) unique
    index of summaries or params, so the page stays one query for the runs."""
    descending = order.descending
    if order.kind in ("metric", "best"):
        field = "latest_value"
        if order.kind == "best":
            minimize = experiment.direction_for(order.key) == MetricDirection.MINIMIZE
            field = "min_value" if minimize else "max_value"
        value = RunMetricSummary.objects.filter(run=OuterRef("pk"), key=order.key).values(field)[:1]
        expressions = [_ordered(Subquery(value), descending)]
    elif order.kind == "param":
        params = Param.objects.filter(run=OuterRef("pk"), key=order.key)
        # Numbers by value (0.001 < 0.01 < 0.1 < 1, whatever their spelling), then the
        # rest as text; the CASE guards the cast.
        as_number = Case(
            When(value__regex=NUMERIC_TEXT_PATTERN,
                 then=Func(F("value"), template="(%(expressions)s)::numeric", output_field=DecimalField())),
            default=None, output_field=DecimalField(),
        )
        expressions = [
            _ordered(Subquery(params.annotate(number=as_number).values("number")[:1]), descending),
            _ordered(Subquery(params.values("value")[:1]), descending),
        ]
    elif order.column == "dataset":
        expressions = [_ordered(F("dataset_version__dataset__name"), descending),
                       _ordered(F("dataset_version__number"), descending)]
    elif order.column == "duration":
        duration = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
        expressions = [_ordered(duration, descending)]
    else:
        field = {"architecture": "architecture_key", "created": "created_at"}.get(order.column, order.column)
        expressions = [_ordered(F(field), descending)]
    return [*expressions, "-created_at", "-id"]


def run_table(
    experiment: Experiment,
    *,
    status: str | None = None,
    deleted: bool = False,
    limit: int | None = None,
    order_by: RunOrder | None = None,
    offset: int = 0,
) -> list[RunRow]:
    """The runs of ``experiment`` (newest first, or by ``order_by``: see ``run_order``)
    with their params and metric summaries: three queries whatever the number of runs,
    params or epochs. ``offset`` and ``limit`` cut one page of the ordered runs."""
    runs = Run.objects.filter(experiment=experiment, deleted_at__isnull=not deleted)
    if status is not None:
        if status not in RunStatus.values:
            raise ValidationError({"status": f"must be one of {', '.join(RunStatus.values)} (got {status!r})"})
        runs = runs.filter(status=status)
    runs = runs.select_related("dataset_version__dataset").defer(
        "reproducibility", "dataset_version__requested_aids", "dataset_version__selection"
    ).prefetch_related(
        Prefetch("params", queryset=Param.objects.order_by("key"), to_attr="param_list"),
        Prefetch("metric_summaries", queryset=RunMetricSummary.objects.order_by("key"), to_attr="summary_list"),
    ).order_by(*(_run_ordering(order_by, experiment) if order_by else ("-created_at", "-id")))
    if offset or limit is not None:
        runs = runs[offset: None if limit is None else offset + limit]
    return [
        RunRow(
            run=run,
            params={param.key: param.value for param in run.param_list},
            metrics={summary.key: summary for summary in run.summary_list},
        )
        for run in runs
    ]


class SeriesPoint(NamedTuple):
    step: int
    value: float
    wall_time: datetime


def run_metric_series(run_id: int, keys: Sequence[str]) -> dict[str, list[SeriesPoint]]:
    """The points of the chosen metrics of one run, each ordered by step: one query
    (by the (run, key, step) unique index). Every key asked for is in the result."""
    run_id = clean_id(run_id, "run_id")
    if isinstance(keys, str) or len(keys) > MAX_SERIES_KEYS:
        raise ValidationError({"keys": f"must be a list of at most {MAX_SERIES_KEYS} metric keys"})
    chosen = list(dict.fromkeys(clean_key(key, "keys") for key in keys))
    series: dict[str, list[SeriesPoint]] = {key: [] for key in chosen}
    if not chosen:
        return series
    rows = (
        MetricPoint.objects.filter(run_id=run_id, key__in=chosen)
        .order_by("key", "step")
        .values_list("key", "step", "value", "wall_time")
    )
    for key, step, value, wall_time in rows:
        series[key].append(SeriesPoint(step, value, wall_time))
    return series


def run_detail(run_id: int, *, include_deleted: bool = False) -> Run:
    """One run with its experiment, dataset version and origin joined, and its params,
    metric summaries and artifacts prefetched (``param_list``, ``summary_list``,
    ``artifact_list``): four queries. Raises ``Run.DoesNotExist``."""
    runs = Run.objects.select_related(
        "experiment", "dataset_version__dataset", "dataset_version__embedding_model", "origin_run"
    ).defer("dataset_version__requested_aids", "dataset_version__selection").prefetch_related(
        Prefetch("params", queryset=Param.objects.order_by("key"), to_attr="param_list"),
        Prefetch("metric_summaries", queryset=RunMetricSummary.objects.order_by("key"), to_attr="summary_list"),
        Prefetch("artifacts", queryset=Artifact.objects.order_by("path"), to_attr="artifact_list"),
    )
    if not include_deleted:
        runs = runs.filter(deleted_at__isnull=True, experiment__deleted_at__isnull=True)
    return runs.get(pk=clean_id(run_id, "run_id"))


def run_metric_keys(run_id: int) -> list[str]:
    """The metric keys a run has logged (from its summaries, not its points)."""
    return list(
        RunMetricSummary.objects.filter(run_id=clean_id(run_id, "run_id")).order_by("key").values_list("key", flat=True)
    )


def run_list(
    *,
    experiment_id: int | None = None,
    status: str | None = None,
    architecture_key: str | None = None,
    dataset_version_id: uuid.UUID | str | None = None,
    deleted: bool = False,
) -> QuerySet[Run]:
    """Runs across experiments, newest first, for a paginated list (the API): each with
    ``param_list`` and ``summary_list`` prefetched as in ``run_table``, so a page costs
    three queries whatever the number of runs, params or epochs.

    Live runs of live experiments by default; ``deleted``: the soft-deleted runs instead
    (the restore list)."""
    runs = Run.objects.filter(deleted_at__isnull=not deleted)
    if not deleted:
        runs = runs.filter(experiment__deleted_at__isnull=True)
    if experiment_id is not None:
        runs = runs.filter(experiment_id=clean_id(experiment_id, "experiment_id"))
    if status is not None:
        if status not in RunStatus.values:
            raise ValidationError({"status": f"must be one of {', '.join(RunStatus.values)} (got {status!r})"})
        runs = runs.filter(status=status)
    if architecture_key is not None:
        runs = runs.filter(architecture_key=architecture_key)
    if dataset_version_id is not None:
        runs = runs.filter(dataset_version_id=as_uuid(dataset_version_id, "dataset_version_id"))
    return runs.select_related("experiment").defer("reproducibility").prefetch_related(
        Prefetch("params", queryset=Param.objects.order_by("key"), to_attr="param_list"),
        Prefetch("metric_summaries", queryset=RunMetricSummary.objects.order_by("key"), to_attr="summary_list"),
    ).order_by("-created_at", "-id")


# --- for the pages -------------------------------------------------------------------------


def experiment_tags(*, deleted: bool = False, limit: int = 500) -> list[str]:
    """The tags the (live, or deleted) experiments carry, sorted: one query."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT tag FROM {Experiment._meta.db_table}, unnest(tags) AS tag "
            f"WHERE deleted_at IS {'NOT ' if deleted else ''}NULL ORDER BY tag LIMIT %s",
            [limit],
        )
        return [tag for (tag,) in cursor.fetchall()]


def run_status_counts(experiment: Experiment) -> dict[str, int]:
    """Live runs of ``experiment`` by status, their ``total`` and the ``deleted`` runs: one query."""
    live = Q(deleted_at__isnull=True)
    counts = {status: Count("pk", filter=live & Q(status=status)) for status in RunStatus.values}
    return Run.objects.filter(experiment=experiment).aggregate(
        total=Count("pk", filter=live), deleted=Count("pk", filter=Q(deleted_at__isnull=False)), **counts
    )


class RunTableKeys(NamedTuple):
    """The param and metric keys of an experiment's runs (what its table can show)."""

    param_keys: list[str]
    #: The params whose value differs between runs (what a comparison is about).
    varying_param_keys: list[str]
    metric_keys: list[str]


def run_table_keys(experiment: Experiment, *, deleted: bool = False) -> RunTableKeys:
    """Every param and metric key of the experiment's live (or deleted) runs: two queries,
    on params and summaries (never the points)."""
    runs = Q(run__experiment=experiment, run__deleted_at__isnull=not deleted)
    params = list(
        Param.objects.filter(runs).values("key").annotate(
            values=Count("value", distinct=True), runs=Count("run_id")
        ).order_by("key").values_list("key", "values", "runs")
    )
    metric_keys = list(
        RunMetricSummary.objects.filter(runs).order_by("key").values_list("key", flat=True).distinct()
    )
    run_count = max((count for _key, _values, count in params), default=0)
    return RunTableKeys(
        param_keys=[key for key, _values, _runs in params],
        # A param only some runs have also tells them apart.
        varying_param_keys=[key for key, values, runs in params if values > 1 or runs < run_count],
        metric_keys=metric_keys,
    )


def run_status_get(run_id: int) -> str:
    """The status of a live run (of a live experiment): one query; ``Run.DoesNotExist`` otherwise."""
    return (
        Run.objects.filter(pk=clean_id(run_id, "run_id"), deleted_at__isnull=True, experiment__deleted_at__isnull=True)
        .values_list("status", flat=True)
        .get()
    )


LOG_TAIL_LINES = 50
#: The most of a log's end ``run_log_tail`` reads, so a huge line is never read whole.
LOG_TAIL_MAX_BYTES = 256 * 1024
_LOG_BLOCK_BYTES = 16 * 1024


def run_log_tail(run_id: int, lines: int = LOG_TAIL_LINES, *, max_bytes: int = LOG_TAIL_MAX_BYTES) -> list[str]:
    """The last ``lines`` lines of the run's log (``RUN_LOG_PATH`` in its artifact
    folder), read backwards from the end a block at a time and never more than
    ``max_bytes`` (then the first, cut, line is left out). ``[]`` when there is no log yet."""
    path = run_artifact_dir(run_id) / RUN_LOG_PATH
    try:
        handle = path.open("rb")
    except (FileNotFoundError, NotADirectoryError):
        return []
    with handle:
        end = handle.seek(0, os.SEEK_END)
        start = end
        tail = b""
        # One newline more than the lines wanted: the text after it is whole lines.
        while start > 0 and end - start < max_bytes and tail.count(b"\n") <= lines:
            block = min(_LOG_BLOCK_BYTES, start, max_bytes - (end - start))
            start -= block
            handle.seek(start)
            tail = handle.read(block) + tail
    text_lines = tail.decode("utf-8", errors="replace").splitlines()
    if start > 0 and len(text_lines) > 1:
        text_lines = text_lines[1:]  # began mid-line
    elif start > 0 and text_lines:
        text_lines = ["…" + text_lines[0]]  # one line longer than max_bytes: its end
    return text_lines[-lines:] if lines > 0 else []


class MetricDifference(NamedTuple):
    """One metric of a run beside its origin's (latest values); ``difference`` is run −
    origin, None when either run lacks the metric."""

    key: str
    value: float | None
    origin_value: float | None
    difference: float | None


class ParamDifference(NamedTuple):
    key: str
    value: str | None  # None: the run lacks the param
    origin_value: str | None


class OriginDifferences(NamedTuple):
    """How a run's results and inputs differ from those of the run it reproduces."""

    origin: Run
    metrics: list[MetricDifference]
    params: list[ParamDifference]  # only the params that differ

    @property
    def metrics_identical(self) -> bool:
        """Every compared metric logged by both runs, with exactly the same value."""
        return bool(self.metrics) and all(metric.difference == 0.0 for metric in self.metrics)


def run_origin_differences(
    run: Run, *, include_metric: Callable[[str], bool] | None = None
) -> OriginDifferences | None:
    """``run`` (as ``run_detail`` returns it: params and summaries prefetched, origin
    joined) against its origin run: the latest value of every metric either run logged
    (those ``include_metric(key)`` accepts, when given) and the params whose values
    differ. Two queries (the origin's params and summaries); None without an origin."""
    origin = run.origin_run
    if origin is None:
        return None
    origin_params = dict(Param.objects.filter(run_id=origin.pk).values_list("key", "value"))
    origin_metrics = dict(
        RunMetricSummary.objects.filter(run_id=origin.pk).values_list("key", "latest_value")
    )
    metrics = {summary.key: summary.latest_value for summary in run.summary_list}
    params = {param.key: param.value for param in run.param_list}
    keys = sorted(
        key for key in metrics.keys() | origin_metrics.keys() if include_metric is None or include_metric(key)
    )
    metric_rows = []
    for key in keys:
        value, origin_value = metrics.get(key), origin_metrics.get(key)
        difference = None if value is None or origin_value is None else value - origin_value
        metric_rows.append(MetricDifference(key, value, origin_value, difference))
    param_rows = [
        ParamDifference(key, params.get(key), origin_params.get(key))
        for key in sorted(params.keys() | origin_params.keys())
        if params.get(key) != origin_params.get(key)
    ]
    return OriginDifferences(origin=origin, metrics=metric_rows, params=param_rows)
