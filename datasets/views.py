"""Dataset pages: versions and data tasks, the build form, a version's live progress,
its exports, and the embedding model registry. Full pages on a normal request,
partials for htmx (the live blocks poll and stop once their job is finished)."""

from __future__ import annotations

import os
import tempfile

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.text import Truncator
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect, HttpResponseStopPolling

from core.partial_rendering import wants_partial
from core.permissions import dataset_manager_required, team_role_required
from core.roles import can_manage_datasets
from datasets import selectors, services
from datasets.embedding_registry import EmbeddingRegistryError
from datasets.forms import DatasetBuildForm
from datasets.models import DatasetTask, DatasetTaskStatus, DatasetTaskType, DatasetVersion, Split

VERSIONS_PAGE_SIZE = 50
TASKS_SHOWN = 20
RESUMABLE_STATUSES = (DatasetTaskStatus.FAILED, DatasetTaskStatus.CANCELLED)
MESSAGE_NAME_CHARS = 60
EXPORT_CONTENT_TYPES = {"parquet": "application/vnd.apache.parquet", "npz": "application/octet-stream"}


# --- reads for these pages (fixed number of queries) ------------------------------


def _version_with_tasks(version_id) -> DatasetVersion:
    """The version with its tasks newest first (``selectors.dataset_version_with_tasks``); 404 when unknown."""
    try:
        return selectors.dataset_version_with_tasks(version_id)
    except DatasetVersion.DoesNotExist:
        raise Http404("No such dataset version") from None


def _latest_task(version: DatasetVersion) -> DatasetTask | None:
    """The version's latest build task (an augmentation task of a ready version is not its build)."""
    builds = [task for task in version.tasks.all() if task.type == DatasetTaskType.BUILD]
    return builds[0] if builds else None


def _version_name(version: DatasetVersion) -> str:
    """For messages, which span the page: a long dataset name is cut."""
    return f"{Truncator(version.dataset.name).chars(MESSAGE_NAME_CHARS)} v{version.number}"


def _tasks_active(tasks) -> bool:
    return any(not task.is_finished for task in tasks)


# --- list + build form ---------------------------------------------------------


def _index_context(request, form: DatasetBuildForm) -> dict:
    page = Paginator(selectors.dataset_version_list(), VERSIONS_PAGE_SIZE).get_page(request.GET.get("page"))
    tasks = selectors.dataset_task_recent(TASKS_SHOWN)
    return {"page": page, "tasks": tasks, "tasks_active": _tasks_active(tasks), "form": form,
            "can_manage": can_manage_datasets(request.user)}


@require_safe
@team_role_required
def dataset_index(request):
    return render(request, "datasets/index.html", _index_context(request, DatasetBuildForm()))


@require_safe
@vary_on_headers("HX-Request")
@team_role_required
def task_list(request):
    """The tasks block: polled every 2 s while a task is pending or running."""
    if not wants_partial(request):
        return redirect("datasets:index")
    tasks = selectors.dataset_task_recent(TASKS_SHOWN)
    active = _tasks_active(tasks)
    html = render_to_string("datasets/index.html#tasks", {"tasks": tasks, "tasks_active": active}, request=request)
    return HttpResponseStopPolling(html) if not active else HttpResponse(html)


@require_POST
@vary_on_headers("HX-Request")
@dataset_manager_required
def dataset_build(request):
    """Validate → ``services.dataset_build_request`` → the version's page. Bad input: the
    form again with an error summary (200 for htmx, which swaps only 2xx; 400 otherwise)."""
    form = DatasetBuildForm(request.POST)
    started = None
    if form.is_valid():
        try:
            started = services.dataset_build_request(form.build_request(), user=request.user)
        except ValidationError as error:
            form.errors_from_service(error)
        except EmbeddingRegistryError as error:
            form.add_error(None, f"The embedding model registry is invalid: {error}")
    if started is None:
        if wants_partial(request):
            return render(request, "datasets/index.html#build-form", {"form": form, "can_manage": True})
        return render(request, "datasets/index.html", _index_context(request, form), status=400)
    version = started.task.dataset_version
    messages.info(request, f"Requested {_version_name(version)} from {started.requested:,} videos.")
    url = reverse("datasets:version-detail", args=[version.pk])
    return HttpResponseClientRedirect(url) if wants_partial(request) else redirect(url)


