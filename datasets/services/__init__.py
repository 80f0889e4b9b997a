"""Writes of the datasets app: embedding-model sync, dataset builds, cleanup, export.

The build pipeline is described in ``datasets.services.build``; callers use the names
re-exported here (``from datasets import services``).
"""

from core.jobs import PENDING_NEVER_STARTED_MARGIN, REDELIVERY_LOCK_WAIT_SECONDS, job_max_attempts, pending_stale_after
from core.validation import validation_error_message  # re-exported for the datasets app's callers
from datasets.services.build import dataset_version_build
from datasets.services.build_requests import (
    DEFAULT_DATASET_NAME,
    DEFAULT_SEED,
    DEFAULT_SPLIT_RATIOS,
    MAX_DATASET_NAME_LENGTH,
    MAX_ERROR_AIDS_LISTED,
    BuildRequest,
    BuildStarted,
    SamplingRequest,
    build_request_video_count,
    dataset_build_request,
    dataset_task_cancel,
    dataset_task_resume,
    embedding_model_for_build,
)
from datasets.services.cleanup import dataset_tasks_cleanup, dataset_version_delete, dataset_versions_cleanup
from datasets.services.curation_jobs import (
    CURATION_RUNNERS,
    curation_task_cancel,
    curation_task_queue,
    curation_task_resume,
    curation_task_run,
)
from datasets.services.embedding_models import embedding_models_sync, embedding_registry
from datasets.services.embedding_store import EMBED_CHUNK_TEXTS, LOCAL_EMBED_CHUNK_TEXTS, LOOKUP_CHUNK_CHECKSUMS
from datasets.services.export import EXPORT_FORMATS, dataset_version_export
from datasets.services.job_lifecycle import (
    BUILD_STEPS,
    HEARTBEAT_INTERVAL_SECONDS,
    PROGRESS_MIN_INTERVAL_SECONDS,
    STEP_NAMES,
    TRANSIENT_DATABASE_ERRORS,
    BuildAborted,
    BuildFailed,
    dataset_task_fail,
    dataset_task_mark_stale,
    stale_after,
)

__all__ = [
    "CURATION_RUNNERS",
    "curation_task_cancel",
    "curation_task_queue",
    "curation_task_resume",
    "curation_task_run",
    "BUILD_STEPS",
    "DEFAULT_DATASET_NAME",
    "DEFAULT_SEED",
    "DEFAULT_SPLIT_RATIOS",
    "EMBED_CHUNK_TEXTS",
    "EXPORT_FORMATS",
    "HEARTBEAT_INTERVAL_SECONDS",
    "LOCAL_EMBED_CHUNK_TEXTS",
    "LOOKUP_CHUNK_CHECKSUMS",
    "MAX_DATASET_NAME_LENGTH",
    "MAX_ERROR_AIDS_LISTED",
    "PENDING_NEVER_STARTED_MARGIN",
    "PROGRESS_MIN_INTERVAL_SECONDS",
    "REDELIVERY_LOCK_WAIT_SECONDS",
    "STEP_NAMES",
    "TRANSIENT_DATABASE_ERRORS",
    "BuildAborted",
    "BuildFailed",
    "BuildRequest",
    "BuildStarted",
    "SamplingRequest",
    "build_request_video_count",
    "dataset_build_request",
    "dataset_task_cancel",
    "dataset_task_fail",
    "dataset_task_mark_stale",
    "dataset_task_resume",
    "dataset_tasks_cleanup",
    "dataset_version_build",
    "dataset_version_delete",
    "dataset_version_export",
    "dataset_versions_cleanup",
    "embedding_model_for_build",
    "embedding_models_sync",
    "embedding_registry",
    "job_max_attempts",
    "pending_stale_after",
    "stale_after",
    "validation_error_message",
]
