"""Evaluation pages: the panel a model version's page loads (its evaluations, polled
while one is queued or running, and the form that queues one), and two versions side by
side on the same dataset version and split.

Team members read; admins queue and cancel evaluations. Thin views: ``training.services``
writes, ``evaluation_selectors`` reads.
"""

from __future__ import annotations

import re
import uuid

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST, require_safe
from django.views.decorators.vary import vary_on_headers

from core.partial_rendering import wants_partial
from core.permissions import experiment_runner_required, team_role_required
from core.roles import can_run_experiments
from core.validation import validation_error_message
from datasets.models import DatasetVersion
from training import evaluation_selectors as selectors
from training import services
from training.evaluation_forms import EvaluationForm, dataset_version_label
from training.models import ACTIVE_JOB_STATUSES, Evaluation, EvaluationSplit, ModelVersion
from training.services.evaluations import evaluation_check_inputs

PANEL_TEMPLATE = "training/partials/evaluation_panel.html"
PAGE_TEMPLATE = "training/evaluation_version.html"
COMPARE_TEMPLATE = "training/evaluation_compare.html"
#: The panel lists this many evaluations, newest first.
PANEL_EVALUATIONS = 50
_ID = re.compile(r"[0-9]{1,18}")


def _version_or_404(version_id: object) -> ModelVersion:
    try:
        return selectors.evaluated_version_get(version_id)
    except ModelVersion.DoesNotExist:
        raise Http404(f"No model version {version_id}") from None


def _panel_context(request, version: ModelVersion, form: EvaluationForm | None = None, notice: str = "") -> dict:
    listed = list(selectors.version_evaluations(version.pk)[:PANEL_EVALUATIONS + 1])
    can_evaluate = can_run_experiments(request.user)
    if form is None and can_evaluate:
        form = EvaluationForm(version=version, initial={"dataset_version": str(version.run.dataset_version_id)})
    return {
        "version": version,
        "evaluations": listed[:PANEL_EVALUATIONS],
        "more": len(listed) > PANEL_EVALUATIONS,
        "polling": any(evaluation.status in ACTIVE_JOB_STATUSES for evaluation in listed),
        "can_evaluate": can_evaluate,
        "form": form,
        "notice": notice,
    }


def _panel_response(request, version: ModelVersion, *, status: int = 200, **context):
    context = _panel_context(request, version, **context)
    if wants_partial(request):
        return render(request, f"{PANEL_TEMPLATE}#panel", context)
    return render(request, PAGE_TEMPLATE, context, status=status)


@require_safe
@vary_on_headers("HX-Request")
@team_role_required
def evaluation_panel(request, version_id: int):
    """The version's evaluations panel (htmx: the fragment its page loads; else a page)."""
    return _panel_response(request, _version_or_404(version_id))


@require_safe
@vary_on_headers("HX-Request")
@team_role_required
def evaluation_list(request, version_id: int):
    """The list alone, polled while an evaluation is queued or running (the form next to
    it is left as the user is filling it)."""
    version = _version_or_404(version_id)
    if not wants_partial(request):
        return redirect("training:evaluation-panel", version_id=version.pk)
    return render(request, f"{PANEL_TEMPLATE}#evaluation-list", _panel_context(request, version))


def _safe_next(request) -> str | None:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                  require_https=request.is_secure()):
        return target
    return None


@require_POST
@vary_on_headers("HX-Request")
@experiment_runner_required
def evaluation_create(request, version_id: int):
    """Queue an evaluation → the panel again with it listed (htmx), or back to ``next``.
    Bad input: the form with the errors at their fields (200 for htmx, 400 otherwise);
    nothing written."""
    version = _version_or_404(version_id)
    form = EvaluationForm(request.POST, version=version)
    evaluation = None
    if form.is_valid():
        try:
            evaluation = services.evaluation_create(**form.evaluation_request(), user=request.user)
        except ValidationError as error:
            form.errors_from_service(error)
    if evaluation is None:
        return _panel_response(request, version, status=400, form=form)
    notice = f"Queued evaluation #{evaluation.pk} on {dataset_version_label(evaluation.dataset_version)}."
    if wants_partial(request):
        return _panel_response(request, version, notice=notice)
    messages.success(request, notice)
    return redirect(_safe_next(request) or reverse("training:evaluation-panel", args=[version.pk]))


