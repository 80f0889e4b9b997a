"""Reads of the run search: runs matching a filter (``experiments.run_search``), across
one experiment or all, sorted by any attribute, param, tag or metric aggregate, with
their params and metric summaries prefetched: a page costs the same few queries
whatever the number of runs; the CSV export streams them a chunk at a time."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import NamedTuple

from django.core.exceptions import ValidationError
from django.db.models import (
    Aggregate,
    DurationField,
    ExpressionWrapper,
    F,
    Func,
    JSONField,
    OrderBy,
    OuterRef,
    QuerySet,
    Subquery,
)
from django.db.models.fields.json import KeyTextTransform

from experiments import selectors
from experiments.models import Experiment, MetricDirection, Param, Run, RunMetricSummary
from experiments.run_search import (
    AGGREGATE_FIELDS,
    ATTRIBUTES,
    Ref,
    filter_q,
    numeric_text,
    parse_ref,
    with_best,
)

#: Runs read per round trip while the CSV export streams (params and summaries are
#: prefetched per chunk, so memory stays flat whatever the number of runs).
CSV_CHUNK_SIZE = 500
_LEGACY_SORT = re.compile(r"^(metric|best|param):")
#: CSV cells a spreadsheet would run as a formula (text that starts so and is no number).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(selectors.NUMERIC_TEXT_PATTERN)


class SearchOrder(NamedTuple):
    """A search's sort: a ref (``metrics.val_f1.best``, ``params.lr``, ``created``...);
    runs without the value sort last whichever the direction; ties keep newest first."""

    ref: Ref
    descending: bool = False

    @property
    def column(self) -> str:
        return self.ref.text


def _legacy_ref(sort: str) -> Ref:
    """A runs table's ``sort`` (``metric:<key>``, ``best:<key>``, ``param:<key>`` or a
    column, see ``selectors.run_order``) as a ref."""
    order = selectors.run_order(sort)
    if order.kind == "metric":
        return Ref("metric", order.key)
    if order.kind == "best":
        return Ref("metric", order.key, "best")
    if order.kind == "param":
        return Ref("param", order.key)
    return Ref("attribute", "dataset_version" if order.column == "dataset" else order.column)


def search_order(sort: str | None, direction: str | None = None) -> SearchOrder | None:
    """``sort`` (a ref, ``-`` first for descending, or a runs table's ``metric:<key>``
    spelling) and ``dir`` (asc / desc) as a ``SearchOrder``; None without a sort;
    ``ValidationError`` keyed ``sort`` (with the position) or ``dir`` otherwise."""
    if direction not in (None, "", "asc", "desc"):
        raise ValidationError({"dir": f"must be asc or desc (got {direction!r})"})
    if not sort:
        return None
    descending = direction == "desc"
    if sort.startswith("-"):
        descending, sort = True, sort[1:]
    if _LEGACY_SORT.match(sort) or sort == "dataset":
        return SearchOrder(_legacy_ref(sort), descending)
    return SearchOrder(parse_ref(sort, "sort"), descending)


def _sort_values(ref: Ref) -> list:
    """The values a ref sorts by, most significant first (subqueries on the (run, key)
    unique indexes of summaries and params)."""
    if ref.kind == "metric":
        summaries = RunMetricSummary.objects.filter(run=OuterRef("pk"), key=ref.key)
        if ref.aggregate == "best":
            return [Subquery(with_best(summaries, ref.key).values("best")[:1])]
        return [Subquery(summaries.values(AGGREGATE_FIELDS[ref.aggregate])[:1])]
    if ref.kind == "param":
        # Numbers by value (0.001 < 0.01 < 1e-1 whatever their spelling), then the rest as text.
        params = Param.objects.filter(run=OuterRef("pk"), key=ref.key)
        return [Subquery(params.annotate(number=numeric_text(F("value"))).values("number")[:1]),
                Subquery(params.values("value")[:1])]
    if ref.kind == "tag":
        text = KeyTextTransform(ref.key, "tags")
        return [numeric_text(text), text]
    if ref.key == "experiment":
        return [F("experiment__name")]
    if ref.key == "dataset_version":
        return [F("dataset_version__dataset__name"), F("dataset_version__number")]
    if ref.key == "duration":
        return [ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())]
    return [F(ATTRIBUTES[ref.key][1])]


def search_ordering(order: SearchOrder | None) -> list[OrderBy | str]:
    """ORDER BY of a search (newest first without a sort)."""
    if order is None:
        return ["-created_at", "-id"]
    values = [OrderBy(value, descending=order.descending, nulls_last=True) for value in _sort_values(order.ref)]
    return [*values, "-created_at", "-id"]


def run_search_refine(runs: QuerySet[Run], filter_text: str | None, order_by: SearchOrder | None) -> QuerySet[Run]:
    """``runs`` (a ``selectors.run_list``) narrowed by a filter and sorted: the run list
    API's ``filter`` and ``sort``. ``FilterSyntaxError`` on a bad filter."""
    if filter_text:
        runs = runs.filter(filter_q(filter_text))
    return runs.order_by(*search_ordering(order_by))


