"""The compare page of 2 to 1,000 runs and the JSON of its curves.

``/experiments/compare?runs=1,2,3&…``: the URL holds the selection and every choice, so
it can be shared: ``diff`` (only the params that differ; on unless ``diff=0``),
``agg.<metric>`` (final, best, min, max or epoch) and ``epoch`` (the N of "at epoch N"),
``metric`` / ``x`` / ``color`` (the curves: metric, x axis, colour-by param) and ``sx`` /
``sy`` (the scatter's param and metric). A change of a table choice swaps the results
(htmx); a change of a curve choice only redraws the chart (``static/js/compare_curves.js``
reads ``series.json`` and keeps the address up to date). Reads go through
``experiments.compare_selectors``: a fixed number of queries whatever the number of runs.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from django.core.exceptions import ValidationError
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe
from django.views.decorators.vary import vary_on_headers

from core.partial_rendering import page_or_partial
from core.permissions import team_role_required
from core.validation import validation_error_message
from experiments import compare_selectors as selectors
from experiments.compare_selectors import Aggregate, XAxis
from experiments.models import MetricDirection
from experiments.templatetags.experiments_display import metric as metric_text

AGGREGATE_PREFIX = "agg."
#: Above this many runs the chart's legend lists colour values only, not every run.
RUN_LEGEND_LIMIT = 20
SCATTER_WIDTH, SCATTER_HEIGHT = 640, 320
SCATTER_MARGIN = {"left": 64, "right": 16, "top": 12, "bottom": 44}
SCATTER_TICKS = 5
#: A positive numeric param spanning this ratio or more is drawn on a log axis (learning rates).
LOG_AXIS_RATIO = 100


class Choices(NamedTuple):
    """What the address asks for (checked against the runs' keys later)."""

    run_ids: list[int]
    only_differences: bool
    aggregates: dict[str, str]
    epoch: str | None
    metric: str
    x_axis: str
    color: str
    scatter_param: str
    scatter_metric: str


def _last(request, name: str) -> str:
    """A query parameter's last value ("" without it): a checkbox after its hidden "0"."""
    values = request.GET.getlist(name)
    return values[-1].strip() if values else ""


def _choices(request) -> Choices:
    """The address's choices; ``ValidationError`` for a bad selection of runs."""
    return Choices(
        run_ids=selectors.compare_run_ids(request.GET.getlist("runs")),
        only_differences=_last(request, "diff") not in ("0", "off", "false"),
        aggregates={name.removeprefix(AGGREGATE_PREFIX): _last(request, name)
                    for name in request.GET if name.startswith(AGGREGATE_PREFIX) and _last(request, name)},
        epoch=_last(request, "epoch") or None,
        metric=_last(request, "metric"),
        x_axis=_last(request, "x") or XAxis.STEP,
        color=_last(request, "color"),
        scatter_param=_last(request, "sx"),
        scatter_metric=_last(request, "sy"),
    )


def _bad_selection(request, error: ValidationError):
    context = {"selection_error": validation_error_message(error, with_fields=False)}
    return render(request, "experiments/compare.html", context, status=400)


def _default_metric(runs, metrics: selectors.MetricsTable) -> str:
    """The curves' metric: the first run's ranking metric, else a validation loss, else the first curve."""
    curves = metrics.curve_keys or [column.key for column in metrics.columns]
    for key in (runs[0].experiment.metric_key, "val_loss", "train_loss"):
        if key in curves:
            return key
    return curves[0] if curves else ""


def _chosen(value: str, allowed: list[str], default: str, what: str, errors: list[str]) -> str:
    if not value:
        return default
    if value in allowed:
        return value
    errors.append(f"No run has the {what} {value[:60]!r}: showing {default or 'nothing'} instead.")
    return default


# --- tables ---------------------------------------------------------------------------------


class Cell(NamedTuple):
    text: str
    title: str
    highlighted: bool
    missing: bool


def _param_rows(runs, params: selectors.ParamsTable, keys: list[str]) -> list[tuple]:
    """(run, cells) with a cell per shown key: highlighted when it differs from the first run's."""
    rows = []
    for run in runs:
        values = params.values[run.pk]
        cells = []
        for key in keys:
            value = values.get(key)
            cells.append(Cell(text="—" if value is None else value, title=value or "",
                              highlighted=value != params.reference[key], missing=value is None))
        rows.append((run, cells))
    return rows


def _metric_rows(runs, metrics: selectors.MetricsTable) -> list[tuple]:
    """(run, cells) with a cell per metric: highlighted when it is the column's best."""
    rows = []
    for run in runs:
        values = metrics.values[run.pk]
        cells = []
        for key, _aggregate in metrics.columns:
            value = values.get(key)
            if value is None:
                cells.append(Cell("—", "", False, True))
            else:
                cells.append(Cell(metric_text(value.value), f"{value.value!r} at epoch {value.step}",
                                  value.value == metrics.best.get(key), False))
        rows.append((run, cells))
    return rows


# --- the scatter (drawn here as SVG: it needs no script and a test can read it) --------------


def _nice_ticks(low: float, high: float, count: int = SCATTER_TICKS) -> list[float]:
    if high <= low:
        return [low]
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(factor * magnitude for factor in (1, 2, 2.5, 5, 10) if factor * magnitude >= raw)
    first = math.ceil(low / step) * step
    return [first + index * step for index in range(int((high - first) / step + 1e-9) + 1)]


def _padded(low: float, high: float) -> tuple[float, float]:
    if high == low:
        pad = abs(low) * 0.1 or 1.0
        return low - pad, high + pad
    pad = (high - low) * 0.05
    return low - pad, high + pad


def _scatter_drawing(scatter: selectors.Scatter) -> dict | None:
    """Pixel positions of the scatter's points and axis ticks (None without points)."""
    if not scatter.points:
        return None
    left, top = SCATTER_MARGIN["left"], SCATTER_MARGIN["top"]
    plot_width = SCATTER_WIDTH - left - SCATTER_MARGIN["right"]
    plot_height = SCATTER_HEIGHT - top - SCATTER_MARGIN["bottom"]
    y_low, y_high = _padded(min(p.y for p in scatter.points), max(p.y for p in scatter.points))

    def y_position(value: float) -> float:
        return top + plot_height * (1 - (value - y_low) / (y_high - y_low))

    log_x = False
    if scatter.numeric:
        xs = [p.x for p in scatter.points]
        log_x = min(xs) > 0 and max(xs) / min(xs) >= LOG_AXIS_RATIO
        if log_x:
            x_low, x_high = _padded(math.log10(min(xs)), math.log10(max(xs)))
            x_ticks = [(left + plot_width * (exponent - x_low) / (x_high - x_low), f"1e{exponent}")
                       for exponent in range(math.ceil(x_low), math.floor(x_high) + 1)]
        else:
            x_low, x_high = _padded(min(xs), max(xs))
            x_ticks = [(left + plot_width * (tick - x_low) / (x_high - x_low), metric_text(tick))
                       for tick in _nice_ticks(x_low, x_high)]

        def x_position(value) -> float:
            value = math.log10(value) if log_x else value
            return left + plot_width * (value - x_low) / (x_high - x_low)
    else:
        slots = {category: index for index, category in enumerate(scatter.categories)}
        slot_width = plot_width / len(slots)

        def x_position(value) -> float:
            return left + slot_width * (slots[value] + 0.5)

        shown = max(1, math.ceil(len(slots) / 12))  # at most a dozen labels
        x_ticks = [(x_position(category), category[:14]) for index, category in enumerate(scatter.categories)
                   if index % shown == 0]
    return {
        "width": SCATTER_WIDTH, "height": SCATTER_HEIGHT, "left": left, "top": top,
        "right": left + plot_width, "bottom": top + plot_height,
        "log_x": log_x,
        "x_ticks": x_ticks,
        "y_ticks": [(y_position(tick), metric_text(tick)) for tick in _nice_ticks(y_low, y_high)],
        "points": [
            {"x": round(x_position(point.x), 1), "y": round(y_position(point.y), 1), "run": point.run,
             "title": f"{point.run.name}: {scatter.param_key} = {point.x}, {scatter.metric_key} = {point.y:g}"}
            for point in scatter.points
        ],
    }


# --- pages ----------------------------------------------------------------------------------


@require_safe
@vary_on_headers("HX-Request")
@team_role_required
def compare(request):
    """The compare page; for htmx (a table choice changed) the results alone."""
    try:
        choices = _choices(request)
        runs = selectors.compared_runs(choices.run_ids)
    except ValidationError as error:
        return _bad_selection(request, error)
    errors: list[str] = []
    params = selectors.compare_params(runs)
    try:
        metrics = selectors.compare_metrics(runs, choices.aggregates, choices.epoch)
    except ValidationError as error:
        errors.append(f"{validation_error_message(error, with_fields=False)}: showing final values instead.")
        metrics = selectors.compare_metrics(runs)
    metric_keys = [column.key for column in metrics.columns]
    chart_metric = _chosen(choices.metric, metric_keys, _default_metric(runs, metrics), "metric", errors)
    x_axis = _chosen(choices.x_axis, XAxis.values, XAxis.STEP, "x axis", errors)
    color = _chosen(choices.color, params.keys, (params.differing_keys or [""])[0], "param", errors)
    scatter_param = _chosen(choices.scatter_param, params.keys, color or (params.keys or [""])[0], "param", errors)
    scatter_metric = _chosen(choices.scatter_metric, metric_keys, chart_metric, "metric", errors)
    shown_params = params.differing_keys if choices.only_differences else params.keys
    scatter = (selectors.compare_scatter(runs, params, metrics, scatter_param, scatter_metric)
               if scatter_param and scatter_metric else None)
    experiments = {run.experiment_id: run.experiment for run in runs}
    context = {
        "runs": runs,
        "run_ids": ",".join(str(run.pk) for run in runs),
        "experiments": list(experiments.values()),
        "params": params,
        "shown_params": shown_params,
        "hidden_param_count": len(params.keys) - len(shown_params),
        "param_rows": _param_rows(runs, params, shown_params),
        "only_differences": choices.only_differences,
        "metrics": metrics,
        "metric_headers": [
            {"key": key, "aggregate": aggregate,
             "direction": "lower is better" if metrics.directions[key] == MetricDirection.MINIMIZE
             else "higher is better"}
            for key, aggregate in metrics.columns
        ],
        "metric_rows": _metric_rows(runs, metrics),
        "epoch": choices.epoch if metrics.epoch is not None or choices.epoch else "",
        "aggregates": Aggregate.choices,
        "chart_metric": chart_metric,
        "curve_keys": metrics.curve_keys or metric_keys,
        "x_axis": x_axis,
        "x_axes": XAxis.choices,
        "color": color,
        "run_legend_limit": RUN_LEGEND_LIMIT,
        "scatter": scatter,
        "scatter_param": scatter_param,
        "scatter_metric": scatter_metric,
        "scatter_drawing": _scatter_drawing(scatter) if scatter else None,
        "choice_errors": errors,
    }
    template = page_or_partial(request, "experiments/compare.html", "compare-results")
    return render(request, template, context, status=400 if errors else 200)


@require_safe
@team_role_required
def compare_series(request):
    """The curves of one metric for every run of the selection, downsampled per run:
    ``{"metric", "x", "x_label", "color", "max_points", "runs": [{"id", "name",
    "experiment", "color_value", "total", "xs", "ys"}]}`` (runs without the metric are
    left out). Three queries whatever the number of runs or epochs."""
    try:
        run_ids = selectors.compare_run_ids(request.GET.getlist("runs"))
        metric = _last(request, "metric")
        if not metric:
            raise ValidationError({"metric": "choose the metric to draw (metric=<key>)"})
        x_axis = _last(request, "x") or XAxis.STEP
        max_points = selectors.clean_max_points(_last(request, "points") or None)
        color = _last(request, "color")
        runs = selectors.compared_runs(run_ids)
        series = selectors.compare_series(run_ids, metric, x_axis=x_axis, max_points=max_points)
        colors = selectors.compare_param_values(run_ids, color) if color else {}
    except ValidationError as error:
        return JsonResponse({"detail": validation_error_message(error)}, status=400)
    return JsonResponse({
        "metric": metric,
        "x": x_axis,
        "x_label": XAxis(x_axis).label,
        "color": color,
        "max_points": max_points,
        "runs": [
            {"id": run.pk, "name": run.name, "experiment": run.experiment.name, "color_value": colors.get(run.pk),
             "total": series[run.pk].total, "xs": series[run.pk].xs, "ys": series[run.pk].ys}
            for run in runs if run.pk in series
        ],
    })
