"""Writes of the training app: queueing runs, running them, and sweeping the runs whose
worker died; callers use the names re-exported here (``from training import services``)."""

from training.services.execution import (
    OWNERSHIP_CHECK_INTERVAL_SECONDS,
    TRANSIENT_DATABASE_ERRORS,
    WEIGHTS_PATH,
    run_train,
)
from training.services.queueing import run_enqueue, run_queue
from training.services.run_jobs import RUN_JOB, run_fail, training_runs_mark_stale

__all__ = [
    "OWNERSHIP_CHECK_INTERVAL_SECONDS",
    "RUN_JOB",
    "TRANSIENT_DATABASE_ERRORS",
    "WEIGHTS_PATH",
    "run_enqueue",
    "run_fail",
    "run_queue",
    "run_train",
    "training_runs_mark_stale",
]
