"""The old ML panel client's REST contract (``docs/ml_panel_contract.md``).

Served at ``/api/v1/`` and, unchanged, at ``/v1/`` (the client's default base URL);
paths have no trailing slash. One view per action, nested Input/Output serializers,
services and selectors do the work. Field names and types follow the client's
``types/api.ts``: ``dataset_id`` / ``task_id`` are strings, every success has a JSON
body, every error is ``{"detail": "<string>"}`` with a 4xx (``cvsa_ml.api_errors``):
400 for bad input naming the field, 404 for an unknown id, 409 for a version that is
not ready — nothing is written on bad input (the services validate before their
transaction); only an invalid registry file on the server answers 503. Extra fields
beyond the contract are harmless to the client and are documented in the schema.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import connection
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import exceptions, permissions, serializers
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.response import Response
from rest_framework.views import APIView

from datasets import selectors, services
from datasets.embedding_registry import EmbeddingRegistryError
from datasets.models import DatasetTask, DatasetTaskStatus, DatasetVersion, DatasetVersionItem, DatasetVersionStatus
from labeling.permissions import CanManageDatasets, HasTeamRole
from labeling.selectors import effective_labels_by_video

PANEL_TAG = "ml-panel"
# GET /dataset/{id} inlines every vector as JSON floats; above this, download the export.
PANEL_MAX_INLINE_RECORDS = 20_000
MAX_TASK_LIST_LIMIT = 10**6
# Cleanup ages: ten years is "everything"; more would overflow the datetime arithmetic.
MAX_CLEANUP_AGE_DAYS = 3660
MAX_CLEANUP_AGE_HOURS = MAX_CLEANUP_AGE_DAYS * 24
ALIAS_NOTE = "Also served at the same path under `/v1/` (the ML panel client's default base URL)."


# --- authentication -----------------------------------------------------------


def _is_json_request(request) -> bool:
    media_type = (request.content_type or "").partition(";")[0].strip().lower()
    return media_type == "application/json"


class JsonSessionAuthentication(SessionAuthentication):
    """Session authentication that waives the CSRF check for ``application/json`` bodies only.

    The ML panel client sends no token and no CSRF header, only
    ``Content-Type: application/json`` on every request. A cross-site page cannot
    forge such a request: an HTML form can only send ``application/x-www-form-urlencoded``,
    ``multipart/form-data`` or ``text/plain``, and ``fetch``/XHR with
    ``application/json`` to another origin needs a CORS preflight, which this server
    never grants (no CORS headers at all; ``no-cors`` mode strips the header). So
    with this class the unchanged panel works when served from the same origin as a
    logged-in session, while any other content type (a form post) still goes through
    DRF's normal CSRF check and is refused with 403 without a valid token.
    """

    def enforce_csrf(self, request):
        if _is_json_request(request):
            return
        super().enforce_csrf(request)


class JsonSessionScheme(OpenApiAuthenticationExtension):
    target_class = "datasets.api_panel.JsonSessionAuthentication"
    name = "jsonSessionAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey", "in": "cookie", "name": settings.SESSION_COOKIE_NAME,
            "description": "Browser session; no CSRF token needed when the body is application/json.",
        }


class RegistryUnavailable(exceptions.APIException):
    """``embedding_models.toml`` is missing or invalid: a server problem, not bad input."""

    status_code = 503
    default_detail = "Embedding model registry unavailable"
    default_code = "registry_unavailable"


class Conflict(exceptions.APIException):
    status_code = 409
    default_detail = "Conflict"
    default_code = "conflict"


class TooLargeToInline(exceptions.APIException):
    status_code = 413
    default_detail = "Dataset too large to inline"
    default_code = "too_large"


class PanelApiView(APIView):
    """Reads need any team role (labelers, reviewers, admins); the methods listed in
    ``manage_methods`` (builds, deletes, cleanups) need ``can_manage_datasets`` (admins)."""

    authentication_classes = [TokenAuthentication, JsonSessionAuthentication]
    permission_classes = [permissions.IsAuthenticated, HasTeamRole]
    manage_methods: frozenset[str] = frozenset()

    def get_permissions(self):
        checks = super().get_permissions()
        if self.request is not None and self.request.method in self.manage_methods:
            checks.append(CanManageDatasets())
        return checks

    def handle_exception(self, exc):
        if isinstance(exc, EmbeddingRegistryError):
            exc = RegistryUnavailable(f"Embedding model registry unavailable: {exc}")
        return super().handle_exception(exc)


def panel_schema(operation_id: str, summary: str, *, description: str = "", **kwargs):
    """``extend_schema`` for a panel view: its tag, a stable operation id, the /v1/ alias note."""
    return extend_schema(operation_id=operation_id, tags=[PANEL_TAG], summary=summary,
                         description=f"{ALIAS_NOTE} {description}".strip(), **kwargs)


def _parse_id(raw: str, not_found: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise exceptions.NotFound(not_found) from None


def _number(value: float) -> str:
    return f"{value:g}"


def _datetime(value) -> str | None:
    return serializers.DateTimeField().to_representation(value) if value else None


# --- shared output serializers --------------------------------------------------


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
    seed = serializers.IntegerField(required=False, allow_null=True, help_text="makes random strategies reproducible")

    class Meta:
        ref_name = "PanelSamplingRequest"

    def validate(self, attrs):
        # The contract: "all" returns every match and ignores `limit` (still validated above).
        if attrs.get("strategy") == "all":
            attrs["limit"] = None
        return attrs


class SamplingOutput(serializers.Serializer):
    strategy = serializers.CharField()
    total_available = serializers.IntegerField()
    sampled_count = serializers.IntegerField()
    aid_list = serializers.ListField(child=serializers.IntegerField())
    filters_applied = serializers.DictField()
    sampling_info = serializers.DictField()

    class Meta:
        ref_name = "PanelSamplingResponse"


def _sample(validated: dict[str, Any]) -> selectors.SamplingResult:
    return selectors.sampling_select(
        strategy=validated["strategy"],
        limit=validated.get("limit"),
        label_value=validated.get("label_value"),
        metadata_filter=validated.get("metadata_filter"),
        seed=validated.get("seed"),
    )


class BuildOptionsInput(serializers.Serializer):
    """Fields shared by both build requests; all but ``embedding_model`` optional."""

    embedding_model = serializers.CharField(help_text="registry key (GET /models/embedding)")
    force_regenerate = serializers.BooleanField(default=False)
    description = serializers.CharField(required=False, allow_null=True, allow_blank=True, default=None)
    name = serializers.CharField(required=False, max_length=200, help_text='dataset name (default "default")')
    split_ratios = serializers.ListField(
        child=serializers.FloatField(), min_length=3, max_length=3, required=False, help_text="train, val, test"
    )
    seed = serializers.IntegerField(required=False, default=42)
    include_inconsistent = serializers.BooleanField(default=False)

    class Meta:
        ref_name = "PanelBuildOptions"


def _build_options(request, validated: dict[str, Any]) -> dict[str, Any]:
    """The build service's keyword arguments shared by both build requests."""
    options = {
        "embedding_model_key": validated["embedding_model"],
        "description": validated.get("description") or "",
        "seed": validated["seed"],
        "force_regenerate": validated["force_regenerate"],
        "include_inconsistent": validated["include_inconsistent"],
        "dataset_name": validated.get("name"),
        "user": request.user,
    }
    if "split_ratios" in validated:
        options["split_ratios"] = validated["split_ratios"]
    return options


