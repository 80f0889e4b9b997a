"""Sweeps over REST: list and launch (``POST /sweeps``), one sweep with its trials ranked
and its best trial, and cancel. Thin views: ``training.services.sweep_create`` /
``sweep_cancel`` write, ``training.sweep_selectors`` read. Permissions are the
experiments API's: reads for the team, writes for admins."""

from __future__ import annotations

from collections.abc import Mapping

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.bounds import bigint_field
from core.api.query_params import parse_query
from experiments.api.serializers import request_errors
from experiments.api.views import ExperimentsPermissions
from experiments.models import MetricDirection, RunStatus
from training import services, sweep_selectors
from training.architectures import ARCHITECTURES
from training.models import MAX_NAME_LENGTH, MAX_SWEEP_PARALLELISM, MAX_SWEEP_TRIALS, JobStatus, Sweep, SweepSampler
from training.services.sweeps import MAX_SEED, METRIC_DIRECTIONS

SWEEPS_TAG = "sweeps"
SWEEP_NOT_FOUND = OpenApiResponse(description="Sweep not found")
TRIAL_STATES = [*RunStatus.values, "pruned"]


def sweep_schema(operation_id: str, summary: str, **kwargs):
    return extend_schema(operation_id=operation_id, summary=summary, tags=[SWEEPS_TAG], **kwargs)


# --- shapes ---------------------------------------------------------------------------------


class SweepListQuery(serializers.Serializer):
    experiment = bigint_field(min_value=1, required=False, help_text="sweeps of this experiment")


class SweepCreateInput(serializers.Serializer):
    experiment = bigint_field(min_value=1, help_text="the experiment's id (not deleted)")
    architecture = serializers.ChoiceField(choices=list(ARCHITECTURES), help_text="see GET /api/v1/architectures")
    search_space = serializers.DictField(
        child=serializers.DictField(),
        help_text='hyperparameter (name or alias) → {"low", "high", "log"} (int/float; log only where the schema '
                  'allows it; "grid": the values a grid sweep takes) or {"choices": [...]}',
    )
    fixed_hyperparameters = serializers.DictField(required=False, default=dict,
                                                  help_text="the other hyperparameters' values (default otherwise)")
    sampler = serializers.ChoiceField(choices=SweepSampler.choices, default=SweepSampler.TPE)
    trial_count = serializers.IntegerField(min_value=1, max_value=MAX_SWEEP_TRIALS, default=20)
    parallelism = serializers.IntegerField(min_value=1, max_value=MAX_SWEEP_PARALLELISM, default=2,
                                           help_text="trials queued or running at once")
    metric_key = serializers.ChoiceField(choices=list(METRIC_DIRECTIONS), default="val_f1",
                                         help_text="the val metric to optimise (its final value, at the best epoch)")
    metric_direction = serializers.ChoiceField(choices=MetricDirection.choices, required=False,
                                               help_text="default: the metric's own (loss: min, others: max)")
    pruning = serializers.BooleanField(default=True, help_text="stop trials below the median (Optuna's "
                                                               "MedianPruner on the per-epoch val metric)")
    seed = serializers.IntegerField(min_value=0, max_value=MAX_SEED, default=0, help_text="the sampler's seed")
    name = serializers.CharField(required=False, allow_blank=True, max_length=MAX_NAME_LENGTH)
    dataset_version = serializers.UUIDField(required=False, allow_null=True,
                                            help_text="a ready dataset version (default: the experiment's)")

    class Meta:
        ref_name = "SweepCreateRequest"


#: ``sweep_create``'s arguments → the request's fields.
SWEEP_FIELDS = {"experiment_id": "experiment", "architecture": "architecture", "architecture_key": "architecture",
                "dataset_version_id": "dataset_version", "search_space": "search_space",
                "fixed_hyperparameters": "fixed_hyperparameters", "sampler": "sampler", "trial_count": "trial_count",
                "parallelism": "parallelism", "metric_key": "metric_key", "metric_direction": "metric_direction",
                "pruning": "pruning", "seed": "seed", "name": "name"}


def sweep_request_errors(error: DjangoValidationError, validated: Mapping) -> serializers.ValidationError:
    """``sweep_create``'s errors by request field; a hyperparameter's under
    ``search_space.<name>`` or ``fixed_hyperparameters.<name>`` (the search space is
    checked before every other field, so the two kinds never mix)."""
    if not hasattr(error, "error_dict"):
        return request_errors(error, SWEEP_FIELDS)
    schema = ARCHITECTURES[validated["architecture"]].schema
    fixed_names = {schema[key].name for key in validated["fixed_hyperparameters"] if key in schema}
    fields: dict[str, object] = {}
    nested: dict[str, dict[str, list[str]]] = {"search_space": {}, "fixed_hyperparameters": {}}
    for key, messages in error.message_dict.items():
        is_hyperparameter = key in schema or key in validated["search_space"]
        if key in SWEEP_FIELDS and not is_hyperparameter:
            fields.setdefault(SWEEP_FIELDS[key], []).extend(messages)
        else:
            nested["fixed_hyperparameters" if key in fixed_names else "search_space"][key] = messages
    fields.update({name: errors for name, errors in nested.items() if errors})
    return serializers.ValidationError(fields)


