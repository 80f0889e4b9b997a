"""Label-issue scans over REST: start one, read it, page through its ranked issues,
cancel it, and send chosen issues to the review queue.

Reads need a team role; starting and cancelling need ``can_run_experiments`` (admins),
as runs do; sending to review needs a reviewer or an admin (the labeling service checks
it: 403 otherwise). Services validate (one ``ValidationError`` keyed by field → 400,
nothing written).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.bounds import bigint_field
from core.permissions import HasTeamRole
from experiments.api.views import ExperimentsPermissions
from labeling.services import MAX_REVIEW_REQUEST_VIDEOS
from training import label_issue_selectors as selectors
from training import services
from training.architectures import ARCHITECTURES
from training.models import MAX_FOLDS, MIN_FOLDS, JobStatus, LabelIssueScan
from training.services.label_issues import DEFAULT_FOLDS

TAG = "label issues"
SCAN_NOT_FOUND = OpenApiResponse(description="Label-issue scan not found")
MAX_REASON_LENGTH = 2000


def label_issue_schema(operation_id: str, summary: str, **kwargs):
    return extend_schema(operation_id=operation_id, summary=summary, tags=[TAG], **kwargs)


# --- shapes -------------------------------------------------------------------------------


class LabelIssueScanCreateInput(serializers.Serializer):
    dataset_version = serializers.UUIDField(required=False, allow_null=True,
                                            help_text="a ready dataset version (default: the run's)")
    run = bigint_field(min_value=1, required=False, allow_null=True,
                       help_text="reuse this run's architecture and params (and dataset version)")
    architecture = serializers.ChoiceField(choices=list(ARCHITECTURES), required=False, allow_null=True,
                                           help_text="required without a run; see GET /api/v1/architectures")
    hyperparameters = serializers.DictField(required=False, default=dict,
                                            help_text="name: value overrides, checked against the schema")
    folds = serializers.IntegerField(min_value=MIN_FOLDS, max_value=MAX_FOLDS, default=DEFAULT_FOLDS)

    class Meta:
        ref_name = "LabelIssueScanCreateRequest"


class LabelIssueScanOutput(serializers.Serializer):
    id = serializers.IntegerField()
    dataset_version = serializers.UUIDField(source="dataset_version_id")
    dataset_version_name = serializers.SerializerMethodField()
    source_run = serializers.IntegerField(source="source_run_id", allow_null=True)
    architecture = serializers.CharField(source="architecture_key")
    hyperparameters = serializers.DictField()
    folds = serializers.IntegerField()
    folds_done = serializers.IntegerField()
    status = serializers.ChoiceField(choices=JobStatus.choices)
    message = serializers.CharField()
    error = serializers.CharField()
    issue_count = serializers.IntegerField(allow_null=True, help_text="set once the scan has succeeded")
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "LabelIssueScan"

    def get_dataset_version_name(self, scan: LabelIssueScan) -> str:
        return f"{scan.dataset_version.dataset.name} v{scan.dataset_version.number}"


class LabelIssueOutput(serializers.Serializer):
    rank = serializers.IntegerField(help_text="1 = most likely mislabeled")
    video_id = serializers.IntegerField()
    aid = serializers.IntegerField(source="video.aid")
    title = serializers.CharField(source="video.title")
    tags = serializers.ListField(child=serializers.CharField(), source="video.tag_list")
    given_label = serializers.BooleanField(help_text="the label in the dataset version")
    probability = serializers.FloatField(help_text="out-of-fold predicted probability of yes")
    label_quality = serializers.FloatField(help_text="cleanlab's label quality score (low: likely wrong)")
    labelers = serializers.IntegerField(source="video.consensus.total_votes", default=0)
    agreement = serializers.FloatField(source="video.consensus.agreement", allow_null=True, default=None)
    labelers_disagree = serializers.BooleanField(source="video.consensus.is_inconsistent", default=False)
    in_review = serializers.BooleanField(help_text="the video has an open review request")

    class Meta:
        ref_name = "LabelIssue"


class ReviewRequestsInput(serializers.Serializer):
    video_ids = serializers.ListField(child=bigint_field(min_value=1), min_length=1,
                                      max_length=MAX_REVIEW_REQUEST_VIDEOS,
                                      help_text="videos among the scan's issues")
    reason = serializers.CharField(required=False, allow_blank=True, max_length=MAX_REASON_LENGTH,
                                   help_text="shown to the reviewer; default: each video's out-of-fold "
                                             "probability and given label")

    class Meta:
        ref_name = "LabelIssueReviewRequestsRequest"


class ReviewRequestsOutput(serializers.Serializer):
    created = serializers.IntegerField()
    already_open = serializers.IntegerField(help_text="videos that already had an open request (left as they were)")

    class Meta:
        ref_name = "LabelIssueReviewRequests"


#: The service's error keys → this API's request fields.
REQUEST_FIELDS = {"dataset_version_id": "dataset_version", "run_id": "run", "architecture": "architecture",
                  "folds": "folds", "hyperparameters": "hyperparameters"}


def scan_request_errors(error: DjangoValidationError) -> serializers.ValidationError:
    """The service's errors by request field; a hyperparameter's under ``hyperparameters``."""
    if not hasattr(error, "error_dict"):
        return serializers.ValidationError(error.messages)
    fields: dict = {}
    for key, messages in error.message_dict.items():
        if key in REQUEST_FIELDS:
            fields.setdefault(REQUEST_FIELDS[key], []).extend(messages)
        else:
            fields.setdefault("hyperparameters", {})[key] = messages
    return serializers.ValidationError(fields)


# --- views --------------------------------------------------------------------------------


class LabelIssueScanListApi(ExperimentsPermissions, ListAPIView):
    serializer_class = LabelIssueScanOutput

    def get_queryset(self):
        return selectors.label_issue_scan_list()

    @label_issue_schema("label_issue_scan_list", "Label-issue scans, newest first")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @label_issue_schema(
        "label_issue_scan_create", "Start a label-issue scan over a dataset version (admins)",
        description="Out-of-fold predicted probabilities (stratified k-fold over all the version's rows) "
                    "ranked by cleanlab. With `run`, its architecture and params (and dataset version) are "
                    "used; `hyperparameters` override them. Every bad field is reported; nothing is written.",
        request=LabelIssueScanCreateInput,
        responses={201: LabelIssueScanOutput,
                   400: OpenApiResponse(description="bad input (unknown run or architecture, hyperparameter out "
                                                    "of range, version not ready or too small for the folds)")})
    def post(self, request):
        data = LabelIssueScanCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        validated = data.validated_data
        try:
            scan = services.label_issue_scan_create(
                dataset_version_id=validated.get("dataset_version"),
                run_id=validated.get("run"),
                architecture_key=validated.get("architecture"),
                hyperparameters=validated["hyperparameters"],
                folds=validated["folds"],
                user=request.user,
            )
        except DjangoValidationError as error:
            raise scan_request_errors(error) from None
        return Response(LabelIssueScanOutput(selectors.label_issue_scan_get(scan.pk)).data,
                        status=status.HTTP_201_CREATED)


class LabelIssueScanApiView(ExperimentsPermissions, APIView):
    not_found_detail = "Label-issue scan not found"


class LabelIssueScanDetailApi(LabelIssueScanApiView):
    @label_issue_schema("label_issue_scan_retrieve", "One label-issue scan: status, progress, issue count",
                        responses={200: LabelIssueScanOutput, 404: SCAN_NOT_FOUND})
    def get(self, request, scan_id: int):
        return Response(LabelIssueScanOutput(selectors.label_issue_scan_get(scan_id)).data)


class LabelIssueScanCancelApi(LabelIssueScanApiView):
    @label_issue_schema("label_issue_scan_cancel", "Cancel a queued or running scan (admins)", request=None,
                        responses={200: LabelIssueScanOutput, 404: SCAN_NOT_FOUND,
                                   400: OpenApiResponse(description="the scan has already finished")})
    def post(self, request, scan_id: int):
        services.label_issue_scan_cancel(scan_id)
        return Response(LabelIssueScanOutput(selectors.label_issue_scan_get(scan_id)).data)


class LabelIssueListApi(ExperimentsPermissions, ListAPIView):
    serializer_class = LabelIssueOutput
    not_found_detail = "Label-issue scan not found"

    def get_queryset(self):
        scan = selectors.label_issue_scan_get(self.kwargs["scan_id"])
        return selectors.label_issue_rows(scan.pk)

    @label_issue_schema("label_issue_list", "A scan's issues in rank order (most likely mislabeled first)",
                        responses={200: LabelIssueOutput(many=True), 404: SCAN_NOT_FOUND})
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class LabelIssueReviewRequestsApi(APIView):
    permission_classes = [IsAuthenticated, HasTeamRole]
    not_found_detail = "Label-issue scan not found"

    @label_issue_schema(
        "label_issue_review_requests_create", "Send some of a scan's issues to the review queue (reviewers, admins)",
        description="Each video gets an open review request with `reason` (default: its out-of-fold "
                    "probability and given label), shown in the review queue even when its labelers agree. "
                    "Videos that already have an open request are left as they are.",
        request=ReviewRequestsInput,
        responses={201: ReviewRequestsOutput, 404: SCAN_NOT_FOUND,
                   400: OpenApiResponse(description="a video is not an issue of the scan; nothing written"),
                   403: OpenApiResponse(description="only reviewers and admins send videos to review")})
    def post(self, request, scan_id: int):
        data = ReviewRequestsInput(data=request.data)
        data.is_valid(raise_exception=True)
        counts = services.label_issue_review_requests_create(
            scan_id=scan_id, video_ids=data.validated_data["video_ids"],
            reason=data.validated_data.get("reason", ""), user=request.user,
        )
        return Response({"created": counts.created, "already_open": counts.already_open},
                        status=status.HTTP_201_CREATED)
