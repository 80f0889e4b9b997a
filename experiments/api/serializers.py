"""Request and response shapes of the experiments API.

Input serializers check shape and bounds only (types, lengths, choices); the services
check the rest and answer with a ``ValidationError`` keyed by their own argument names,
which ``request_errors`` renames to the request's field names so that ``errors`` always
names what the client sent.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from experiments.models import (
    MAX_KEY_LENGTH,
    MAX_NAME_LENGTH,
    MAX_TAG_LENGTH,
    Experiment,
    MetricDirection,
    RunStatus,
)
from experiments.services.validation import MAX_TAGS

MAX_SEARCH_LENGTH = 200


def request_errors(error: DjangoValidationError, renamed: Mapping[str, str]) -> serializers.ValidationError:
    """A service's ``ValidationError`` keyed by the request's field names: ``renamed`` maps a
    service argument to its field (``{"experiment_id": "experiment"}``), or to
    ``NON_FIELD_ERRORS`` when it is the path's object rather than a field of the body."""
    if not hasattr(error, "error_dict"):
        return serializers.ValidationError(error.messages)
    errors: dict[str, list[str]] = {}
    for key, messages in error.message_dict.items():
        field = renamed.get(key, key)
        errors.setdefault("non_field_errors" if field == NON_FIELD_ERRORS else field, []).extend(messages)
    return serializers.ValidationError(errors)


# --- queries --------------------------------------------------------------------------


class ExperimentListQuery(serializers.Serializer):
    search = serializers.CharField(required=False, allow_blank=True, max_length=MAX_SEARCH_LENGTH,
                                   help_text="words of the name or description (all of them)")
    tag = serializers.CharField(required=False, max_length=MAX_TAG_LENGTH, help_text="experiments carrying this tag")
    status = serializers.ChoiceField(choices=RunStatus.choices, required=False,
                                     help_text="experiments with a run in this status")
    dataset_version = serializers.UUIDField(required=False,
                                            help_text="experiments using this dataset version (default or a run's)")
    deleted = serializers.BooleanField(required=False, default=False,
                                       help_text="true: the soft-deleted experiments instead (to restore one)")


# --- requests -------------------------------------------------------------------------


class ExperimentInput(serializers.Serializer):
    name = serializers.CharField(max_length=MAX_NAME_LENGTH, help_text="unique, deleted experiments included")
    description = serializers.CharField(required=False, allow_blank=True)
    tags = serializers.ListField(child=serializers.CharField(max_length=MAX_TAG_LENGTH), required=False,
                                 max_length=MAX_TAGS, help_text="lower-cased, de-duplicated")
    default_dataset_version = serializers.UUIDField(required=False, allow_null=True,
                                                    help_text="a ready dataset version: the runs' default")
    metric_key = serializers.CharField(required=False, max_length=MAX_KEY_LENGTH,
                                       help_text="the metric that ranks runs (default val_f1)")
    metric_direction = serializers.ChoiceField(choices=MetricDirection.choices, required=False)

    class Meta:
        ref_name = "ExperimentRequest"


#: Service arguments → the request's fields (``experiment_id`` is the path's experiment).
EXPERIMENT_FIELDS = {"default_dataset_version_id": "default_dataset_version", "experiment_id": NON_FIELD_ERRORS}


def experiment_arguments(validated: Mapping) -> dict:
    """The validated request as ``experiment_create`` / ``experiment_update`` arguments."""
    arguments = dict(validated)
    if "default_dataset_version" in arguments:
        arguments["default_dataset_version_id"] = arguments.pop("default_dataset_version")
    return arguments


# --- responses ------------------------------------------------------------------------


class ExperimentOutput(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", allow_null=True, default=None)
    default_dataset_version = serializers.UUIDField(source="default_dataset_version_id", allow_null=True)
    tags = serializers.ListField(child=serializers.CharField())

    class Meta:
        model = Experiment
        ref_name = "Experiment"
        fields = ["id", "name", "description", "tags", "owner", "default_dataset_version", "metric_key",
                  "metric_direction", "created_at", "updated_at", "deleted_at"]


class RunCountsOutput(serializers.Serializer):
    queued = serializers.IntegerField(source="queued_count")
    running = serializers.IntegerField(source="running_count")
    succeeded = serializers.IntegerField(source="succeeded_count")
    failed = serializers.IntegerField(source="failed_count")
    cancelled = serializers.IntegerField(source="cancelled_count")

    class Meta:
        ref_name = "ExperimentRunCounts"


class ExperimentListItemOutput(ExperimentOutput):
    run_count = serializers.IntegerField(help_text="live (not deleted) runs")
    runs_by_status = RunCountsOutput(source="*")

    class Meta(ExperimentOutput.Meta):
        ref_name = "ExperimentListItem"
        fields = [*ExperimentOutput.Meta.fields, "run_count", "runs_by_status"]
