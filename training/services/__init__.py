"""Writes of the training app: queueing runs, running them, and sweeping the runs whose
worker died; callers use the names re-exported here (``from training import services``)."""

from training.services.execution import (
    TRANSIENT_DATABASE_ERRORS,
    WEIGHTS_PATH,
    run_train,
)
from training.services.label_issues import (
    LABEL_ISSUE_SCAN_JOB,
    label_issue_review_requests_create,
    label_issue_scan_cancel,
    label_issue_scan_create,
    label_issue_scan_fail,
    label_issue_scan_run,
    label_issue_scans_mark_stale,
)
from training.services.queueing import run_enqueue, run_queue
from training.services.reproduce import REPRODUCES_TAG, run_reproduce
from training.services.run_jobs import RUN_JOB, run_fail, training_runs_mark_stale
from training.services.sweeps import (
    SweepStudyUnavailable,
    sweep_advance,
    sweep_advance_enqueue,
    sweep_cancel,
    sweep_create,
    sweep_fail,
    sweeps_advance_active,
)

__all__ = [
    "LABEL_ISSUE_SCAN_JOB",
    "label_issue_review_requests_create",
    "label_issue_scan_cancel",
    "label_issue_scan_create",
    "label_issue_scan_fail",
    "label_issue_scan_run",
    "label_issue_scans_mark_stale",
    "RUN_JOB",
    "REPRODUCES_TAG",
    "TRANSIENT_DATABASE_ERRORS",
    "WEIGHTS_PATH",
    "run_enqueue",
    "run_fail",
    "run_queue",
    "run_reproduce",
    "run_train",
    "SweepStudyUnavailable",
    "sweep_advance",
    "sweep_advance_enqueue",
    "sweep_cancel",
    "sweep_create",
    "sweep_fail",
    "sweeps_advance_active",
    "training_runs_mark_stale",
]