class SweepOutput(serializers.ModelSerializer):
    experiment = serializers.IntegerField(source="experiment_id")
    dataset_version = serializers.UUIDField(source="dataset_version_id")
    architecture = serializers.CharField(source="architecture_key")
    status = serializers.ChoiceField(choices=JobStatus.choices)
    sampler = serializers.ChoiceField(choices=SweepSampler.choices)
    metric_direction = serializers.ChoiceField(choices=MetricDirection.choices)
    search_space = serializers.DictField(child=serializers.DictField())
    fixed_hyperparameters = serializers.DictField()
    trials_asked = serializers.IntegerField(help_text="trials queued so far")
    trials_active = serializers.IntegerField(help_text="trials queued or running now")

    class Meta:
        model = Sweep
        ref_name = "Sweep"
        fields = ["id", "name", "experiment", "dataset_version", "architecture", "search_space",
                  "fixed_hyperparameters", "sampler", "trial_count", "parallelism", "metric_key", "metric_direction",
                  "pruning", "seed", "study_name", "status", "error", "trials_asked", "trials_active", "created_at",
                  "started_at", "finished_at"]


class TrialOutput(serializers.Serializer):
    number = serializers.IntegerField(help_text="the Optuna trial number")
    run = serializers.IntegerField(source="run.pk")
    run_name = serializers.CharField(source="run.name")
    state = serializers.ChoiceField(choices=TRIAL_STATES, help_text="the run's status, or pruned")
    objective = serializers.FloatField(allow_null=True, help_text="final_<metric> of a succeeded run")
    params = serializers.DictField(child=serializers.CharField(), help_text="the searched hyperparameters")
    pruned_at_epoch = serializers.IntegerField(allow_null=True)

    class Meta:
        ref_name = "SweepTrial"


class SweepDetailOutput(SweepOutput):
    trials = serializers.SerializerMethodField()
    best_trial = serializers.SerializerMethodField()

    class Meta(SweepOutput.Meta):
        ref_name = "SweepDetail"
        fields = [*SweepOutput.Meta.fields, "trials", "best_trial"]

    @extend_schema_field(TrialOutput(many=True, help_text="best first by objective"))
    def get_trials(self, sweep) -> list[dict]:
        return TrialOutput(self.context["rows"], many=True).data

    @extend_schema_field(TrialOutput(allow_null=True))
    def get_best_trial(self, sweep) -> dict | None:
        best = sweep_selectors.sweep_best_trial(self.context["rows"])
        return None if best is None else TrialOutput(best).data


def sweep_detail(sweep_id: int) -> dict:
    sweep = sweep_selectors.sweep_list().get(pk=sweep_id)
    rows = sweep_selectors.sweep_trial_rows(sweep)
    return SweepDetailOutput(sweep, context={"rows": rows}).data


# --- views ----------------------------------------------------------------------------------


class SweepListApi(ExperimentsPermissions, ListAPIView):
    serializer_class = SweepOutput

    @sweep_schema("sweep_list", "Sweeps, newest first", parameters=[SweepListQuery])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        return sweep_selectors.sweep_list(experiment_id=parse_query(self.request, SweepListQuery).get("experiment"))

    @sweep_schema("sweep_create", "Launch a sweep over hyperparameters of one architecture (admins)",
                  description="An Optuna study stored in this PostgreSQL; its trials are ordinary training runs "
                              "(tags `sweep` and `trial`) on any number of Celery workers. The search space is "
                              "checked against the architecture's schema: a bad parameter is reported under "
                              "`errors.search_space.<name>` (or `fixed_hyperparameters.<name>`), nothing written. "
                              "A study that cannot be created gives a `failed` sweep with the reason.",
                  request=SweepCreateInput,
                  responses={201: SweepDetailOutput,
                             400: OpenApiResponse(description="bad input; nothing written")})
    def post(self, request):
        data = SweepCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        validated = data.validated_data
        try:
            sweep = services.sweep_create(
                experiment_id=validated["experiment"], architecture_key=validated["architecture"],
                search_space=validated["search_space"], fixed_hyperparameters=validated["fixed_hyperparameters"],
                sampler=validated["sampler"], trial_count=validated["trial_count"],
                parallelism=validated["parallelism"], metric_key=validated["metric_key"],
                metric_direction=validated.get("metric_direction"), pruning=validated["pruning"],
                seed=validated["seed"], name=validated.get("name", ""),
                dataset_version_id=validated.get("dataset_version"), user=request.user,
            )
        except DjangoValidationError as error:
            raise sweep_request_errors(error, validated) from None
        return Response(sweep_detail(sweep.pk), status=status.HTTP_201_CREATED)


class SweepDetailApi(ExperimentsPermissions, APIView):
    not_found_detail = "Sweep not found"

    @sweep_schema("sweep_retrieve", "One sweep with its trials (best first) and its best trial",
                  responses={200: SweepDetailOutput, 404: SWEEP_NOT_FOUND})
    def get(self, request, sweep_id: int):
        return Response(sweep_detail(sweep_id))


class SweepCancelApi(ExperimentsPermissions, APIView):
    not_found_detail = "Sweep not found"

    @sweep_schema("sweep_cancel", "Cancel a sweep and its queued and running trials (admins)", request=None,
                  responses={200: SweepDetailOutput, 404: SWEEP_NOT_FOUND,
                             400: OpenApiResponse(description="the sweep has already ended")})
    def post(self, request, sweep_id: int):
        try:
            services.sweep_cancel(sweep_id)
        except DjangoValidationError as error:
            raise request_errors(error, {"sweep_id": "non_field_errors"}) from None
        return Response(sweep_detail(sweep_id))
