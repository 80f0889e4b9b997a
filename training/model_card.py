"""A model version's card as plain data (the card page and ``GET …/card`` render it):
lineage (version → registered model → run → experiment → dataset version with its label
counts per split at freeze), metrics (the run's final test and validation numbers, the
version's evaluations), the gate results of its promotions, and its stage history.

Five queries whatever the version's history: the version with its lineage joined, the
run's params, the run's final metric summaries, the evaluations, the transitions.
"""

from __future__ import annotations

from typing import Any

from datasets.models import Split
from experiments.models import Param, RunMetricSummary
from training.gates import describe_rule
from training.model_export_selectors import onnx_export_info
from training.models import Evaluation, ModelVersion, ModelVersionTransition

#: The run's end-of-training metrics the card shows (``training.services.execution``'s prefixes).
FINAL_METRIC_PREFIXES = {"test": "test_", "val": "final_val_"}
#: Single numbers the run logged at its end.
RUN_SUMMARY_KEYS = ("best_epoch", "threshold")
#: The card shows this many evaluations, newest first.
CARD_EVALUATIONS = 50
#: What of a run's reproducibility record the card shows.
REPRODUCIBILITY_KEYS = ("code_version", "python", "torch", "numpy", "device", "device_name", "deterministic",
                        "epochs_run", "best_epoch", "stopped_early", "duration_seconds", "split_rows")


def _user_name(user) -> str | None:
    return user.get_username() if user is not None else None


def _final_metrics(summaries: list[tuple[str, float]]) -> dict[str, Any]:
    metrics: dict[str, Any] = {split: {} for split in FINAL_METRIC_PREFIXES}
    for key, value in summaries:
        if key in RUN_SUMMARY_KEYS:
            metrics[key] = value
            continue
        for split, prefix in FINAL_METRIC_PREFIXES.items():
            if key.startswith(prefix):
                metrics[split][key.removeprefix(prefix)] = value
    for split in FINAL_METRIC_PREFIXES:
        counts = metrics[split]
        if all(name in counts for name in ("tn", "fp", "fn", "tp")):
            counts["confusion_matrix"] = [[int(counts.pop("tn")), int(counts.pop("fp"))],
                                          [int(counts.pop("fn")), int(counts.pop("tp"))]]
    return metrics


def _evaluation(evaluation: Evaluation) -> dict[str, Any]:
    dataset_version = evaluation.dataset_version
    return {
        "id": evaluation.pk, "dataset_version": str(dataset_version.pk),
        "dataset_version_name": f"{dataset_version.dataset.name} v{dataset_version.number}",
        "split": evaluation.split, "status": evaluation.status, "rows": evaluation.rows,
        "positives": evaluation.positives, "metrics": evaluation.metrics,
        "confusion_matrix": evaluation.confusion_matrix, "error": evaluation.error,
        "created_at": evaluation.created_at, "finished_at": evaluation.finished_at,
    }


def _gate(transition: ModelVersionTransition) -> dict[str, Any]:
    gate = transition.gate
    return {
        "at": transition.created_at, "to_stage": transition.to_stage, "user": _user_name(transition.user),
        "passed": gate.get("passed"), "dataset_version": gate.get("dataset_version_id"), "split": gate.get("split"),
        "evaluation": gate.get("evaluation_id"), "production_version": gate.get("production_version_id"),
        "results": [
            {"rule": result.get("description") or describe_rule(result["rule"]), "passed": result.get("passed"),
             "message": result.get("message", "")}
            for result in gate.get("results", [])
        ],
        "candidate_metrics": gate.get("candidate_metrics") or {},
        "production_metrics": gate.get("production_metrics"),
    }


def model_card(version_id: int) -> dict[str, Any]:
    """The card of model version ``version_id`` (``ModelVersion.DoesNotExist`` if unknown)."""
    version = (
        ModelVersion.objects.select_related(
            "registered_model", "embedding_model", "created_by", "run__experiment",
            "run__dataset_version__dataset", "run__dataset_version__embedding_model",
        )
        .defer("run__dataset_version__requested_aids", "run__dataset_version__selection")
        .get(pk=int(version_id))
    )
    run = version.run
    experiment = run.experiment
    dataset_version = run.dataset_version
    params = dict(Param.objects.filter(run_id=run.pk).order_by("key").values_list("key", "value"))
    summaries = list(
        RunMetricSummary.objects.filter(run_id=run.pk).order_by("key").values_list("key", "latest_value")
    )
    evaluations = list(
        Evaluation.objects.filter(version_id=version.pk)
        .select_related("dataset_version__dataset")
        .defer("dataset_version__requested_aids", "dataset_version__selection")
        .order_by("-created_at", "-id")[:CARD_EVALUATIONS]
    )
    transitions = list(
        ModelVersionTransition.objects.filter(version_id=version.pk).select_related("user").order_by("created_at", "id")
    )
    model = version.registered_model
    reproducibility = run.reproducibility or {}
    onnx = onnx_export_info(version.pk)
    return {
        "version": {
            "id": version.pk, "number": version.number, "stage": version.stage, "description": version.description,
            "threshold": version.threshold, "architecture": version.architecture_key,
            "input_dimensions": version.input_dimensions, "embedding_model": version.embedding_model.key,
            "weights_sha256": version.weights_sha256, "created_at": version.created_at,
            "created_by": _user_name(version.created_by), "lock_version": version.lock_version,
        },
        "registered_model": {
            "id": model.pk, "name": model.name, "description": model.description,
            "gate_rules": [{"rule": rule, "description": describe_rule(rule)} for rule in model.gate_rules or []],
        },
        "run": {
            "id": run.pk, "name": run.name, "status": run.status, "architecture": run.architecture_key,
            "seed": run.seed, "params": params, "git_commit": reproducibility.get("code_version"),
            "started_at": run.started_at, "finished_at": run.finished_at,
            "reproducibility": {key: reproducibility[key] for key in REPRODUCIBILITY_KEYS if key in reproducibility},
        },
        "experiment": {"id": experiment.pk, "name": experiment.name, "metric_key": experiment.metric_key},
        "dataset_version": {
            "id": str(dataset_version.pk), "dataset": dataset_version.dataset.name, "number": dataset_version.number,
            "name": f"{dataset_version.dataset.name} v{dataset_version.number}",
            "content_hash": dataset_version.content_hash,
            "embedding_model": dataset_version.embedding_model.key,
            "embedding_dimensions": dataset_version.embedding_dimensions,
            "frozen_at": dataset_version.frozen_at, "total_records": dataset_version.total_records,
            "positives": dataset_version.positives, "negatives": dataset_version.negatives,
            # Train, val, test (the JSON column keeps its own key order).
            "split_counts": {split: (dataset_version.split_counts or {})[split] for split in Split.values
                             if split in (dataset_version.split_counts or {})},
        },
        "metrics": {"run": _final_metrics(summaries), "evaluations": [_evaluation(e) for e in evaluations]},
        "gates": [_gate(transition) for transition in transitions if transition.gate],
        "stage_history": [
            {"at": transition.created_at, "from_stage": transition.from_stage, "to_stage": transition.to_stage,
             "user": _user_name(transition.user), "reason": transition.reason}
            for transition in transitions
        ],
        "onnx": None if onnx is None else onnx.as_json(),
    }
