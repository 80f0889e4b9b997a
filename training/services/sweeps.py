"""Sweeps: a search over hyperparameters of one architecture, run as an Optuna study
stored in this project's PostgreSQL (RDB storage, in its own ``optuna`` schema) whose
trials are ordinary training runs. Any Celery worker on any host that reaches the
database can train a trial: nothing lives in a process.

The life of a sweep:

* ``sweep_create`` validates the search space against the architecture's schema (one
  ``ValidationError`` keyed by field, nothing written), records the sweep, creates its
  study and queues the first ``parallelism`` trials. A study that cannot be created
  leaves the sweep ``failed`` with the reason.
* A trial is ``study.ask(distributions)`` → ``run_queue(hyperparameters={**fixed,
  **trial.params}, tags={"sweep", "trial"})`` + a ``SweepTrial`` row.
* When a trial's run ends, ``run_train`` enqueues ``training.tasks.sweep_advance``:
  ``sweep_advance`` tells the study each finished run's objective (or FAIL / PRUNED),
  then asks and queues trials while fewer than ``trial_count`` were asked and fewer than
  ``parallelism`` are active; the last trial's end finishes the sweep. It holds the
  sweep's row lock (``select_for_update``) throughout, so two runs ending at once never
  ask one trial too many, and it is idempotent (a second call changes nothing).
* Pruning: ``run_train`` reports each epoch's val metric to the trial
  (``sweep_trial_epoch_report``); when Optuna's median pruner says so, the run is
  cancelled, tagged ``pruned: <epoch>`` and its ``SweepTrial`` marked pruned, and the
  study is told PRUNED.
* ``sweep_cancel`` cancels the sweep and its queued and running trial runs.

The objective of a finished run is its ``final_val_<metric>`` (the val metric at the
best epoch, see ``execution._final_points``); a run without it falls back to the best
per-epoch value of the metric by the sweep's direction.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from experiments import services as tracking
from experiments.models import ACTIVE_RUN_STATUSES, Experiment, RunMetricSummary, RunStatus
from experiments.services.experiments import ready_dataset_version
from training.architectures import get_architecture, resolve_config
from training.hyperparameters import Hyperparameter, ParamType
from training.models import (
    ACTIVE_JOB_STATUSES,
    MAX_NAME_LENGTH,
    MAX_SWEEP_PARALLELISM,
    MAX_SWEEP_TRIALS,
    JobStatus,
    Sweep,
    SweepSampler,
    SweepTrial,
)
from training.services.queueing import run_queue

if TYPE_CHECKING:
    import optuna

logger = logging.getLogger(__name__)

#: The PostgreSQL schema that holds Optuna's tables (``studies``, ``trials``, ...), apart
#: from Django's: ``DROP SCHEMA optuna CASCADE`` removes every study and nothing else.
OPTUNA_SCHEMA = "optuna"

#: The metrics a sweep can optimise and the direction that is better: the val metrics
#: the trainer reports at the end (``final_val_*``).
METRIC_DIRECTIONS = {
    "val_f1": "max", "val_loss": "min", "val_roc_auc": "max", "val_pr_auc": "max",
    "val_accuracy": "max", "val_precision": "max", "val_recall": "max",
}
#: The val metrics the trainer reports every epoch (``EpochMetrics``): the ones pruning
#: can watch. A sweep on another metric prunes on val_f1 (every one of them is
#: maximised, as F1 is).
EPOCH_METRICS = ("val_loss", "val_f1", "val_accuracy", "val_roc_auc")
FALLBACK_PRUNING_METRIC = {"max": "val_f1", "min": "val_loss"}

#: The median pruner: trials that must complete before it judges anyone, and epochs a
#: trial trains before it can be pruned (early epochs are noisy).
PRUNER_STARTUP_TRIALS = 3
PRUNER_WARMUP_EPOCHS = 2
MAX_CHOICES = 100
SPEC_KEYS = {"low", "high", "log", "choices", "grid"}
MAX_SEED = 2**32 - 1  # numpy's seed range, which Optuna's samplers use


class SweepStudyUnavailable(Exception):
    """The sweep's Optuna study cannot be created or reached (the reason is the message)."""


