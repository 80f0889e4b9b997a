"""Request and response shapes of the ML panel contract (the client's ``types/api.ts``).

Every number a request carries is bounded (``core.api.bounds``), so the schema states the
maxima the server enforces and no value reaches PostgreSQL out of range.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.api.bounds import MAX_BIGINT, bigint_field
from datasets import selectors
from datasets.services import DEFAULT_SEED, MAX_DATASET_NAME_LENGTH
from datasets.models import DatasetTask, DatasetTaskStatus

# Cleanup ages: ten years is "everything"; more would overflow the datetime arithmetic.
MAX_CLEANUP_AGE_DAYS = 3660
MAX_CLEANUP_AGE_HOURS = MAX_CLEANUP_AGE_DAYS * 24
DEFAULT_TASK_LIST_LIMIT = 50
# The panel polls `?limit=50`; a longer history is read in pages of the dataset pages.
MAX_TASK_LIST_LIMIT = 1000


def datetime_text(value) -> str | None:
    return serializers.DateTimeField().to_representation(value) if value else None


# --- responses ------------------------------------------------------------------


class DatasetStatsOutput(serializers.Serializer):
    """``DatasetStats`` plus our extra counts."""

    total_records = serializers.IntegerField()
    new_embeddings = serializers.IntegerField()
    reused_embeddings = serializers.IntegerField()
    inconsistent_labels = serializers.IntegerField()
    embedding_model = serializers.CharField()
    inconsistent_excluded = serializers.IntegerField()
    inconsistent_included = serializers.IntegerField()
    unlabeled_excluded = serializers.IntegerField()
    empty_text_excluded = serializers.IntegerField()
    missing_excluded = serializers.IntegerField()
    cleaning_excluded = serializers.IntegerField(help_text="left out by active cleaning exclusions")
    positives = serializers.IntegerField()
    negatives = serializers.IntegerField()
    splits = serializers.DictField(child=serializers.DictField(child=serializers.IntegerField()))
    embedding_dimensions = serializers.IntegerField()
    content_hash = serializers.CharField()

    class Meta:
        ref_name = "PanelDatasetStats"


class DatasetOutput(serializers.Serializer):
    """``Dataset``: one frozen dataset version."""

    dataset_id = serializers.CharField(source="pk")
    name = serializers.CharField(source="dataset.name")
    version = serializers.IntegerField(source="number")
    status = serializers.CharField()
    description = serializers.SerializerMethodField()
    stats = serializers.SerializerMethodField()
    total_records = serializers.IntegerField()
    embedding_dimension = serializers.IntegerField(source="embedding_dimensions")
    created_at = serializers.DateTimeField()

    class Meta:
        ref_name = "PanelDataset"

    def get_description(self, version) -> str | None:
        return version.description or version.dataset.description or None

    @extend_schema_field(DatasetStatsOutput)
    def get_stats(self, version) -> dict:
        return selectors.dataset_version_stats(version)


class DatasetListOutput(serializers.Serializer):
    datasets = DatasetOutput(many=True)

    class Meta:
        ref_name = "PanelDatasets"


class DatasetRecordOutput(serializers.Serializer):
    aid = serializers.IntegerField()
    embedding = serializers.ListField(child=serializers.FloatField())
    label = serializers.BooleanField()
    split = serializers.CharField()
    metadata = serializers.DictField(help_text="aid, title, description, tags")
    user_labels = serializers.ListField(child=serializers.DictField(), help_text="each user's effective label")
    inconsistent = serializers.BooleanField()
    text_checksum = serializers.CharField(help_text="sha256 hex of the composed text")

    class Meta:
        ref_name = "PanelDatasetRecord"


def dataset_records_output(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``selectors.dataset_version_records`` as the response holds them (label dates as
    text, in place): ``DatasetRecordOutput`` per record would cost seconds on 20,000."""
    for record in records:
        for user_label in record["user_labels"]:
            user_label["created_at"] = datetime_text(user_label["created_at"])
    return records


class DatasetDetailOutput(DatasetOutput):
    dataset = DatasetRecordOutput(many=True)

    class Meta:
        ref_name = "PanelDatasetDetail"


class DatasetDeletedOutput(serializers.Serializer):
    message = serializers.CharField()

    class Meta:
        ref_name = "PanelDatasetDeleted"


