"""The batch-scoring panel of a model version's page: loaded by the version page with
``hx-get`` on load, it lists the version's recent scoring jobs with their progress
(polled while one is active), how many predictions the version has stored, and for
admins a form to score all, not yet scored, or title-filtered videos, and a cancel.

Team members read; admins start and cancel. Thin views: ``training.services`` writes,
``training.scoring_selectors`` reads.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import render
from django.views.decorators.http import require_POST, require_safe

from core.permissions import experiment_runner_required, team_role_required
from core.roles import can_run_experiments
from core.validation import validation_error_message
from training import registry_selectors, scoring_selectors, services
from training.models import ACTIVE_JOB_STATUSES, ModelVersion, ScoringJob
from training.services.scoring import MAX_FILTER_SEARCH_LENGTH, describe_video_filter

RECENT_JOBS = 5
SCORE_MODES = {"all": {}, "unscored": {"only_unscored": True}}


def _version_or_404(version_id: int) -> ModelVersion:
    try:
        return registry_selectors.model_version_get(version_id)
    except ModelVersion.DoesNotExist:
        raise Http404(f"No model version {version_id}") from None


def _panel(request, version: ModelVersion, *, status: int = 200, error: str = "", notice: str = "", search: str = ""):
    jobs = list(scoring_selectors.scoring_job_list(version_id=version.pk)[:RECENT_JOBS])
    rows = [{"job": job, "filter": describe_video_filter(job.video_filter),
             "percentage": round(100 * job.done / job.total) if job.total else 0,
             "active": job.status in ACTIVE_JOB_STATUSES} for job in jobs]
    return render(request, "training/partials/scoring_panel.html", {
        "version": version, "rows": rows, "polling": any(row["active"] for row in rows),
        "prediction_count": scoring_selectors.version_prediction_count(version),
        "can_score": can_run_experiments(request.user), "error": error, "notice": notice, "search": search,
        "max_search_length": MAX_FILTER_SEARCH_LENGTH,
    }, status=status)


@require_safe
@team_role_required
def scoring_panel(request, version_id: int):
    return _panel(request, _version_or_404(version_id))


@require_POST
@experiment_runner_required
def scoring_job_start(request, version_id: int):
    """Queue a job over ``mode`` = all / unscored / search (with ``search``); the panel again."""
    version = _version_or_404(version_id)
    mode = request.POST.get("mode", "all")
    search = request.POST.get("search", "").strip()
    if mode == "search":
        video_filter = {"search": search} if search else None
        if video_filter is None:
            return _panel(request, version, status=400, error="Type words of the titles to score.")
    elif mode in SCORE_MODES:
        video_filter = SCORE_MODES[mode]
    else:
        return _panel(request, version, status=400, error=f"Unknown scoring mode {mode!r}.")
    try:
        job = services.scoring_job_create(version_id=version.pk, video_filter=video_filter, user=request.user)
    except ValidationError as error:
        return _panel(request, version, status=400, error=validation_error_message(error, with_fields=False),
                      search=search)
    return _panel(request, version, notice=f"Queued scoring job {job.pk}.")


@require_POST
@experiment_runner_required
def scoring_job_cancel(request, job_id: int):
    try:
        job = services.scoring_job_cancel(job_id)
    except ScoringJob.DoesNotExist:
        raise Http404(f"No scoring job {job_id}") from None
    except ValidationError as error:
        job = ScoringJob.objects.get(pk=job_id)
        return _panel(request, _version_or_404(job.model_version_id), status=400,
                      error=validation_error_message(error, with_fields=False))
    return _panel(request, _version_or_404(job.model_version_id), notice=f"Cancelled scoring job {job.pk}.")