def run_search(
    filter_text: str | None = None,
    *,
    experiment_id: int | None = None,
    order_by: SearchOrder | None = None,
    deleted: bool = False,
) -> QuerySet[Run]:
    """Live runs of live experiments (of one, with ``experiment_id``) matching the filter,
    sorted by ``order_by`` (newest first without), each with ``param_list`` and
    ``summary_list`` prefetched and its experiment and dataset version joined: a page
    costs a COUNT, the page and two prefetches, whatever the number of runs.
    ``deleted``: the soft-deleted runs instead. ``FilterSyntaxError`` on a bad filter."""
    runs = selectors.run_list(experiment_id=experiment_id, deleted=deleted).select_related(
        "dataset_version__dataset"
    ).defer("dataset_version__requested_aids", "dataset_version__selection")
    return run_search_refine(runs, filter_text, order_by)


def experiment_choices() -> list[tuple[int, str]]:
    """(id, name) of the live experiments by name: the search page's selector; one query."""
    return list(Experiment.objects.filter(deleted_at__isnull=True).order_by("name").values_list("pk", "name"))


def best_value(summary: RunMetricSummary | None, experiment: Experiment) -> float | None:
    """The ``best`` aggregate of a summary, by the search's rule (``run_search`` docs)."""
    if summary is None:
        return None
    minimized = summary.key == experiment.metric_key and experiment.metric_direction == MetricDirection.MINIMIZE
    return summary.min_value if minimized else summary.max_value


def aggregate_value(summary: RunMetricSummary | None, aggregate: str, experiment: Experiment) -> float | None:
    if summary is None:
        return None
    if aggregate == "best":
        return best_value(summary, experiment)
    return getattr(summary, AGGREGATE_FIELDS[aggregate])


# --- whole result sets (the CSV export, a bench) ---------------------------------------------


class _ObjectAgg(Aggregate):
    """``jsonb_object_agg(key, value)``: a run's params or metrics as one JSON object."""

    function = "jsonb_object_agg"
    output_field = JSONField()


class MetricValues(NamedTuple):
    latest: float
    min: float
    max: float
    best: float


class SearchRow(NamedTuple):
    """One run of a whole result set, without model instances."""

    id: int
    name: str
    experiment_id: int
    experiment: str
    status: str
    architecture: str
    dataset_version: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    params: dict[str, str]
    metrics: dict[str, MetricValues]

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


_ROW_FIELDS = ("id", "name", "experiment_id", "experiment__name", "status", "architecture_key",
               "dataset_version__dataset__name", "dataset_version__number", "created_at", "started_at",
               "finished_at", "experiment__metric_key", "experiment__metric_direction")


def _search_row(values: tuple) -> SearchRow:
    (pk, name, experiment_id, experiment, status, architecture, dataset, number, created_at, started_at,
     finished_at, metric_key, direction, params, metrics) = values
    metric_values = {}
    for key, (latest, lowest, highest) in (metrics or {}).items():
        minimized = key == metric_key and direction == MetricDirection.MINIMIZE
        metric_values[key] = MetricValues(float(latest), float(lowest), float(highest),
                                          float(lowest if minimized else highest))
    return SearchRow(pk, name, experiment_id, experiment, status, architecture, f"{dataset} v{number}", created_at,
                     started_at, finished_at, params or {}, metric_values)


