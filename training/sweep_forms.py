"""The new-sweep form: the sweep's settings, and per hyperparameter of the chosen
architecture either a fixed value (the run form's field) or a search: a range (pre-filled
with the schema's bounds, log scale where the schema allows it) or a list of values, or
for a choice the choices to try. The form checks shapes only; ``services.sweep_create``
validates everything against the schema and its errors go back on the fields."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.forms import BoundField
from django.utils.text import capfirst

from datasets import selectors as dataset_selectors
from datasets.models import DatasetVersion, DatasetVersionStatus
from experiments import selectors as experiment_selectors
from experiments.models import Experiment
from training.architectures import ARCHITECTURES, Architecture
from training.forms import DEFAULT_ARCHITECTURE, VersionChoiceField, hyperparameter_field
from training.hyperparameters import Hyperparameter, ParamType
from training.models import MAX_NAME_LENGTH, MAX_SWEEP_PARALLELISM, MAX_SWEEP_TRIALS, SweepSampler
from training.services.sweeps import MAX_SEED, METRIC_DIRECTIONS

NUMERIC = (ParamType.INT, ParamType.FLOAT)


def _number_text(value: float | None) -> str:
    return "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


class HyperparameterRow:
    """The fields of one hyperparameter, for the template."""

    def __init__(self, form: SweepForm, parameter: Hyperparameter) -> None:
        self.parameter = parameter
        self.name = parameter.name
        self.label = capfirst(parameter.name.replace("_", " "))
        self.search = form[f"search__{parameter.name}"]
        self.value = form[f"value__{parameter.name}"]
        self.numeric = parameter.type in NUMERIC
        self.low = form[f"low__{parameter.name}"] if self.numeric else None
        self.high = form[f"high__{parameter.name}"] if self.numeric else None
        self.log = form[f"log__{parameter.name}"] if parameter.log_scale else None
        self.values = form[f"values__{parameter.name}"] if self.numeric else None
        self.choices = None if self.numeric else form[f"choices__{parameter.name}"]

    @property
    def errors(self) -> list[str]:
        fields: list[BoundField | None] = [self.search, self.value, self.low, self.high, self.log, self.values,
                                           self.choices]
        return [str(error) for field in fields if field is not None for error in field.errors]


class SweepForm(forms.Form):
    experiment = forms.ModelChoiceField(queryset=Experiment.objects.none(), empty_label="Choose an experiment")
    dataset_version = VersionChoiceField(queryset=DatasetVersion.objects.none(), required=False,
                                         empty_label="The experiment's default version",
                                         help_text="Only ready (frozen) versions can be trained on.")
    architecture = forms.ChoiceField(choices=[(key, a.name) for key, a in ARCHITECTURES.items()],
                                     initial=DEFAULT_ARCHITECTURE)
    name = forms.CharField(required=False, max_length=MAX_NAME_LENGTH,
                           help_text="Leave empty to name it after the searched hyperparameters.")
    sampler = forms.ChoiceField(choices=SweepSampler.choices, initial=SweepSampler.TPE,
                                help_text="Grid tries every combination of the listed values; random and TPE "
                                          "draw from the ranges (TPE learns from the finished trials).")
    trial_count = forms.IntegerField(label="Trials", min_value=1, max_value=MAX_SWEEP_TRIALS, initial=12)
    parallelism = forms.IntegerField(min_value=1, max_value=MAX_SWEEP_PARALLELISM, initial=2,
                                     help_text="Trials queued or running at once (one per free worker slot).")
    metric_key = forms.ChoiceField(label="Metric", choices=[(key, key) for key in METRIC_DIRECTIONS],
                                   initial="val_f1", help_text="Its final value (at the best epoch) ranks the "
                                                               "trials; loss is minimised, the others maximised.")
    pruning = forms.BooleanField(required=False, initial=True,
                                 help_text="Stop trials whose per-epoch val metric is below the median of the "
                                           "earlier trials (Optuna's median pruner).")
    seed = forms.IntegerField(min_value=0, max_value=MAX_SEED, initial=0, help_text="The sampler's seed.")

    _SERVICE_FIELDS = {"experiment_id": "experiment", "dataset_version_id": "dataset_version",
                       "architecture": "architecture", "architecture_key": "architecture", "name": "name",
                       "sampler": "sampler", "trial_count": "trial_count", "parallelism": "parallelism",
                       "metric_key": "metric_key", "metric_direction": "metric_key", "pruning": "pruning",
                       "seed": "seed"}

    def __init__(self, data=None, *args, architecture: str | None = None, experiment: Experiment | None = None,
                 **kwargs):
        super().__init__(data, *args, **kwargs)
        self.fields["experiment"].queryset = experiment_selectors.experiment_list()
        self.fields["dataset_version"].queryset = dataset_selectors.dataset_version_list(
            status=DatasetVersionStatus.READY)
        if experiment is not None:
            self.initial.setdefault("experiment", experiment.pk)
        chosen = self.data.get("architecture") if self.is_bound else (
            architecture if architecture in ARCHITECTURES else DEFAULT_ARCHITECTURE)
        if not self.is_bound:
            self.initial["architecture"] = chosen
        self.chosen_architecture: Architecture | None = ARCHITECTURES.get(chosen or "")
        for parameter in self.schema:
            self._add_hyperparameter_fields(parameter)

    @property
    def schema(self) -> tuple[Hyperparameter, ...]:
        return tuple(self.chosen_architecture.schema) if self.chosen_architecture is not None else ()

    def _add_hyperparameter_fields(self, parameter: Hyperparameter) -> None:
        name = parameter.name
        self.fields[f"search__{name}"] = forms.BooleanField(required=False, label="Search")
        fixed = hyperparameter_field(parameter)
        fixed.required = False
        self.fields[f"value__{name}"] = fixed
        if parameter.type in NUMERIC:
            attrs = {"step": "any", "inputmode": "decimal"}
            self.fields[f"low__{name}"] = forms.CharField(required=False, label="From", initial=_number_text(
                parameter.minimum), widget=forms.TextInput(attrs=attrs))
            self.fields[f"high__{name}"] = forms.CharField(required=False, label="To", initial=_number_text(
                parameter.maximum), widget=forms.TextInput(attrs=attrs))
            self.fields[f"values__{name}"] = forms.CharField(
                required=False, label="Or exactly", widget=forms.TextInput(attrs={"placeholder": "e.g. 1e-3, 1e-2"}),
                help_text="Comma-separated values to try instead of the range (a grid needs them).")
            if parameter.log_scale:
                self.fields[f"log__{name}"] = forms.BooleanField(required=False, initial=True, label="Log scale")
        elif parameter.type == ParamType.INT_LIST:
            self.fields[f"choices__{name}"] = forms.CharField(
                required=False, label="Try", initial=parameter.as_text(parameter.default),
                widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false"}), help_text="One list per line.")
        else:
            options = parameter.choices if parameter.type == ParamType.CHOICE else ("true", "false")
            self.fields[f"choices__{name}"] = forms.MultipleChoiceField(
                required=False, label="Try", choices=[(option, option) for option in options],
                initial=list(options), widget=forms.CheckboxSelectMultiple)

    # --- what the page shows ----------------------------------------------------------

    def hyperparameter_rows(self) -> list[HyperparameterRow]:
        return [HyperparameterRow(self, parameter) for parameter in self.schema]

    def error_summary(self) -> list[tuple[str | None, str]]:
        entries: list[tuple[str | None, str]] = [(None, str(error)) for error in self.non_field_errors()]
        for bound in self:
            entries.extend((bound.id_for_label, f"{bound.label}: {error}") for error in bound.errors)
        return entries

    # --- what the service gets ----------------------------------------------------------

    def _searched(self, parameter: Hyperparameter) -> dict[str, Any]:
        data, name = self.cleaned_data, parameter.name
        if parameter.type in NUMERIC:
            values = [value.strip() for value in (data.get(f"values__{name}") or "").split(",") if value.strip()]
            if values:
                return {"choices": values}
            spec: dict[str, Any] = {"low": data.get(f"low__{name}") or None, "high": data.get(f"high__{name}") or None}
            spec = {key: value for key, value in spec.items() if value is not None}
            spec["log"] = bool(data.get(f"log__{name}"))
            return spec
        if parameter.type == ParamType.INT_LIST:
            return {"choices": [line.strip() for line in (data.get(f"choices__{name}") or "").splitlines()
                                if line.strip()]}
        return {"choices": list(data.get(f"choices__{name}") or [])}

    def sweep_request(self) -> dict[str, Any]:
        """The validated form as ``services.sweep_create``'s keyword arguments."""
        data = self.cleaned_data
        search_space: dict[str, Any] = {}
        fixed: dict[str, Any] = {}
        for parameter in self.schema:
            if data.get(f"search__{parameter.name}"):
                search_space[parameter.name] = self._searched(parameter)
            elif data.get(f"value__{parameter.name}") not in (None, ""):
                fixed[parameter.name] = data[f"value__{parameter.name}"]
        version = data.get("dataset_version")
        return {
            "experiment_id": data["experiment"].pk, "dataset_version_id": version.pk if version else None,
            "architecture_key": data["architecture"], "search_space": search_space,
            "fixed_hyperparameters": fixed, "sampler": data["sampler"], "trial_count": data["trial_count"],
            "parallelism": data["parallelism"], "metric_key": data["metric_key"], "pruning": data["pruning"],
            "seed": data["seed"], "name": data["name"],
        }

    def errors_from_service(self, error: ValidationError) -> None:
        """``sweep_create``'s errors on the fields: a hyperparameter's on its search or
        fixed inputs, the others on their field (form-wide when there is none)."""
        if not hasattr(error, "error_dict"):
            self.add_error(None, error)
            return
        schema = {parameter.name: parameter for parameter in self.schema}
        for key, messages in error.message_dict.items():
            if key in schema:
                parameter = schema[key]
                searched = self.cleaned_data.get(f"search__{key}")
                if not searched:
                    field = f"value__{key}"
                elif parameter.type in NUMERIC:
                    field = f"values__{key}" if self.cleaned_data.get(f"values__{key}") else f"low__{key}"
                else:
                    field = f"choices__{key}"
                messages = [f"{key}: {message}" for message in messages]
            else:
                field = self._SERVICE_FIELDS.get(key)
                if field is None or field not in self.fields:
                    field, messages = None, [f"{key}: {message}" for message in messages]
            for message in messages:
                self.add_error(field, message)
