"""Writes of the training app: queueing runs, running them, and sweeping the runs whose
worker died; callers use the names re-exported here (``from training import services``)."""

from training.services.assisted import assisted_hint_set
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
from training.services.evaluations import EvaluationOutcome, evaluation_compute, evaluation_ensure
from training.services.evaluation_jobs import (
    EVALUATION_JOB,
    evaluation_cancel,
    evaluation_create,
    evaluation_enqueue,
    evaluation_fail,
    evaluation_run,
    evaluations_mark_stale,
)
from training.services.model_export import model_version_onnx_export
from training.services.queueing import run_enqueue, run_queue
from training.services.registry import (
    LEGAL_MOVES,
    GateRefused,
    RegistryConflict,
    model_version_register,
    model_version_transition,
    model_version_update,
    registered_model_create,
    registered_model_update,
)
from training.services.reproduce import REPRODUCES_TAG, run_reproduce
from training.services.run_jobs import RUN_JOB, run_fail, training_runs_mark_stale
from training.services.scoring import (
    SCORING_JOB,
    Scored,
    predict_aids,
    predict_items,
    predictions_store,
    scoring_job_cancel,
    scoring_job_create,
    scoring_job_fail,
    scoring_job_run,
    scoring_jobs_mark_stale,
)
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
    "assisted_hint_set",
    "EvaluationOutcome",
    "evaluation_compute",
    "evaluation_ensure",
    "EVALUATION_JOB",
    "evaluation_cancel",
    "evaluation_create",
    "evaluation_enqueue",
    "evaluation_fail",
    "evaluation_run",
    "evaluations_mark_stale",
    "model_version_onnx_export",
    "LEGAL_MOVES",
    "GateRefused",
    "RegistryConflict",
    "model_version_register",
    "model_version_transition",
    "model_version_update",
    "registered_model_create",
    "registered_model_update",
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
    "SCORING_JOB",
    "Scored",
    "predict_aids",
    "predict_items",
    "predictions_store",
    "scoring_job_cancel",
    "scoring_job_create",
    "scoring_job_fail",
    "scoring_job_run",
    "scoring_jobs_mark_stale",
]
