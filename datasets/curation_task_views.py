"""Curation task pages: one task (type, parameters, live progress, result, error, cancel
and resume) and the background label import's upload form. The progress block polls
with htmx while the task is pending or running, like a version's build progress."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect, HttpResponseStopPolling

from core.partial_rendering import wants_partial
from core.permissions import dataset_manager_required, team_role_required
from core.roles import can_manage_datasets
from datasets.models import DatasetTask, DatasetTaskStatus
from datasets.services import validation_error_message
from datasets.services.curation_jobs import curation_task_cancel, curation_task_queue, curation_task_resume
from datasets.services.import_jobs import label_upload_save
from datasets.services.job_lifecycle import CURATION_TASK_TYPES
from labeling.label_import import FORMATS

TEMPLATE = "datasets/curation_task.html"
#: A result value longer than this (as JSON) is cut on the page; the API has it whole.
RESULT_VALUE_CHARS = 300
RESULT_LIST_ITEMS = 5


def _task(task_id) -> DatasetTask:
    task = DatasetTask.objects.select_related("created_by", "dataset_version__dataset").filter(
        pk=task_id, type__in=CURATION_TASK_TYPES
    ).first()
    if task is None:
        raise Http404("No such curation task")
    return task


def result_rows(result: Any) -> list[tuple[str, str]]:
    """The task's ``result`` as (name, short text) rows: lists show their length and
    first items, long values are cut."""
    if not isinstance(result, dict):
        return [] if result is None else [("result", _short(result))]
    rows = []
    for key, value in result.items():
        if key == "message":
            continue
        if isinstance(value, list):
            text = f"{len(value):,} item(s)"
            if value:
                text += ": " + "; ".join(_short(item) for item in value[:RESULT_LIST_ITEMS])
                if len(value) > RESULT_LIST_ITEMS:
                    text += "; …"
        else:
            text = _short(value)
        rows.append((key.replace("_", " "), text))
    return rows


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= RESULT_VALUE_CHARS else text[: RESULT_VALUE_CHARS - 1] + "…"


def _context(request, task: DatasetTask) -> dict:
    polling = not task.is_finished
    can_manage = can_manage_datasets(request.user)
    return {
        "task": task,
        "polling": polling,
        "params_json": json.dumps(task.params, ensure_ascii=False, indent=2, default=str),
        "result_rows": result_rows(task.result),
        "can_cancel": polling and can_manage,
        "can_resume": task.status in (DatasetTaskStatus.FAILED, DatasetTaskStatus.CANCELLED) and can_manage,
    }


@require_safe
@team_role_required
def curation_task_detail(request, task_id):
    return render(request, TEMPLATE, _context(request, _task(task_id)))


@require_safe
@team_role_required
def curation_task_progress(request, task_id):
    """The progress block alone (htmx polling); stops the polling once the task ended."""
    task = _task(task_id)
    if not wants_partial(request):
        return redirect("datasets:curation-task", task.pk)
    html = render_to_string(f"{TEMPLATE}#progress", _context(request, task), request=request)
    return HttpResponseStopPolling(html) if task.is_finished else HttpResponse(html)


def _back(request, task: DatasetTask):
    url = reverse("datasets:curation-task", args=[task.pk])
    return HttpResponseClientRedirect(url) if wants_partial(request) else redirect(url)


@require_POST
@vary_on_headers("HX-Request")
@dataset_manager_required
def curation_task_cancel_view(request, task_id):
    task = _task(task_id)
    try:
        curation_task_cancel(task.pk)
    except ValidationError as error:
        messages.error(request, validation_error_message(error, with_fields=False))
    else:
        messages.success(request, f"{task.get_type_display()} task cancelled.")
    return _back(request, task)


@require_POST
@vary_on_headers("HX-Request")
@dataset_manager_required
def curation_task_resume_view(request, task_id):
    task = _task(task_id)
    try:
        curation_task_resume(task.pk)
    except ValidationError as error:
        messages.error(request, validation_error_message(error, with_fields=False))
    else:
        messages.success(request, f"{task.get_type_display()} task queued again.")
    return _back(request, task)


class LabelImportUploadForm(forms.Form):
    file = forms.FileField(help_text="JSONL or CSV with aid, user, label, created_at (the old system's table).")
    format = forms.ChoiceField(
        choices=[("", "From the file extension")] + [(name, name.upper()) for name in FORMATS], required=False
    )
    atomic = forms.BooleanField(required=False, initial=True, label="All or nothing",
                                help_text="Write nothing when any row is rejected (progress shows only at the end).")
    dry_run = forms.BooleanField(required=False, label="Dry run", help_text="Check and count; write nothing.")


@require_http_methods(["GET", "POST"])
@dataset_manager_required
def label_import_page(request):
    """GET: the upload form. POST: store the file, queue an import task, go to its page."""
    form = LabelImportUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            params = label_upload_save(form.cleaned_data["file"], format=form.cleaned_data["format"] or None)
            params.update(atomic=form.cleaned_data["atomic"], dry_run=form.cleaned_data["dry_run"])
            task = curation_task_queue(task_type="import", params=params, user=request.user)
        except ValidationError as error:
            form.add_error(None, validation_error_message(error, with_fields=False))
        else:
            messages.info(request, f"Importing {form.cleaned_data['file'].name} in the background.")
            return redirect("datasets:curation-task", task.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "datasets/curation_label_import.html", {"form": form}, status=status)
