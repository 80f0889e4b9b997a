"""Writes of the experiments app; callers use the names re-exported here
(``from experiments import services``)."""

from experiments.services.artifacts import (
    RUN_LOG_PATH,
    artifact_file,
    artifacts_root,
    clean_artifact_path,
    file_sha256,
    run_artifact_dir,
    run_artifact_record,
)
from experiments.services.experiments import (
    DEFAULT_METRIC_KEY,
    experiment_create,
    experiment_delete,
    experiment_restore,
    experiment_update,
)
from experiments.services.purge import DEFAULT_PURGE_AFTER_DAYS, Purged, experiments_purge
from experiments.services.runs import (
    RunAttemptStale,
    run_cancel,
    run_create,
    run_delete,
    run_heartbeat,
    run_is_current,
    run_reproducibility_update,
    run_restore,
    run_tags_set,
    run_transition,
)
from experiments.services.tracking import (
    MAX_METRIC_BATCH,
    MetricsLogged,
    MetricValue,
    param_value_text,
    run_metrics_clear,
    run_metrics_log,
    run_params_log,
)

__all__ = [
    "DEFAULT_METRIC_KEY",
    "DEFAULT_PURGE_AFTER_DAYS",
    "MAX_METRIC_BATCH",
    "MetricValue",
    "MetricsLogged",
    "Purged",
    "RUN_LOG_PATH",
    "RunAttemptStale",
    "artifact_file",
    "artifacts_root",
    "clean_artifact_path",
    "experiment_create",
    "experiment_delete",
    "experiment_restore",
    "experiment_update",
    "experiments_purge",
    "file_sha256",
    "param_value_text",
    "run_artifact_dir",
    "run_artifact_record",
    "run_cancel",
    "run_create",
    "run_delete",
    "run_heartbeat",
    "run_is_current",
    "run_metrics_clear",
    "run_metrics_log",
    "run_params_log",
    "run_reproducibility_update",
    "run_restore",
    "run_tags_set",
    "run_transition",
]
