"""Experiments over REST: list, create, read, update, soft delete and restore.

Thin views over ``experiments.services`` and ``experiments.selectors``; authentication,
parsing, pagination and the mapping of errors to statuses are ``core.api``'s (a service's
``ValidationError`` is a 400 naming the field, an unknown id a 404).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import permissions, status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.query_params import parse_query
from core.permissions import CanRunExperiments, HasTeamRole
from experiments import selectors, services
from experiments.api import serializers as shapes

EXPERIMENTS_TAG = "experiments"
NOT_FOUND = OpenApiResponse(description="Experiment not found")


class ExperimentsPermissions:
    """Reads need any team role (labelers, reviewers, admins); writes (every unsafe
    method) also ``can_run_experiments`` (admins). The runs API uses the same rule."""

    permission_classes = [permissions.IsAuthenticated, HasTeamRole]

    def get_permissions(self):
        checks = super().get_permissions()
        if self.request is not None and self.request.method not in permissions.SAFE_METHODS:
            checks.append(CanRunExperiments())
        return checks


def experiment_schema(operation_id: str, summary: str, **kwargs):
    return extend_schema(operation_id=operation_id, summary=summary, tags=[EXPERIMENTS_TAG], **kwargs)


def _raise_as_request_errors(call, *args, **kwargs):
    try:
        return call(*args, **kwargs)
    except DjangoValidationError as error:
        raise shapes.request_errors(error, shapes.EXPERIMENT_FIELDS) from None


class ExperimentListApi(ExperimentsPermissions, ListAPIView):
    serializer_class = shapes.ExperimentListItemOutput

    @experiment_schema("experiment_list", "Experiments, newest first, with their run counts",
                       parameters=[shapes.ExperimentListQuery])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        query = parse_query(self.request, shapes.ExperimentListQuery)
        return selectors.experiment_list(
            search=query.get("search"),
            tag=query.get("tag"),
            status=query.get("status"),
            dataset_version_id=query.get("dataset_version"),
            deleted=query["deleted"],
        )

    @experiment_schema("experiment_create", "Create an experiment (admins)",
                       request=shapes.ExperimentInput,
                       responses={201: shapes.ExperimentOutput,
                                  400: OpenApiResponse(description="bad input (e.g. the name is taken, the dataset "
                                                                   "version is not ready); nothing written")})
    def post(self, request):
        data = shapes.ExperimentInput(data=request.data)
        data.is_valid(raise_exception=True)
        experiment = _raise_as_request_errors(
            services.experiment_create, owner=request.user, **shapes.experiment_arguments(data.validated_data)
        )
        return Response(shapes.ExperimentOutput(experiment).data, status=status.HTTP_201_CREATED)


class ExperimentDetailApi(ExperimentsPermissions, APIView):
    not_found_detail = "Experiment not found"

    @experiment_schema("experiment_retrieve", "One experiment (a soft-deleted one too: see deleted_at)",
                       responses={200: shapes.ExperimentOutput, 404: NOT_FOUND})
    def get(self, request, experiment_id: int):
        return Response(shapes.ExperimentOutput(selectors.experiment_get(experiment_id, include_deleted=True)).data)

    @experiment_schema("experiment_update", "Change some fields of an experiment (admins)",
                       request=shapes.ExperimentInput,
                       responses={200: shapes.ExperimentOutput, 404: NOT_FOUND,
                                  400: OpenApiResponse(description="bad input, or the experiment is deleted; "
                                                                   "nothing written")})
    def patch(self, request, experiment_id: int):
        data = shapes.ExperimentInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        experiment = _raise_as_request_errors(services.experiment_update, experiment_id,
                                              **shapes.experiment_arguments(data.validated_data))
        return Response(shapes.ExperimentOutput(experiment).data)

    @experiment_schema("experiment_delete", "Soft delete an experiment (admins); restore undoes it",
                       description="Refused while one of its runs is queued or running: cancel them first.",
                       responses={200: shapes.ExperimentOutput, 404: NOT_FOUND,
                                  400: OpenApiResponse(description="a run is queued or running; nothing changed")})
    def delete(self, request, experiment_id: int):
        experiment = _raise_as_request_errors(services.experiment_delete, experiment_id)
        return Response(shapes.ExperimentOutput(experiment).data)


class ExperimentRestoreApi(ExperimentsPermissions, APIView):
    not_found_detail = "Experiment not found"

    @experiment_schema("experiment_restore", "Undo an experiment's soft delete (admins)", request=None,
                       responses={200: shapes.ExperimentOutput, 404: NOT_FOUND})
    def post(self, request, experiment_id: int):
        return Response(shapes.ExperimentOutput(services.experiment_restore(experiment_id)).data)
