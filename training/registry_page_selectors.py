"""Reads the registry's pages, API and command need beside ``training.registry_selectors``:
the test metrics of many versions' runs in one query, a version's own history, the
stages a version may move to, rules as sentences."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from experiments.models import RunMetricSummary
from training.gates import describe_rule
from training.models import ModelVersion, ModelVersionTransition, RegisteredModel
from training.services.registry import LEGAL_MOVES

#: The run's final test metrics shown beside each version (``test_<metric>`` summaries).
TEST_METRIC_KEYS = {"test_f1": "f1", "test_roc_auc": "roc_auc"}
#: The names offered while typing a model name (a datalist): enough for any real registry.
MODEL_NAME_CHOICES = 500


def run_test_metrics(run_ids: list[int]) -> dict[int, dict[str, float]]:
    """run id → {"f1": …, "roc_auc": …} from the runs' latest test metrics (one query)."""
    rows = RunMetricSummary.objects.filter(run_id__in=run_ids, key__in=list(TEST_METRIC_KEYS)).values_list(
        "run_id", "key", "latest_value"
    )
    metrics: dict[int, dict[str, float]] = {}
    for run_id, key, value in rows:
        metrics.setdefault(run_id, {})[TEST_METRIC_KEYS[key]] = value
    return metrics


def version_history(version: ModelVersion) -> QuerySet[ModelVersionTransition]:
    """The version's own stage changes, oldest first."""
    return ModelVersionTransition.objects.filter(version=version).select_related("user").order_by("created_at", "id")


def legal_next_stages(stage: str) -> list[str]:
    """The stages a version in ``stage`` may move to, in the order the buttons show."""
    return list(LEGAL_MOVES.get(stage, ()))


def gate_rule_descriptions(rules: list[dict[str, Any]]) -> list[str]:
    return [describe_rule(rule) for rule in rules or []]


def registered_model_names(limit: int = MODEL_NAME_CHOICES) -> list[str]:
    return list(RegisteredModel.objects.order_by("name").values_list("name", flat=True)[:limit])
