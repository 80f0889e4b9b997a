"""Runs and architectures over REST: the schemas, queueing a run, reading it back (list,
detail, metric series, artifact files), cancelling, soft delete and restore.

Thin views: ``training.services.run_queue`` validates and queues a run (through the
same schema as the form and ``manage.py train``), ``experiments.services`` cancels and
deletes, ``experiments.selectors`` reads with a fixed number of queries. Permissions are
the experiments API's: reads for the team, writes for admins.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.generics import ListAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.query_params import parse_query
from core.permissions import HasTeamRole
from experiments import search_selectors, selectors
from experiments import services as tracking
from experiments.api.views import ExperimentsPermissions
from training import services
from training.api import serializers as shapes
from training.architectures import architectures_as_json

RUNS_TAG = "runs"
RUN_NOT_FOUND = OpenApiResponse(description="Run not found")


def run_schema(operation_id: str, summary: str, **kwargs):
    return extend_schema(operation_id=operation_id, summary=summary, tags=[RUNS_TAG], **kwargs)


class ArchitectureListApi(APIView):
    permission_classes = [IsAuthenticated, HasTeamRole]

    @run_schema("architecture_list", "The architectures a run can train, each with its hyperparameter schema",
                description="The run form, this API's `POST /runs` and `manage.py train` all validate "
                            "hyperparameters against these schemas.",
                responses={200: shapes.ArchitectureOutput(many=True)})
    def get(self, request):
        return Response(architectures_as_json())


class RunListApi(ExperimentsPermissions, ListAPIView):
    serializer_class = shapes.RunOutput

    @run_schema("run_list", "Runs, newest first (or by sort), with their params and metric summaries (latest, "
                            "min, max); filter searches them",
                parameters=[shapes.RunListQuery])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        query = parse_query(self.request, shapes.RunListQuery)
        runs = selectors.run_list(
            experiment_id=query.get("experiment"),
            status=query.get("status"),
            architecture_key=query.get("architecture"),
            dataset_version_id=query.get("dataset_version"),
            deleted=query["deleted"],
        )
        if not query.get("filter") and not query.get("sort"):
            return runs
        # A bad filter or sort raises a ValidationError naming its position: a 400.
        order = search_selectors.search_order(query.get("sort"))
        return search_selectors.run_search_refine(runs, query.get("filter"), order)

    @run_schema("run_create", "Queue a run of an architecture in an experiment (admins)",
                description="The hyperparameters are validated against the architecture's schema "
                            "(`GET /api/v1/architectures`); every bad one is reported under "
                            "`errors.hyperparameters.<name>`, and nothing is written or queued.",
                request=shapes.RunCreateInput,
                responses={201: shapes.RunDetailOutput,
                           400: OpenApiResponse(description="bad input (unknown architecture, hyperparameter out "
                                                            "of range, experiment deleted, dataset version not "
                                                            "ready...); nothing written")})
    def post(self, request):
        data = shapes.RunCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        validated = data.validated_data
        try:
            run = services.run_queue(
                experiment_id=validated["experiment"],
                architecture_key=validated["architecture"],
                hyperparameters=validated["hyperparameters"],
                dataset_version_id=validated.get("dataset_version"),
                name=validated.get("name", ""),
                use_augmentation=validated.get("use_augmentation", False),
            )
        except DjangoValidationError as error:
            raise shapes.run_request_errors(error, validated) from None
        return Response(self._detail(run.pk), status=status.HTTP_201_CREATED)

    def _detail(self, run_id: int) -> dict:
        return shapes.RunDetailOutput(selectors.run_detail(run_id), context=self.get_serializer_context()).data


class RunApiView(ExperimentsPermissions, APIView):
    not_found_detail = "Run not found"

    def detail(self, run_id: int) -> dict:
        """The run as ``GET runs/{id}`` shows it (a soft-deleted one too: see ``deleted_at``)."""
        run = selectors.run_detail(run_id, include_deleted=True)
        return shapes.RunDetailOutput(run, context={"request": self.request}).data


class RunDetailApi(RunApiView):
    @run_schema("run_retrieve", "One run: params, metric summaries, reproducibility record, artifacts",
                responses={200: shapes.RunDetailOutput, 404: RUN_NOT_FOUND})
    def get(self, request, run_id: int):
        return Response(self.detail(run_id))

    @run_schema("run_delete", "Soft delete a finished run (admins); restore undoes it",
                responses={200: shapes.RunDetailOutput, 404: RUN_NOT_FOUND,
                           400: OpenApiResponse(description="the run is queued or running: cancel it first")})
    def delete(self, request, run_id: int):
        tracking.run_delete(run_id)
        return Response(self.detail(run_id))


class RunRestoreApi(RunApiView):
    @run_schema("run_restore", "Undo a run's soft delete (admins)", request=None,
                responses={200: shapes.RunDetailOutput, 404: RUN_NOT_FOUND})
    def post(self, request, run_id: int):
        tracking.run_restore(run_id)
        return Response(self.detail(run_id))


class RunCancelApi(RunApiView):
    @run_schema("run_cancel", "Cancel a queued or running run (admins)",
                description="A queued run never starts; a running one stops at its next batch and keeps the "
                            "curves logged so far. The run is `cancelled` when this answers.",
                request=None,
                responses={200: shapes.RunDetailOutput, 404: RUN_NOT_FOUND,
                           400: OpenApiResponse(description="the run has already finished, or is deleted")})
    def post(self, request, run_id: int):
        tracking.run_cancel(run_id)
        return Response(self.detail(run_id))


class RunMetricSeriesApi(RunApiView):
    @run_schema("run_metrics", "Metric series of a run, each point by step (epoch)",
                parameters=[shapes.MetricSeriesQuery],
                responses={200: shapes.MetricSeriesOutput, 404: RUN_NOT_FOUND})
    def get(self, request, run_id: int):
        query = parse_query(request, shapes.MetricSeriesQuery)
        run = selectors.run_detail(run_id, include_deleted=True)
        if "keys" in query:
            series = selectors.run_metric_series(run.pk, query["keys"].split(","))
        else:
            keys = selectors.run_metric_keys(run.pk)
            series = {}
            for start in range(0, len(keys), selectors.MAX_SERIES_KEYS):
                series.update(selectors.run_metric_series(run.pk, keys[start:start + selectors.MAX_SERIES_KEYS]))
        return Response({"run": run.pk, "status": run.status, "series": shapes.series_output(series)})


class RunArtifactApi(RunApiView):

    @run_schema("run_artifact_download", "Download a file the run produced (weights, log)",
                description="The bytes of an artifact listed in the run's `artifacts`; their SHA-256 is the "
                            "listed one (also sent as the ETag).",
                responses={(200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY,
                                                                              description="the file"),
                           404: OpenApiResponse(description="no such run, or no such artifact of the run")})
    def get(self, request, run_id: int, artifact_path: str):
        run = selectors.run_detail(run_id, include_deleted=True)
        artifact = next((artifact for artifact in run.artifact_list if artifact.path == artifact_path), None)
        if artifact is None:
            raise exceptions.NotFound(f"Run {run.pk} has no artifact {artifact_path!r}")
        try:
            file = tracking.artifact_file(run.pk, artifact.path)
        except DjangoValidationError:
            raise exceptions.NotFound(f"The file of artifact {artifact.path!r} of run {run.pk} is gone") from None
        response = FileResponse(file.open("rb"), as_attachment=True, filename=shapes.artifact_filename(artifact.path),
                                content_type="application/octet-stream")
        response["ETag"] = f'"{artifact.sha256}"'
        return response
