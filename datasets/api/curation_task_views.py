"""Curation tasks over the API: queue one (cleaning, deduplication, augmentation, import),
read it, cancel or resume it, and upload a label file to import in the background.

Thin: serializers check shapes, ``services.curation_jobs`` checks the type's parameters
(400, nothing written) and queues the job. Reads need a team role; writes need
``can_manage_datasets`` (admins).
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from core.api.path_params import uuid_or_not_found
from datasets.api import serializers as shapes
from datasets.api.views import PanelApiView
from datasets.models import DatasetTask, DatasetVersion
from datasets.services.curation_jobs import (
    CURATION_RUNNERS,
    curation_task_cancel,
    curation_task_queue,
    curation_task_resume,
)
from datasets.services.import_jobs import label_upload_save
from datasets.services.job_lifecycle import CURATION_TASK_TYPES
from labeling.label_import import FORMATS

CURATION_TAG = "curation"
BAD_INPUT = OpenApiResponse(description="unknown type, bad parameters or dataset (nothing written)")
NOT_FOUND = OpenApiResponse(description="Task not found")


class CurationTaskInput(serializers.Serializer):
    type = serializers.ChoiceField(choices=sorted(CURATION_RUNNERS))
    params = serializers.DictField(required=False, default=dict, help_text="the type's parameters")
    dataset_id = serializers.UUIDField(required=False, allow_null=True, help_text="augmentation: the dataset version")


class LabelImportUploadInput(serializers.Serializer):
    file = serializers.FileField(help_text="a .jsonl or .csv file with aid, user, label, created_at")
    format = serializers.ChoiceField(choices=FORMATS, required=False)
    atomic = serializers.BooleanField(required=False, default=True)
    dry_run = serializers.BooleanField(required=False, default=False)

    class Meta:
        ref_name = "CurationLabelImportUpload"


def _curation_task(task_id: str) -> DatasetTask:
    """404 for an unknown id and for tasks that are not curation tasks (builds have their own API)."""
    return DatasetTask.objects.get(pk=uuid_or_not_found(task_id), type__in=CURATION_TASK_TYPES)


def _accepted(task: DatasetTask) -> Response:
    return Response(shapes.TaskOutput(task).data, status=status.HTTP_202_ACCEPTED)


class CurationTaskListApi(PanelApiView):
    manage_methods = frozenset({"POST"})

    @extend_schema(operation_id="curation_task_queue", tags=[CURATION_TAG], request=CurationTaskInput,
                   summary="Queue a curation task; poll GET /api/v1/curation/tasks/{id} for its progress",
                   responses={202: shapes.TaskOutput, 400: BAD_INPUT})
    def post(self, request):
        serializer = CurationTaskInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        version = None
        if data.get("dataset_id"):
            version = DatasetVersion.objects.filter(pk=data["dataset_id"]).first()
            if version is None:
                raise serializers.ValidationError({"dataset_id": f"no dataset version {data['dataset_id']}"})
        task = curation_task_queue(task_type=data["type"], params=data["params"], user=request.user,
                                   dataset_version=version)
        return _accepted(task)


class CurationTaskDetailApi(PanelApiView):
    not_found_detail = "Task not found"

    @extend_schema(operation_id="curation_task_retrieve", tags=[CURATION_TAG],
                   summary="A curation task: status, progress, result, error",
                   responses={200: shapes.TaskOutput, 404: NOT_FOUND})
    def get(self, request, task_id: str):
        return Response(shapes.TaskOutput(_curation_task(task_id)).data)


class CurationTaskCancelApi(PanelApiView):
    manage_methods = frozenset({"POST"})
    not_found_detail = "Task not found"

    @extend_schema(operation_id="curation_task_cancel", tags=[CURATION_TAG], request=None,
                   summary="Cancel a pending or running curation task (its worker stops at the next progress write)",
                   responses={200: shapes.TaskOutput, 400: OpenApiResponse(description="already finished"),
                              404: NOT_FOUND})
    def post(self, request, task_id: str):
        return Response(shapes.TaskOutput(curation_task_cancel(_curation_task(task_id).pk)).data)


class CurationTaskResumeApi(PanelApiView):
    manage_methods = frozenset({"POST"})
    not_found_detail = "Task not found"

    @extend_schema(operation_id="curation_task_resume", tags=[CURATION_TAG], request=None,
                   summary="Run a failed or cancelled curation task again (its runner starts over)",
                   responses={202: shapes.TaskOutput, 400: OpenApiResponse(description="not failed or cancelled"),
                              404: NOT_FOUND})
    def post(self, request, task_id: str):
        return _accepted(curation_task_resume(_curation_task(task_id).pk))


class CurationLabelImportApi(PanelApiView):
    """The background label import: the file is stored, an ``import`` task imports it."""

    manage_methods = frozenset({"POST"})
    parser_classes = [MultiPartParser]

    @extend_schema(operation_id="curation_label_import", tags=[CURATION_TAG],
                   request={"multipart/form-data": LabelImportUploadInput},
                   summary="Import a label file (aid, user, label, created_at) in the background",
                   responses={202: shapes.TaskOutput, 400: BAD_INPUT})
    def post(self, request):
        serializer = LabelImportUploadInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        params = label_upload_save(data["file"], format=data.get("format"))
        params.update(atomic=data["atomic"], dry_run=data["dry_run"])
        return _accepted(curation_task_queue(task_type="import", params=params, user=request.user))
