"""The cleaning page: choose a rule and its parameters → preview (count + first 20) →
run; exclusions listed with counts per rule, filtered by rule, reverted per video or
per task. Team members read; admins (``can_manage_datasets``) preview, run and revert."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect

from core.partial_rendering import wants_partial
from core.permissions import dataset_manager_required, team_role_required
from core.roles import can_manage_datasets
from datasets.cleaning_forms import CleaningRuleForm
from datasets.cleaning_rules import RULES
from datasets.exclusion_selectors import cleaning_tasks_recent, exclusion_list, exclusion_rule_counts
from datasets.services.cleaning import cleaning_preview, cleaning_run, exclusions_revert

EXCLUSIONS_PAGE_SIZE = 50
CLEANING_TASKS_SHOWN = 20
TEMPLATE = "datasets/cleaning.html"


def _page_context(request, form: CleaningRuleForm, preview=None) -> dict:
    rule = request.GET.get("rule") or None
    if rule is not None and rule not in RULES and rule != "manual":
        rule = None
    page = Paginator(exclusion_list(rule=rule), EXCLUSIONS_PAGE_SIZE).get_page(request.GET.get("page"))
    return {
        "form": form,
        "preview": preview,
        "rule_counts": exclusion_rule_counts(),
        "selected_rule": rule,
        "page": page,
        "tasks": cleaning_tasks_recent(CLEANING_TASKS_SHOWN),
        "can_manage": can_manage_datasets(request.user),
    }


@require_safe
@team_role_required
def cleaning_index(request):
    return render(request, TEMPLATE, _page_context(request, CleaningRuleForm()))


def _form_error(request, form: CleaningRuleForm):
    if wants_partial(request):
        return render(request, f"{TEMPLATE}#rule-form", {"form": form, "can_manage": True})
    return render(request, TEMPLATE, _page_context(request, form), status=400)


@require_POST
@vary_on_headers("HX-Request")
@dataset_manager_required
def cleaning_preview_view(request):
    """The form with the preview under it (nothing written)."""
    form = CleaningRuleForm(request.POST)
    preview = None
    if form.is_valid():
        try:
            preview = cleaning_preview(*form.rule_and_params())
        except ValidationError as error:
            form.errors_from_service(error)
    if preview is None:
        return _form_error(request, form)
    if wants_partial(request):
        return render(request, f"{TEMPLATE}#rule-form", {"form": form, "preview": preview, "can_manage": True})
    return render(request, TEMPLATE, _page_context(request, form, preview))


@require_POST
@vary_on_headers("HX-Request")
@dataset_manager_required
def cleaning_run_view(request):
    form = CleaningRuleForm(request.POST)
    task = None
    if form.is_valid():
        try:
            task = cleaning_run(*form.rule_and_params(), user=request.user)
        except ValidationError as error:
            form.errors_from_service(error)
    if task is None:
        return _form_error(request, form)
    messages.success(request, task.message)
    url = reverse("datasets:cleaning")
    return HttpResponseClientRedirect(url) if wants_partial(request) else redirect(url)


@require_POST
@dataset_manager_required
def exclusions_revert_view(request):
    """Revert by video (``aid``) or by task (``task_id``); back to the page with a message."""
    aid = request.POST.get("aid")
    task_id = request.POST.get("task_id")
    try:
        reverted = exclusions_revert(aid=int(aid) if aid and aid.isdigit() else aid, task_id=task_id or None,
                                     user=request.user)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"Reverted {reverted} exclusion(s).")
    url = reverse("datasets:cleaning")
    return HttpResponseClientRedirect(url) if wants_partial(request) else redirect(url)
