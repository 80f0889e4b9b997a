"""One thin view per action of the ML panel contract; services and selectors do the work.

Authentication, parsing, bounds and the mapping of errors to statuses are the shared ones
of ``core.api`` (see ``datasets.api``); a view raises and declares its ``not_found_detail``.
"""

from __future__ import annotations

from typing import Any

from django.db import connection
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import permissions, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.errors import Conflict, PayloadTooLarge
from core.api.path_params import uuid_or_not_found
from core.api.query_params import parse_query
from core.permissions import CanManageDatasets, HasTeamRole
from datasets import selectors, services
from datasets.api import serializers as shapes
from datasets.models import DatasetVersionStatus

PANEL_TAG = "ml-panel"
# GET /dataset/{id} inlines every vector as JSON floats; above this, download the export.
PANEL_MAX_INLINE_RECORDS = 20_000
ALIAS_NOTE = "Also served at the same path under `/v1/` (the ML panel client's default base URL)."
REGISTRY_INVALID = OpenApiResponse(description="the embedding model registry file on the server is invalid")


class PanelApiView(APIView):
    """Reads need any team role (labelers, reviewers, admins); the methods listed in
    ``manage_methods`` (builds, resumes, deletes, cleanups) need ``can_manage_datasets`` (admins)."""

    permission_classes = [permissions.IsAuthenticated, HasTeamRole]
    manage_methods: frozenset[str] = frozenset()

    def get_permissions(self):
        checks = super().get_permissions()
        if self.request is not None and self.request.method in self.manage_methods:
            checks.append(CanManageDatasets())
        return checks


def panel_schema(operation_id: str, summary: str, *, description: str = "", **kwargs):
    """``extend_schema`` for a panel view: its tag, a stable operation id, the /v1/ alias note."""
    return extend_schema(operation_id=operation_id, tags=[PANEL_TAG], summary=summary,
                         description=f"{ALIAS_NOTE} {description}".strip(), **kwargs)


def _number(value: float) -> str:
    return f"{value:g}"