# --- the Optuna storage -----------------------------------------------------------------


def optuna_storage_url(settings_dict: Mapping[str, Any] | None = None) -> str:
    """The SQLAlchemy URL of Django's own database (in tests, the test database):
    ``postgresql+psycopg://user:pass@host:port/name``, or with a Unix socket directory
    as host, ``postgresql+psycopg://user:pass@/name?host=/path``."""
    from sqlalchemy.engine import URL

    params = settings_dict or connection.settings_dict
    host = params.get("HOST") or None
    port = int(params["PORT"]) if params.get("PORT") else None
    query: dict[str, str] = {}
    if host and host.startswith("/"):
        query["host"] = host
        if port is not None:
            query["port"] = str(port)
        host, port = None, None
    for option in ("sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout"):
        if option in (params.get("OPTIONS") or {}):
            query[option] = str(params["OPTIONS"][option])
    url = URL.create("postgresql+psycopg", username=params.get("USER") or None,
                     password=params.get("PASSWORD") or None, host=host, port=port,
                     database=params["NAME"], query=query)
    return url.render_as_string(hide_password=False)


@lru_cache(maxsize=4)
def _storage_for(url: str) -> optuna.storages.RDBStorage:
    import optuna
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    # NullPool: no connection outlives its statement, so none is inherited by a forked
    # worker child or lingers in a web process between requests.
    engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as schema_connection:
            schema_connection.execute(sqlalchemy.text(f"CREATE SCHEMA IF NOT EXISTS {OPTUNA_SCHEMA}"))
    except sqlalchemy.exc.IntegrityError:
        pass  # created at the same moment by another process
    finally:
        engine.dispose()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no INFO line per trial in the worker logs
    return optuna.storages.RDBStorage(url, engine_kwargs={
        "poolclass": NullPool, "connect_args": {"options": f"-c search_path={OPTUNA_SCHEMA}"},
    })


def optuna_storage() -> optuna.storages.RDBStorage:
    """The RDB storage of every sweep's study (created on first use; one per process)."""
    return _storage_for(optuna_storage_url())


def _study_open(sweep: Sweep, *, create: bool = False, sampler=None) -> optuna.Study:
    """The sweep's study (created with ``create``), with the sweep's pruner."""
    import optuna

    try:
        storage = optuna_storage()
        if create:
            return optuna.create_study(storage=storage, study_name=sweep.study_name, sampler=sampler,
                                       pruner=sweep_pruner(sweep), direction=_study_direction(sweep))
        return optuna.load_study(study_name=sweep.study_name, storage=storage, sampler=sampler,
                                 pruner=sweep_pruner(sweep))
    except Exception as error:  # the storage's errors are many (driver, SQLAlchemy, Optuna): all mean the same here
        action = "create" if create else "load"
        raise SweepStudyUnavailable(f"could not {action} the Optuna study {sweep.study_name}: "
                                    f"{type(error).__name__}: {error}") from error


def sweep_study(sweep: Sweep) -> optuna.Study:
    """The sweep's study, for reading it (the importances). Raises ``SweepStudyUnavailable``."""
    return _study_open(sweep)


def _study_direction(sweep: Sweep) -> str:
    return "maximize" if sweep.metric_direction == "max" else "minimize"


def sweep_pruner(sweep: Sweep) -> optuna.pruners.BasePruner:
    import optuna

    if not sweep.pruning:
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS, n_warmup_steps=PRUNER_WARMUP_EPOCHS)


