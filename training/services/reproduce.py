"""Reproducing a run: queue a new run of the same experiment with the same dataset
version, architecture, resolved hyperparameters and seed, recording its origin.

The params are read back from the origin's ``Param`` rows and validated through the
architecture's schema again (``run_queue``), so a run whose params no longer fit (an
architecture removed, a bound tightened since) is refused with the field named instead
of queued with something else. On the CPU, with the same code, the reproduction's metrics
equal the origin's exactly (the trainer is deterministic there); the run page shows the
differences.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError

from core.validation import validation_error_message
from datasets.models import DatasetVersionStatus
from experiments.models import MAX_NAME_LENGTH, Param, Run
from experiments.services.validation import clean_id
from training.architectures import resolve_config
from training.services.queueing import run_hyperparameter_params, run_queue

#: The tag a reproduction carries: the id of the run it reproduces.
REPRODUCES_TAG = "reproduces"
REPRODUCTION_NAME_PREFIX = "reproduce-"


def run_reproduce(run_id: int, *, enqueue: bool = True) -> Run:
    """A queued copy of run ``run_id`` (``origin_run`` = it, tag ``reproduces``).

    Raises ``Run.DoesNotExist`` for an unknown id, and ONE ``ValidationError`` (nothing
    written) when the run or its experiment is deleted, its dataset version is no
    longer ready, or its params no longer pass the architecture's schema."""
    run = Run.objects.select_related("experiment", "dataset_version").only(
        "id", "name", "seed", "architecture_key", "deleted_at", "experiment__id", "experiment__deleted_at",
        "dataset_version__id", "dataset_version__status",
    ).get(pk=clean_id(run_id, "run_id"))
    if run.deleted_at is not None:
        raise ValidationError({"run_id": f"run {run.pk} is deleted: restore it before reproducing it"})
    if run.experiment.deleted_at is not None:
        raise ValidationError(
            {"run_id": f"run {run.pk}'s experiment is deleted: restore it before reproducing the run"}
        )
    version = run.dataset_version
    if version.status != DatasetVersionStatus.READY:
        raise ValidationError({"dataset_version_id": (
            f"run {run.pk}'s dataset version {version.pk} is {version.status}, not ready: it cannot be reproduced"
        )})
    params, use_augmentation = run_hyperparameter_params(
        dict(Param.objects.filter(run_id=run.pk).values_list("key", "value"))
    )
    try:
        config = resolve_config(run.architecture_key, params)
    except ValidationError as error:
        raise ValidationError({"params": (
            f"run {run.pk}'s params no longer pass the {run.architecture_key} schema: "
            f"{validation_error_message(error, with_fields=True)}"
        )}) from None
    if config["seed"] != run.seed:
        raise ValidationError({"seed": f"run {run.pk}'s seed {run.seed} differs from its seed param {config['seed']}"})
    return run_queue(
        experiment_id=run.experiment.pk,
        architecture_key=config.architecture,
        hyperparameters=config.hyperparameters.as_dict(),
        dataset_version_id=version.pk,
        name=(REPRODUCTION_NAME_PREFIX + run.name)[:MAX_NAME_LENGTH],
        origin_run_id=run.pk,
        tags={REPRODUCES_TAG: str(run.pk)},
        use_augmentation=use_augmentation,
        enqueue=enqueue,
    )