class TaskProgressOutput(serializers.Serializer):
    current_step = serializers.CharField()
    total_steps = serializers.IntegerField()
    completed_steps = serializers.IntegerField()
    percentage = serializers.FloatField()
    message = serializers.CharField(allow_null=True)
    estimated_time_remaining = serializers.FloatField(allow_null=True, help_text="seconds")
    done = serializers.IntegerField(help_text="items done in the current step")
    total = serializers.IntegerField(help_text="items in the current step")

    class Meta:
        ref_name = "PanelTaskProgress"


class TaskOutput(serializers.Serializer):
    """``Task``: every key is sent, ``null`` where absent."""

    task_id = serializers.CharField(source="pk")
    type = serializers.CharField()
    status = serializers.ChoiceField(choices=DatasetTaskStatus.choices)
    progress = TaskProgressOutput(source="progress_dict")
    result = serializers.JSONField(allow_null=True, help_text='on completion: {"dataset_id", "stats", ...}')
    error = serializers.SerializerMethodField()
    dataset_id = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    completed_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "PanelTask"

    def get_error(self, task) -> str | None:
        return task.error or None

    def get_dataset_id(self, task) -> str | None:
        return str(task.dataset_version_id) if task.dataset_version_id else None


class TaskListOutput(serializers.Serializer):
    tasks = TaskOutput(many=True)
    total_count = serializers.IntegerField()
    pending_count = serializers.IntegerField()
    running_count = serializers.IntegerField()
    completed_count = serializers.IntegerField()
    failed_count = serializers.IntegerField()
    cancelled_count = serializers.IntegerField()

    class Meta:
        ref_name = "PanelTasks"


class EmbeddingModelOutput(serializers.Serializer):
    name = serializers.CharField()
    dimensions = serializers.IntegerField()
    type = serializers.CharField()
    api_endpoint = serializers.CharField(allow_null=True)
    max_tokens = serializers.IntegerField()
    max_batch_size = serializers.IntegerField()
    is_default = serializers.BooleanField()
    api_key_env = serializers.CharField(allow_null=True, help_text="name of the env var (never the key)")
    api_key_set = serializers.BooleanField(allow_null=True, help_text="whether that env var is set here")

    class Meta:
        ref_name = "PanelEmbeddingModel"


class EmbeddingModelsOutput(serializers.Serializer):
    models = serializers.DictField(child=EmbeddingModelOutput(), help_text="keyed by model key")
    default = serializers.CharField()

    class Meta:
        ref_name = "PanelEmbeddingModels"


class SamplingOutput(serializers.Serializer):
    strategy = serializers.CharField()
    total_available = serializers.IntegerField()
    sampled_count = serializers.IntegerField()
    aid_list = serializers.ListField(child=serializers.IntegerField())
    filters_applied = serializers.DictField()
    sampling_info = serializers.DictField()

    class Meta:
        ref_name = "PanelSamplingResponse"


class StartedOutput(serializers.Serializer):
    dataset_id = serializers.CharField()
    task_id = serializers.CharField()
    total_records = serializers.IntegerField()
    status = serializers.CharField(help_text='always "started"')
    message = serializers.CharField()
    description = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "PanelBuildStarted"


class StartedWithSamplingOutput(StartedOutput):
    sampling_response = SamplingOutput()

    class Meta:
        ref_name = "PanelDatasetCreateResponse"


class TaskCleanupOutput(serializers.Serializer):
    message = serializers.CharField()
    cleaned_count = serializers.IntegerField()

    class Meta:
        ref_name = "PanelTaskCleanupResponse"


class DatasetStatisticsOutput(serializers.Serializer):
    total_datasets = serializers.IntegerField()
    valid_datasets = serializers.IntegerField()
    error_datasets = serializers.IntegerField()
    building_datasets = serializers.IntegerField()
    total_records = serializers.IntegerField()
    total_new_embeddings = serializers.IntegerField()
    total_reused_embeddings = serializers.IntegerField()
    storage_directory = serializers.CharField()
    storage_format = serializers.CharField()

    class Meta:
        ref_name = "PanelDatasetStatistics"