def _started(task: DatasetTask, *, total_records: int, description: str | None) -> dict[str, Any]:
    version = task.dataset_version
    return {
        "dataset_id": str(task.dataset_version_id),
        "task_id": str(task.pk),
        "total_records": total_records,
        "status": "started",
        "message": f"Dataset building started with task ID: {task.pk}",
        "description": description or None,
        "created_at": _datetime(version.created_at) if version else None,
    }


# --- endpoints ----------------------------------------------------------------


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


class EmbeddingModelsApi(PanelApiView):
    class Output(serializers.Serializer):
        models = serializers.DictField(child=EmbeddingModelOutput(), help_text="keyed by model key")
        default = serializers.CharField()

        class Meta:
            ref_name = "PanelEmbeddingModels"

    @panel_schema("panel_embedding_models", "Embedding models of the registry, keyed by model key",
                  responses={200: Output, 503: OpenApiResponse(description="registry invalid")})
    def get(self, request):
        registry = services.embedding_registry()
        models = {}
        for spec in registry:
            models[spec.key] = EmbeddingModelOutput({
                "name": spec.name,
                "dimensions": spec.dimensions,
                "type": spec.type,
                "api_endpoint": spec.api_endpoint,
                "max_tokens": spec.max_tokens,
                "max_batch_size": spec.max_batch_size,
                "is_default": spec.key == registry.default_key,
                "api_key_env": spec.api_key_env,
                "api_key_set": spec.api_key_is_set,
            }).data
        return Response({"models": models, "default": registry.default_key})


