"""The run search page (``/experiments/runs/``): a filter expression over params, metrics,
tags and attributes (``experiments.run_search``), across every experiment or one, a
sortable and paginated table, "compare selected" and a streamed CSV export.

Reads go through ``experiments.search_selectors`` (a page costs the same few queries
whatever the number of runs). A bad filter is shown with a caret under its position and
answered 400.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator

from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe
from django.views.decorators.vary import vary_on_headers

from core.partial_rendering import page_or_partial, wants_partial
from core.permissions import team_role_required
from core.validation import validation_error_message
from experiments import search_selectors
from experiments.run_search import FilterSyntaxError, Ref, parse_filter, referenced

SEARCH_PAGE_SIZE = 50
#: Param and metric columns shown beside the ones the filter and sort name.
EXTRA_COLUMNS = 6
FILTER_EXAMPLES = (
    'params.lr < 0.01 and metrics.val_f1 > 0.8',
    'metrics.val_f1.best >= 0.9 and status = "succeeded"',
    'architecture in ("mlp", "logreg") and not tags.sweep = "3"',
    'name like "mlp-%" and created >= "2026-11-01" and duration < 600',
    'params.`hidden sizes` = "[64,32]" or metrics.val_loss.min < 0.2',
)


class _Echo:
    """A file whose ``write`` returns the line: what ``csv.writer`` writes, streamed."""

    def write(self, value: str) -> str:
        return value


def _experiment_id(text: str | None) -> int | None:
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 2**63:
        raise ValidationError({"experiment": f"not an experiment id: {text!r}"})
    return int(text)


def _columns(node, order: search_selectors.SearchOrder | None, rows) -> tuple[list[Ref], list[str]]:
    """The metric columns (refs with their aggregate) and param columns: what the filter
    and sort read first, then keys the page's runs have."""
    named = referenced(node) + ([order.ref] if order else [])
    metrics = list(dict.fromkeys(Ref("metric", ref.key, ref.aggregate) for ref in named if ref.kind == "metric"))
    params = list(dict.fromkeys(ref.key for ref in named if ref.kind == "param"))
    metric_keys = sorted({summary.key for run in rows for summary in run.summary_list})
    param_keys = sorted({param.key for run in rows for param in run.param_list})
    for key in metric_keys[:EXTRA_COLUMNS]:
        if Ref("metric", key) not in metrics:
            metrics.append(Ref("metric", key))
    params += [key for key in param_keys[:EXTRA_COLUMNS] if key not in params]
    return metrics, params


def _header(label: str, ref: Ref, order, title: str = "") -> dict:
    column = ref.text
    active = order is not None and order.column == column
    next_dir = ("asc" if order.descending else "desc") if active else (
        "desc" if ref.kind == "metric" or column in ("created", "duration") else "asc")
    return {"label": label, "sort": column, "title": title or label, "next_dir": next_dir,
            "aria_sort": ("descending" if order.descending else "ascending") if active else ""}


def _search_context(request) -> dict:
    filter_text = request.GET.get("filter", "")
    errors: list[str] = []
    filter_error = None
    node = None
    try:
        node = parse_filter(filter_text)
    except FilterSyntaxError as error:
        filter_error = {"position": error.position, "problem": error.problem, "pad": " " * (error.position - 1)}
    try:
        order = search_selectors.search_order(request.GET.get("sort"), request.GET.get("dir"))
    except ValidationError as error:
        errors.append(f"Cannot sort so: {validation_error_message(error, with_fields=False)}.")
        order = None
    try:
        experiment_id = _experiment_id(request.GET.get("experiment"))
    except ValidationError as error:
        errors.append(validation_error_message(error, with_fields=False))
        experiment_id = None
    runs = []
    if filter_error is None:
        try:
            runs = search_selectors.run_search(filter_text, experiment_id=experiment_id, order_by=order)
        except FilterSyntaxError as error:  # a value the parser let through but the attribute refuses
            filter_error = {"position": error.position, "problem": error.problem, "pad": " " * (error.position - 1)}
    page = Paginator(runs, SEARCH_PAGE_SIZE).get_page(request.GET.get("page"))
    rows = list(page.object_list)
    metric_refs, param_keys = _columns(node, order, rows)
    table = []
    for run in rows:
        summaries = {summary.key: summary for summary in run.summary_list}
        params = {param.key: param.value for param in run.param_list}
        table.append({
            "run": run,
            "metrics": [search_selectors.aggregate_value(summaries.get(ref.key), ref.aggregate, run.experiment)
                        for ref in metric_refs],
            "params": [params.get(key) for key in param_keys],
        })
    headers = {
        "lead": [_header("Run", Ref("attribute", "name"), order), _header("Experiment", Ref("attribute", "experiment"),
                                                                          order),
                 _header("Status", Ref("attribute", "status"), order)],
        "metrics": [_header(ref.text.removeprefix("metrics."), ref, order, f"{ref.key}, {ref.aggregate} value")
                    for ref in metric_refs],
        "params": [_header(key, Ref("param", key), order, f"param {key}") for key in param_keys],
        "trail": [_header("Architecture", Ref("attribute", "architecture"), order),
                  _header("Dataset", Ref("attribute", "dataset_version"), order),
                  _header("Created", Ref("attribute", "created"), order),
                  _header("Duration", Ref("attribute", "duration"), order)],
    }
    return {
        "filter_text": filter_text,
        "filter_error": filter_error,
        "errors": errors,
        "experiments": search_selectors.experiment_choices(),
        "experiment_id": experiment_id,
        "order": order,
        "page": page,
        "rows": table,
        "headers": headers,
        "column_count": 1 + sum(len(cells) for cells in headers.values()),
        "examples": FILTER_EXAMPLES,
    }


@require_safe
@vary_on_headers("HX-Request")
@team_role_required
def run_search(request):
    """The page; for htmx (a search, a header or pager click) the results alone."""
    context = _search_context(request)
    # htmx swaps only 2xx responses: its partial shows the error with a 200.
    status = 400 if (context["filter_error"] or context["errors"]) and not wants_partial(request) else 200
    return render(request, page_or_partial(request, "experiments/run_search.html", "search-results"), context,
                  status=status)


def _csv_lines(rows: Iterable[list[str]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    for row in rows:
        yield writer.writerow(row)


@require_safe
@team_role_required
def run_search_csv(request):
    """The search's runs as CSV, streamed (one row per run, every param, every metric's
    latest and best); a bad filter is a 400 with the reason as text."""
    try:
        order = search_selectors.search_order(request.GET.get("sort"), request.GET.get("dir"))
        rows = search_selectors.run_search_csv(
            request.GET.get("filter", ""), experiment_id=_experiment_id(request.GET.get("experiment")),
            order_by=order,
        )
    except ValidationError as error:
        return HttpResponse(validation_error_message(error), status=400, content_type="text/plain; charset=utf-8")
    response = StreamingHttpResponse(_csv_lines(rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="runs.csv"'
    return response
