"""Request and response shapes of the model registry API (``training.api.registry``).

Inputs check shapes only; the registry service and ``training.gates.gate_rules_clean``
validate values (a bad rule is a 400 naming it, nothing written)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.api.bounds import bigint_field
from core.api.pagination import PageQuery
from training.gates import GATE_METRICS, MAX_GATE_RULES
from training.models import MAX_NAME_LENGTH, ModelStage, ModelVersion, ModelVersionTransition, RegisteredModel
from training.services.registry import MAX_DESCRIPTION_LENGTH, MAX_REASON_LENGTH

GATE_RULES_HELP = (
    'rules a version must pass to be promoted to production, each {"metric": M, "min": x} (absolute; "max" for '
    'loss) or {"metric": M, "max_drop": y} (at most y worse than the production version on the same dataset '
    f"version's test split); M one of {', '.join(GATE_METRICS)}; at most {MAX_GATE_RULES} rules"
)


#: One enum component (``StageEnum``, the version's ``stage``) documents the stages; the
#: other stage fields are text checked by the service (400 naming the legal moves),
#: because drf-spectacular warns about one choice set under several field names.
STAGE_HELP = f"one of {', '.join(ModelStage.values)}"


@extend_schema_field({
    "type": "array", "maxItems": MAX_GATE_RULES, "description": GATE_RULES_HELP,
    "items": {"type": "object", "properties": {
        "metric": {"type": "string", "enum": list(GATE_METRICS)},
        "min": {"type": "number"}, "max": {"type": "number"}, "max_drop": {"type": "number", "minimum": 0},
    }, "required": ["metric"]},
})
class GateRulesField(serializers.JSONField):
    """A JSON list of rules (kept as sent: the service says which rule is wrong)."""


# --- inputs ---------------------------------------------------------------------------------


class RegisteredModelCreateInput(serializers.Serializer):
    name = serializers.CharField(max_length=MAX_NAME_LENGTH, help_text="unique; no '/'")
    description = serializers.CharField(required=False, allow_blank=True, max_length=MAX_DESCRIPTION_LENGTH,
                                        default="")
    gate_rules = GateRulesField(required=False, default=list)

    class Meta:
        ref_name = "RegisteredModelCreateRequest"


class RegisteredModelUpdateInput(serializers.Serializer):
    description = serializers.CharField(required=False, allow_blank=True, max_length=MAX_DESCRIPTION_LENGTH)
    gate_rules = GateRulesField(required=False)

    class Meta:
        ref_name = "RegisteredModelUpdateRequest"


class ModelVersionRegisterInput(serializers.Serializer):
    run_id = bigint_field(min_value=1, help_text="a succeeded run with a model.pt artifact")
    description = serializers.CharField(required=False, allow_blank=True, max_length=MAX_DESCRIPTION_LENGTH,
                                        default="")

    class Meta:
        ref_name = "ModelVersionRegisterRequest"


class ModelVersionUpdateInput(serializers.Serializer):
    description = serializers.CharField(allow_blank=True, max_length=MAX_DESCRIPTION_LENGTH)
    lock_version = bigint_field(min_value=1, required=False,
                                help_text="the version's lock_version as read; a stale one is a 409")

    class Meta:
        ref_name = "ModelVersionUpdateRequest"


class ModelVersionTransitionInput(serializers.Serializer):
    to_stage = serializers.CharField(max_length=10, help_text=STAGE_HELP)
    lock_version = bigint_field(min_value=1, required=False,
                                help_text="the version's lock_version as read; a stale one is a 409")
    reason = serializers.CharField(required=False, allow_blank=True, max_length=MAX_REASON_LENGTH, default="")
    gate_dataset_version_id = serializers.UUIDField(
        required=False, allow_null=True,
        help_text="to production: the ready dataset version whose test split the gate evaluates on "
                  "(default: the version's run's)",
    )

    class Meta:
        ref_name = "ModelVersionTransitionRequest"


class HistoryQuery(PageQuery):
    at = serializers.DateTimeField(required=False,
                                   help_text="ISO 8601 date-time: also answer which version was in production then")


# --- outputs --------------------------------------------------------------------------------


class RegisteredModelOutput(serializers.ModelSerializer):
    gate_rules = GateRulesField()
    version_count = serializers.IntegerField()
    production_version = serializers.IntegerField(source="production_number", allow_null=True,
                                                  help_text="the number of the version in production")
    last_change = serializers.DateTimeField(allow_null=True, help_text="the newest stage change of a version")

    class Meta:
        model = RegisteredModel
        ref_name = "RegisteredModel"
        fields = ["id", "name", "description", "gate_rules", "version_count", "production_version", "last_change",
                  "created_at", "updated_at"]


class ModelVersionOutput(serializers.ModelSerializer):
    model = serializers.CharField(source="registered_model.name")
    stage = serializers.ChoiceField(choices=ModelStage.choices)
    run = serializers.IntegerField(source="run_id")
    experiment = serializers.IntegerField(source="run.experiment_id")
    dataset_version = serializers.UUIDField(source="run.dataset_version_id")
    embedding_model = serializers.CharField(source="embedding_model.key")
    architecture = serializers.CharField(source="architecture_key")
    created_by = serializers.CharField(source="created_by.get_username", allow_null=True, default=None)

    class Meta:
        model = ModelVersion
        ref_name = "ModelVersion"
        fields = ["id", "model", "number", "stage", "lock_version", "description", "run", "experiment",
                  "dataset_version", "embedding_model", "input_dimensions", "threshold", "architecture",
                  "weights_sha256", "created_by", "created_at", "updated_at"]


class TransitionOutput(serializers.ModelSerializer):
    version = serializers.IntegerField(source="version_id")
    version_number = serializers.IntegerField(source="version.number")
    from_stage = serializers.CharField(help_text='"" for the registration')
    to_stage = serializers.CharField(help_text=STAGE_HELP)
    user = serializers.CharField(source="user.get_username", allow_null=True, default=None)
    gate = serializers.JSONField(help_text="the gate's rules, results and evaluation numbers (promotions)")

    class Meta:
        model = ModelVersionTransition
        ref_name = "ModelVersionTransition"
        fields = ["id", "version", "version_number", "from_stage", "to_stage", "user", "reason", "gate", "created_at"]


class HistoryOutput(serializers.Serializer):
    model = serializers.CharField()
    at = serializers.DateTimeField(allow_null=True, help_text="the ?at= asked, if any")
    production_version = ModelVersionOutput(
        allow_null=True, help_text="with ?at=: the version in production at that time (null: none); "
                                   "without: the one in production now")
    transition_count = serializers.IntegerField(help_text="stage changes in all (transitions is one page of them)")
    transitions = TransitionOutput(many=True, help_text="stage changes, oldest first: ?limit= (default 100) from ?offset=")

    class Meta:
        ref_name = "ModelHistory"
