"""Reads of the model registry: models, versions, which version serves, its history."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db.models import Count, Max, OuterRef, Q, QuerySet, Subquery

from experiments.services import run_artifact_dir
from training.models import (
    Evaluation,
    JobStatus,
    ModelStage,
    ModelVersion,
    ModelVersionTransition,
    RegisteredModel,
)

#: The weights file a version serves: its run's artifact (``training.services.WEIGHTS_PATH``).
WEIGHTS_FILE_NAME = "model.pt"


def registered_model_list() -> QuerySet[RegisteredModel]:
    """Every model with ``version_count``, ``production_number`` and ``last_change`` (one query)."""
    production = ModelVersion.objects.filter(registered_model=OuterRef("pk"), stage=ModelStage.PRODUCTION)
    return RegisteredModel.objects.annotate(
        version_count=Count("versions", distinct=True),
        production_number=Subquery(production.values("number")[:1]),
        last_change=Max("transitions__created_at"),
    ).order_by("name")


def registered_model_get(name_or_id: object) -> RegisteredModel:
    """The model named ``name_or_id`` (or with that id when it is an int); raises
    ``RegisteredModel.DoesNotExist``."""
    if isinstance(name_or_id, int) and not isinstance(name_or_id, bool):
        return RegisteredModel.objects.get(pk=name_or_id)
    if not isinstance(name_or_id, str) or not name_or_id:
        raise RegisteredModel.DoesNotExist(f"no registered model {name_or_id!r}")
    return RegisteredModel.objects.get(name=name_or_id)


def model_versions(model: RegisteredModel) -> QuerySet[ModelVersion]:
    """The model's versions, newest first, with their run and dataset version."""
    return (
        ModelVersion.objects.filter(registered_model=model)
        .select_related("run__experiment", "run__dataset_version__dataset", "embedding_model", "created_by")
        .order_by("-number")
    )


def model_version_get(version_id: object) -> ModelVersion:
    """Raises ``ModelVersion.DoesNotExist`` (also for a malformed id)."""
    try:
        pk = int(version_id)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ModelVersion.DoesNotExist(f"no model version {version_id!r}") from None
    return ModelVersion.objects.select_related(
        "registered_model", "run__experiment", "run__dataset_version__dataset", "embedding_model", "created_by"
    ).get(pk=pk)


def model_version_by_number(model: RegisteredModel, number: object) -> ModelVersion:
    try:
        value = int(number)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ModelVersion.DoesNotExist(f"no version {number!r} of {model.name}") from None
    return ModelVersion.objects.select_related(
        "registered_model", "run__experiment", "run__dataset_version__dataset", "embedding_model", "created_by"
    ).get(registered_model=model, number=value)


def production_version(model_name: str | None = None) -> ModelVersion | None:
    """The production version of the model named ``model_name``; without a name, that
    of the only model with one (``ValidationError`` naming them when several have one).
    ``None`` when there is none; ``RegisteredModel.DoesNotExist`` for an unknown name."""
    versions = ModelVersion.objects.filter(stage=ModelStage.PRODUCTION).select_related(
        "registered_model", "embedding_model", "run"
    )
    if model_name is not None:
        model = registered_model_get(model_name)
        return versions.filter(registered_model=model).first()
    candidates = list(versions.order_by("registered_model__name")[:2])
    if len(candidates) > 1:
        names = ", ".join(
            ModelVersion.objects.filter(stage=ModelStage.PRODUCTION)
            .order_by("registered_model__name").values_list("registered_model__name", flat=True)
        )
        raise ValidationError({"model": f"several models are in production ({names}): name one"})
    return candidates[0] if candidates else None


def production_version_id(model_id: int) -> int | None:
    """The id of the model's production version: one query on the partial unique index
    (the cheap check a server makes per request to notice a promotion)."""
    return (
        ModelVersion.objects.filter(registered_model_id=model_id, stage=ModelStage.PRODUCTION)
        .values_list("pk", flat=True).first()
    )


def production_version_at(model: RegisteredModel, at: datetime) -> ModelVersion | None:
    """The version that was in production at ``at``: the last transition into or out of
    production at or before ``at`` says (into: that version; out of: none)."""
    last = (
        ModelVersionTransition.objects.filter(registered_model=model, created_at__lte=at)
        .filter(Q(to_stage=ModelStage.PRODUCTION) | Q(from_stage=ModelStage.PRODUCTION))
        .order_by("-created_at", "-id")
        .select_related("version")
        .first()
    )
    if last is None or last.to_stage != ModelStage.PRODUCTION:
        return None
    return last.version


def model_history(model: RegisteredModel) -> QuerySet[ModelVersionTransition]:
    """Every stage change of the model's versions, oldest first."""
    return (
        ModelVersionTransition.objects.filter(registered_model=model)
        .select_related("version", "user")
        .order_by("created_at", "id")
    )


def run_weights_path(run_id: int) -> Path:
    """A run's weights file (registered or not)."""
    return run_artifact_dir(run_id) / WEIGHTS_FILE_NAME


def version_weights_path(version: ModelVersion) -> Path:
    """The weights file a version serves: its run's."""
    return run_weights_path(version.run_id)


def latest_evaluation(version: ModelVersion, dataset_version_id, split: str = "test") -> Evaluation | None:
    """The version's newest succeeded evaluation on that dataset version's split."""
    return (
        Evaluation.objects.filter(
            version=version, dataset_version_id=dataset_version_id, split=split, status=JobStatus.SUCCEEDED
        )
        .order_by("-created_at", "-id")
        .first()
    )
