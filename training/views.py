"""Training pages: the new-run form, rendered from the chosen architecture's schema.

Team members see the form; only experiment runners (admins) submit it. Changing the
architecture swaps the hyperparameter fields (an htmx partial); a submitted form goes
through ``services.run_queue``, whose per-field errors are shown next to the fields.
"""

from __future__ import annotations

import re

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect

from core.partial_rendering import wants_partial
from core.permissions import experiment_runner_required, team_role_required
from core.roles import can_run_experiments
from experiments import selectors as experiment_selectors
from experiments.models import Experiment
from training import services
from training.forms import SHOWN_ARCHITECTURE_FIELD, RunForm

TEMPLATE = "training/run_new.html"


def _experiment_from_query(value: str | None) -> Experiment | None:
    """The live experiment ``?experiment=<id>`` names, or None (unknown ids are ignored:
    the form then asks for one)."""
    if not value or not re.fullmatch(r"[0-9]{1,18}", value):
        return None
    try:
        return experiment_selectors.experiment_get(int(value))
    except (Experiment.DoesNotExist, ValidationError):
        return None


def _context(request, form: RunForm) -> dict:
    return {"form": form, "can_run": can_run_experiments(request.user),
            "shown_architecture_field": SHOWN_ARCHITECTURE_FIELD}


@require_safe
@team_role_required
def run_new(request):
    form = RunForm(architecture=request.GET.get("architecture"),
                   experiment=_experiment_from_query(request.GET.get("experiment")))
    return render(request, TEMPLATE, _context(request, form))


@require_safe
@vary_on_headers("HX-Request")
@team_role_required
def run_hyperparameters(request):
    """The hyperparameter fields of ``?architecture=``, swapped in when it changes;
    values typed into fields the new architecture also has are kept."""
    architecture = request.GET.get("architecture")
    if not wants_partial(request):
        return redirect(f"{reverse('training:run-new')}?{request.GET.urlencode()}")
    form = RunForm(architecture=architecture, initial=RunForm.initial_carried_over(request.GET, architecture))
    return render(request, f"{TEMPLATE}#hyperparameters", _context(request, form))


@require_safe
@vary_on_headers("HX-Request")
@team_role_required
def run_dataset_version(request):
    """The dataset version field, swapped in when the experiment changes: preset to the
    new experiment's default version, or left as chosen when it has none."""
    if not wants_partial(request):
        return redirect(f"{reverse('training:run-new')}?{request.GET.urlencode()}")
    experiment = _experiment_from_query(request.GET.get("experiment"))
    keep = experiment is None or experiment.default_dataset_version_id is None
    initial = {"dataset_version": request.GET.get("dataset_version")} if keep else {}
    form = RunForm(experiment=experiment, initial=initial)
    return render(request, f"{TEMPLATE}#dataset-version", _context(request, form))


@require_POST
@vary_on_headers("HX-Request")
@experiment_runner_required
def run_create(request):
    """Validate → ``services.run_queue`` → the run's page. Bad input: the form again with
    an error summary and the errors at their fields (200 for htmx, which swaps only
    2xx; 400 otherwise), and nothing queued."""
    form = RunForm(request.POST)
    run = None
    if form.is_valid():
        try:
            run = services.run_queue(**form.run_request())
        except ValidationError as error:
            form.errors_from_service(error)
    if run is None:
        if wants_partial(request):
            return render(request, f"{TEMPLATE}#run-form", _context(request, form))
        return render(request, TEMPLATE, _context(request, form), status=400)
    messages.success(request, f"Queued run {run.name}.")
    url = reverse("experiments:run-detail", args=[run.pk])
    return HttpResponseClientRedirect(url) if wants_partial(request) else redirect(url)