def run_search_rows(
    filter_text: str | None = None, *, experiment_id: int | None = None, order_by: SearchOrder | None = None,
    chunk_size: int | None = None,
) -> Iterator[SearchRow]:
    """Every run of a search as a ``SearchRow`` (params and metrics aggregated into JSON
    by the database): one query, no model instances, so 10,000 runs take a fraction of
    what ``run_search`` with its prefetches takes. With ``chunk_size``, read through a
    server-side cursor that many at a time (memory stays flat). ``FilterSyntaxError``
    on a bad filter (raised at once)."""
    runs = run_search(filter_text, experiment_id=experiment_id, order_by=order_by).prefetch_related(None)
    params = Param.objects.filter(run=OuterRef("pk")).values("run").annotate(
        object=_ObjectAgg(F("key"), F("value"))).values("object")
    metrics = RunMetricSummary.objects.filter(run=OuterRef("pk")).values("run").annotate(
        object=_ObjectAgg(F("key"), Func(F("latest_value"), F("min_value"), F("max_value"),
                                          function="jsonb_build_array"))).values("object")
    rows = runs.annotate(param_object=Subquery(params), metric_object=Subquery(metrics)).values_list(
        *_ROW_FIELDS, "param_object", "metric_object")
    values = rows.iterator(chunk_size=chunk_size) if chunk_size else iter(list(rows))
    return map(_search_row, values)


# --- CSV export -------------------------------------------------------------------------


def _cell(text: str) -> str:
    """Text as a CSV cell that no spreadsheet runs as a formula."""
    if text.startswith(_FORMULA_START) and not _NUMBER.match(text):
        return "'" + text
    return text


def _number_cell(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def run_search_csv(
    filter_text: str | None = None, *, experiment_id: int | None = None, order_by: SearchOrder | None = None
) -> Iterator[list[str]]:
    """The search's runs as CSV rows: a header, then one row per run (id, name,
    experiment, status, architecture, dataset version, created, duration in seconds,
    every param the runs have, and every metric's latest and best). The filter is
    checked and the keys read before the first row (``FilterSyntaxError``); the runs
    are read ``CSV_CHUNK_SIZE`` at a time with a server-side cursor: four queries,
    memory flat (but for the list of matching ids) whatever the number of runs."""
    # The matching ids first (one query): nested inside the key queries, the filter's
    # subqueries could be re-run per param row under a plan built on stale statistics.
    matching = list(run_search(filter_text, experiment_id=experiment_id).order_by().values_list("pk", flat=True))
    param_keys = list(
        Param.objects.filter(run_id__in=matching).order_by("key").values_list("key", flat=True).distinct()
    )
    metric_keys = list(
        RunMetricSummary.objects.filter(run_id__in=matching).order_by("key").values_list("key", flat=True).distinct()
    )
    rows = run_search_rows(filter_text, experiment_id=experiment_id, order_by=order_by, chunk_size=CSV_CHUNK_SIZE)
    return _csv_rows(rows, param_keys, metric_keys)


def _csv_rows(rows: Iterator[SearchRow], param_keys: list[str], metric_keys: list[str]) -> Iterator[list[str]]:
    yield [
        "id", "name", "experiment", "status", "architecture", "dataset_version", "created", "duration_seconds",
        *(Ref("param", key).text for key in param_keys),
        *(column for key in metric_keys for column in (Ref("metric", key).text, Ref("metric", key, "best").text)),
    ]
    for row in rows:
        metrics = []
        for key in metric_keys:
            values = row.metrics.get(key)
            metrics += [_number_cell(values.latest if values else None), _number_cell(values.best if values else None)]
        yield [
            str(row.id), _cell(row.name), _cell(row.experiment), row.status, _cell(row.architecture),
            _cell(row.dataset_version), row.created_at.isoformat(), _number_cell(row.duration_seconds),
            *(_cell(row.params.get(key, "")) for key in param_keys), *metrics,
        ]
