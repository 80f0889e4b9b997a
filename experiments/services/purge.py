"""The purge of soft-deleted experiments and runs (``manage.py purge_experiments``)."""

from __future__ import annotations

import logging
import shutil
from datetime import datetime, timedelta
from typing import NamedTuple

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from experiments.models import Experiment, Run
from experiments.services.artifacts import run_artifact_dir

logger = logging.getLogger(__name__)

DEFAULT_PURGE_AFTER_DAYS = 30


class Purged(NamedTuple):
    experiments: int
    runs: int  # runs deleted, those of purged experiments included


def _remove_artifact_folders(run_ids: list[int]) -> None:
    for run_id in run_ids:
        folder = run_artifact_dir(run_id)
        try:
            shutil.rmtree(folder)
        except FileNotFoundError:
            pass
        except OSError:
            logger.exception("purge: could not remove %s", folder)


def experiments_purge(older_than_days: float = DEFAULT_PURGE_AFTER_DAYS, *, now: datetime | None = None) -> Purged:
    """Delete for good the experiments and runs soft-deleted more than
    ``older_than_days`` ago, with their params, metrics, summaries and artifact files
    (the files once the transaction commits). Runs reproduced from a purged run keep
    going, without their origin."""
    if isinstance(older_than_days, bool) or not isinstance(older_than_days, (int, float)) or not (
        0 <= older_than_days <= 36_500
    ):
        raise ValidationError({"older_than_days": f"must be a number from 0 to 36500 (got {older_than_days!r})"})
    cutoff = (now or timezone.now()) - timedelta(days=older_than_days)
    with transaction.atomic():
        experiment_ids = list(Experiment.objects.filter(deleted_at__lt=cutoff).values_list("pk", flat=True))
        run_ids = list(
            Run.objects.filter(Q(deleted_at__lt=cutoff) | Q(experiment_id__in=experiment_ids))
            .values_list("pk", flat=True)
        )
        Run.objects.filter(pk__in=run_ids).delete()
        Experiment.objects.filter(pk__in=experiment_ids).delete()
        transaction.on_commit(lambda: _remove_artifact_folders(run_ids))
    if experiment_ids or run_ids:
        logger.info(
            "purged %d experiment(s) and %d run(s) deleted before %s", len(experiment_ids), len(run_ids), cutoff
        )
    return Purged(experiments=len(experiment_ids), runs=len(run_ids))
