"""Sweep pages: the new-sweep form, a sweep with its live ranking (polled while it runs),
its best trial and parameter importances, cancel, and an experiment's sweeps.

Team members read; only experiment runners (admins) launch and cancel.
"""

from __future__ import annotations

import re

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect, HttpResponseStopPolling

from core.partial_rendering import wants_partial
from core.permissions import experiment_runner_required, team_role_required
from core.roles import can_run_experiments
from experiments import selectors as experiment_selectors
from experiments.models import Experiment
from training import services, sweep_selectors
from training.models import ACTIVE_JOB_STATUSES, Sweep
from training.sweep_forms import SweepForm

NEW_TEMPLATE = "training/sweep_new.html"
DETAIL_TEMPLATE = "training/sweep_detail.html"
LIST_TEMPLATE = "training/sweep_list.html"


def _experiment_from_query(value: str | None) -> Experiment | None:
    if not value or not re.fullmatch(r"[0-9]{1,18}", value):
        return None
    try:
        return experiment_selectors.experiment_get(int(value))
    except (Experiment.DoesNotExist, ValidationError):
        return None


def _sweep_or_404(sweep_id: int) -> Sweep:
    try:
        return sweep_selectors.sweep_list().get(pk=sweep_id)
    except Sweep.DoesNotExist:
        raise Http404("No such sweep") from None


@require_safe
@team_role_required
def sweep_new(request):
    """The form; a changed architecture reloads it (htmx selects the form from the page)."""
    form = SweepForm(architecture=request.GET.get("architecture"),
                     experiment=_experiment_from_query(request.GET.get("experiment")))
    return render(request, NEW_TEMPLATE, {"form": form, "can_run": can_run_experiments(request.user)})


@require_POST
@vary_on_headers("HX-Request")
@experiment_runner_required
def sweep_create(request):
    """Validate → ``services.sweep_create`` → the sweep's page. Bad input: the form again
    with the errors at their fields (200 for htmx, 400 otherwise); nothing written."""
    form = SweepForm(request.POST)
    sweep = None
    if form.is_valid():
        try:
            sweep = services.sweep_create(**form.sweep_request(), user=request.user)
        except ValidationError as error:
            form.errors_from_service(error)
    if sweep is None:
        context = {"form": form, "can_run": True}
        if wants_partial(request):
            return render(request, f"{NEW_TEMPLATE}#sweep-form", context)
        return render(request, NEW_TEMPLATE, context, status=400)
    if sweep.error:
        messages.error(request, f"Sweep {sweep.name} failed: {sweep.error}")
    else:
        messages.success(request, f"Sweep {sweep.name} started: {sweep.trials.count()} trial(s) queued.")
    url = reverse("training:sweep-detail", args=[sweep.pk])
    return HttpResponseClientRedirect(url) if wants_partial(request) else redirect(url)


def _sweep_context(request, sweep: Sweep) -> dict:
    rows = sweep_selectors.sweep_trial_rows(sweep)
    complete = sum(row.objective is not None for row in rows)
    active = sweep.status in ACTIVE_JOB_STATUSES
    importances = sweep_selectors.sweep_param_importances(sweep, complete)
    return {
        "sweep": sweep,
        "ranked": [(row, [row.params.get(name, "") for name in sweep.search_space]) for row in rows],
        "best": sweep_selectors.sweep_best_trial(rows),
        "importances": [(name, value, round(value * 100, 1)) for name, value in importances.values],
        "importances_note": importances.note,
        "searched": list(sweep.search_space),
        "fixed": sweep_selectors.sweep_fixed_texts(sweep),
        "polling": active,
        "can_cancel": active and can_run_experiments(request.user),
    }


@require_safe
@team_role_required
def sweep_detail(request, sweep_id: int):
    return render(request, DETAIL_TEMPLATE, _sweep_context(request, _sweep_or_404(sweep_id)))


@require_safe
@vary_on_headers("HX-Request")
@team_role_required
def sweep_live(request, sweep_id: int):
    """The live block (status, ranking, best, importances), polled every 3 s while the
    sweep runs; 286 (htmx stops polling) once it has ended."""
    sweep = _sweep_or_404(sweep_id)
    if not wants_partial(request):
        return redirect("training:sweep-detail", sweep_id=sweep.pk)
    context = _sweep_context(request, sweep)
    html = render_to_string(f"{DETAIL_TEMPLATE}#live", context, request=request)
    return HttpResponse(html) if context["polling"] else HttpResponseStopPolling(html)


@require_POST
@experiment_runner_required
def sweep_cancel(request, sweep_id: int):
    try:
        sweep = services.sweep_cancel(sweep_id)
    except Sweep.DoesNotExist:
        raise Http404("No such sweep") from None
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"Sweep {sweep.name} cancelled with its queued and running trials.")
    url = reverse("training:sweep-detail", args=[sweep_id])
    return HttpResponseClientRedirect(url) if wants_partial(request) else redirect(url)


@require_safe
@team_role_required
def sweep_list(request, experiment_id: int):
    try:
        experiment = experiment_selectors.experiment_get(experiment_id)
    except (Experiment.DoesNotExist, ValidationError):
        raise Http404("No such experiment") from None
    return render(request, LIST_TEMPLATE, {
        "experiment": experiment,
        "sweeps": sweep_selectors.sweep_list(experiment_id=experiment.pk),
        "can_run": can_run_experiments(request.user),
    })
