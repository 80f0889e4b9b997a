"""Builders for the registry tests: real runs trained in the test's process (weights,
predictions, metrics as a worker leaves them) and versions registered through the
service. Tests using them set ``settings.CVSA_ARTIFACTS_DIR`` to a temporary folder."""

from __future__ import annotations

from experiments.models import Experiment, Run, RunStatus
from tests.experiments.factories import ExperimentFactory
from tests.training.factories import separable_dataset_version
from training import services
from training.models import ModelStage, ModelVersion

#: The moves from candidate to each stage (all legal, none through production's gate
#: except the last one to production itself).
_PATH_TO = {
    ModelStage.CANDIDATE: [],
    ModelStage.STAGING: [ModelStage.STAGING],
    ModelStage.PRODUCTION: [ModelStage.STAGING, ModelStage.PRODUCTION],
    ModelStage.ARCHIVED: [ModelStage.ARCHIVED],
}


def trained_run(experiment: Experiment | None = None, *, rows: int = 60, dimensions: int = 8, seed: int = 0,
                architecture: str = "mlp", **hyperparameters) -> Run:
    """A succeeded run trained now on a separable dataset version (the experiment's, or
    a new one of ``rows`` × ``dimensions``)."""
    if experiment is None:
        experiment = ExperimentFactory(
            default_dataset_version=separable_dataset_version(rows=rows, dimensions=dimensions, seed=seed)
        )
    run = services.run_queue(
        experiment_id=experiment.pk, architecture_key=architecture,
        hyperparameters={"epochs": 3, "batch_size": 16, "early_stopping_patience": 0, "seed": seed, **hyperparameters},
        enqueue=False,
    )
    finished = services.run_train(run.pk)
    assert finished.status == RunStatus.SUCCEEDED, finished.error
    return finished


def registered_version(model_name: str = "m", *, stage: str = ModelStage.CANDIDATE, run: Run | None = None,
                       user=None, **run_options) -> ModelVersion:
    """``run`` (default: a new trained run) registered under ``model_name`` and moved to
    ``stage`` through the service (to production through the model's gate)."""
    version = services.model_version_register(run_id=(run or trained_run(**run_options)).pk, model_name=model_name,
                                              user=user)
    for next_stage in _PATH_TO[stage]:
        version = services.model_version_transition(version.pk, to_stage=next_stage, user=user)
    return version
