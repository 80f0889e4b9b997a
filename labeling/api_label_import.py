"""``POST /api/v1/labels/import``: labels from the old system (see ``labeling.label_import``).

Either multipart with a ``file`` (+ optional ``format``: jsonl or csv, else the file name's
extension decides), or a JSON body ``{"labels": [{"aid": ..., "user": ..., "label": ...,
"created_at": ...}, ...]}``. Both take ``atomic`` (default true) and ``dry_run`` (default
false).

All or nothing by default: when any row is bad the answer is a 400 whose body has the
counts and the rejected rows (``row_errors``: line and reason, at most
``MAX_LISTED_ERRORS`` of them; ``row_errors_omitted`` counts the rest) and nothing is
written. ``atomic=false`` writes the good rows and lists the bad ones in a 200/201.
201 when labels were written, else 200 (a re-import: every row already present). A file
that cannot be read at all is a 400 ``{"detail": ...}`` with nothing written. Admins
only: the import creates users. ``?background=1`` answers a 307 to
``POST /api/v1/curation/label-import`` (the upload is stored and imported by a task).
"""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.fields import empty
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.parsers import JSONParser
from core.roles import can_write_machine_labels
from labeling.label_import import FORMATS, ImportFileError, LabelImportResult, import_label_records, import_labels

# Rejected rows listed in an answer; the others are only counted (row_errors_omitted).
MAX_LISTED_ERRORS = 100


class CanImportLabels(BasePermission):
    message = "Only admins can import labels (the import writes votes and creates users)."

    def has_permission(self, request, view):
        return can_write_machine_labels(request.user)


class _FlagField(serializers.BooleanField):
    """A boolean whose absence means its default in a form too (DRF reads an absent form
    checkbox as false, which would turn ``atomic`` off for every multipart upload)."""

    default_empty_html = empty


class LabelImportOptions(serializers.Serializer):
    atomic = _FlagField(default=True, help_text="all or nothing: write nothing when any row is bad (default true)")
    dry_run = _FlagField(default=False, help_text="validate and count, write nothing")


class LabelImportUpload(LabelImportOptions):
    file = serializers.FileField(help_text="a .jsonl or .csv file with aid, user, label, created_at")
    format = serializers.ChoiceField(choices=FORMATS, required=False, help_text="default: from the file extension")

    class Meta:
        ref_name = "LabelImportUpload"


class LabelImportRecords(LabelImportOptions):
    labels = serializers.ListField(child=serializers.DictField(), help_text="objects with aid, user, label, created_at")

    class Meta:
        ref_name = "LabelImportRecords"


class LabelImportError(serializers.Serializer):
    line = serializers.IntegerField(help_text="line of the file (JSON body: 1-based item number)")
    message = serializers.CharField()


class LabelImportOutput(serializers.Serializer):
    rows = serializers.IntegerField()
    written = serializers.IntegerField(help_text="labels written (dry run or rolled back: that would be)")
    already_present = serializers.IntegerField(help_text="rows imported before: no second label")
    users_created = serializers.IntegerField()
    rejected = serializers.IntegerField()
    # Not "errors": in a 400 that key holds the shared field errors (core.api.errors).
    row_errors = LabelImportError(many=True, help_text="rejected rows: line and reason")
    row_errors_omitted = serializers.IntegerField(help_text="rejected rows beyond those listed")
    dry_run = serializers.BooleanField()
    atomic = serializers.BooleanField()
    rolled_back = serializers.BooleanField(help_text="nothing was written")

    class Meta:
        ref_name = "LabelImportResult"


class LabelImportRefused(LabelImportOutput):
    """A 400: always ``detail``; the counts and the rejected rows too when rows were bad."""

    detail = serializers.CharField()
    errors = serializers.JSONField(help_text="a bad option: the shared field errors (core.api.errors)")

    class Meta:
        ref_name = "LabelImportRefused"

    def get_fields(self):
        fields = super().get_fields()  # copies: the parent's stay required
        for name, field in fields.items():
            field.required = name == "detail"
        return fields


def result_payload(result: LabelImportResult) -> dict:
    return {
        "rows": result.rows,
        "written": result.written,
        "already_present": result.already_present,
        "users_created": result.users_created,
        "rejected": result.rejected,
        "row_errors": [{"line": line, "message": message} for line, message in result.errors],
        "row_errors_omitted": result.errors_omitted,
        "dry_run": result.dry_run,
        "atomic": result.atomic,
        "rolled_back": result.rolled_back,
    }


def _bad_request(detail: str) -> Response:
    return Response({"detail": detail}, status=status.HTTP_400_BAD_REQUEST)


class LabelImportApi(APIView):
    permission_classes = [permissions.IsAuthenticated, CanImportLabels]
    parser_classes = [MultiPartParser, JSONParser]

    @extend_schema(
        summary="Import labels from the old system (aid, user, label, created_at) from a JSONL/CSV file or a JSON list",
        request={"multipart/form-data": LabelImportUpload, "application/json": LabelImportRecords},
        responses={
            200: LabelImportOutput,
            201: LabelImportOutput,
            400: LabelImportRefused,
        },
    )
    def post(self, request):
        if request.query_params.get("background") in ("1", "true"):
            # The background import is a datasets task (datasets sits above labeling, which
            # must not import it): send the same upload there, by URL name.
            return Response(status=status.HTTP_307_TEMPORARY_REDIRECT,
                            headers={"Location": reverse("api-v1:curation-label-import")})
        is_upload = hasattr(request.data, "getlist")
        if is_upload and "file" not in request.FILES:
            return _bad_request('file: upload a file (multipart field "file") or send JSON {"labels": [...]}')
        if not is_upload and "labels" not in request.data:
            return _bad_request('labels: send JSON {"labels": [...]} or upload a file (multipart field "file")')
        if not is_upload and not isinstance(request.data["labels"], list):
            return _bad_request("labels: must be a list of label objects")
        serializer = (LabelImportUpload if is_upload else LabelImportOptions)(data=request.data)
        serializer.is_valid(raise_exception=True)
        options = {
            "atomic": serializer.validated_data["atomic"],
            "dry_run": serializer.validated_data["dry_run"],
            "max_errors": MAX_LISTED_ERRORS,
        }
        if is_upload:
            upload = serializer.validated_data["file"]
            try:
                result = import_labels(
                    source=upload, format=serializer.validated_data.get("format"), filename=upload.name, **options
                )
            except ImportFileError as error:
                return _bad_request(str(error))
        else:
            result = import_label_records(records=request.data["labels"], **options)
        payload = result_payload(result)
        if result.atomic and result.rejected:
            detail = f"{result.rejected} of {result.rows} rows rejected; nothing was written (atomic)"
            return Response({"detail": detail, **payload}, status=status.HTTP_400_BAD_REQUEST)
        written = result.written and not result.rolled_back
        return Response(payload, status=status.HTTP_201_CREATED if written else status.HTTP_200_OK)
