"""Cleaning rules and exclusions over the API: preview, run, list, revert.

Thin: the serializers check shapes, ``services.cleaning`` checks the rule and its
parameters (400 naming the parameter; nothing written), selectors read. Reads need a
team role; preview, run and revert need ``can_manage_datasets`` (admins).
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from core.api.bounds import MAX_BIGINT
from core.api.pagination import LimitOffsetPagination
from core.api.query_params import parse_query
from datasets.api.views import PanelApiView
from datasets.cleaning_rules import RULES
from datasets.exclusion_selectors import exclusion_list, exclusion_rule_counts
from datasets.services.cleaning import cleaning_preview, cleaning_run, exclusions_revert

CLEANING_TAG = "cleaning"
BAD_INPUT = OpenApiResponse(description="bad rule, parameters or selection (nothing written)")


class CleaningRuleInput(serializers.Serializer):
    rule = serializers.ChoiceField(choices=list(RULES))
    params = serializers.DictField(required=False, default=dict, help_text="the rule's parameters")


class ExclusionsQuery(serializers.Serializer):
    rule = serializers.CharField(required=False, max_length=40)
    state = serializers.ChoiceField(choices=["active", "reverted", "all"], required=False, default="active")
    aid = serializers.IntegerField(required=False, min_value=1, max_value=MAX_BIGINT)


class RevertInput(serializers.Serializer):
    exclusion_ids = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=MAX_BIGINT),
                                          required=False, allow_empty=False)
    aid = serializers.IntegerField(required=False, min_value=1, max_value=MAX_BIGINT)
    task_id = serializers.UUIDField(required=False)


class ExclusionOutput(serializers.Serializer):
    id = serializers.IntegerField()
    aid = serializers.IntegerField(source="video.aid")
    title = serializers.CharField(source="video.title")
    rule = serializers.CharField()
    reason = serializers.CharField()
    task_id = serializers.UUIDField(allow_null=True)
    created_at = serializers.DateTimeField()
    reverted_at = serializers.DateTimeField(allow_null=True)
    reverted_by = serializers.CharField(source="reverted_by.username", allow_null=True, default=None)


def _valid(request, serializer_class) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class CleaningPreviewApi(PanelApiView):
    manage_methods = frozenset({"POST"})

    @extend_schema(operation_id="cleaning_preview", tags=[CLEANING_TAG], request=CleaningRuleInput,
                   summary="How many videos a rule would exclude now, with the first 20 (nothing written)",
                   responses={200: OpenApiResponse(description="matched, already_excluded, would_exclude, examples"),
                              400: BAD_INPUT})
    def post(self, request):
        data = _valid(request, CleaningRuleInput)
        return Response(cleaning_preview(data["rule"], data["params"]).as_json())


class CleaningRunApi(PanelApiView):
    manage_methods = frozenset({"POST"})

    @extend_schema(operation_id="cleaning_run", tags=[CLEANING_TAG], request=CleaningRuleInput,
                   summary="Run a rule: exclusions for its matches, recorded by a completed cleaning task",
                   responses={201: OpenApiResponse(description="task_id, excluded, matched, already_excluded"),
                              400: BAD_INPUT})
    def post(self, request):
        data = _valid(request, CleaningRuleInput)
        task = cleaning_run(data["rule"], data["params"], user=request.user)
        return Response({"task_id": str(task.pk), "status": task.status, "message": task.message, **task.result},
                        status=201)


class ExclusionListApi(PanelApiView):
    @extend_schema(operation_id="exclusions_list", tags=[CLEANING_TAG], parameters=[ExclusionsQuery],
                   summary="Exclusions newest first (active by default) and the counts per rule",
                   responses={200: OpenApiResponse(description="count, results, counts_by_rule")})
    def get(self, request):
        query = parse_query(request, ExclusionsQuery)
        active = {"active": True, "reverted": False, "all": None}[query["state"]]
        exclusions = exclusion_list(rule=query.get("rule"), active=active, aid=query.get("aid"))
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(exclusions, request, view=self)
        response = paginator.get_paginated_response(ExclusionOutput(page, many=True).data)
        response.data["counts_by_rule"] = exclusion_rule_counts()
        return response


class ExclusionRevertApi(PanelApiView):
    manage_methods = frozenset({"POST"})

    @extend_schema(operation_id="exclusions_revert", tags=[CLEANING_TAG], request=RevertInput,
                   summary="Revert active exclusions: by ids, by video (aid) or by cleaning task",
                   responses={200: OpenApiResponse(description="reverted: how many"), 400: BAD_INPUT})
    def post(self, request):
        data = _valid(request, RevertInput)
        reverted = exclusions_revert(exclusion_ids=data.get("exclusion_ids"), aid=data.get("aid"),
                                     task_id=data.get("task_id"), user=request.user)
        return Response({"reverted": reverted})
