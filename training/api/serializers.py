"""Request and response shapes of the runs and architectures API.

A run's hyperparameters are checked by the architecture's schema (``training.services``
→ ``architectures.resolve_config``), the one validation the form and ``manage.py train``
use too; here only their shape (an object) is. A hyperparameter's error is reported
under ``errors.hyperparameters.<name>``, as DRF reports a nested field.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath

from django.core.exceptions import ValidationError as DjangoValidationError
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.api.bounds import bigint_field
from experiments.api.serializers import request_errors
from experiments.models import MAX_NAME_LENGTH, Run, RunStatus
from experiments.run_search import MAX_FILTER_LENGTH
from experiments.selectors import MAX_SERIES_KEYS
from training.architectures import ARCHITECTURES
from training.hyperparameters import ParamType

MAX_ARCHITECTURE_KEY_LENGTH = 64
#: ``?keys=`` holds at most MAX_SERIES_KEYS keys of at most 250 characters and commas.
MAX_KEYS_PARAMETER_LENGTH = MAX_SERIES_KEYS * 251
#: ``?sort=``: ``-metrics.`` + a key of at most 250 characters in backticks + ``.latest``.
MAX_SORT_LENGTH = 300

# --- architectures --------------------------------------------------------------------


class HyperparameterOutput(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.ChoiceField(choices=[kind.value for kind in ParamType])
    default = serializers.JSONField(help_text="a number, a string, a boolean, or a list of integers (int_list)")
    help = serializers.CharField()
    minimum = serializers.FloatField(allow_null=True, help_text="inclusive (each item of an int_list)")
    maximum = serializers.FloatField(allow_null=True, help_text="inclusive (each item of an int_list)")
    log_scale = serializers.BooleanField()
    choices = serializers.ListField(child=serializers.CharField(), help_text="the values a choice takes")
    min_items = serializers.IntegerField(allow_null=True)
    max_items = serializers.IntegerField(allow_null=True)
    aliases = serializers.ListField(child=serializers.CharField(), help_text="other names accepted on input")
    group = serializers.CharField(help_text='"training" (shared) or "architecture" (its own)')

    class Meta:
        ref_name = "Hyperparameter"


class ArchitectureOutput(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    hyperparameters = HyperparameterOutput(many=True)

    class Meta:
        ref_name = "Architecture"


# --- queries --------------------------------------------------------------------------


class RunListQuery(serializers.Serializer):
    experiment = bigint_field(min_value=1, required=False, help_text="runs of this experiment")
    status = serializers.ChoiceField(choices=RunStatus.choices, required=False)
    architecture = serializers.CharField(required=False, max_length=MAX_ARCHITECTURE_KEY_LENGTH,
                                         help_text="an architecture key, e.g. mlp")
    dataset_version = serializers.UUIDField(required=False)
    deleted = serializers.BooleanField(required=False, default=False,
                                       help_text="true: the soft-deleted runs instead (to restore one)")
    # Kept as sent (no trimming): a bad filter's error names a position in this text.
    filter = serializers.CharField(
        required=False, allow_blank=True, trim_whitespace=False, max_length=MAX_FILTER_LENGTH,
        help_text='a run search filter, e.g. params.lr < 0.01 and metrics.val_f1.best > 0.8 and tags.arch = "mlp": '
                  "comparisons (= != < <= > >= in like ilike) of params.<key>, metrics.<key>[.latest|final|best|"
                  "min|max], tags.<key> and attributes (id name status architecture seed experiment "
                  "dataset_version created started finished duration), joined with and / or / not and "
                  "parentheses (see the README). A bad one is a 400 naming the position",
    )
    sort = serializers.CharField(
        required=False, allow_blank=True, max_length=MAX_SORT_LENGTH,
        help_text="what to sort by, - first for descending: an attribute (created, name, duration...), "
                  "params.<key> (numbers by value, then text), tags.<key> or metrics.<key>[.aggregate] "
                  "(e.g. -metrics.val_f1.best); runs without the value come last. Default: newest first",
    )


class MetricSeriesQuery(serializers.Serializer):
    keys = serializers.CharField(
        required=False, max_length=MAX_KEYS_PARAMETER_LENGTH,
        help_text=f"comma separated metric keys, at most {MAX_SERIES_KEYS} (e.g. val_f1,val_loss); "
                  "default: every key the run has logged",
    )


# --- requests -------------------------------------------------------------------------


# The schema's own message (``get_architecture``), with DRF's ``{input}`` placeholder.
UNKNOWN_ARCHITECTURE = f'unknown architecture "{{input}}" (choose one of: {", ".join(ARCHITECTURES)})'


class RunCreateInput(serializers.Serializer):
    experiment = bigint_field(min_value=1, help_text="the experiment's id (not deleted)")
    architecture = serializers.ChoiceField(
        choices=list(ARCHITECTURES), error_messages={"invalid_choice": UNKNOWN_ARCHITECTURE},
        help_text="see GET /api/v1/architectures",
    )
    hyperparameters = serializers.DictField(
        required=False, default=dict,
        help_text="name (or alias): value, checked against the architecture's schema; missing ones take "
                  "their default",
    )
    dataset_version = serializers.UUIDField(required=False, allow_null=True,
                                            help_text="a ready dataset version (default: the experiment's)")
    name = serializers.CharField(required=False, allow_blank=True, max_length=MAX_NAME_LENGTH,
                                 help_text="default: <architecture>-<number>")
    use_augmentation = serializers.BooleanField(
        required=False, default=False,
        help_text="train on the version's augmented train rows too (POST /api/v1/datasets/<id>/augment first); "
                  "val and test stay the members. Refused when the version has none",
    )

    class Meta:
        ref_name = "RunCreateRequest"


#: ``run_queue``'s arguments → the request's fields.
RUN_FIELDS = {"experiment_id": "experiment", "architecture": "architecture", "architecture_key": "architecture",
              "dataset_version_id": "dataset_version", "name": "name", "hyperparameters": "hyperparameters",
              "origin_run_id": "origin_run", "use_augmentation": "use_augmentation"}


def run_request_errors(error: DjangoValidationError, validated: Mapping) -> serializers.ValidationError:
    """``run_queue``'s errors by request field, a hyperparameter's under ``hyperparameters``.

    The schema's errors are keyed by a key the request gave or a name the schema declares
    (a hyperparameter called ``name`` is one, not the run's name); ``run_queue`` checks
    the other fields only once the schema has passed, so the two kinds never mix."""
    if not hasattr(error, "error_dict"):
        return request_errors(error, RUN_FIELDS)
    schema = ARCHITECTURES[validated["architecture"]].schema
    fields: dict[str, list[str]] = {}
    hyperparameters: dict[str, list[str]] = {}
    for key, messages in error.message_dict.items():
        if key in RUN_FIELDS and key not in validated["hyperparameters"] and key not in schema:
            fields.setdefault(RUN_FIELDS[key], []).extend(messages)
        else:
            hyperparameters[key] = messages
    if hyperparameters:
        fields["hyperparameters"] = hyperparameters
    return serializers.ValidationError(fields)


# --- responses ------------------------------------------------------------------------


class MetricSummaryOutput(serializers.Serializer):
    latest = serializers.FloatField(source="latest_value")
    latest_step = serializers.IntegerField()
    min = serializers.FloatField(source="min_value")
    min_step = serializers.IntegerField()
    max = serializers.FloatField(source="max_value")
    max_step = serializers.IntegerField()
    count = serializers.IntegerField(source="point_count", help_text="points logged")

    class Meta:
        ref_name = "MetricSummary"


class RunOutput(serializers.ModelSerializer):
    """A run with its params and metric summaries (``param_list`` and ``summary_list``
    prefetched by the selector)."""

    experiment = serializers.IntegerField(source="experiment_id")
    experiment_name = serializers.CharField(source="experiment.name")
    status = serializers.ChoiceField(choices=RunStatus.choices)
    dataset_version = serializers.UUIDField(source="dataset_version_id")
    architecture = serializers.CharField(source="architecture_key")
    origin_run = serializers.IntegerField(source="origin_run_id", allow_null=True)
    params = serializers.SerializerMethodField()
    metrics = serializers.SerializerMethodField()

    class Meta:
        model = Run
        ref_name = "Run"
        fields = ["id", "name", "experiment", "experiment_name", "status", "dataset_version", "architecture",
                  "seed", "origin_run", "queued_at", "started_at", "finished_at", "heartbeat_at", "error",
                  "created_at", "deleted_at", "params", "metrics"]

    @extend_schema_field(serializers.DictField(child=serializers.CharField(), help_text="resolved hyperparameters, "
                                                                                       "as text"))
    def get_params(self, run) -> dict[str, str]:
        return {param.key: param.value for param in run.param_list}

    @extend_schema_field(serializers.DictField(child=MetricSummaryOutput(), help_text="by metric key"))
    def get_metrics(self, run) -> dict[str, dict]:
        return {summary.key: MetricSummaryOutput(summary).data for summary in run.summary_list}


class ArtifactOutput(serializers.Serializer):
    path = serializers.CharField(help_text="relative to the run's folder")
    size = serializers.IntegerField(help_text="bytes")
    sha256 = serializers.CharField(help_text="of the file's bytes, hex")
    created_at = serializers.DateTimeField()
    download_url = serializers.SerializerMethodField()

    class Meta:
        ref_name = "Artifact"

    def get_download_url(self, artifact) -> str:
        url = reverse("api-v1:run-artifact", kwargs={"run_id": artifact.run_id, "artifact_path": artifact.path})
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request is not None else url


class RunDetailOutput(RunOutput):
    """A run with what reproduces it and the files it produced (``artifact_list``)."""

    reproducibility = serializers.JSONField(
        help_text="dataset version and content hash, embedding model, architecture, resolved hyperparameters, "
                  "seed, code and package versions, device, timings"
    )
    artifacts = ArtifactOutput(many=True, source="artifact_list")

    class Meta(RunOutput.Meta):
        ref_name = "RunDetail"
        fields = [*RunOutput.Meta.fields, "reproducibility", "artifacts"]


class MetricPointOutput(serializers.Serializer):
    step = serializers.IntegerField()
    value = serializers.FloatField()
    wall_time = serializers.DateTimeField()

    class Meta:
        ref_name = "MetricPoint"


class MetricSeriesOutput(serializers.Serializer):
    run = serializers.IntegerField()
    status = serializers.ChoiceField(choices=RunStatus.choices, help_text="poll again while queued or running")
    series = serializers.DictField(child=MetricPointOutput(many=True), help_text="by metric key, each by step")

    class Meta:
        ref_name = "MetricSeries"


def series_output(series: Mapping[str, list]) -> dict[str, list[dict]]:
    """``selectors.run_metric_series`` as the response holds it (built as plain dicts: a
    serializer per point would cost more than the query on 500 epochs)."""
    wall_time = serializers.DateTimeField()
    return {
        key: [{"step": point.step, "value": point.value, "wall_time": wall_time.to_representation(point.wall_time)}
              for point in points]
        for key, points in series.items()
    }


def artifact_filename(path: str) -> str:
    return PurePosixPath(path).name
