"""Scoring a model version on a split of a dataset version, synchronously: the core that
the evaluation job (``training.services.evaluation_jobs``) and the promotion gate
(``training.services.registry``) share.

The version's own weights at its own threshold, on the dataset version's frozen vectors
(one binary COPY): the metrics a run logged for its test split come out again when a
version is evaluated on its run's dataset version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from django.core.exceptions import ValidationError
from django.utils import timezone

from datasets.models import DatasetVersion, DatasetVersionStatus
from datasets.selectors import version_arrays
from training.metrics import split_metrics
from training.models import Evaluation, EvaluationSplit, JobStatus, ModelVersion
from training.registry_selectors import latest_evaluation, version_weights_path
from training.served_models import WeightsFileError, load_classifier

#: The metrics an evaluation stores (``Evaluation.metrics``), as the gates read them.
EVALUATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "loss")


@dataclass(frozen=True)
class EvaluationOutcome:
    rows: int
    positives: int
    metrics: dict[str, Any]
    confusion_matrix: list[list[int]]


def evaluation_check_inputs(version: ModelVersion, dataset_version: DatasetVersion, split: str) -> None:
    """``ValidationError`` naming the field when ``version`` cannot be evaluated on that
    split of ``dataset_version`` (not ready, other embedding model or dimensions)."""
    if split not in EvaluationSplit.values:
        raise ValidationError({"split": f"must be one of {', '.join(EvaluationSplit.values)} (got {split!r})"})
    if dataset_version.status != DatasetVersionStatus.READY:
        raise ValidationError(
            {"dataset_version_id": f"dataset version {dataset_version.pk} is {dataset_version.status}, not ready"}
        )
    if dataset_version.embedding_model_id != version.embedding_model_id:
        raise ValidationError({"dataset_version_id": (
            f"dataset version {dataset_version.pk} holds vectors of another embedding model than the version's "
            f"({version.embedding_model.key})"
        )})
    if dataset_version.embedding_dimensions != version.input_dimensions:
        raise ValidationError({"dataset_version_id": (
            f"dataset version {dataset_version.pk} has {dataset_version.embedding_dimensions}-dimensional vectors; "
            f"the version reads {version.input_dimensions}"
        )})
    if split != EvaluationSplit.ALL:
        split_rows = (dataset_version.split_counts or {}).get(split, {}).get("total")
        if split_rows == 0:
            raise ValidationError({"split": f"the {split} split of dataset version {dataset_version.pk} is empty"})


def evaluation_compute(version: ModelVersion, dataset_version: DatasetVersion, split: str) -> EvaluationOutcome:
    """The version's metrics on ``split`` of ``dataset_version`` (``all``: every row)."""
    evaluation_check_inputs(version, dataset_version, split)
    arrays = version_arrays(dataset_version)
    if split == EvaluationSplit.ALL:
        X, labels = arrays.X, arrays.y
    else:
        X, labels = arrays.split(split)
    if len(labels) == 0:
        raise ValidationError({"split": f"the {split} split of dataset version {dataset_version.pk} is empty"})
    try:
        classifier = load_classifier(version_weights_path(version), expected_sha256=version.weights_sha256)
    except WeightsFileError as error:
        raise ValidationError({"weights": str(error)}) from None
    labels = labels.astype(np.int64)
    loss, probabilities = classifier.evaluate(X, labels)
    metrics = split_metrics(labels, probabilities, loss, classifier.threshold)
    return EvaluationOutcome(
        rows=metrics.rows,
        positives=metrics.positives,
        metrics={name: getattr(metrics, name) for name in EVALUATION_METRICS} | {"threshold": metrics.threshold},
        confusion_matrix=[list(row) for row in metrics.confusion_matrix],
    )


def evaluation_ensure(version_id: int, dataset_version_id, split: str = EvaluationSplit.TEST, *,
                      user=None) -> Evaluation:
    """The version's newest succeeded evaluation on that split, else one computed now in
    this process and stored as succeeded."""
    version = ModelVersion.objects.select_related("embedding_model").get(pk=version_id)
    existing = latest_evaluation(version, dataset_version_id, split)
    if existing is not None:
        return existing
    dataset_version = DatasetVersion.objects.defer("requested_aids", "selection").get(pk=dataset_version_id)
    started = timezone.now()
    outcome = evaluation_compute(version, dataset_version, split)
    return Evaluation.objects.create(
        version=version, dataset_version=dataset_version, split=split, status=JobStatus.SUCCEEDED,
        rows=outcome.rows, positives=outcome.positives, metrics=outcome.metrics,
        confusion_matrix=outcome.confusion_matrix, created_by=user, started_at=started, finished_at=timezone.now(),
        message="computed in process (promotion gate)",
    )