@require_safe
@vary_on_headers("HX-Request")
@dataset_manager_required
def build_count(request):
    """The "N videos match" line of the build form, re-rendered as the form changes."""
    if not wants_partial(request):
        return redirect("datasets:index")
    form = DatasetBuildForm(request.GET)
    form.is_valid()
    return render(request, "datasets/index.html#build-count", {"form": form})


# --- one version ---------------------------------------------------------------


def _version_context(request, version: DatasetVersion) -> dict:
    task = _latest_task(version)
    can_manage = can_manage_datasets(request.user)
    polling = task is not None and not task.is_finished
    can_resume = task is not None and task.status in RESUMABLE_STATUSES and not version.is_ready and can_manage
    return {
        "version": version,
        "task": task,
        "tasks": list(version.tasks.all()),
        "polling": polling,
        "can_resume": can_resume,
        "resume_blocked": _resume_blocked(version) if can_resume else "",
        "can_cancel": polling and can_manage,
        "can_delete": not polling and can_manage,
        # The task's error is shown in the progress block; the version's only when it says more.
        "version_error": version.error if not task or version.error not in task.error else "",
        "stats": selectors.dataset_version_stats(version),
        "splits": [(name, version.split_counts.get(name, {})) for name in Split.values],
        "selection": selection_rows(version.selection),
        "export_formats": services.EXPORT_FORMATS,
    }


def _resume_blocked(version: DatasetVersion) -> str:
    """Why a resume could only fail again (its model left the registry, or its API key
    is not set here), or "" — then the page offers no Resume button, just the reason."""
    try:
        services.embedding_model_for_build(version.embedding_model.key)
    except ValidationError as error:
        return services.validation_error_message(error, with_fields=False)
    except EmbeddingRegistryError:
        return ""  # the build itself reports an invalid registry
    return ""


_SELECTION_LABELS = {
    "strategy": "Strategy",
    "source": "Aid file",
    "limit": "Limit",
    "label_value": "Consensus",
    "include_inconsistent": "Inconsistent videos",
    "seed": "Sampling seed",
    "total_available": "Videos that matched",
}


def selection_rows(selection: dict | None) -> list[tuple[str, str]]:
    """A version's ``selection`` as (label, value) text: nested filters flattened,
    booleans and empty values in words."""
    rows: list[tuple[str, str]] = []

    def text(key: str, value) -> str:
        if value is None:
            return "none" if key == "limit" else "—"
        if isinstance(value, bool):
            if key == "label_value":
                return "yes (in scope)" if value else "no"
            if key == "include_inconsistent":
                return "kept" if value else "left out"
            return "yes" if value else "no"
        if isinstance(value, int):
            return f"{value:,}"
        if isinstance(value, (list, tuple)):
            return ", ".join(str(item) for item in value)
        return str(value)

    for key, value in (selection or {}).items():
        if isinstance(value, dict):
            for inner_key, inner_value in value.items():
                rows.append((inner_key.replace("_", " ").capitalize(), text(inner_key, inner_value)))
        else:
            rows.append((_SELECTION_LABELS.get(key, key.replace("_", " ").capitalize()), text(key, value)))
    return rows


@require_safe
@team_role_required
def version_detail(request, version_id):
    version = _version_with_tasks(version_id)
    return render(request, "datasets/version_detail.html", _version_context(request, version))


@require_safe
@vary_on_headers("HX-Request")
@team_role_required
def version_progress(request, version_id):
    """The progress block, polled every second while the build is pending or running.

    When the build has finished, answers 286 (htmx stops polling) with the final block
    and the refreshed summary swapped out of band.
    """
    version = _version_with_tasks(version_id)
    if not wants_partial(request):
        return redirect("datasets:version-detail", version_id=version.pk)
    context = _version_context(request, version)
    html = render_to_string("datasets/version_detail.html#progress", {**context, "oob_summary": not context["polling"]},
                            request=request)
    return HttpResponse(html) if context["polling"] else HttpResponseStopPolling(html)