@require_POST
@vary_on_headers("HX-Request")
@experiment_runner_required
def evaluation_cancel(request, evaluation_id: int):
    try:
        evaluation = services.evaluation_cancel(evaluation_id)
        notice = f"Cancelled evaluation #{evaluation.pk}."
    except Evaluation.DoesNotExist:
        raise Http404(f"No evaluation {evaluation_id}") from None
    except ValidationError as error:
        evaluation = Evaluation.objects.only("version_id").get(pk=evaluation_id)
        notice = validation_error_message(error, with_fields=False)
    version = _version_or_404(evaluation.version_id)
    if wants_partial(request):
        return _panel_response(request, version, notice=notice)
    messages.info(request, notice)
    return redirect(_safe_next(request) or reverse("training:evaluation-panel", args=[version.pk]))


# --- side by side --------------------------------------------------------------------------


def _query_version(request, name: str) -> ModelVersion | None:
    value = request.GET.get(name, "").strip()
    if not value:
        return None
    if not _ID.fullmatch(value):
        raise Http404(f"No model version {value}")
    return _version_or_404(value)


def _query_dataset_version(request, default) -> DatasetVersion | None:
    value = request.GET.get("dataset_version") or default
    try:
        pk = uuid.UUID(str(value))
    except ValueError:
        raise Http404("No such dataset version") from None
    version = DatasetVersion.objects.select_related("dataset").defer("requested_aids", "selection").filter(
        pk=pk).first()
    if version is None:
        raise Http404("No such dataset version")
    return version


def _side_problem(version: ModelVersion, dataset_version: DatasetVersion, split: str) -> str:
    try:
        evaluation_check_inputs(version, dataset_version, split)
    except ValidationError as error:
        return validation_error_message(error, with_fields=False)
    return ""


def _compare_context(request) -> dict:
    version_a = _query_version(request, "a")
    version_b = _query_version(request, "b")
    split = request.GET.get("split") or EvaluationSplit.TEST
    if split not in EvaluationSplit.values:
        raise Http404(f"No split {split}")
    context: dict = {"version_a": version_a, "version_b": version_b, "split": split,
                     "splits": EvaluationSplit.choices, "can_evaluate": can_run_experiments(request.user),
                     "comparison": None, "dataset_versions": []}
    if version_a is None or version_b is None:
        return context
    dataset_version = _query_dataset_version(request, version_a.run.dataset_version_id)
    comparison = selectors.evaluations_side_by_side(version_a, version_b, dataset_version, split)
    sides = []
    for label, version, evaluation, pending in (("A", version_a, comparison.evaluation_a, comparison.pending_a),
                                                ("B", version_b, comparison.evaluation_b, comparison.pending_b)):
        sides.append({"label": label, "version": version, "evaluation": evaluation, "pending": pending,
                      "problem": "" if evaluation else _side_problem(version, dataset_version, split)})
    context.update(
        comparison=comparison, dataset_version=dataset_version, sides=sides,
        dataset_versions=[(str(candidate.pk), dataset_version_label(candidate))
                          for candidate in selectors.evaluation_dataset_versions(version_a)],
        polling=comparison.pending and not comparison.complete,
        here=request.get_full_path(),
    )
    return context


@require_safe
@vary_on_headers("HX-Request")
@team_role_required
def evaluation_compare(request):
    """``?a=<version id>&b=<version id>&dataset_version=<id>&split=test``: both versions'
    newest evaluations on the same data (default: version a's run's dataset version)."""
    context = _compare_context(request)
    if wants_partial(request) and context["comparison"] is not None:
        return render(request, f"{COMPARE_TEMPLATE}#comparison", context)
    return render(request, COMPARE_TEMPLATE, context)
