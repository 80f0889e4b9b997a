"""Reads of sweeps: lists, one sweep with its trials ranked by objective (a fixed number
of queries whatever the number of trials), and the parameter importances (from the
Optuna study)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Q, QuerySet

from experiments.models import Param, Run
from training.architectures import get_architecture
from training.models import Sweep, SweepTrial
from training.services import sweeps as sweep_services

logger = logging.getLogger(__name__)

#: Importances need at least this many complete trials.
MIN_TRIALS_FOR_IMPORTANCES = 2


def sweep_list(*, experiment_id: int | None = None) -> QuerySet[Sweep]:
    """Sweeps, newest first, with their experiment and trial counts (one query)."""
    sweeps = Sweep.objects.select_related("experiment", "dataset_version__dataset").defer(
        "dataset_version__requested_aids", "dataset_version__selection"
    ).annotate(
        trials_asked=Count("trials"),
        trials_active=Count("trials", filter=Q(trials__run__status__in=("queued", "running"))),
    )
    if experiment_id is not None:
        sweeps = sweeps.filter(experiment_id=experiment_id)
    return sweeps.order_by("-created_at", "-id")


def sweep_get(sweep_id: int) -> Sweep:
    """One sweep with its experiment, dataset version and creator; ``Sweep.DoesNotExist``."""
    return Sweep.objects.select_related("experiment", "dataset_version__dataset", "created_by").defer(
        "dataset_version__requested_aids", "dataset_version__selection"
    ).get(pk=sweep_id)


@dataclass(frozen=True)
class TrialRow:
    number: int
    run: Run
    state: str  # the run's status, or "pruned"
    objective: float | None
    params: dict[str, str]  # the searched ones, as the run records them
    pruned_at_epoch: str | None


def sweep_trial_rows(sweep: Sweep) -> list[TrialRow]:
    """The sweep's trials ranked best first by objective (trials without one after, by
    number): three queries (trials with their runs, searched params, objectives)."""
    trials = list(SweepTrial.objects.filter(sweep=sweep).select_related("run").only(
        "number", "pruned", "sweep_id", "run_id", "run__name", "run__status", "run__tags", "run__experiment_id",
        "run__queued_at", "run__started_at", "run__finished_at", "run__error",
    ).order_by("number"))
    run_ids = [trial.run_id for trial in trials]
    params: dict[int, dict[str, str]] = {run_id: {} for run_id in run_ids}
    if run_ids:
        for run_id, key, value in Param.objects.filter(run_id__in=run_ids, key__in=list(sweep.search_space)) \
                .values_list("run_id", "key", "value"):
            params[run_id][key] = value
    objectives = sweep_services.trial_objectives(sweep, run_ids) if run_ids else {}
    rows = [
        TrialRow(
            number=trial.number, run=trial.run,
            state="pruned" if trial.pruned else trial.run.status,
            # Only a succeeded run's value is its objective (a pruned run's last value is not).
            objective=objectives.get(trial.run_id) if trial.run.status == "succeeded" else None,
            params=params[trial.run_id], pruned_at_epoch=(trial.run.tags or {}).get("pruned"),
        )
        for trial in trials
    ]
    sign = -1 if sweep.metric_direction == "max" else 1
    return sorted(rows, key=lambda row: (row.objective is None, sign * (row.objective or 0.0), row.number))


def sweep_best_trial(rows: list[TrialRow]) -> TrialRow | None:
    """The best of ``sweep_trial_rows`` (already ranked), if any trial has an objective."""
    return rows[0] if rows and rows[0].objective is not None and math.isfinite(rows[0].objective) else None


@dataclass(frozen=True)
class Importances:
    values: list[tuple[str, float]]  # largest first, summing to 1
    note: str  # why there are none, when there are none


def sweep_param_importances(sweep: Sweep, complete_trials: int) -> Importances:
    """Each searched parameter's importance to the objective (Optuna's fANOVA, seeded
    by the sweep), once ``MIN_TRIALS_FOR_IMPORTANCES`` trials completed."""
    if complete_trials < MIN_TRIALS_FOR_IMPORTANCES:
        return Importances([], f"shown once {MIN_TRIALS_FOR_IMPORTANCES} trials have completed")
    import optuna

    try:
        study = sweep_services.sweep_study(sweep)
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=sweep.seed % 2**32)
        importances: dict[str, Any] = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except sweep_services.SweepStudyUnavailable as error:
        return Importances([], str(error))
    except (ValueError, RuntimeError) as error:  # e.g. every complete trial took the same values
        logger.info("sweep %s: no importances: %s", sweep.pk, error)
        return Importances([], f"not computable yet: {error}")
    return Importances([(name, float(value)) for name, value in importances.items()], "")


def sweep_fixed_texts(sweep: Sweep) -> list[tuple[str, str]]:
    """The sweep's fixed hyperparameters as a form or ``--set`` writes them
    (``hidden_sizes=256,64``, ``batch_norm=false``), in the schema's order."""
    schema = get_architecture(sweep.architecture_key).schema
    fixed = sweep.fixed_hyperparameters
    return [(parameter.name, parameter.as_text(parameter.coerce(fixed[parameter.name]))) for parameter in schema
            if parameter.name in fixed]
