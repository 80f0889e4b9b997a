"""Experiment pages: the experiments list (filters, create, restore), an experiment with
its runs table sortable by any column, metric or param, and a run with its live status,
curves, results, log tail and artifacts. Full pages on a normal request, partials for
htmx; the run's live block polls while the run is queued or running and stops after.

Reads go through ``experiments.selectors`` (a fixed number of queries whatever the
number of experiments, runs or epochs), writes through ``experiments.services``. The
new-run form belongs to the training app (it is rendered from its schemas): these pages
only link to it.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.text import Truncator
from django.views.decorators.http import require_POST, require_safe
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect, HttpResponseStopPolling

from core.partial_rendering import page_or_partial, wants_partial
from core.permissions import experiment_runner_required, team_role_required
from core.roles import can_run_experiments
from core.validation import validation_error_message
from experiments import selectors, services
from experiments.forms import ExperimentFilterForm, ExperimentForm, ready_version_choices
from experiments.models import FINISHED_RUN_STATUSES, Experiment, MetricDirection, Run, RunStatus

EXPERIMENTS_PAGE_SIZE = 50
RUNS_PAGE_SIZE = 100
DELETED_RUNS_SHOWN = 100
MESSAGE_NAME_CHARS = 60
#: Metric columns a runs table shows unless told otherwise (those the runs have), beside
#: the experiment's own metric; without any of them, the first few keys.
DEFAULT_METRIC_COLUMNS = ("val_loss", "test_f1", "test_roc_auc")
DEFAULT_COLUMNS_SHOWN = 4
#: The run page's charts: (title, metric keys), x = step (the epoch).
CURVE_CHARTS = (
    ("Loss", ("train_loss", "val_loss")),
    ("Validation metrics", ("val_f1", "val_accuracy", "val_roc_auc")),
)
#: The final metrics table: rows in this order (others the run logged follow).
FINAL_METRIC_NAMES = ("loss", "accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc")
FINAL_PREFIXES = ("final_val_", "test_")
CONFUSION_CELLS = ("tn", "fp", "fn", "tp")


def _short(name: str) -> str:
    """For messages, which span the page: a long name is cut."""
    return Truncator(name).chars(MESSAGE_NAME_CHARS)


def _go(request, url: str):
    """After a write: a client redirect for htmx, a plain one otherwise."""
    return HttpResponseClientRedirect(url) if wants_partial(request) else redirect(url)


def _experiment_or_404(experiment_id: int, *, include_deleted: bool = False) -> Experiment:
    try:
        return selectors.experiment_get(experiment_id, include_deleted=include_deleted)
    except (Experiment.DoesNotExist, ValidationError):
        raise Http404("No such experiment") from None


def _run_or_404(run_id: int) -> Run:
    try:
        return selectors.run_detail(run_id)
    except (Run.DoesNotExist, ValidationError):
        raise Http404("No such run") from None


def _live_run_status_or_404(run_id: int) -> str:
    try:
        return selectors.run_status_get(run_id)
    except (Run.DoesNotExist, ValidationError):
        raise Http404("No such run") from None


# --- experiments list ----------------------------------------------------------------------


def _list_context(request, create_form: ExperimentForm | None, versions: list[tuple[str, str]]) -> dict:
    filters = ExperimentFilterForm(request.GET, tags=selectors.experiment_tags(), versions=versions)
    experiments = []
    if filters.is_valid():
        try:
            experiments = selectors.experiment_list(**filters.selector_filters())
        except ValidationError as error:
            filters.add_error(None, validation_error_message(error))
    page = Paginator(experiments, EXPERIMENTS_PAGE_SIZE).get_page(request.GET.get("page"))
    return {
        "filters": filters,
        "page": page,
        "deleted": filters.is_valid() and filters.cleaned_data["deleted"],
        "filtered": filters.is_valid() and any(filters.cleaned_data[name] for name in ("q", "tag", "status",
                                                                                      "dataset_version")),
        "create_form": create_form,
        "can_run": create_form is not None,
        "statuses": RunStatus.values,
    }


@require_safe
@vary_on_headers("HX-Request")
@team_role_required
def experiment_list(request):
    versions = ready_version_choices()
    create_form = ExperimentForm(versions=versions) if can_run_experiments(request.user) else None
    context = _list_context(request, create_form, versions)
    status = 200 if context["filters"].is_valid() and not context["filters"].non_field_errors() else 400
    template = page_or_partial(request, "experiments/list.html", "experiment-list")
    return render(request, template, context, status=status)


@require_POST
@vary_on_headers("HX-Request")
@experiment_runner_required
def experiment_create(request):
    """Validate → ``services.experiment_create`` → its page. Bad input: the form again with
    its errors next to the fields (200 for htmx, which swaps only 2xx; 400 otherwise)."""
    versions = ready_version_choices()
    form = ExperimentForm(request.POST, versions=versions)
    experiment = None
    if form.is_valid():
        try:
            experiment = services.experiment_create(owner=request.user, **form.service_fields())
        except ValidationError as error:
            form.errors_from_service(error)
    if experiment is None:
        if wants_partial(request):
            return render(request, "experiments/list.html#create-form", {"create_form": form, "can_run": True})
        return render(request, "experiments/list.html", _list_context(request, form, versions), status=400)
    messages.success(request, f"Created experiment {_short(experiment.name)}.")
    return _go(request, reverse("experiments:detail", args=[experiment.pk]))


@require_POST
@vary_on_headers("HX-Request")
@experiment_runner_required
def experiment_restore(request, experiment_id: int):
    experiment = _experiment_or_404(experiment_id, include_deleted=True)
    services.experiment_restore(experiment.pk)
    messages.success(request, f"Restored experiment {_short(experiment.name)}.")
    return _go(request, reverse("experiments:detail", args=[experiment.pk]))


# --- one experiment and its runs table --------------------------------------------------------


def _default_direction(column: str, experiment: Experiment) -> str:
    """A header's first click: best first for metrics, newest / longest first for times."""
    kind, _, key = column.partition(":")
    if kind in ("metric", "best"):
        if key == experiment.metric_key:
            return "asc" if experiment.metric_direction == MetricDirection.MINIMIZE else "desc"
        return "asc" if "loss" in key or "error" in key else "desc"
    return "desc" if column in ("created", "duration") else "asc"


