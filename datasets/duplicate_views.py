"""The duplicates page: start a scan (kinds, model, threshold), list a deduplication
task's groups (members with aid, title, distance), keep/exclude per group (htmx swaps
the group), or keep the lowest aid in every unresolved group. Team members read;
admins (``can_manage_datasets``) scan and decide."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect

from core.partial_rendering import wants_partial
from core.permissions import dataset_manager_required, team_role_required
from core.roles import can_manage_datasets
from datasets.duplicate_forms import DeduplicationScanForm
from datasets.duplicate_selectors import (
    deduplication_task_get,
    deduplication_tasks_recent,
    duplicate_group_counts,
    duplicate_group_get,
    duplicate_groups,
    embedding_models_with_vectors,
)
from datasets.models import DatasetTaskType, DuplicateKind
from datasets.services.duplicates import (
    deduplication_params_clean,
    duplicate_group_resolve,
    duplicate_groups_keep_lowest_aid,
)

GROUPS_PAGE_SIZE = 25
TASKS_SHOWN = 10
TEMPLATE = "datasets/duplicates.html"


def _page_context(request, form: DeduplicationScanForm) -> dict:
    tasks = deduplication_tasks_recent(TASKS_SHOWN)
    task = None
    if request.GET.get("task"):
        try:
            task = deduplication_task_get(request.GET["task"])
        except ValidationError:
            task = None
        if task is None:
            raise Http404("No such deduplication task")
    elif tasks:
        task = tasks[0]
    kind = request.GET.get("kind") if request.GET.get("kind") in DuplicateKind.values else None
    page = counts = None
    if task is not None:
        page = Paginator(duplicate_groups(task, kind=kind), GROUPS_PAGE_SIZE).get_page(request.GET.get("page"))
        counts = duplicate_group_counts(task)
    return {"form": form, "tasks": tasks, "task": task, "kind": kind, "page": page, "counts": counts,
            "can_manage": can_manage_datasets(request.user)}


@require_safe
@team_role_required
def duplicates_index(request):
    form = DeduplicationScanForm(models=embedding_models_with_vectors())
    return render(request, TEMPLATE, _page_context(request, form))


def _queue_scan(params: dict, user):
    """The task, queued as a curation job (``curation_jobs``), or run here when this
    installation has no curation job queue."""
    try:
        from datasets.services.curation_jobs import curation_task_queue
    except ImportError:
        from datasets.services.duplicates import deduplication_task_run_now

        return deduplication_task_run_now(params, user=user)
    return curation_task_queue(task_type=DatasetTaskType.DEDUPLICATION, params=params, user=user)


@require_POST
@vary_on_headers("HX-Request")
@dataset_manager_required
def duplicates_scan(request):
    form = DeduplicationScanForm(request.POST, models=embedding_models_with_vectors())
    task = None
    if form.is_valid():
        try:
            params = deduplication_params_clean(form.params())  # field-by-field errors for the form
            task = _queue_scan(params, request.user)
        except ValidationError as error:
            form.errors_from_service(error)
    if task is None:
        if wants_partial(request):
            return render(request, f"{TEMPLATE}#scan-form", {"form": form, "can_manage": True})
        return render(request, TEMPLATE, _page_context(request, form), status=400)
    messages.success(request, "Duplicate scan started." if task.status == "pending" else task.message)
    url = f"{reverse('datasets:duplicates')}?task={task.pk}"
    return HttpResponseClientRedirect(url) if wants_partial(request) else redirect(url)


@require_POST
@vary_on_headers("HX-Request")
@dataset_manager_required
def duplicate_group_resolve_view(request, group_id: int):
    """Keep the checked members, exclude the others; htmx gets the group back."""
    group = duplicate_group_get(group_id)
    if group is None:
        raise Http404("No such duplicate group")
    error = None
    try:
        duplicate_group_resolve(group_id, keep_video_ids=request.POST.getlist("keep"), user=request.user)
    except ValidationError as raised:
        error = " ".join(raised.messages)
    if wants_partial(request):
        return render(request, f"{TEMPLATE}#group", {"group": duplicate_group_get(group_id), "error": error,
                                                     "can_manage": True}, status=400 if error else 200)
    if error:
        messages.error(request, error)
    else:
        messages.success(request, f"Group {group_id}: choice saved.")
    return redirect(f"{reverse('datasets:duplicates')}?task={group.task_id}")


@require_POST
@dataset_manager_required
def duplicates_keep_lowest(request, task_id):
    try:
        outcome = duplicate_groups_keep_lowest_aid(task_id, user=request.user)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"Kept the lowest aid in {outcome['groups']} group(s); "
                                  f"excluded {outcome['excluded']} video(s).")
    url = f"{reverse('datasets:duplicates')}?task={task_id}"
    return HttpResponseClientRedirect(url) if wants_partial(request) else redirect(url)
