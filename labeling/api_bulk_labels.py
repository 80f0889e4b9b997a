"""``POST /api/v1/labels/bulk/preview`` and ``POST /api/v1/labels/bulk`` (admins): the
bulk labeling of ``labeling.bulk_labels`` — preview a filter's count, then confirm."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from core.roles import can_write_machine_labels
from labeling import bulk_labels


MAX_PREVIEWED_COUNT = 2**31 - 1  # a PositiveIntegerField


class CanBulkLabel(BasePermission):
    message = "Only admins can bulk label videos."

    def has_permission(self, request, view):
        return can_write_machine_labels(request.user)


class BulkFilterInput(serializers.Serializer):
    uploader = serializers.CharField(required=False, allow_blank=True, max_length=bulk_labels.MAX_FILTER_TEXT,
                                     help_text="an uploader mid (digits) or exact name")
    tag = serializers.CharField(required=False, allow_blank=True, max_length=bulk_labels.MAX_FILTER_TEXT,
                                help_text="one whole tag")
    title = serializers.CharField(required=False, allow_blank=True, max_length=bulk_labels.MAX_FILTER_TEXT,
                                  help_text="words in the title")

    class Meta:
        ref_name = "BulkLabelFilter"


class BulkExampleOutput(serializers.Serializer):
    aid = serializers.IntegerField()
    title = serializers.CharField()
    uploader_name = serializers.CharField()


class BulkLabelPreviewApi(APIView):
    permission_classes = [IsAuthenticated, CanBulkLabel]

    class Output(serializers.Serializer):
        description = serializers.CharField()
        count = serializers.IntegerField()
        examples = BulkExampleOutput(many=True)

        class Meta:
            ref_name = "BulkLabelPreview"

    @extend_schema(request=BulkFilterInput, responses={200: Output})
    def post(self, request):
        data = BulkFilterInput(data=request.data)
        data.is_valid(raise_exception=True)
        preview = bulk_labels.bulk_label_preview(bulk_labels.bulk_filter_clean(data.validated_data))
        return Response(self.Output(preview).data)


class BulkLabelApi(APIView):
    permission_classes = [IsAuthenticated, CanBulkLabel]

    class Input(BulkFilterInput):
        value = serializers.BooleanField()
        previewed_count = serializers.IntegerField(
            min_value=0, max_value=MAX_PREVIEWED_COUNT, help_text="the count the preview showed"
        )

        class Meta:
            ref_name = "BulkLabelRequest"

    class Output(serializers.Serializer):
        id = serializers.IntegerField()
        value = serializers.BooleanField()
        filter = serializers.DictField(child=serializers.CharField())
        description = serializers.CharField()
        previewed_count = serializers.IntegerField()
        labels_written = serializers.IntegerField()
        created_at = serializers.DateTimeField()

        class Meta:
            ref_name = "BulkLabelOperation"

    @extend_schema(request=Input, responses={201: Output})
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        operation = bulk_labels.bulk_label_apply(
            bulk_filter=bulk_labels.bulk_filter_clean(data.validated_data), value=data.validated_data["value"],
            user=request.user, previewed_count=data.validated_data["previewed_count"],
        )
        return Response(self.Output(operation).data, status=status.HTTP_201_CREATED)