def _header(label: str, column: str, order: selectors.RunOrder | None, experiment: Experiment, title: str = "") -> dict:
    active = order is not None and order.column == column
    if active:
        next_dir = "asc" if order.descending else "desc"
    else:
        next_dir = _default_direction(column, experiment)
    return {
        "label": label, "sort": column, "title": title or label, "next_dir": next_dir,
        "aria_sort": ("descending" if order.descending else "ascending") if active else "",
    }


def _shown_columns(request, experiment: Experiment, keys: selectors.RunTableKeys,
                   order: selectors.RunOrder | None) -> tuple[list[str], list[str]]:
    """The param and metric columns: those ticked in the columns form, else the params
    that tell runs apart and the usual metrics; the sorted key is always shown."""
    if request.GET.get("columns") == "chosen":
        params = [key for key in dict.fromkeys(request.GET.getlist("param")) if key in keys.param_keys]
        metrics = [key for key in dict.fromkeys(request.GET.getlist("metric")) if key in keys.metric_keys]
    else:
        params = (keys.varying_param_keys or keys.param_keys)[:DEFAULT_COLUMNS_SHOWN]
        metrics = [key for key in DEFAULT_METRIC_COLUMNS if key in keys.metric_keys]
        if not metrics:
            metrics = keys.metric_keys[:DEFAULT_COLUMNS_SHOWN]
    metrics = [key for key in metrics if key != experiment.metric_key]  # it has its own two columns
    if order is not None and order.kind == "param" and order.key not in params:
        params.append(order.key)
    if order is not None and order.kind == "metric" and order.key not in metrics + [experiment.metric_key]:
        metrics.append(order.key)
    return params, metrics


def _runs_context(request, experiment: Experiment) -> dict:
    """The runs table: its filters, columns, sort and one page of rows. Bad query
    parameters are reported above the table (and answered 400) and left out."""
    errors: list[str] = []
    status = request.GET.get("status") or None
    if status is not None and status not in RunStatus.values:
        errors.append(f"Unknown status {status!r}.")
        status = None
    try:
        order = selectors.run_order(request.GET.get("sort"), request.GET.get("dir"))
    except ValidationError as error:
        errors.append(f"Cannot sort so: {validation_error_message(error, with_fields=False)}.")
        order = None
    counts = selectors.run_status_counts(experiment)
    keys = selectors.run_table_keys(experiment)
    params, metrics = _shown_columns(request, experiment, keys, order)
    total = counts[status] if status else counts["total"]
    paginator = Paginator(range(total), RUNS_PAGE_SIZE)  # counted above: no COUNT query
    page = paginator.get_page(request.GET.get("page"))
    rows = selectors.run_table(
        experiment, status=status, order_by=order, offset=page.start_index() - 1 if total else 0, limit=RUNS_PAGE_SIZE
    )
    metric_key = experiment.metric_key
    direction_word = "highest" if experiment.metric_direction == MetricDirection.MAXIMIZE else "lowest"
    # What runs are compared by comes first; what they share (architecture, dataset) last.
    headers = {
        "lead": [
            _header("Run", "name", order, experiment),
            _header("Status", "status", order, experiment),
        ],
        "metric": [
            _header(metric_key, f"metric:{metric_key}", order, experiment, f"{metric_key}, latest value"),
            _header(f"best {metric_key}", f"best:{metric_key}", order, experiment,
                    f"{metric_key}, {direction_word} value of the run"),
        ],
        "metrics": [_header(key, f"metric:{key}", order, experiment, f"{key}, latest value") for key in metrics],
        "params": [_header(key, f"param:{key}", order, experiment, f"param {key}") for key in params],
        "trail": [
            _header("Architecture", "architecture", order, experiment),
            _header("Dataset", "dataset", order, experiment),
            _header("Created", "created", order, experiment),
            _header("Duration", "duration", order, experiment),
        ],
    }
    return {
        "rows": rows,
        "headers": headers,
        "column_count": sum(len(cells) for cells in headers.values()),
        "param_columns": params,
        "metric_columns": metrics,
        "keys": keys,
        "counts": counts,
        "status_filter": status or "",
        "statuses": RunStatus.values,
        "page": page,
        "table_errors": errors,
        "order": order,
    }


