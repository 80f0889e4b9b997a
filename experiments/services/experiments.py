"""Experiments: create, update, soft delete and restore."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from datasets.models import DatasetVersion, DatasetVersionStatus
from datasets.selectors import as_uuid
from experiments.models import ACTIVE_RUN_STATUSES, Experiment, MetricDirection
from experiments.services.validation import clean_id, clean_key, clean_name, clean_tags, clean_text

#: The metric a new experiment ranks its runs by unless told otherwise.
DEFAULT_METRIC_KEY = "val_f1"

_UPDATABLE_FIELDS = ("name", "description", "tags", "default_dataset_version_id", "metric_key", "metric_direction")


def ready_dataset_version(version_id: uuid.UUID | str, field: str) -> DatasetVersion:
    """The ready dataset version ``version_id``; ``ValidationError`` on ``field`` otherwise."""
    version_uuid = as_uuid(version_id, field)
    version = DatasetVersion.objects.filter(pk=version_uuid).only("id", "status").first()
    if version is None:
        raise ValidationError({field: f"dataset version {version_uuid} does not exist"})
    if version.status != DatasetVersionStatus.READY:
        raise ValidationError({field: f"dataset version {version_uuid} is {version.status}, not ready"})
    return version


def _cleaned(fields: dict[str, Any]) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    if "name" in fields:
        cleaned["name"] = clean_name(fields["name"])
    if "description" in fields:
        cleaned["description"] = clean_text(fields["description"], "description")
    if "tags" in fields:
        cleaned["tags"] = clean_tags(fields["tags"])
    if "metric_key" in fields:
        cleaned["metric_key"] = clean_key(fields["metric_key"], "metric_key")
    if "metric_direction" in fields:
        if fields["metric_direction"] not in MetricDirection.values:
            raise ValidationError(
                {"metric_direction": f"must be one of {', '.join(MetricDirection.values)} "
                                     f"(got {fields['metric_direction']!r})"}
            )
        cleaned["metric_direction"] = fields["metric_direction"]
    if "default_dataset_version_id" in fields:
        version_id = fields["default_dataset_version_id"]
        cleaned["default_dataset_version_id"] = (
            None if version_id is None else ready_dataset_version(version_id, "default_dataset_version_id").pk
        )
    return cleaned


def _save(experiment: Experiment, update_fields: list[str] | None = None) -> Experiment:
    try:
        with transaction.atomic():
            experiment.save(update_fields=update_fields)
    except IntegrityError as error:
        if "experiments_experiment_name" in str(error):
            raise ValidationError(
                {"name": f"an experiment named {experiment.name!r} already exists (possibly deleted: restore it)"}
            ) from None
        raise
    return experiment


def experiment_create(
    *,
    name: str,
    owner=None,
    description: str = "",
    tags: list[str] | tuple[str, ...] = (),
    default_dataset_version_id: uuid.UUID | str | None = None,
    metric_key: str = DEFAULT_METRIC_KEY,
    metric_direction: str = MetricDirection.MAXIMIZE,
) -> Experiment:
    """A new experiment. ``ValidationError`` (keyed by field) on bad input, nothing written.

    The default dataset version, when given, must be ready."""
    cleaned = _cleaned({
        "name": name, "description": description, "tags": tags, "metric_key": metric_key,
        "metric_direction": metric_direction, "default_dataset_version_id": default_dataset_version_id,
    })
    return _save(Experiment(owner=owner, **cleaned))


def experiment_update(experiment_id: int, **fields: Any) -> Experiment:
    """Change some of ``name``, ``description``, ``tags``, ``default_dataset_version_id``,
    ``metric_key``, ``metric_direction`` (summaries keep min and max, so a new direction
    needs no rewrite). A deleted experiment is refused: restore it first."""
    unknown = sorted(set(fields) - set(_UPDATABLE_FIELDS))
    if unknown:
        raise ValidationError({name: "not a field that can be updated" for name in unknown})
    cleaned = _cleaned(fields)
    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().get(pk=clean_id(experiment_id, "experiment_id"))
        if experiment.is_deleted:
            raise ValidationError({"experiment_id": f"experiment {experiment.pk} is deleted; restore it first"})
        for field, value in cleaned.items():
            setattr(experiment, field, value)
        return _save(experiment, [*cleaned, "updated_at"])


def experiment_delete(experiment_id: int, *, now: datetime | None = None) -> Experiment:
    """Soft delete (restorable until purged). Refused while a run is queued or running:
    cancel it first. Deleting a deleted experiment changes nothing."""
    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().get(pk=clean_id(experiment_id, "experiment_id"))
        if experiment.is_deleted:
            return experiment
        active = experiment.runs.filter(status__in=ACTIVE_RUN_STATUSES, deleted_at__isnull=True).count()
        if active:
            raise ValidationError(
                {"experiment_id": f"experiment {experiment.pk} has {active} queued or running run(s); "
                                  "cancel them first"}
            )
        experiment.deleted_at = now or timezone.now()
        experiment.save(update_fields=["deleted_at", "updated_at"])
    return experiment


def experiment_restore(experiment_id: int) -> Experiment:
    """Undo a soft delete (its runs come back as they were)."""
    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().get(pk=clean_id(experiment_id, "experiment_id"))
        if experiment.is_deleted:
            experiment.deleted_at = None
            experiment.save(update_fields=["deleted_at", "updated_at"])
    return experiment