def _sampler(sweep: Sweep, asked: int) -> optuna.samplers.BaseSampler:
    """The sampler of the ``asked``-th trial. A sampler lives for one ask (each ask may
    run in another process), so random streams are seeded per trial, from the sweep's
    seed: two trials never draw the same numbers, and a sweep is reproducible."""
    import optuna

    trial_seed = (sweep.seed + asked) % (MAX_SEED + 1)
    if sweep.sampler == SweepSampler.GRID:
        # The grid's order comes from the seed: the same in every process.
        return optuna.samplers.GridSampler(grid_search_space(sweep.search_space), seed=sweep.seed % (MAX_SEED + 1))
    if sweep.sampler == SweepSampler.RANDOM:
        return optuna.samplers.RandomSampler(seed=trial_seed)
    return optuna.samplers.TPESampler(
        seed=trial_seed, n_startup_trials=max(2, min(10, sweep.trial_count // 3)),
        # Parallel trials: running ones count as bad guesses, so the next ask looks elsewhere.
        constant_liar=sweep.parallelism > 1,
    )


# --- the search space -------------------------------------------------------------------


def _json_value(parameter: Hyperparameter, value: Any) -> Any:
    """A coerced value as the search space stores it (and Optuna can: no tuples)."""
    return parameter.as_text(value) if parameter.type == ParamType.INT_LIST else value


def _clean_values(parameter: Hyperparameter, values: object, what: str) -> list[Any]:
    if not isinstance(values, (list, tuple)) or not values:
        raise ValueError(f"{what} must be a non-empty list")
    if len(values) > MAX_CHOICES:
        raise ValueError(f"{what} takes at most {MAX_CHOICES} values (got {len(values)})")
    cleaned: list[Any] = []
    for value in values:
        try:
            item = _json_value(parameter, parameter.coerce(value))
        except ValueError as error:
            raise ValueError(f"{what}: {error}") from None
        if item not in cleaned:
            cleaned.append(item)
    return cleaned


def _clean_spec(parameter: Hyperparameter, spec: object, sampler: str) -> dict[str, Any]:
    """One searched parameter's spec, normalised; ``ValueError`` with the message."""
    if not isinstance(spec, Mapping):
        raise ValueError('must be an object: {"low", "high", "log"} or {"choices": [...]}')
    unknown = sorted(set(map(str, spec)) - SPEC_KEYS)
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)} (known: choices, grid, high, log, low)")
    if "choices" in spec:
        if set(spec) & {"low", "high", "log", "grid"}:
            raise ValueError("give either choices or a range (low, high, log), not both")
        return {"choices": _clean_values(parameter, spec["choices"], "choices")}
    if parameter.type not in (ParamType.INT, ParamType.FLOAT):
        raise ValueError(f"a {parameter.type.value} is searched over choices (e.g. {{\"choices\": [...]}})")
    if "low" not in spec or "high" not in spec:
        raise ValueError("a range needs low and high (or give choices)")
    try:
        low = parameter.coerce(spec["low"])
    except ValueError as error:
        raise ValueError(f"low {error}") from None
    try:
        high = parameter.coerce(spec["high"])
    except ValueError as error:
        raise ValueError(f"high {error}") from None
    if not low < high:
        raise ValueError(f"low must be below high (got {low} and {high})")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ValueError(f"log must be true or false (got {log!r})")
    if log and not parameter.log_scale:
        raise ValueError(f"{parameter.name} cannot be searched on a log scale")
    cleaned: dict[str, Any] = {"low": low, "high": high, "log": log}
    if "grid" in spec:
        grid = _clean_values(parameter, spec["grid"], "grid")
        outside = [value for value in grid if not low <= value <= high]
        if outside:
            raise ValueError(f"grid values must lie between low and high (got {', '.join(map(str, outside))})")
        cleaned["grid"] = grid
    elif sampler == SweepSampler.GRID:
        raise ValueError("a grid sweep needs the values of each searched parameter: give choices or grid")
    return cleaned


def grid_search_space(search_space: Mapping[str, Mapping[str, Any]]) -> dict[str, list[Any]]:
    """The values a grid sweep tries per parameter."""
    return {name: list(spec.get("choices") or spec["grid"]) for name, spec in search_space.items()}


def sweep_distributions(sweep: Sweep) -> dict[str, optuna.distributions.BaseDistribution]:
    """The Optuna distribution of each searched parameter."""
    import optuna

    schema = get_architecture(sweep.architecture_key).schema
    distributions = {}
    for name, spec in sweep.search_space.items():
        if "choices" in spec:
            distributions[name] = optuna.distributions.CategoricalDistribution(spec["choices"])
        elif schema[name].type == ParamType.INT:
            distributions[name] = optuna.distributions.IntDistribution(spec["low"], spec["high"], log=spec["log"])
        else:
            distributions[name] = optuna.distributions.FloatDistribution(spec["low"], spec["high"], log=spec["log"])
    return distributions