def _detail_context(request, experiment: Experiment, edit_form: ExperimentForm | None = None) -> dict:
    can_run = can_run_experiments(request.user)
    context = {"experiment": experiment, "can_run": can_run, **_runs_context(request, experiment)}
    context["deleted_rows"] = (
        selectors.run_table(experiment, deleted=True, limit=DELETED_RUNS_SHOWN) if context["counts"]["deleted"] else []
    )
    context["active_runs"] = context["counts"][RunStatus.QUEUED] + context["counts"][RunStatus.RUNNING]
    if can_run:
        context["edit_form"] = edit_form or ExperimentForm.for_experiment(experiment, versions=ready_version_choices())
    return context


@require_safe
@vary_on_headers("HX-Request")
@team_role_required
def experiment_detail(request, experiment_id: int):
    """The page; for htmx (a header, filter or pager click) the runs table alone."""
    experiment = _experiment_or_404(experiment_id)
    if wants_partial(request):
        context = {"experiment": experiment, **_runs_context(request, experiment)}
        status = 400 if context["table_errors"] else 200
        return render(request, "experiments/detail.html#runs-table", context, status=status)
    context = _detail_context(request, experiment)
    return render(request, "experiments/detail.html", context, status=400 if context["table_errors"] else 200)


@require_POST
@vary_on_headers("HX-Request")
@experiment_runner_required
def experiment_edit(request, experiment_id: int):
    experiment = _experiment_or_404(experiment_id)
    form = ExperimentForm.for_experiment(experiment, request.POST, versions=ready_version_choices())
    if form.is_valid():
        try:
            experiment = services.experiment_update(experiment.pk, **form.service_fields())
        except ValidationError as error:
            form.errors_from_service(error)
        else:
            messages.success(request, f"Saved experiment {_short(experiment.name)}.")
            return _go(request, reverse("experiments:detail", args=[experiment.pk]))
    if wants_partial(request):
        return render(request, "experiments/detail.html#edit-form",
                      {"experiment": experiment, "edit_form": form, "can_run": True})
    return render(request, "experiments/detail.html", _detail_context(request, experiment, form), status=400)


@require_POST
@vary_on_headers("HX-Request")
@experiment_runner_required
def experiment_delete(request, experiment_id: int):
    """Soft delete; refused (the service says why) while a run is queued or running."""
    experiment = _experiment_or_404(experiment_id)
    try:
        services.experiment_delete(experiment.pk)
    except ValidationError as error:
        messages.error(request, validation_error_message(error, with_fields=False))
        return _go(request, reverse("experiments:detail", args=[experiment.pk]))
    messages.success(request, f"Deleted experiment {_short(experiment.name)}: restore it from the deleted experiments.")
    return _go(request, reverse("experiments:list") + "?deleted=on")


# --- one run -----------------------------------------------------------------------------


def _final_metrics(summaries: dict) -> list[tuple[str, object, object]]:
    """(name, final val summary, test summary) rows of the final metrics table."""
    names = [name for name in FINAL_METRIC_NAMES]
    for key in summaries:
        for prefix in FINAL_PREFIXES:
            if key.startswith(prefix):
                name = key.removeprefix(prefix)
                if name not in names and name not in CONFUSION_CELLS:
                    names.append(name)
    rows = [(name, summaries.get(f"final_val_{name}"), summaries.get(f"test_{name}")) for name in names]
    return [row for row in rows if row[1] is not None or row[2] is not None]


def _record_rows(record: object) -> list[tuple[str, str]]:
    """The reproducibility record as (key, text): nested values as compact JSON."""
    if not isinstance(record, dict):
        return []
    return [(key, value if isinstance(value, str) else json.dumps(value, sort_keys=True))
            for key, value in sorted(record.items())]