class DatasetListApi(PanelApiView):
    """Ready (frozen) dataset versions, newest first; building and failed ones are left out."""

    class Output(serializers.Serializer):
        datasets = DatasetOutput(many=True)

        class Meta:
            ref_name = "PanelDatasets"

    @panel_schema("panel_datasets_list", "Ready dataset versions, newest first", responses={200: Output})
    def get(self, request):
        versions = selectors.dataset_version_list(status=DatasetVersionStatus.READY)
        return Response({"datasets": DatasetOutput(versions, many=True).data})


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


def _dataset_records(version: DatasetVersion) -> list[dict[str, Any]]:
    """Every member of a ready version with its vector: four queries whatever its size.

    Vectors come from the binary COPY of ``selectors.dataset_version_arrays`` (ordered
    by aid); metadata and labels from one query each, ordered the same way.
    """
    arrays = selectors.dataset_version_arrays(version.pk)
    rows = list(
        DatasetVersionItem.objects.filter(version_id=version.pk)
        .order_by("video__aid")
        .values_list("video_id", "video__aid", "video__title", "video__description", "video__tags",
                     "label", "split", "is_inconsistent", "embedding__checksum")
    )
    labels = effective_labels_by_video(row[0] for row in rows)
    vectors = arrays.X.tolist()
    records = []
    for index, (video_id, aid, title, description, tags, label, split, inconsistent, checksum) in enumerate(rows):
        records.append({
            "aid": aid,
            "embedding": vectors[index],
            "label": label,
            "split": split,
            "metadata": {"aid": aid, "title": title, "description": description, "tags": tags},
            "user_labels": [
                {"user": effective.username, "label": effective.value, "created_at": _datetime(effective.created_at)}
                for effective in labels.get(video_id, [])
            ],
            "inconsistent": inconsistent,
            "text_checksum": checksum,
        })
    return records


class DatasetDetailApi(PanelApiView):
    manage_methods = frozenset({"DELETE"})

    class Output(DatasetOutput):
        dataset = DatasetRecordOutput(many=True)

        class Meta:
            ref_name = "PanelDatasetDetail"

    class DeleteOutput(serializers.Serializer):
        message = serializers.CharField()

        class Meta:
            ref_name = "PanelDatasetDeleted"

    def _version(self, dataset_id: str) -> DatasetVersion:
        try:
            return selectors.dataset_version_get(_parse_id(dataset_id, "Dataset not found"))
        except DatasetVersion.DoesNotExist:
            raise exceptions.NotFound("Dataset not found") from None

    @panel_schema("panel_dataset_retrieve", "A ready dataset version with every record and its vector",
                  description=f"Versions of more than {PANEL_MAX_INLINE_RECORDS} records are refused with 413: "
                              "download them as Parquet or NPZ from the version's page instead.",
                  responses={200: Output, 404: OpenApiResponse(description="Dataset not found"),
                             409: OpenApiResponse(description="still building, or the build failed"),
                             413: OpenApiResponse(description="too many records to inline")})
    def get(self, request, dataset_id: str):
        version = self._version(dataset_id)
        if version.status == DatasetVersionStatus.BUILDING:
            raise Conflict(f"Dataset {version.pk} is still building")
        if version.status == DatasetVersionStatus.FAILED:
            raise Conflict(f"Dataset build failed: {version.error or 'unknown error'}")
        if version.total_records > PANEL_MAX_INLINE_RECORDS:
            raise TooLargeToInline(
                f"Dataset {version.pk} is too large to inline ({version.total_records} records): download it from "
                f"/datasets/versions/{version.pk}/ (Parquet/NPZ)"
            )
        body = DatasetOutput(version).data
        body["dataset"] = _dataset_records(version)
        return Response(body)

    @panel_schema("panel_dataset_delete", "Delete a dataset version and its records",
                  responses={200: DeleteOutput, 400: OpenApiResponse(description="being built or in use"),
                              403: OpenApiResponse(description="not an admin"),
                              404: OpenApiResponse(description="Dataset not found")})
    def delete(self, request, dataset_id: str):
        version_id = _parse_id(dataset_id, "Dataset not found")
        try:
            services.dataset_version_delete(version_id)
        except DatasetVersion.DoesNotExist:
            raise exceptions.NotFound("Dataset not found") from None
        return Response({"message": f"Dataset {version_id} deleted successfully"})


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


