"""``POST /api/v1/videos/import``: bulk upsert of videos by aid (see ``labeling.video_import``).

Either multipart with a ``file`` (+ optional ``format``: jsonl, csv, json; else the file
name's extension decides), or a JSON body ``{"videos": [{...}, ...]}``. Bad rows do not
fail the request: they come back in ``errors`` with their line (JSON body: 1-based item
number) while the good rows are imported. 201 when a video was created, else 200;
400 ``{"detail": ...}`` with nothing written when there is no file, the format is
unsupported or the file cannot be parsed at all. A JSON body is parsed by the API's
shared parser (``core.api.parsers``): one that is not an object, or holds text PostgreSQL
cannot store (a NUL character), is refused whole with a 400 naming the place; a file's
bad rows are reported row by row.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import permissions, serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.parsers import JSONParser
from core.permissions import CanImportVideos
from labeling.video_import import FORMATS, ImportFileError, ImportResult, import_video_records, import_videos


class VideoImportUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="a .jsonl, .csv or .json file")
    format = serializers.ChoiceField(choices=FORMATS, required=False, help_text="default: from the file extension")


class VideoImportErrorSerializer(serializers.Serializer):
    line = serializers.IntegerField(help_text="line of the file (JSON body: 1-based item number)")
    message = serializers.CharField()


class VideoImportResultSerializer(serializers.Serializer):
    rows = serializers.IntegerField()
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    rejected = serializers.IntegerField()
    errors = VideoImportErrorSerializer(many=True)
    errors_omitted = serializers.IntegerField(help_text="rejected rows beyond the errors listed")


def result_payload(result: ImportResult) -> dict:
    return {
        "rows": result.rows,
        "created": result.created,
        "updated": result.updated,
        "rejected": result.rejected,
        "errors": [{"line": line, "message": message} for line, message in result.errors],
        "errors_omitted": result.errors_omitted,
    }


def _bad_request(detail: str) -> Response:
    return Response({"detail": detail}, status=status.HTTP_400_BAD_REQUEST)


class VideoImportApi(APIView):
    permission_classes = [permissions.IsAuthenticated, CanImportVideos]
    # A file needs multipart; a list of videos is JSON (the shared parser: an object, bounded).
    parser_classes = [MultiPartParser, JSONParser]

    @extend_schema(
        summary="Import (upsert by aid) videos from a JSONL/CSV/JSON file or a JSON list",
        request={
            "multipart/form-data": VideoImportUploadSerializer,
            "application/json": inline_serializer(
                "VideoImportRecords", {"videos": serializers.ListField(child=serializers.DictField())}
            ),
        },
        responses={
            200: VideoImportResultSerializer,
            201: VideoImportResultSerializer,
            400: inline_serializer("VideoImportBadRequest", {"detail": serializers.CharField()}),
        },
    )
    def post(self, request):
        upload = request.FILES.get("file")
        if upload is not None:
            try:
                result = import_videos(source=upload, format=request.data.get("format") or None, filename=upload.name)
            except ImportFileError as error:
                return _bad_request(str(error))
        elif "videos" in request.data and not hasattr(request.data, "getlist"):
            videos = request.data["videos"]
            if not isinstance(videos, list):
                return _bad_request("videos: must be a list of video objects")
            result = import_video_records(records=videos)
        else:
            return _bad_request('file: upload a file (multipart field "file") or send JSON {"videos": [...]}')
        code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        return Response(result_payload(result), status=code)