class EmbeddingModelsApi(PanelApiView):
    @panel_schema("panel_embedding_models", "Embedding models of the registry, keyed by model key",
                  responses={200: shapes.EmbeddingModelsOutput, 503: REGISTRY_INVALID})
    def get(self, request):
        registry = services.embedding_registry()
        models = {
            spec.key: shapes.EmbeddingModelOutput({
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
            for spec in registry
        }
        return Response({"models": models, "default": registry.default_key})


class DatasetListApi(PanelApiView):
    """Ready (frozen) dataset versions, newest first; building and failed ones are left out."""

    @panel_schema("panel_datasets_list", "Ready dataset versions, newest first",
                  responses={200: shapes.DatasetListOutput})
    def get(self, request):
        versions = selectors.dataset_version_list(status=DatasetVersionStatus.READY)
        return Response({"datasets": shapes.DatasetOutput(versions, many=True).data})


class DatasetDetailApi(PanelApiView):
    manage_methods = frozenset({"DELETE"})
    not_found_detail = "Dataset not found"

    @panel_schema("panel_dataset_retrieve", "A ready dataset version with every record and its vector",
                  description=f"Versions of more than {PANEL_MAX_INLINE_RECORDS} records are refused with 413: "
                              "download them as Parquet or NPZ from the version's page instead.",
                  responses={200: shapes.DatasetDetailOutput, 404: OpenApiResponse(description="Dataset not found"),
                             409: OpenApiResponse(description="still building, or the build failed"),
                             413: OpenApiResponse(description="too many records to inline")})
    def get(self, request, dataset_id: str):
        version = selectors.dataset_version_get(uuid_or_not_found(dataset_id))
        if version.status == DatasetVersionStatus.BUILDING:
            raise Conflict(f"Dataset {version.pk} is still building")
        if version.status == DatasetVersionStatus.FAILED:
            raise Conflict(f"Dataset build failed: {version.error or 'unknown error'}")
        if version.total_records > PANEL_MAX_INLINE_RECORDS:
            raise PayloadTooLarge(
                f"Dataset {version.pk} is too large to inline ({version.total_records} records): download it from "
                f"/datasets/versions/{version.pk}/ (Parquet/NPZ)"
            )
        body = shapes.DatasetOutput(version).data
        body["dataset"] = shapes.dataset_records_output(selectors.dataset_version_records(version))
        return Response(body)

    @panel_schema("panel_dataset_delete", "Delete a dataset version and its records",
                  responses={200: shapes.DatasetDeletedOutput,
                             400: OpenApiResponse(description="being built or in use"),
                             403: OpenApiResponse(description="not an admin"),
                             404: OpenApiResponse(description="Dataset not found")})
    def delete(self, request, dataset_id: str):
        version_id = uuid_or_not_found(dataset_id)
        services.dataset_version_delete(version_id)
        return Response({"message": f"Dataset {version_id} deleted successfully"})


class DatasetBuildApi(PanelApiView):
    manage_methods = frozenset({"POST"})

    @panel_schema("panel_dataset_build", "Build a dataset version from an aid list (background task)",
                  request=shapes.DatasetBuildInput,
                  responses={200: shapes.StartedOutput, 400: OpenApiResponse(description="bad input; nothing written"),
                             503: REGISTRY_INVALID})
    def post(self, request):
        data = shapes.DatasetBuildInput(data=request.data)
        data.is_valid(raise_exception=True)
        validated = data.validated_data
        started = services.dataset_build_request(services.BuildRequest.from_panel(validated), user=request.user)
        return Response(shapes.started_payload(started.task, total_records=started.requested,
                                               description=validated.get("description")))


def _sample(validated: dict[str, Any]) -> selectors.SamplingResult:
    return selectors.sampling_select(
        strategy=validated["strategy"],
        limit=validated.get("limit"),
        label_value=validated.get("label_value"),
        metadata_filter=validated.get("metadata_filter"),
        seed=validated.get("seed"),
    )


class DatasetSampleApi(PanelApiView):
    @panel_schema("panel_dataset_sample", "Choose aids by a sampling strategy (nothing is written)",
                  request=shapes.SamplingInput,
                  responses={200: shapes.SamplingOutput, 400: OpenApiResponse(description="bad input")})
    def post(self, request):
        data = shapes.SamplingInput(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(_sample(data.validated_data).as_dict())


class DatasetCreateWithSamplingApi(PanelApiView):
    manage_methods = frozenset({"POST"})

    @panel_schema("panel_dataset_create_with_sampling", "Sample aids, then build a dataset version from them",
                  request=shapes.DatasetCreateWithSamplingInput,
                  responses={200: shapes.StartedWithSamplingOutput,
                             400: OpenApiResponse(description="bad input or no aids; nothing written"),
                             503: REGISTRY_INVALID})
    def post(self, request):
        data = shapes.DatasetCreateWithSamplingInput(data=request.data)
        data.is_valid(raise_exception=True)
        validated = data.validated_data
        started = services.dataset_build_request(
            services.BuildRequest.from_panel({**validated, "sampling": dict(validated["sampling"])}), user=request.user
        )
        body = shapes.started_payload(started.task, total_records=started.requested,
                                      description=validated.get("description"))
        body["sampling_response"] = started.sample.as_dict()
        return Response(body)


class TaskDetailApi(PanelApiView):
    not_found_detail = "Task not found"

    @panel_schema("panel_task_retrieve", "One data task with its progress",
                  responses={200: shapes.TaskOutput, 404: OpenApiResponse(description="Task not found")})
    def get(self, request, task_id: str):
        return Response(shapes.TaskOutput(selectors.dataset_task_get(uuid_or_not_found(task_id))).data)


class TaskResumeApi(PanelApiView):
    manage_methods = frozenset({"POST"})
    not_found_detail = "Task not found"

    @panel_schema("panel_task_resume", "Resume a failed or cancelled build; it reuses the embeddings stored",
                  description="Admins only. The task goes back to `pending` and a worker continues the build.",
                  request=None,
                  responses={200: shapes.TaskOutput,
                             400: OpenApiResponse(description="not a resumable build (pending, running, completed, "
                                                              "or its version was deleted), or its model's API key "
                                                              "is not set"),
                             404: OpenApiResponse(description="Task not found")})
    def post(self, request, task_id: str):
        task = services.dataset_task_resume(uuid_or_not_found(task_id))
        return Response(shapes.TaskOutput(task).data)


class TaskListApi(PanelApiView):
    """Tasks newest first; the counts are global (all tasks, not the filtered list)."""

    @panel_schema("panel_tasks_list", "Data tasks, newest first, with global counts",
                  parameters=[shapes.TaskListQuery],
                  responses={200: shapes.TaskListOutput,
                             400: OpenApiResponse(description="unknown status or bad limit")})
    def get(self, request):
        query = parse_query(request, shapes.TaskListQuery)
        tasks = selectors.dataset_task_list(status=query.get("status"), limit=query["limit"])
        return Response({"tasks": shapes.TaskOutput(tasks, many=True).data, **selectors.dataset_task_counts()})


def _cleanup_input(request, serializer_class: type[serializers.Serializer]) -> dict[str, Any]:
    """The body's fields win; the query string is accepted too (the reference server read it there)."""
    merged = {key: value for key, value in request.query_params.items() if key in serializer_class().fields}
    merged.update(request.data)
    data = serializer_class(data=merged)
    data.is_valid(raise_exception=True)
    return data.validated_data


class TaskCleanupApi(PanelApiView):
    manage_methods = frozenset({"POST"})

    @panel_schema("panel_tasks_cleanup", "Delete finished tasks older than max_age_hours (default 24)",
                  description="`max_age_hours` may also come as a query parameter; the body's value wins.",
                  parameters=[shapes.TaskCleanupInput], request=shapes.TaskCleanupInput,
                  responses={200: shapes.TaskCleanupOutput, 400: OpenApiResponse(description="bad input")})
    def post(self, request):
        hours = _cleanup_input(request, shapes.TaskCleanupInput)["max_age_hours"]
        cleaned = services.dataset_tasks_cleanup(max_age_hours=hours)
        return Response({"message": f"Cleaned up {cleaned} tasks older than {_number(hours)} hours",
                         "cleaned_count": cleaned})


class DatasetStatisticsApi(PanelApiView):
    @panel_schema("panel_datasets_stats", "Totals over all dataset versions",
                  responses={200: shapes.DatasetStatisticsOutput})
    def get(self, request):
        return Response({
            **selectors.dataset_statistics(),
            "storage_directory": f"postgresql database {connection.settings_dict['NAME']!r}",
            "storage_format": "postgresql+pgvector",
        })


class DatasetCleanupApi(PanelApiView):
    manage_methods = frozenset({"POST"})

    @panel_schema("panel_datasets_cleanup", "Delete dataset versions older than max_age_days (default 30)",
                  description="Ready versions are kept unless `include_ready` is true; versions still used "
                              "elsewhere are always kept. The fields may also come as query parameters; the "
                              "body's values win.",
                  parameters=[shapes.DatasetCleanupInput], request=shapes.DatasetCleanupInput,
                  responses={200: shapes.DatasetCleanupOutput, 400: OpenApiResponse(description="bad input")})
    def post(self, request):
        validated = _cleanup_input(request, shapes.DatasetCleanupInput)
        outcome = services.dataset_versions_cleanup(validated["max_age_days"], include_ready=validated["include_ready"])
        return Response({
            "message": f"Cleanup completed for datasets older than {_number(validated['max_age_days'])} days",
            "removed_count": outcome["removed"],
            "kept_in_use": outcome["kept_in_use"],
        })