def _back_to_version(request, version: DatasetVersion):
    url = reverse("datasets:version-detail", args=[version.pk])
    return HttpResponseClientRedirect(url) if wants_partial(request) else redirect(url)


@require_POST
@vary_on_headers("HX-Request")
@dataset_manager_required
def version_resume(request, version_id):
    version = _version_with_tasks(version_id)
    task = _latest_task(version)
    if task is None:
        messages.error(request, "This version has no build task to resume.")
    else:
        try:
            services.dataset_task_resume(task.pk)
        except ValidationError as error:
            messages.error(request, services.validation_error_message(error, with_fields=False))
        except DatasetTask.DoesNotExist:
            messages.error(request, "The build task no longer exists.")
        else:
            messages.success(request, "Build resumed: embeddings already stored are reused.")
    return _back_to_version(request, version)


@require_POST
@vary_on_headers("HX-Request")
@dataset_manager_required
def version_cancel(request, version_id):
    """Cancel the version's pending or running build (the worker stops at its next progress write)."""
    version = _version_with_tasks(version_id)
    task = _latest_task(version)
    if task is None:
        messages.error(request, "This version has no build task to cancel.")
    else:
        try:
            services.dataset_task_cancel(task.pk)
        except ValidationError as error:
            messages.error(request, services.validation_error_message(error, with_fields=False))
        except DatasetTask.DoesNotExist:
            messages.error(request, "The build task no longer exists.")
        else:
            messages.success(request, f"Build of {_version_name(version)} cancelled.")
    return _back_to_version(request, version)


@require_POST
@vary_on_headers("HX-Request")
@dataset_manager_required
def version_delete(request, version_id):
    """Delete the version and its items (stored embeddings stay); refused while it is
    being built or while something (an experiment) still uses it."""
    version = _version_with_tasks(version_id)
    try:
        services.dataset_version_delete(version.pk)
    except ValidationError as error:
        messages.error(request, services.validation_error_message(error, with_fields=False))
        return _back_to_version(request, version)
    except DatasetVersion.DoesNotExist:
        raise Http404("No such dataset version") from None
    messages.success(request, f"Deleted {_version_name(version)}.")
    url = reverse("datasets:index")
    return HttpResponseClientRedirect(url) if wants_partial(request) else redirect(url)


@require_http_methods(["GET"])
@team_role_required
def version_export(request, version_id, format: str):
    """Download a ready version as Parquet or NPZ (written to a temp file, streamed, removed)."""
    if format not in services.EXPORT_FORMATS:
        raise Http404("Unknown export format")
    version = _version_with_tasks(version_id)
    if not version.is_ready:
        messages.error(request, f"{version} is {version.status}: only ready versions can be exported.")
        return redirect("datasets:version-detail", version_id=version.pk)
    descriptor, path = tempfile.mkstemp(prefix="cvsa-export-", suffix=f".{format}")
    os.close(descriptor)
    try:
        services.dataset_version_export(version, format=format, path=path)
        handle = open(path, "rb")
    finally:
        os.unlink(path)  # the open handle keeps the data until the response is sent
    filename = f"{version.dataset.name}-v{version.number}.{format}"
    return FileResponse(handle, as_attachment=True, filename=filename, content_type=EXPORT_CONTENT_TYPES[format])


# --- embedding models ------------------------------------------------------------


@require_safe
@team_role_required
def embedding_model_list(request):
    try:
        registry = services.embedding_registry()
    except EmbeddingRegistryError as error:
        registry, registry_error = None, str(error)
    else:
        registry_error = None
    stored = selectors.embedding_counts_by_model()
    rows = []
    for spec in registry or []:
        rows.append({
            "spec": spec,
            "is_default": spec.key == registry.default_key,
            "key_set": spec.api_key_is_set,
            "stored": stored.get(spec.key, 0),
        })
    return render(request, "datasets/models.html", {
        "rows": rows, "registry_error": registry_error, "registry_file": str(settings.CVSA_EMBEDDING_MODELS_FILE),
    })
