"""Forms of the registry pages. They check shapes only; the registry service
(``training.services.registry``) and ``training.gates.gate_rules_clean`` validate, and
their ``ValidationError`` goes back on the fields (``errors_from_service``), so the
pages, the API and ``manage.py promote`` accept and refuse the same input."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

from datasets import selectors as dataset_selectors
from datasets.models import DatasetVersion, DatasetVersionStatus
from training.forms import VersionChoiceField
from training.gates import GATE_METRICS, MAX_GATE_RULES, RULE_KINDS, gate_rules_clean
from training.models import MAX_NAME_LENGTH, ModelStage, ModelVersion

RULE_KIND_LABELS = {"min": "at least (min)", "max": "at most (max)", "max_drop": "at most this below production"}


class ServiceErrorsMixin:
    """``SERVICE_FIELDS`` maps a service argument to its field; other keys become form-wide errors."""

    SERVICE_FIELDS: dict[str, str] = {}

    def errors_from_service(self, error: ValidationError) -> None:
        if not hasattr(error, "error_dict"):
            self.add_error(None, error.messages)
            return
        for key, messages in error.message_dict.items():
            field = self.SERVICE_FIELDS.get(key, key)
            if field not in self.fields:
                self.add_error(None, [message if key == "__all__" else f"{key}: {message}" for message in messages])
            else:
                self.add_error(field, messages)

    def error_summary(self) -> list[tuple[str | None, str]]:
        """(id of the input to jump to or None, message) for every error, in page order."""
        entries: list[tuple[str | None, str]] = [(None, str(error)) for error in self.non_field_errors()]
        for bound in self:
            entries.extend((bound.id_for_label, f"{bound.label}: {error}") for error in bound.errors)
        return entries


class RegisteredModelForm(ServiceErrorsMixin, forms.Form):
    name = forms.CharField(max_length=MAX_NAME_LENGTH, help_text="Unique; versions are registered under it.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def model_request(self) -> dict[str, Any]:
        return {"name": self.cleaned_data["name"], "description": self.cleaned_data["description"]}


class ModelRegisterForm(ServiceErrorsMixin, forms.Form):
    """Register a succeeded run's weights as the next version of a model (created when new)."""

    run = forms.IntegerField(label="Run id", min_value=1, help_text="A succeeded run with a model.pt artifact.")
    model_name = forms.CharField(
        label="Model name", max_length=MAX_NAME_LENGTH,
        widget=forms.TextInput(attrs={"list": "registered-model-names", "autocomplete": "off"}),
        help_text="An existing model gets the next version number; a new name creates the model.",
    )
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    SERVICE_FIELDS = {"run_id": "run", "run": "run", "model_name": "model_name", "name": "model_name",
                      "description": "description"}

    def register_request(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {"run_id": data["run"], "model_name": data["model_name"], "description": data["description"]}


class GateRuleForm(forms.Form):
    """One rule: a metric, a kind (min / max / max_drop) and a number."""

    metric = forms.ChoiceField(choices=[("", "—")] + [(metric, metric) for metric in GATE_METRICS], required=False)
    kind = forms.ChoiceField(choices=[(kind, RULE_KIND_LABELS[kind]) for kind in RULE_KINDS], required=False,
                             initial="min")
    value = forms.FloatField(required=False, widget=forms.NumberInput(attrs={"step": "any"}))

    def has_rule(self) -> bool:
        data = self.cleaned_data
        return bool(data.get("metric")) or data.get("value") is not None

    def clean(self):
        data = super().clean()
        if not self.has_rule() or self.cleaned_data.get("DELETE"):
            return data
        if not data.get("metric"):
            self.add_error("metric", "Choose a metric.")
        if data.get("value") is None and "value" not in self.errors:
            self.add_error("value", "Give a number.")
        return data

    def rule(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {"metric": data["metric"], data["kind"] or "min": data["value"]}

    def check_rule(self) -> None:
        """``gate_rules_clean`` on this one rule; its message on the field it is about."""
        try:
            gate_rules_clean([self.rule()])
        except ValidationError as error:
            for message in error.message_dict.get("gate_rules", error.messages):
                message = message.removeprefix("rule 1: ")
                field = "kind" if ("use max" in message or "use min" in message or "exactly one" in message) else (
                    "metric" if message.startswith("metric") else "value")
                self.add_error(field, message)


class BaseGateRulesFormSet(forms.BaseFormSet):
    def clean(self):
        super().clean()
        kept = [form for form in self.forms
                if hasattr(form, "cleaned_data") and form.has_rule() and not self._should_delete_form(form)]
        if len(kept) > MAX_GATE_RULES:
            raise ValidationError(f"At most {MAX_GATE_RULES} rules.")
        for form in kept:
            if not form.errors:
                form.check_rule()
        if any(form.errors for form in self.forms):
            raise ValidationError("Fix the rules marked below; nothing was saved.")
        self.rules = [form.rule() for form in kept]


GateRulesFormSet = forms.formset_factory(GateRuleForm, formset=BaseGateRulesFormSet, extra=1, can_delete=True,
                                         max_num=MAX_GATE_RULES, absolute_max=MAX_GATE_RULES + 5)


def gate_rules_formset(rules: list[dict[str, Any]] | None = None, data=None) -> BaseGateRulesFormSet:
    """The editor of a model's rules: one row per rule and an empty row to add one."""
    initial = []
    for rule in rules or []:
        kind = next((kind for kind in RULE_KINDS if kind in rule), "min")
        initial.append({"metric": rule.get("metric", ""), "kind": kind, "value": rule.get(kind)})
    return GateRulesFormSet(data=data, initial=initial, prefix="rules")


class TransitionForm(ServiceErrorsMixin, forms.Form):
    """One stage change of a version: the target stage (the button pressed), the lock
    version the page showed, a reason, and for production the dataset version the gate
    evaluates on (default: the version's run's)."""

    to_stage = forms.ChoiceField(choices=ModelStage.choices)
    lock_version = forms.IntegerField(min_value=1, widget=forms.HiddenInput)
    reason = forms.CharField(required=False, max_length=2000,
                             widget=forms.TextInput(attrs={"placeholder": "Why (kept in the history)"}))
    gate_dataset_version = VersionChoiceField(
        queryset=DatasetVersion.objects.none(), required=False, label="Gate on",
        empty_label="The run's dataset version (test split)",
        help_text="The gate evaluates on the test split of this ready dataset version.",
    )

    SERVICE_FIELDS = {"to_stage": "to_stage", "stage": "to_stage", "reason": "reason",
                      "gate_dataset_version_id": "gate_dataset_version", "dataset_version_id": "gate_dataset_version",
                      "expected_lock_version": "lock_version", "lock_version": "lock_version"}

    def __init__(self, *args, version: ModelVersion, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["lock_version"].initial = version.lock_version
        # Versions the gate can read: ready, same embedding model and dimensions.
        self.fields["gate_dataset_version"].queryset = dataset_selectors.dataset_version_list(
            status=DatasetVersionStatus.READY
        ).filter(embedding_model_id=version.embedding_model_id, embedding_dimensions=version.input_dimensions)

    def transition_request(self) -> dict[str, Any]:
        data = self.cleaned_data
        dataset_version = data.get("gate_dataset_version")
        return {
            "to_stage": data["to_stage"],
            "expected_lock_version": data["lock_version"],
            "reason": data["reason"],
            "gate_dataset_version_id": dataset_version.pk if dataset_version is not None else None,
        }


class ProductionAtForm(forms.Form):
    """``?at=``: a date and time (local to the server's time zone unless it names an offset)."""

    at = forms.DateTimeField(label="In production at", required=False,
                             widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": "1"}))

    def moment(self):
        value = self.cleaned_data.get("at") if self.is_valid() else None
        if value is not None and timezone.is_naive(value):
            value = timezone.make_aware(value)
        return value