@dataclass(frozen=True)
class CleanSearch:
    search_space: dict[str, dict[str, Any]]
    fixed_hyperparameters: dict[str, Any]


def sweep_search_clean(
    architecture_key: object, search_space: object, fixed_hyperparameters: object, sampler: str
) -> CleanSearch:
    """The search space and fixed hyperparameters checked against the architecture's
    schema and normalised (aliases → names). One ``ValidationError`` keyed by
    hyperparameter name (or ``architecture``, ``search_space``,
    ``fixed_hyperparameters``) lists every problem."""
    architecture = get_architecture(architecture_key)
    schema = architecture.schema
    errors: dict[str, str] = {}
    if not isinstance(search_space, Mapping) or not search_space:
        raise ValidationError({"search_space": "search at least one hyperparameter: an object of name: spec"})
    if fixed_hyperparameters is None:
        fixed_hyperparameters = {}
    if not isinstance(fixed_hyperparameters, Mapping):
        raise ValidationError({"fixed_hyperparameters": "must be an object of name: value"})
    space: dict[str, dict[str, Any]] = {}
    for key, spec in search_space.items():
        if not isinstance(key, str) or key not in schema:
            errors[str(key)] = f"not a hyperparameter of {architecture.key} (known: {', '.join(schema.names)})"
            continue
        parameter = schema[key]
        if parameter.name in space:
            errors[parameter.name] = "searched twice (by its name and an alias)"
            continue
        try:
            space[parameter.name] = _clean_spec(parameter, spec, sampler)
        except ValueError as error:
            errors[parameter.name] = str(error)
    for key in fixed_hyperparameters:
        if isinstance(key, str) and key in schema and schema[key].name in search_space:
            errors.setdefault(schema[key].name, "both fixed and searched: choose one")
    fixed: dict[str, Any] = {}
    try:
        resolved = resolve_config(architecture.key, fixed_hyperparameters).hyperparameters.as_dict()
        given = {schema[key].name for key in fixed_hyperparameters}
        fixed = {name: resolved[name] for name in schema.names if name in given}
    except ValidationError as error:
        for key, messages in error.message_dict.items():
            errors.setdefault(key, " ".join(messages))
    if errors:
        raise ValidationError(errors)
    return CleanSearch(space, fixed)


# --- creating a sweep ---------------------------------------------------------------------