class DatasetBuildApi(PanelApiView):
    manage_methods = frozenset({"POST"})

    class Input(BuildOptionsInput):
        aid_list = serializers.ListField(child=serializers.IntegerField(min_value=1), allow_empty=False)
        id = serializers.CharField(required=False, allow_null=True, allow_blank=True, help_text="accepted, unused")

        class Meta:
            ref_name = "PanelDatasetBuildRequest"

    @panel_schema("panel_dataset_build", "Build a dataset version from an aid list (background task)",
                  request=Input,
                  responses={200: StartedOutput, 400: OpenApiResponse(description="bad input; nothing written")})
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        validated = data.validated_data
        task = services.dataset_version_request(aid_list=validated["aid_list"], **_build_options(request, validated))
        return Response(_started(task, total_records=len(validated["aid_list"]),
                                 description=validated.get("description")))


class DatasetSampleApi(PanelApiView):
    @panel_schema("panel_dataset_sample", "Choose aids by a sampling strategy (nothing is written)",
                  request=SamplingInput,
                  responses={200: SamplingOutput, 400: OpenApiResponse(description="bad input")})
    def post(self, request):
        data = SamplingInput(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(_sample(data.validated_data).as_dict())


class DatasetCreateWithSamplingApi(PanelApiView):
    manage_methods = frozenset({"POST"})

    class Input(BuildOptionsInput):
        sampling = SamplingInput()

        class Meta:
            ref_name = "PanelDatasetCreateRequest"

    class Output(StartedOutput):
        sampling_response = SamplingOutput()

        class Meta:
            ref_name = "PanelDatasetCreateResponse"

    @panel_schema("panel_dataset_create_with_sampling", "Sample aids, then build a dataset version from them",
                  request=Input,
                  responses={200: Output, 400: OpenApiResponse(description="bad input or no aids; nothing written")})
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        validated = data.validated_data
        task, sample = services.dataset_version_request_from_sampling(
            sampling=dict(validated["sampling"]), **_build_options(request, validated)
        )
        body = _started(task, total_records=sample.sampled_count, description=validated.get("description"))
        body["sampling_response"] = sample.as_dict()
        return Response(body)


class TaskDetailApi(PanelApiView):
    @panel_schema("panel_task_retrieve", "One data task with its progress",
                  responses={200: TaskOutput, 404: OpenApiResponse(description="Task not found")})
    def get(self, request, task_id: str):
        try:
            task = selectors.dataset_task_get(_parse_id(task_id, "Task not found"))
        except DatasetTask.DoesNotExist:
            raise exceptions.NotFound("Task not found") from None
        return Response(TaskOutput(task).data)


class TaskListApi(PanelApiView):
    """Tasks newest first; the counts are global (all tasks, not the filtered list)."""

    DEFAULT_LIMIT = 50

    class Output(serializers.Serializer):
        tasks = TaskOutput(many=True)
        total_count = serializers.IntegerField()
        pending_count = serializers.IntegerField()
        running_count = serializers.IntegerField()
        completed_count = serializers.IntegerField()
        failed_count = serializers.IntegerField()
        cancelled_count = serializers.IntegerField()

        class Meta:
            ref_name = "PanelTasks"

    @panel_schema(
        "panel_tasks_list", "Data tasks, newest first, with global counts",
        parameters=[
            OpenApiParameter("status", str, enum=DatasetTaskStatus.values),
            OpenApiParameter("limit", int,
                             description=f"default {DEFAULT_LIMIT}; 0 or less: no limit; at most {MAX_TASK_LIST_LIMIT}"),
        ],
        responses={200: Output, 400: OpenApiResponse(description="unknown status or bad limit")},
    )
    def get(self, request):
        status = request.query_params.get("status") or None
        raw_limit = request.query_params.get("limit", "")
        try:
            limit = int(raw_limit) if raw_limit.strip() else self.DEFAULT_LIMIT
        except ValueError:
            raise serializers.ValidationError({"limit": f"must be an integer (got {raw_limit[:50]!r})"}) from None
        if limit > MAX_TASK_LIST_LIMIT:
            raise serializers.ValidationError({"limit": f"must be at most {MAX_TASK_LIST_LIMIT} (got {limit})"})
        tasks = selectors.dataset_task_list(status=status, limit=limit)
        return Response({"tasks": TaskOutput(tasks, many=True).data, **selectors.dataset_task_counts()})


def _cleanup_input(request, serializer_class: type[serializers.Serializer]) -> dict[str, Any]:
    """The body's fields win; the query string is accepted too (the reference server read it there)."""
    if not isinstance(request.data, dict):
        raise serializers.ValidationError("the body must be a JSON object")
    merged = {key: value for key, value in request.query_params.items() if key in serializer_class().fields}
    merged.update(request.data.items())  # a QueryDict (form post) gives its last values
    data = serializer_class(data=merged)
    data.is_valid(raise_exception=True)
    return data.validated_data


class TaskCleanupApi(PanelApiView):
    manage_methods = frozenset({"POST"})

    class Input(serializers.Serializer):
        max_age_hours = serializers.FloatField(min_value=0, max_value=MAX_CLEANUP_AGE_HOURS, default=24)

        class Meta:
            ref_name = "PanelTaskCleanupRequest"

    class Output(serializers.Serializer):
        message = serializers.CharField()
        cleaned_count = serializers.IntegerField()

        class Meta:
            ref_name = "PanelTaskCleanupResponse"

    @panel_schema("panel_tasks_cleanup", "Delete finished tasks older than max_age_hours (default 24)",
                  description="`max_age_hours` may also come as a query parameter.",
                  request=Input, responses={200: Output, 400: OpenApiResponse(description="bad input")})
    def post(self, request):
        hours = _cleanup_input(request, self.Input)["max_age_hours"]
        cleaned = services.dataset_tasks_cleanup(max_age_hours=hours)
        return Response({"message": f"Cleaned up {cleaned} tasks older than {_number(hours)} hours",
                         "cleaned_count": cleaned})


class DatasetStatisticsApi(PanelApiView):
    class Output(serializers.Serializer):
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

    @panel_schema("panel_datasets_stats", "Totals over all dataset versions", responses={200: Output})
    def get(self, request):
        return Response({
            **selectors.dataset_statistics(),
            "storage_directory": f"postgresql database {connection.settings_dict['NAME']!r}",
            "storage_format": "postgresql+pgvector",
        })


class DatasetCleanupApi(PanelApiView):
    manage_methods = frozenset({"POST"})

    class Input(serializers.Serializer):
        max_age_days = serializers.FloatField(min_value=0, max_value=MAX_CLEANUP_AGE_DAYS, default=30)
        include_ready = serializers.BooleanField(
            default=False,
            help_text="also delete ready (frozen) versions; by default only failed and orphaned builds go",
        )

        class Meta:
            ref_name = "PanelDatasetCleanupRequest"

    class Output(serializers.Serializer):
        message = serializers.CharField()
        removed_count = serializers.IntegerField()
        kept_in_use = serializers.IntegerField()

        class Meta:
            ref_name = "PanelDatasetCleanupResponse"

    @panel_schema("panel_datasets_cleanup", "Delete dataset versions older than max_age_days (default 30)",
                  description="Ready versions are kept unless `include_ready` is true; versions still used "
                              "elsewhere are always kept. `max_age_days` may also come as a query parameter.",
                  request=Input, responses={200: Output, 400: OpenApiResponse(description="bad input")})
    def post(self, request):
        validated = _cleanup_input(request, self.Input)
        outcome = services.dataset_versions_cleanup(validated["max_age_days"], include_ready=validated["include_ready"])
        return Response({
            "message": f"Cleanup completed for datasets older than {_number(validated['max_age_days'])} days",
            "removed_count": outcome["removed"],
            "kept_in_use": outcome["kept_in_use"],
        })