class DatasetCleanupOutput(serializers.Serializer):
    message = serializers.CharField()
    removed_count = serializers.IntegerField()
    kept_in_use = serializers.IntegerField()

    class Meta:
        ref_name = "PanelDatasetCleanupResponse"


def started_payload(task: DatasetTask, *, total_records: int, description: str | None) -> dict[str, Any]:
    version = task.dataset_version
    return {
        "dataset_id": str(task.dataset_version_id),
        "task_id": str(task.pk),
        "total_records": total_records,
        "status": "started",
        "message": f"Dataset building started with task ID: {task.pk}",
        "description": description or None,
        "created_at": datetime_text(version.created_at) if version else None,
    }


# --- requests -------------------------------------------------------------------


class SamplingInput(serializers.Serializer):
    strategy = serializers.ChoiceField(choices=list(selectors.SAMPLING_STRATEGIES))
    limit = serializers.IntegerField(
        min_value=1, max_value=selectors.MAX_SAMPLE_LIMIT, required=False, allow_null=True,
        help_text=f"random strategies default to {selectors.DEFAULT_SAMPLE_LIMIT}; ignored by \"all\"",
    )
    label_value = serializers.BooleanField(
        required=False, allow_null=True, help_text="keep videos whose consensus equals it"
    )
    metadata_filter = serializers.DictField(
        required=False, allow_null=True,
        help_text="keys: " + ", ".join(f"{name} ({meaning})" for name, meaning in selectors.METADATA_FILTERS.items()),
    )
    seed = bigint_field(required=False, allow_null=True, help_text="makes random strategies reproducible")

    class Meta:
        ref_name = "PanelSamplingRequest"

    def validate(self, attrs):
        # The contract: "all" returns every match and ignores `limit` (still validated above).
        if attrs.get("strategy") == "all":
            attrs["limit"] = None
        return attrs


class BuildOptionsInput(serializers.Serializer):
    """Fields shared by both build requests; all but ``embedding_model`` optional."""

    embedding_model = serializers.CharField(help_text="registry key (GET /models/embedding)")
    force_regenerate = serializers.BooleanField(default=False)
    description = serializers.CharField(required=False, allow_null=True, allow_blank=True, default=None)
    name = serializers.CharField(required=False, max_length=MAX_DATASET_NAME_LENGTH, help_text='dataset name (default "default")')
    split_ratios = serializers.ListField(
        child=serializers.FloatField(min_value=0, max_value=1), min_length=3, max_length=3, required=False,
        help_text="train, val, test",
    )
    seed = bigint_field(required=False, default=DEFAULT_SEED)
    include_inconsistent = serializers.BooleanField(default=False)
    include_excluded = serializers.BooleanField(
        default=False, help_text="ignore the active cleaning exclusions (respected by default)"
    )

    class Meta:
        ref_name = "PanelBuildOptions"


class DatasetBuildInput(BuildOptionsInput):
    aid_list = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_BIGINT), allow_empty=False
    )
    id = serializers.CharField(required=False, allow_null=True, allow_blank=True, help_text="accepted, unused")

    class Meta:
        ref_name = "PanelDatasetBuildRequest"


class DatasetCreateWithSamplingInput(BuildOptionsInput):
    sampling = SamplingInput()

    class Meta:
        ref_name = "PanelDatasetCreateRequest"


class TaskListQuery(serializers.Serializer):
    status = serializers.ChoiceField(choices=DatasetTaskStatus.values, required=False,
                                     help_text="only tasks in this status (omit for all)")
    limit = serializers.IntegerField(min_value=1, max_value=MAX_TASK_LIST_LIMIT, default=DEFAULT_TASK_LIST_LIMIT,
                                     help_text="the newest this many tasks")


class TaskCleanupInput(serializers.Serializer):
    max_age_hours = serializers.FloatField(min_value=0, max_value=MAX_CLEANUP_AGE_HOURS, default=24)

    class Meta:
        ref_name = "PanelTaskCleanupRequest"


class DatasetCleanupInput(serializers.Serializer):
    max_age_days = serializers.FloatField(min_value=0, max_value=MAX_CLEANUP_AGE_DAYS, default=30)
    include_ready = serializers.BooleanField(
        default=False,
        help_text="also delete ready (frozen) versions; by default only failed and orphaned builds go",
    )

    class Meta:
        ref_name = "PanelDatasetCleanupRequest"
