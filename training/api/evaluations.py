"""Evaluations, ONNX export and the model card of model versions over REST.

Reads need a team role; queueing or cancelling an evaluation and exporting to ONNX need
``can_run_experiments`` (admins), as runs do. Services validate (one ``ValidationError``
keyed by field → 400, nothing written); an unknown version or evaluation is a 404.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.errors import Conflict
from experiments.api.views import ExperimentsPermissions
from training import evaluation_selectors as selectors
from training import services
from training.model_card import model_card
from training.model_export_selectors import OnnxFileChanged, onnx_export_file
from training.models import EvaluationSplit, JobStatus

TAG = "model evaluation"
VERSION_NOT_FOUND = OpenApiResponse(description="Model version not found")
EVALUATION_NOT_FOUND = OpenApiResponse(description="Evaluation not found")


def evaluation_schema(operation_id: str, summary: str, **kwargs):
    return extend_schema(operation_id=operation_id, summary=summary, tags=[TAG], **kwargs)


# --- shapes -------------------------------------------------------------------------------


class EvaluationCreateInput(serializers.Serializer):
    dataset_version = serializers.UUIDField(help_text="a ready dataset version of the model version's embedding model")
    split = serializers.ChoiceField(choices=EvaluationSplit.choices, default=EvaluationSplit.TEST)

    class Meta:
        ref_name = "EvaluationCreateRequest"


class EvaluationOutput(serializers.Serializer):
    id = serializers.IntegerField()
    version = serializers.IntegerField(source="version_id")
    dataset_version = serializers.UUIDField(source="dataset_version_id")
    dataset_version_name = serializers.SerializerMethodField()
    split = serializers.ChoiceField(choices=EvaluationSplit.choices)
    status = serializers.ChoiceField(choices=JobStatus.choices)
    message = serializers.CharField()
    error = serializers.CharField()
    rows = serializers.IntegerField(allow_null=True, help_text="set once the evaluation has succeeded")
    positives = serializers.IntegerField(allow_null=True)
    metrics = serializers.DictField(
        help_text="accuracy, precision, recall, f1, roc_auc, pr_auc, loss (null when undefined) and threshold"
    )
    confusion_matrix = serializers.ListField(child=serializers.ListField(child=serializers.IntegerField()),
                                             help_text="[[tn, fp], [fn, tp]] at the version's threshold")
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "Evaluation"

    def get_dataset_version_name(self, evaluation) -> str:
        return f"{evaluation.dataset_version.dataset.name} v{evaluation.dataset_version.number}"


class OnnxExportOutput(serializers.Serializer):
    version_id = serializers.IntegerField()
    size = serializers.IntegerField(help_text="bytes of model.onnx")
    sha256 = serializers.CharField()
    max_difference = serializers.FloatField(help_text="max |ONNX Runtime − torch| probability on the checked rows")
    tolerance = serializers.FloatField()
    checked_rows = serializers.IntegerField()
    dataset_version_id = serializers.CharField(help_text="the version's run's dataset version")
    split = serializers.CharField()
    weights_sha256 = serializers.CharField()
    opset = serializers.IntegerField()
    exported_at = serializers.CharField()
    exported_by = serializers.CharField(allow_null=True)
    download = serializers.CharField(help_text="GET this path for the file")

    class Meta:
        ref_name = "OnnxExport"


class ModelCardOutput(serializers.Serializer):
    version = serializers.DictField(help_text="number, stage, threshold, architecture, weights_sha256, ...")
    registered_model = serializers.DictField(help_text="name, description, gate_rules (with descriptions)")
    run = serializers.DictField(help_text="architecture, seed, params, git_commit, reproducibility")
    experiment = serializers.DictField()
    dataset_version = serializers.DictField(
        help_text="name, content_hash, embedding_model, split_counts (label counts per split at freeze)"
    )
    metrics = serializers.DictField(
        help_text="run: final test and val metrics; evaluations: the version's, newest first"
    )
    gates = serializers.ListField(child=serializers.DictField(), help_text="gate results of its promotions")
    stage_history = serializers.ListField(child=serializers.DictField())
    onnx = serializers.DictField(allow_null=True, help_text="the ONNX export's record, null when not exported")

    class Meta:
        ref_name = "ModelCard"


#: The service's error keys → this API's request fields.
REQUEST_FIELDS = {"dataset_version_id": "dataset_version", "split": "split"}


def evaluation_request_errors(error: DjangoValidationError) -> serializers.ValidationError:
    if not hasattr(error, "error_dict"):
        return serializers.ValidationError(error.messages)
    fields: dict = {}
    for key, messages in error.message_dict.items():
        fields.setdefault(REQUEST_FIELDS.get(key, key), []).extend(messages)
    return serializers.ValidationError(fields)


# --- views --------------------------------------------------------------------------------


class ModelVersionEvaluationsApi(ExperimentsPermissions, ListAPIView):
    serializer_class = EvaluationOutput
    not_found_detail = "Model version not found"

    def get_queryset(self):
        version = selectors.evaluated_version_get(self.kwargs["version_id"])
        return selectors.version_evaluations(version.pk)

    @evaluation_schema("model_version_evaluation_list", "A model version's evaluations, newest first",
                       responses={200: EvaluationOutput(many=True), 404: VERSION_NOT_FOUND})
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @evaluation_schema(
        "model_version_evaluation_create", "Queue an evaluation of the version on a dataset version's split (admins)",
        description="The version's weights at its threshold on the split's frozen vectors, as a job on the "
                    "`training` queue; poll `GET /api/v1/evaluations/{id}`. The dataset version must be ready and "
                    "hold vectors of the version's embedding model; nothing is written otherwise.",
        request=EvaluationCreateInput,
        responses={201: EvaluationOutput, 404: VERSION_NOT_FOUND,
                   400: OpenApiResponse(description="bad input (unknown or unready dataset version, other "
                                                    "embedding model, empty split)")})
    def post(self, request, version_id: int):
        version = selectors.evaluated_version_get(version_id)
        data = EvaluationCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            evaluation = services.evaluation_create(
                version_id=version.pk, dataset_version_id=data.validated_data["dataset_version"],
                split=data.validated_data["split"], user=request.user,
            )
        except DjangoValidationError as error:
            raise evaluation_request_errors(error) from None
        return Response(EvaluationOutput(selectors.evaluation_get(evaluation.pk)).data, status=status.HTTP_201_CREATED)


class EvaluationApiView(ExperimentsPermissions, APIView):
    not_found_detail = "Evaluation not found"


class EvaluationDetailApi(EvaluationApiView):
    @evaluation_schema("evaluation_retrieve", "One evaluation: status, metrics, confusion matrix",
                       responses={200: EvaluationOutput, 404: EVALUATION_NOT_FOUND})
    def get(self, request, evaluation_id: int):
        return Response(EvaluationOutput(selectors.evaluation_get(evaluation_id)).data)


class EvaluationCancelApi(EvaluationApiView):
    @evaluation_schema("evaluation_cancel", "Cancel a queued or running evaluation (admins)", request=None,
                       responses={200: EvaluationOutput, 404: EVALUATION_NOT_FOUND,
                                  400: OpenApiResponse(description="the evaluation has already finished")})
    def post(self, request, evaluation_id: int):
        services.evaluation_cancel(evaluation_id)
        return Response(EvaluationOutput(selectors.evaluation_get(evaluation_id)).data)


class ModelVersionApiView(ExperimentsPermissions, APIView):
    not_found_detail = "Model version not found"


class ModelVersionOnnxApi(ModelVersionApiView):
    @evaluation_schema(
        "model_version_onnx_download", "Download the version's ONNX graph",
        description="Input `embedding` (float32, rows × dimensions, rows dynamic), output `probability` "
                    "(float32, one per row). The bytes' SHA-256 is the export's (also sent as the ETag).",
        responses={(200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY, description="model.onnx"),
                   404: OpenApiResponse(description="no such version, or not exported yet"),
                   409: OpenApiResponse(description="the file changed since it was exported: export it again")})
    def get(self, request, version_id: int):
        version = selectors.evaluated_version_get(version_id)
        try:
            found = onnx_export_file(version.pk)
        except OnnxFileChanged as changed:
            raise Conflict(str(changed)) from None
        if found is None:
            raise exceptions.NotFound(f"Model version {version.pk} has not been exported to ONNX: "
                                      f"POST /api/v1/model-versions/{version.pk}/onnx exports it")
        path, info = found
        response = FileResponse(path.open("rb"), as_attachment=True, content_type="application/octet-stream",
                                filename=f"{version.registered_model.name}-v{version.number}.onnx")
        response["ETag"] = f'"{info.sha256}"'
        return response

    @evaluation_schema(
        "model_version_onnx_export", "Export the version to ONNX now, checked against torch (admins)",
        description="Synchronous. The graph is published only when ONNX Runtime's probabilities match torch's "
                    "within 1e-5 on the test split of the version's run's dataset version; otherwise 400 with "
                    "the max difference, and nothing is written. Replaces an earlier export.",
        request=None,
        responses={201: OnnxExportOutput, 404: VERSION_NOT_FOUND,
                   400: OpenApiResponse(description="parity failed, no test rows, or the weights file changed")})
    def post(self, request, version_id: int):
        version = selectors.evaluated_version_get(version_id)
        info = services.model_version_onnx_export(version.pk, user=request.user)
        return Response(info.as_json() | {"download": request.path}, status=status.HTTP_201_CREATED)


class ModelVersionCardApi(ModelVersionApiView):
    @evaluation_schema("model_version_card", "The version's model card: lineage, metrics, gate results, history",
                       responses={200: ModelCardOutput, 404: VERSION_NOT_FOUND})
    def get(self, request, version_id: int):
        return Response(ModelCardOutput(model_card(version_id)).data)
