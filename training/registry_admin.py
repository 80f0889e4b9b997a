"""Admin of the model registry (imported by ``training.admin``): read-mostly. Models and
versions are written by ``training.services`` only; a version's stage changes through
the "Change stage…" action, which asks for the target stage and a reason and calls the
same service as the pages and the API (legal moves, gate, audit row), never a raw field
edit. Transitions, predictions, scoring jobs and evaluations are history: read-only."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.template.response import TemplateResponse

from core.admin_display import ReadOnlyAdminMixin, pretty_json, truncated
from core.validation import validation_error_message
from datasets.models import DatasetVersion
from training import services
from training.models import (
    Evaluation,
    ModelStage,
    ModelVersion,
    ModelVersionTransition,
    Prediction,
    RegisteredModel,
    ScoringJob,
)

CHANGE_STAGE_TEMPLATE = "admin/training/modelversion/change_stage.html"


@admin.register(RegisteredModel)
class RegisteredModelAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["name", "short_description", "created_by", "created_at", "updated_at"]
    search_fields = ["name", "description"]
    readonly_fields = ["name", "description", "gate_rules_pretty", "created_by", "created_at", "updated_at"]
    exclude = ["gate_rules"]

    @admin.display(description="description")
    def short_description(self, model: RegisteredModel):
        return truncated(model.description)

    @admin.display(description="gate rules")
    def gate_rules_pretty(self, model: RegisteredModel):
        return pretty_json(model.gate_rules)


class ChangeStageForm(forms.Form):
    to_stage = forms.ChoiceField(choices=ModelStage.choices, label="Move to")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
                             help_text="Kept in the history with your name.")
    gate_dataset_version = forms.UUIDField(
        required=False, label="Gate dataset version",
        help_text="To production: the dataset version whose test split the gate evaluates on "
                  "(empty: each version's run's).")


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["__str__", "registered_model", "number", "stage", "run", "threshold", "lock_version",
                    "created_at"]
    list_filter = ["stage", "registered_model"]
    search_fields = ["registered_model__name"]
    list_select_related = ["registered_model", "run"]
    readonly_fields = ["registered_model", "number", "stage", "lock_version", "run", "embedding_model",
                       "input_dimensions", "threshold", "architecture_key", "weights_sha256", "description",
                       "created_by", "created_at", "updated_at"]
    actions = ["change_stage"]

    @admin.action(description="Change stage… (through the registry service, with a reason)",
                  permissions=["change_stage"])
    def change_stage(self, request, queryset):
        form = ChangeStageForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            for version in queryset.select_related("registered_model").order_by("registered_model__name", "number"):
                self._move(request, version, form.cleaned_data)
            return None
        return TemplateResponse(request, CHANGE_STAGE_TEMPLATE, {
            **self.admin_site.each_context(request), "title": "Change the stage of model versions",
            "opts": self.model._meta, "form": form, "versions": queryset.select_related("registered_model"),
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        })

    def _move(self, request, version: ModelVersion, data: dict) -> None:
        label = f"{version.registered_model.name} v{version.number}"
        try:
            moved = services.model_version_transition(
                version.pk, to_stage=data["to_stage"], expected_lock_version=version.lock_version, user=request.user,
                reason=data["reason"], gate_dataset_version_id=data.get("gate_dataset_version"),
            )
        except (services.GateRefused, services.RegistryConflict) as refused:
            self.message_user(request, f"{label}: {refused}", messages.ERROR)
        except ValidationError as error:
            self.message_user(request, f"{label}: {validation_error_message(error)}", messages.ERROR)
        except DatasetVersion.DoesNotExist:
            self.message_user(request, f"{label}: no such gate dataset version", messages.ERROR)
        else:
            self.message_user(request, f"{label}: {version.stage} → {moved.stage}.", messages.SUCCESS)

    def has_change_stage_permission(self, request):
        return request.user.has_perm("training.change_modelversion")


@admin.register(ModelVersionTransition)
class ModelVersionTransitionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "registered_model", "version", "from_stage", "to_stage", "user", "short_reason"]
    list_filter = ["to_stage", "registered_model"]
    list_select_related = ["registered_model", "version", "user"]
    readonly_fields = ["registered_model", "version", "from_stage", "to_stage", "user", "reason", "gate_pretty",
                       "created_at"]
    exclude = ["gate"]

    @admin.display(description="reason")
    def short_reason(self, transition: ModelVersionTransition):
        return truncated(transition.reason)

    @admin.display(description="gate")
    def gate_pretty(self, transition: ModelVersionTransition):
        return pretty_json(transition.gate)


@admin.register(Prediction)
class PredictionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["model_version", "video", "probability", "margin", "created_at"]
    list_select_related = ["model_version__registered_model", "video"]
    raw_id_fields = ["video", "embedding"]
    readonly_fields = ["model_version", "video", "probability", "margin", "embedding", "created_at"]
    # Millions of rows: no COUNT(*) per page and no free-text scan.
    show_full_result_count = False


@admin.register(ScoringJob)
class ScoringJobAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "model_version", "status", "done", "total", "embedded", "created_by", "created_at"]
    list_filter = ["status"]
    list_select_related = ["model_version__registered_model", "created_by"]


@admin.register(Evaluation)
class EvaluationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "version", "dataset_version", "split", "status", "rows", "created_at"]
    list_filter = ["status", "split"]
    list_select_related = ["version__registered_model", "dataset_version"]
    exclude = ["metrics", "confusion_matrix"]
    readonly_fields = ["metrics_pretty", "confusion_matrix_pretty"]

    @admin.display(description="metrics")
    def metrics_pretty(self, evaluation: Evaluation):
        return pretty_json(evaluation.metrics)

    @admin.display(description="confusion matrix")
    def confusion_matrix_pretty(self, evaluation: Evaluation):
        return pretty_json(evaluation.confusion_matrix)
