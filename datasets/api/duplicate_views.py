"""Duplicate groups over the API: a deduplication task's groups, keep/exclude per group,
keep the lowest aid in every undecided group. Reads need a team role; decisions need
``can_manage_datasets`` (admins). Scans start through the curation task API
(``type: deduplication``)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from core.api.bounds import MAX_BIGINT
from core.api.pagination import LimitOffsetPagination
from core.api.query_params import parse_query
from datasets.api.views import PanelApiView
from datasets.duplicate_selectors import deduplication_task_get, duplicate_group_get, duplicate_groups
from datasets.models import DuplicateKind
from datasets.services.duplicates import duplicate_group_resolve, duplicate_groups_keep_lowest_aid

DUPLICATES_TAG = "duplicates"
BAD_INPUT = OpenApiResponse(description="bad choice (nothing written)")


class GroupsQuery(serializers.Serializer):
    kind = serializers.ChoiceField(choices=DuplicateKind.values, required=False)
    unresolved = serializers.BooleanField(required=False, default=False)


class MemberOutput(serializers.Serializer):
    video_id = serializers.IntegerField()
    aid = serializers.IntegerField(source="video.aid")
    title = serializers.CharField(source="video.title")
    distance = serializers.FloatField()
    keep = serializers.BooleanField()


class GroupOutput(serializers.Serializer):
    id = serializers.IntegerField()
    task_id = serializers.UUIDField()
    kind = serializers.CharField()
    embedding_model = serializers.CharField(source="embedding_model.key", allow_null=True, default=None)
    threshold = serializers.FloatField(allow_null=True)
    size = serializers.IntegerField()
    max_distance = serializers.FloatField()
    resolved_at = serializers.DateTimeField(allow_null=True)
    resolved_by = serializers.CharField(source="resolved_by.username", allow_null=True, default=None)
    members = MemberOutput(many=True, source="members.all")


class ResolveInput(serializers.Serializer):
    keep_video_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_BIGINT), allow_empty=False,
        help_text="the members to keep (video ids); the others are excluded")


def _task_or_404(task_id):
    try:
        task = deduplication_task_get(task_id)
    except ValidationError:
        task = None
    if task is None:
        raise Http404("No such deduplication task")
    return task


class DuplicateGroupListApi(PanelApiView):
    @extend_schema(operation_id="duplicate_groups_list", tags=[DUPLICATES_TAG], parameters=[GroupsQuery],
                   summary="A deduplication task's groups, largest first, with their members",
                   responses={200: GroupOutput(many=True), 404: OpenApiResponse(description="no such task")})
    def get(self, request, task_id):
        task = _task_or_404(task_id)
        query = parse_query(request, GroupsQuery)
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(
            duplicate_groups(task, kind=query.get("kind"), unresolved=query["unresolved"]), request, view=self)
        return paginator.get_paginated_response(GroupOutput(page, many=True).data)


class DuplicateGroupResolveApi(PanelApiView):
    manage_methods = frozenset({"POST"})

    @extend_schema(operation_id="duplicate_group_resolve", tags=[DUPLICATES_TAG], request=ResolveInput,
                   summary="Keep the given members, exclude the others (rule duplicate)",
                   responses={200: GroupOutput, 400: BAD_INPUT, 404: OpenApiResponse(description="no such group")})
    def post(self, request, group_id):
        if duplicate_group_get(group_id) is None:
            raise Http404("No such duplicate group")
        serializer = ResolveInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        duplicate_group_resolve(group_id, keep_video_ids=serializer.validated_data["keep_video_ids"],
                                user=request.user)
        return Response(GroupOutput(duplicate_group_get(group_id)).data)


class DuplicateKeepLowestApi(PanelApiView):
    manage_methods = frozenset({"POST"})

    @extend_schema(operation_id="duplicate_groups_keep_lowest", tags=[DUPLICATES_TAG], request=None,
                   summary="In every undecided group of the task: keep the lowest aid, exclude the others",
                   responses={200: OpenApiResponse(description="groups, excluded"),
                              404: OpenApiResponse(description="no such task")})
    def post(self, request, task_id):
        task = _task_or_404(task_id)
        return Response(duplicate_groups_keep_lowest_aid(task.pk, user=request.user))
