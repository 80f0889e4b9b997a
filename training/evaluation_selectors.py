"""Reads of evaluations: a version's, one, the dataset versions a version can be
evaluated on, and two versions side by side on the same data. Each costs a fixed number
of queries whatever the number of evaluations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from datasets.models import DatasetVersion, DatasetVersionStatus
from training.models import ACTIVE_JOB_STATUSES, Evaluation, EvaluationSplit, JobStatus, ModelVersion
from training.gates import GATE_METRICS

#: The columns a dataset version's heavy JSON holds, never read here.
_HEAVY_VERSION_FIELDS = ("dataset_version__requested_aids", "dataset_version__selection")


def _evaluations() -> QuerySet[Evaluation]:
    return (
        Evaluation.objects.select_related("dataset_version__dataset", "created_by")
        .defer(*_HEAVY_VERSION_FIELDS)
        .order_by("-created_at", "-id")
    )


def evaluated_version_get(version_id: int) -> ModelVersion:
    """A model version with its model, run and embedding model (``DoesNotExist`` if unknown)."""
    return ModelVersion.objects.select_related("registered_model", "run", "embedding_model").get(pk=int(version_id))


def version_evaluations(version_id: int) -> QuerySet[Evaluation]:
    """The version's evaluations, newest first, with dataset version and creator joined."""
    return _evaluations().filter(version_id=version_id)


def evaluation_get(evaluation_id: int) -> Evaluation:
    """One evaluation with its version and dataset version (``DoesNotExist`` if unknown)."""
    return _evaluations().select_related("version__registered_model").get(pk=evaluation_id)


def evaluation_dataset_versions(version: ModelVersion) -> QuerySet[DatasetVersion]:
    """The ready dataset versions the version can be evaluated on: vectors of its
    embedding model with its dimensions, newest first."""
    return (
        DatasetVersion.objects.filter(
            status=DatasetVersionStatus.READY, embedding_model_id=version.embedding_model_id,
            embedding_dimensions=version.input_dimensions,
        )
        .select_related("dataset")
        .only("id", "number", "total_records", "split_counts", "created_at", "dataset__name")
        .order_by("-created_at")
    )


@dataclass(frozen=True)
class MetricRow:
    metric: str
    a: float | None
    b: float | None

    @property
    def difference(self) -> float | None:
        """b − a (None when either side lacks the number)."""
        return None if self.a is None or self.b is None else self.b - self.a


@dataclass(frozen=True)
class SideBySide:
    """Two versions' newest succeeded evaluations on the same dataset version and split
    (None for a side without one), with each side's queued or running one, if any."""

    version_a: ModelVersion
    version_b: ModelVersion
    dataset_version: DatasetVersion
    split: str
    evaluation_a: Evaluation | None
    evaluation_b: Evaluation | None
    pending_a: Evaluation | None
    pending_b: Evaluation | None
    rows: list[MetricRow]

    @property
    def confusion_a(self) -> list[list[int]] | None:
        return self.evaluation_a.confusion_matrix if self.evaluation_a else None

    @property
    def confusion_b(self) -> list[list[int]] | None:
        return self.evaluation_b.confusion_matrix if self.evaluation_b else None

    @property
    def complete(self) -> bool:
        return self.evaluation_a is not None and self.evaluation_b is not None

    @property
    def pending(self) -> bool:
        return self.pending_a is not None or self.pending_b is not None

    def as_json(self) -> dict[str, Any]:
        return {
            "dataset_version": str(self.dataset_version.pk), "split": self.split,
            "version_a": self.version_a.pk, "version_b": self.version_b.pk,
            "evaluation_a": self.evaluation_a.pk if self.evaluation_a else None,
            "evaluation_b": self.evaluation_b.pk if self.evaluation_b else None,
            "rows": [{"metric": row.metric, "a": row.a, "b": row.b, "difference": row.difference}
                     for row in self.rows],
            "confusion_a": self.confusion_a, "confusion_b": self.confusion_b,
        }


def evaluations_side_by_side(
    version_a: ModelVersion, version_b: ModelVersion, dataset_version: DatasetVersion,
    split: str = EvaluationSplit.TEST,
) -> SideBySide:
    """The two versions' metrics on ``split`` of ``dataset_version``: one row per metric
    (accuracy … loss, then rows and positives) with a, b and b − a. One query."""
    evaluations = list(
        Evaluation.objects.filter(
            version_id__in=[version_a.pk, version_b.pk], dataset_version_id=dataset_version.pk, split=split,
            status__in=[JobStatus.SUCCEEDED, *ACTIVE_JOB_STATUSES],
        ).order_by("-created_at", "-id")
    )

    def newest(version: ModelVersion, statuses) -> Evaluation | None:
        return next((e for e in evaluations if e.version_id == version.pk and e.status in statuses), None)

    evaluation_a = newest(version_a, (JobStatus.SUCCEEDED,))
    evaluation_b = newest(version_b, (JobStatus.SUCCEEDED,))

    def value(evaluation: Evaluation | None, name: str) -> float | None:
        if evaluation is None:
            return None
        if name in ("rows", "positives"):
            return getattr(evaluation, name)
        return evaluation.metrics.get(name)

    rows = [MetricRow(name, value(evaluation_a, name), value(evaluation_b, name))
            for name in (*GATE_METRICS, "rows", "positives")]
    return SideBySide(
        version_a=version_a, version_b=version_b, dataset_version=dataset_version, split=split,
        evaluation_a=evaluation_a, evaluation_b=evaluation_b,
        pending_a=newest(version_a, ACTIVE_JOB_STATUSES), pending_b=newest(version_b, ACTIVE_JOB_STATUSES),
        rows=rows,
    )
