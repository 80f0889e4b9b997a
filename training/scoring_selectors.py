"""Reads of batch scoring: jobs (newest first, with their version and model) and how
many predictions a version has stored."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from training.models import ModelVersion, Prediction, ScoringJob

_JOB_RELATIONS = ("model_version__registered_model", "created_by")


def scoring_job_list(*, version_id: object = None) -> QuerySet[ScoringJob]:
    """Every job, or a version's (``version_id``: an id, as text from a query string too),
    newest first; ``ValidationError`` (``version``) for a malformed id."""
    jobs = ScoringJob.objects.select_related(*_JOB_RELATIONS).order_by("-created_at", "-id")
    if version_id in (None, ""):
        return jobs
    try:
        pk = int(version_id)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValidationError({"version": f"not a model version id: {version_id!r}"}) from None
    return jobs.filter(model_version_id=pk)


def scoring_job_get(job_id: int) -> ScoringJob:
    """Raises ``ScoringJob.DoesNotExist``."""
    return ScoringJob.objects.select_related(*_JOB_RELATIONS).get(pk=job_id)


def version_prediction_count(version: ModelVersion) -> int:
    return Prediction.objects.filter(model_version=version).count()