def _clean_int(value: object, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError({field: f"must be an integer between {low} and {high} (got {value!r})"})
    return value


def _clean_metric(metric_key: object, metric_direction: object) -> tuple[str, str]:
    if metric_key not in METRIC_DIRECTIONS:
        raise ValidationError({"metric_key": f"must be one of {', '.join(METRIC_DIRECTIONS)} (got {metric_key!r})"})
    natural = METRIC_DIRECTIONS[metric_key]
    if metric_direction in (None, ""):
        return metric_key, natural
    if metric_direction != natural:
        better = "higher" if natural == "max" else "lower"
        raise ValidationError({"metric_direction": f"{metric_key} is better {better}: the direction is {natural}"})
    return metric_key, natural


def sweep_create(
    *,
    experiment_id: int,
    architecture_key: str,
    search_space: Mapping[str, Any],
    fixed_hyperparameters: Mapping[str, Any] | None = None,
    sampler: str = SweepSampler.TPE,
    trial_count: int = 20,
    parallelism: int = 2,
    metric_key: str = "val_f1",
    metric_direction: str | None = None,
    pruning: bool = True,
    seed: int = 0,
    name: str = "",
    dataset_version_id: uuid.UUID | str | None = None,
    user=None,
) -> Sweep:
    """A sweep of ``trial_count`` trials (at most ``parallelism`` at a time) over
    ``search_space``, its study created and its first trials queued.

    ``search_space`` maps a hyperparameter (name or alias) to ``{"low", "high", "log"}``
    (an int or float; ``log`` only where the schema allows it; ``grid``: the values a
    grid sweep takes from the range) or ``{"choices": [...]}`` (any type; an int list as
    ``"256,64"``); ``fixed_hyperparameters`` are the others' values (defaults otherwise).
    A grid sweep needs values for every searched parameter and at most as many trials
    as grid points. ``metric_direction`` defaults to the metric's own.

    Raises one ``ValidationError`` keyed by field (argument or hyperparameter name):
    nothing is written then. A study that cannot be created leaves the sweep ``failed``
    with the reason (returned, not raised).
    """
    if sampler not in SweepSampler.values:
        raise ValidationError({"sampler": f"must be one of {', '.join(SweepSampler.values)} (got {sampler!r})"})
    clean = sweep_search_clean(architecture_key, search_space, fixed_hyperparameters, sampler)
    trial_count = _clean_int(trial_count, "trial_count", 1, MAX_SWEEP_TRIALS)
    parallelism = _clean_int(parallelism, "parallelism", 1, MAX_SWEEP_PARALLELISM)
    seed = _clean_int(seed, "seed", 0, MAX_SEED)
    if sampler == SweepSampler.GRID:
        points = math.prod(len(values) for values in grid_search_space(clean.search_space).values())
        if trial_count > points:
            raise ValidationError({"trial_count": f"the grid has {points} point{'s' if points != 1 else ''}: "
                                                  f"at most {points} trials"})
    metric_key, metric_direction = _clean_metric(metric_key, metric_direction)
    if not isinstance(pruning, bool):
        raise ValidationError({"pruning": f"must be true or false (got {pruning!r})"})
    name = name.strip() if isinstance(name, str) else name
    if not isinstance(name, str) or len(name) > MAX_NAME_LENGTH or "\x00" in name:
        raise ValidationError({"name": f"must be text of at most {MAX_NAME_LENGTH} characters"})
    experiment = Experiment.objects.filter(pk=experiment_id, deleted_at__isnull=True).first() \
        if isinstance(experiment_id, int) and not isinstance(experiment_id, bool) else None
    if experiment is None:
        raise ValidationError({"experiment_id": f"experiment {experiment_id!r} does not exist (or is deleted)"})
    if dataset_version_id is None:
        if experiment.default_dataset_version_id is None:
            raise ValidationError(
                {"dataset_version_id": f"required: experiment {experiment.pk} has no default dataset version"}
            )
        dataset_version_id = experiment.default_dataset_version_id
    version = ready_dataset_version(dataset_version_id, "dataset_version_id")
    architecture = get_architecture(architecture_key)
    sweep = Sweep(
        experiment=experiment, dataset_version=version, architecture_key=architecture.key,
        name=name or f"{architecture.key} sweep ({', '.join(clean.search_space)})"[:MAX_NAME_LENGTH],
        search_space=clean.search_space, fixed_hyperparameters=clean.fixed_hyperparameters,
        sampler=sampler, trial_count=trial_count, parallelism=parallelism, metric_key=metric_key,
        metric_direction=metric_direction, pruning=pruning, seed=seed,
        study_name=f"cvsa-sweep-{uuid.uuid4().hex}", created_by=user if getattr(user, "pk", None) else None,
    )
    sweep.full_clean()
    sweep.save()
    try:
        _study_open(sweep, create=True, sampler=_sampler(sweep, 0))
    except SweepStudyUnavailable as error:
        logger.warning("sweep %s: %s", sweep.pk, error)
        return sweep_fail(sweep.pk, str(error))
    return sweep_advance(sweep.pk)


# --- advancing a sweep ----------------------------------------------------------------------


def objective_key(metric_key: str) -> str:
    """The metric a finished run is judged by: the val metric at its best epoch."""
    return f"final_{metric_key}"


def pruning_metric(sweep: Sweep) -> str:
    """The per-epoch metric the pruner watches: the sweep's metric when it is reported
    every epoch, else val_f1 (val_loss for a minimised one)."""
    if sweep.metric_key in EPOCH_METRICS:
        return sweep.metric_key
    return FALLBACK_PRUNING_METRIC[sweep.metric_direction]


def trial_objectives(sweep: Sweep, run_ids: list[int]) -> dict[int, float]:
    """The objective of each run that has one (one query)."""
    final_key = objective_key(sweep.metric_key)
    rows = RunMetricSummary.objects.filter(run_id__in=run_ids, key__in=[final_key, sweep.metric_key]).values_list(
        "run_id", "key", "latest_value", "min_value", "max_value"
    )
    finals: dict[int, float] = {}
    bests: dict[int, float] = {}
    for run_id, key, latest, low, high in rows:
        if key == final_key:
            finals[run_id] = latest
        else:
            bests[run_id] = high if sweep.metric_direction == "max" else low
    return {**bests, **finals}


def _tell_finished(sweep: Sweep, study: optuna.Study, trials: list[SweepTrial]) -> int:
    """Tell the study every finished run it does not know the end of; how many."""
    from optuna.trial import TrialState

    states = {frozen.number: frozen.state for frozen in study.get_trials(deepcopy=False)}
    finished = [trial for trial in trials if trial.run.status not in ACTIVE_RUN_STATUSES
                and states.get(trial.number) == TrialState.RUNNING]
    objectives = trial_objectives(sweep, [trial.run_id for trial in finished]) if finished else {}
    numbers = {trial.number for trial in trials}
    for number, state in states.items():
        if state == TrialState.RUNNING and number not in numbers:
            # Asked, but its run was never recorded (the process died in between): end it.
            _tell(study, number, state=TrialState.FAIL)
    for trial in finished:
        value = objectives.get(trial.run_id)
        if trial.pruned:
            _tell(study, trial.number, state=TrialState.PRUNED)
        elif trial.run.status == RunStatus.SUCCEEDED and value is not None and math.isfinite(value):
            _tell(study, trial.number, value=value)
        else:  # failed, cancelled by hand, or no value for the metric
            _tell(study, trial.number, state=TrialState.FAIL)
    return len(finished)


def _tell(study: optuna.Study, number: int, *, value: float | None = None, state=None) -> None:
    import optuna

    try:
        study.tell(number, value, state=state, skip_if_finished=True)
    except RuntimeError:
        # The grid sampler calls study.stop() after the last grid point, which only works
        # inside study.optimize(); the trial was stored before that (Optuna's own note).
        if not isinstance(study.sampler, optuna.samplers.GridSampler):
            raise


def _trial_queue(sweep: Sweep, study: optuna.Study, asked: int) -> SweepTrial:
    study.sampler = _sampler(sweep, asked)
    trial = study.ask(sweep_distributions(sweep))
    run = run_queue(
        experiment_id=sweep.experiment_id, architecture_key=sweep.architecture_key,
        hyperparameters={**sweep.fixed_hyperparameters, **trial.params},
        dataset_version_id=sweep.dataset_version_id,
        name=f"{sweep.name[:170]} · trial {trial.number}",
        tags={"sweep": str(sweep.pk), "trial": str(trial.number)},
    )
    return SweepTrial.objects.create(sweep=sweep, number=trial.number, run=run)


def sweep_advance(sweep_id: int) -> Sweep:
    """Tell the study how the finished trials went, queue the next trials (while fewer
    than ``trial_count`` were asked and fewer than ``parallelism`` are active), and
    finish the sweep after its last trial. Idempotent; one call at a time per sweep
    (the row lock). A study that cannot be reached fails the sweep with the reason."""
    failure = ""
    with transaction.atomic():
        sweep = Sweep.objects.select_for_update().get(pk=sweep_id)
        trials = list(SweepTrial.objects.filter(sweep=sweep).select_related("run").only(
            "number", "pruned", "run_id", "sweep_id", "run__status"))
        untold = any(trial.run.status not in ACTIVE_RUN_STATUSES for trial in trials)
        if sweep.status not in ACTIVE_JOB_STATUSES and not untold:
            return sweep
        try:
            study = _study_open(sweep)
            _tell_finished(sweep, study, trials)
            if sweep.status in ACTIVE_JOB_STATUSES:
                _queue_and_finish(sweep, study, trials)
        except SweepStudyUnavailable as error:
            failure = str(error)
        except ValidationError as error:  # the experiment was deleted, the version is gone...
            failure = f"could not queue a trial: {'; '.join(error.messages)}"
    if failure:
        logger.warning("sweep %s failed: %s", sweep_id, failure)
        return sweep_fail(sweep_id, failure)
    return sweep


def _queue_and_finish(sweep: Sweep, study: optuna.Study, trials: list[SweepTrial]) -> None:
    asked = len(trials)
    active = sum(trial.run.status in ACTIVE_RUN_STATUSES for trial in trials)
    while asked < sweep.trial_count and active < sweep.parallelism:
        with transaction.atomic():
            _trial_queue(sweep, study, asked)
        asked += 1
        active += 1
    now = timezone.now()
    updates: list[str] = []
    if sweep.status == JobStatus.QUEUED:
        sweep.status, sweep.started_at = JobStatus.RUNNING, now
        updates += ["status", "started_at"]
    if asked >= sweep.trial_count and active == 0:
        sweep.status, sweep.finished_at = JobStatus.SUCCEEDED, now
        updates += ["status", "finished_at"]
        from optuna.trial import TrialState

        if not any(frozen.state == TrialState.COMPLETE for frozen in study.get_trials(deepcopy=False)):
            sweep.status, sweep.error = JobStatus.FAILED, "no trial completed (every trial failed or was pruned)"
            updates.append("error")
    if updates:
        sweep.save(update_fields=[*dict.fromkeys(updates), "updated_at"])


def _active_trial_runs_cancel(sweep_id: int) -> int:
    cancelled = 0
    for run_id in SweepTrial.objects.filter(sweep_id=sweep_id, run__status__in=ACTIVE_RUN_STATUSES).values_list(
        "run_id", flat=True
    ):
        try:
            tracking.run_cancel(run_id)
        except ValidationError:  # finished meanwhile
            continue
        cancelled += 1
    return cancelled


def sweep_fail(sweep_id: int, reason: str) -> Sweep:
    """Mark an active sweep failed with ``reason`` and cancel its active trial runs."""
    with transaction.atomic():
        sweep = Sweep.objects.select_for_update().get(pk=sweep_id)
        if sweep.status in ACTIVE_JOB_STATUSES:
            sweep.status, sweep.error, sweep.finished_at = JobStatus.FAILED, reason[:10_000], timezone.now()
            sweep.save(update_fields=["status", "error", "finished_at", "updated_at"])
            _active_trial_runs_cancel(sweep.pk)
    return sweep


def sweep_cancel(sweep_id: int) -> Sweep:
    """Cancel an active sweep: no new trials; its queued and running trial runs are
    cancelled (a running one stops at its next batch). ``ValidationError`` once it has
    finished. The study hears of the cancelled trials from the advance step."""
    with transaction.atomic():
        sweep = Sweep.objects.select_for_update().get(pk=sweep_id)
        if sweep.status not in ACTIVE_JOB_STATUSES:
            raise ValidationError({"sweep_id": f"sweep {sweep.pk} is {sweep.status}: only an active sweep "
                                               "can be cancelled"})
        sweep.status, sweep.finished_at = JobStatus.CANCELLED, timezone.now()
        sweep.save(update_fields=["status", "finished_at", "updated_at"])
        _active_trial_runs_cancel(sweep.pk)
        transaction.on_commit(lambda: sweep_advance_enqueue(sweep.pk))
    return sweep


def sweep_advance_enqueue(sweep_id: int) -> bool:
    """Send ``sweep_advance`` to the ``default`` queue (quick work: it must not wait
    behind training runs); False when the broker cannot be reached (the sweeper's
    safety net advances it later)."""
    from training.tasks import sweep_advance as advance_task  # tasks import services

    try:
        advance_task.apply_async(args=[sweep_id], queue="default")
    except Exception:  # broker unreachable: the safety net catches up
        if advance_task.app.conf.task_always_eager:
            raise
        logger.exception("could not queue the advance of sweep %s", sweep_id)
        return False
    return True


def sweeps_advance_active(*, wait: bool = True) -> int:
    """The sweeper's safety net (a lost message; a queued trial cancelled by hand, whose
    worker never ran it): queue an advance of every active sweep; returns how many.
    ``wait`` is the sweepers' common signature: this one takes no lock (the advance
    step locks each sweep, and does nothing when there is nothing to do)."""
    sweep_ids = Sweep.objects.filter(status__in=ACTIVE_JOB_STATUSES).order_by("pk").values_list("pk", flat=True)
    return sum(sweep_advance_enqueue(sweep_id) for sweep_id in sweep_ids)


def sweep_trial_run_ended(run_id: int) -> None:
    """``run_train``'s last step: when the run is a sweep trial, advance its sweep (one
    query for any run). Never raises: the sweeper's safety net catches up."""
    try:
        sweep_id = SweepTrial.objects.filter(run_id=run_id).values_list("sweep_id", flat=True).first()
        if sweep_id is not None:
            sweep_advance_enqueue(sweep_id)
    except Exception:
        logger.exception("could not advance the sweep of run %s", run_id)


# --- pruning --------------------------------------------------------------------------------


@dataclass
class TrialReporter:
    """What a sweep trial's worker needs to report its epochs: the Optuna trial handle
    and the metric the pruner watches."""

    sweep_trial_id: int
    metric: str
    trial: Any  # optuna.trial.Trial
    broken: bool = False


@lru_cache(maxsize=16)
def _trial_reporter(run_id: int, attempt: int) -> TrialReporter | None:
    """The reporter of run ``run_id`` (None for a run that is no pruned sweep's trial):
    looked up once per run attempt, not per epoch."""
    import optuna

    sweep_trial = SweepTrial.objects.select_related("sweep").filter(run_id=run_id).first()
    if sweep_trial is None or not sweep_trial.sweep.pruning:
        return None
    sweep = sweep_trial.sweep
    try:
        study = _study_open(sweep, sampler=optuna.samplers.RandomSampler())
        storage = optuna_storage()
        study_id = storage.get_study_id_from_name(sweep.study_name)
        trial = optuna.trial.Trial(study, storage.get_trial_id_from_study_id_trial_number(study_id, sweep_trial.number))
    except Exception as error:  # pruning is an optimisation: the run trains on without it
        logger.warning("run %s: cannot report to its sweep's study (no pruning): %s", run_id, error)
        return None
    return TrialReporter(sweep_trial.pk, pruning_metric(sweep), trial)


def sweep_trial_epoch_report(run_id: int, attempt: int, epoch: int, values: Mapping[str, float]) -> bool:
    """Report an epoch of a sweep trial's run to its Optuna trial; when the pruner says
    to stop, cancel the run (tag ``pruned: <epoch>``, ``SweepTrial.pruned``) and return
    True. False for any other run, and whenever the study cannot be reached."""
    reporter = _trial_reporter(run_id, attempt)
    if reporter is None or reporter.broken:
        return False
    value = values.get(reporter.metric)
    if value is None or not math.isfinite(value):
        return False
    try:
        reporter.trial.report(value, step=epoch)
        prune = reporter.trial.should_prune()
    except Exception as error:
        reporter.broken = True
        logger.warning("run %s: reporting epoch %s to its sweep's study failed (no pruning): %s", run_id, epoch, error)
        return False
    if not prune:
        return False
    try:
        with transaction.atomic():
            # Marked before the cancel, so that the advance step tells the study PRUNED.
            SweepTrial.objects.filter(pk=reporter.sweep_trial_id).update(pruned=True)
            tracking.run_tags_set(run_id, {"pruned": str(epoch)})
            tracking.run_transition(run_id, RunStatus.CANCELLED, expected_attempt=attempt)
    except (tracking.RunAttemptStale, ValidationError):
        return False  # cancelled or taken over meanwhile: not this worker's to prune
    return True
