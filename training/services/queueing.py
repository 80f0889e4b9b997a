"""Queueing a training run: validated through the architecture's schema, recorded as a
queued ``Run`` with its resolved hyperparameters, then handed to the ``training`` queue."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping

from django.core.exceptions import ValidationError
from django.db import transaction

from experiments import services as tracking
from experiments.models import Run, RunStatus
from datasets.augmentation_selectors import has_augmented_rows
from training.architectures import get_architecture, resolve_config

logger = logging.getLogger(__name__)

#: The run param that asks for the version's augmented train rows (``AugmentedItem``);
#: absent when off, so runs without it keep exactly the params they always had. It is
#: not a hyperparameter: readers of a run's config drop it (``run_hyperparameter_params``).
USE_AUGMENTATION_PARAM = "use_augmentation"


def run_queue(
    *,
    experiment_id: int,
    architecture_key: str,
    hyperparameters: Mapping[str, object] | None = None,
    dataset_version_id: uuid.UUID | str | None = None,
    name: str = "",
    origin_run_id: int | None = None,
    tags: Mapping[str, str] | None = None,
    use_augmentation: bool = False,
    enqueue: bool = True,
) -> Run:
    """A queued run of ``architecture_key`` with ``hyperparameters`` (names or aliases,
    values typed or as text; missing ones take their defaults), and its job queued once
    the transaction commits.

    Raises ONE ``ValidationError`` keyed by field ("architecture", a hyperparameter's
    name, "experiment_id", "dataset_version_id", "name", "origin_run_id"); nothing is
    written then. The resolved hyperparameters are the run's params (as a form would
    write them: ``"256,64"``, ``"true"``) and its seed is the ``seed`` hyperparameter.
    ``enqueue=False`` sends no message: the caller runs it (``manage.py train --sync``).
    ``use_augmentation``: train on the version's augmented train rows too (param
    ``use_augmentation`` = ``true``); refused (``use_augmentation``) when the version has none.
    """
    if not isinstance(use_augmentation, bool):
        raise ValidationError({"use_augmentation": f"must be true or false (got {use_augmentation!r})"})
    config = resolve_config(architecture_key, hyperparameters)
    schema = get_architecture(config.architecture).schema
    celery_task_id = str(uuid.uuid4())
    params = {parameter.name: parameter.as_text(config[parameter.name]) for parameter in schema}
    if use_augmentation:
        params[USE_AUGMENTATION_PARAM] = "true"
    with transaction.atomic():
        run = tracking.run_create(
            experiment_id,
            architecture_key=config.architecture,
            seed=config["seed"],
            dataset_version_id=dataset_version_id,
            name=name,
            origin_run_id=origin_run_id,
            tags=tags,
            params=params,
            celery_task_id=celery_task_id,
        )
        if use_augmentation and not has_augmented_rows(run.dataset_version_id):
            # Raised inside the transaction: the run just created is rolled back.
            raise ValidationError({"use_augmentation": (
                f"dataset version {run.dataset_version_id} has no augmented rows: augment its train split first"
            )})
        if enqueue:
            run_id = run.pk
            transaction.on_commit(lambda: run_enqueue(run_id, celery_task_id))
    return run


def run_enqueue(run_id: int, celery_task_id: str, *, claim_attempt: int | None = None) -> bool:
    """Send the run's message to the ``training`` queue (``claim_attempt``: the attempt it
    may take over). When the broker cannot be reached the run is failed with that reason
    and this returns False."""
    from training.tasks import train_run  # tasks import services

    kwargs = {} if claim_attempt is None else {"claim_attempt": claim_attempt}
    try:
        train_run.apply_async(args=[run_id], kwargs=kwargs, task_id=celery_task_id)
    except Exception as error:  # broker unreachable: say so on the run instead of losing it
        if train_run.app.conf.task_always_eager:
            raise
        logger.exception("could not queue training run %s", run_id)
        try:
            tracking.run_transition(
                run_id, RunStatus.FAILED,
                error=f"could not queue the run (broker unavailable: {error}); reproduce it when the broker is back",
            )
        except ValidationError:  # cancelled or finished meanwhile
            pass
        return False
    return True


def run_hyperparameter_params(params: Mapping[str, str]) -> tuple[dict[str, str], bool]:
    """A run's stored params split into (hyperparameters for ``resolve_config``,
    whether it trains with augmentation)."""
    hyperparameters = {key: value for key, value in params.items() if key != USE_AUGMENTATION_PARAM}
    return hyperparameters, params.get(USE_AUGMENTATION_PARAM) == "true"