def _run_context(request, run: Run) -> dict:
    summaries = {summary.key: summary for summary in run.summary_list}
    confusion = {cell: summaries.get(f"test_{cell}") for cell in CONFUSION_CELLS}
    active = not run.is_finished
    can_run = can_run_experiments(request.user)
    return {
        "run": run,
        "experiment": run.experiment,
        "polling": active,
        "final_metrics": _final_metrics(summaries),
        "confusion": confusion if all(confusion.values()) else None,
        "threshold": summaries.get("threshold"),
        "best_epoch": summaries.get("best_epoch"),
        "log_lines": selectors.run_log_tail(run.pk),
        "log_path": services.RUN_LOG_PATH,
        "can_cancel": active and can_run,
        "can_delete": not active and can_run,
        "reproducibility": _record_rows(run.reproducibility),
    }


@require_safe
@team_role_required
def run_detail(request, run_id: int):
    run = _run_or_404(run_id)
    context = _run_context(request, run)
    context["curve_charts"] = [{"title": title, "keys": list(keys)} for title, keys in CURVE_CHARTS]
    context["curve_keys"] = ",".join(key for _title, keys in CURVE_CHARTS for key in keys)
    # A reproduction beside its origin: the end-of-run metrics (the timings always differ).
    context["origin_differences"] = selectors.run_origin_differences(
        run, include_metric=lambda key: key.startswith(FINAL_PREFIXES) or key in ("threshold", "best_epoch")
    )
    return render(request, "experiments/run_detail.html", context)


@require_safe
@vary_on_headers("HX-Request")
@team_role_required
def run_live(request, run_id: int):
    """The live block (status, timings, results, log tail), polled every 2 s while the run
    is queued or running; once it has finished, answers 286 (htmx stops polling) with the
    final block and the artifacts and reproducibility record swapped out of band."""
    run = _run_or_404(run_id)
    if not wants_partial(request):
        return redirect("experiments:run-detail", run_id=run.pk)
    context = _run_context(request, run)
    html = render_to_string("experiments/run_detail.html#live", {**context, "oob_record": not context["polling"]},
                            request=request)
    return HttpResponse(html) if context["polling"] else HttpResponseStopPolling(html)


@require_safe
@team_role_required
def run_metrics(request, run_id: int):
    """The points of the chosen metrics (``?keys=a,b``), for the charts: ``{"run_id",
    "status", "finished", "series": {key: {"steps": [...], "values": [...]}}}``. The
    status is read first, so a finished run's series is complete."""
    status = _live_run_status_or_404(run_id)
    keys = [key for value in request.GET.getlist("keys") for key in value.split(",") if key]
    try:
        series = selectors.run_metric_series(run_id, keys)
    except ValidationError as error:
        return JsonResponse({"detail": validation_error_message(error)}, status=400)
    return JsonResponse({
        "run_id": run_id,
        "status": status,
        "finished": status in FINISHED_RUN_STATUSES,
        "series": {
            key: {"steps": [point.step for point in points], "values": [point.value for point in points]}
            for key, points in series.items()
        },
    })


@require_safe
@team_role_required
def run_artifact_download(request, run_id: int, path: str):
    _live_run_status_or_404(run_id)
    try:
        file = services.artifact_file(run_id, path)
    except ValidationError:
        raise Http404("No such artifact") from None
    return FileResponse(file.open("rb"), as_attachment=True, filename=file.name)


@require_POST
@vary_on_headers("HX-Request")
@experiment_runner_required
def run_cancel(request, run_id: int):
    """Cancel a queued or running run (its worker stops at the next batch; curves so far are kept)."""
    try:
        run = services.run_cancel(run_id)
    except Run.DoesNotExist:
        raise Http404("No such run") from None
    except ValidationError as error:
        messages.error(request, validation_error_message(error, with_fields=False))
    else:
        messages.success(request, f"Run {_short(run.name)} cancelled: the curves logged so far are kept.")
    return _go(request, reverse("experiments:run-detail", args=[run_id]))


@require_POST
@vary_on_headers("HX-Request")
@experiment_runner_required
def run_delete(request, run_id: int):
    """Soft delete a finished run (restorable from its experiment's page)."""
    run = _run_or_404(run_id)
    try:
        services.run_delete(run.pk)
    except ValidationError as error:
        messages.error(request, validation_error_message(error, with_fields=False))
        return _go(request, reverse("experiments:run-detail", args=[run.pk]))
    messages.success(request, f"Deleted run {_short(run.name)}: restore it from the deleted runs below.")
    return _go(request, reverse("experiments:detail", args=[run.experiment_id]))


@require_POST
@vary_on_headers("HX-Request")
@experiment_runner_required
def run_restore(request, run_id: int):
    try:
        run = services.run_restore(run_id)
    except (Run.DoesNotExist, ValidationError):
        raise Http404("No such run") from None
    messages.success(request, f"Restored run {_short(run.name)}.")
    return _go(request, reverse("experiments:detail", args=[run.experiment_id]))
