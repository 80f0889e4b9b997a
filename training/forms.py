"""The new-run form, rendered from the chosen architecture's hyperparameter schema.

``RunForm`` has the fixed fields (experiment, dataset version, architecture, name) and
one field per hyperparameter of the architecture, built from its ``Hyperparameter``:
a number input with the bounds (``step="any"`` for floats), a select for a choice, a
checkbox for a bool, a text input for an integer list (``"256,64"``), each with its help
text and default. The form checks shapes only; the values go to ``services.run_queue``
as the strings the user typed (``hyperparameters()``), the schema validates them there,
and its errors are put back on the fields (``errors_from_service``). That way the page,
the API and ``manage.py train`` accept and refuse exactly the same values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from django import forms
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.forms import BoundField
from django.utils.text import capfirst

from datasets import selectors as dataset_selectors
from datasets.models import DatasetVersion, DatasetVersionStatus
from experiments import selectors as experiment_selectors
from experiments.models import MAX_NAME_LENGTH, Experiment
from training.architectures import ARCHITECTURES, Architecture
from training.hyperparameters import Hyperparameter, ParamType

DEFAULT_ARCHITECTURE = "mlp"
#: Sent with the hyperparameter fields when the architecture changes: the architecture
#: those fields belong to, so an unchecked checkbox (absent from the data) is kept as off.
SHOWN_ARCHITECTURE_FIELD = "hyperparameters_of"
GROUP_TITLES = {"training": "Training", "architecture": "Architecture"}


class HyperparameterGroup(NamedTuple):
    key: str
    title: str
    fields: list[BoundField]


def hyperparameter_field(parameter: Hyperparameter) -> forms.Field:
    """The form field of one hyperparameter. Values stay text (or a bool): the schema
    coerces and bounds them, so the form never refuses what the schema would accept."""
    label = capfirst(parameter.name.replace("_", " "))
    common = {"label": label, "help_text": parameter.help, "initial": _initial_text(parameter, parameter.default)}
    if parameter.type == ParamType.BOOL:
        return forms.BooleanField(required=False, **common)
    if parameter.type == ParamType.CHOICE:
        return forms.CharField(widget=forms.Select(choices=[(choice, choice) for choice in parameter.choices]),
                               **common)
    if parameter.type == ParamType.INT_LIST:
        example = _initial_text(parameter, parameter.default)
        return forms.CharField(widget=forms.TextInput(attrs={"placeholder": example, "spellcheck": "false"}),
                               **common)
    attrs = {"step": "1" if parameter.type == ParamType.INT else "any"}
    if parameter.minimum is not None:
        attrs["min"] = str(parameter.minimum)
    if parameter.maximum is not None:
        attrs["max"] = str(parameter.maximum)
    if parameter.log_scale:
        attrs["data-log-scale"] = "true"
    return forms.CharField(widget=forms.NumberInput(attrs=attrs), **common)


def _initial_text(parameter: Hyperparameter, value: Any) -> Any:
    return value if parameter.type == ParamType.BOOL else parameter.as_text(value)


class VersionChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, version: DatasetVersion) -> str:
        return (f"{version.dataset.name} v{version.number} · {version.embedding_model.key} "
                f"({version.embedding_dimensions}d) · {version.total_records:,} rows")


class RunForm(forms.Form):
    experiment = forms.ModelChoiceField(queryset=Experiment.objects.none(), empty_label="Choose an experiment")
    dataset_version = VersionChoiceField(
        queryset=DatasetVersion.objects.none(), empty_label="Choose a ready dataset version",
        help_text="Only ready (frozen) versions can be trained on.",
    )
    architecture = forms.ChoiceField(
        choices=[(key, architecture.name) for key, architecture in ARCHITECTURES.items()],
        initial=DEFAULT_ARCHITECTURE,
    )
    name = forms.CharField(required=False, max_length=MAX_NAME_LENGTH,
                           help_text="Leave empty to name the run after its architecture.")
    use_augmentation = forms.BooleanField(
        required=False, label="Use augmentation",
        help_text="Add the version's augmented train rows (augment its train split on the version page first); "
                  "val and test stay the version's members.",
    )

    #: A run_queue error key → the field it belongs to (hyperparameters are keyed by name).
    _SERVICE_FIELDS = {
        "experiment_id": "experiment",
        "dataset_version_id": "dataset_version",
        "architecture": "architecture",
        "architecture_key": "architecture",
        "name": "name",
        "use_augmentation": "use_augmentation",
    }

    def __init__(self, data=None, *args, architecture: str | None = None, experiment: Experiment | None = None,
                 **kwargs):
        """``architecture`` picks the hyperparameter fields of an unbound form (the default
        one when unknown; a bound form's data picks them, and has none while its
        architecture is unknown); ``experiment`` preselects it and its default version."""
        super().__init__(data, *args, **kwargs)
        self.fields["experiment"].queryset = experiment_selectors.experiment_list()
        self.fields["dataset_version"].queryset = dataset_selectors.dataset_version_list(
            status=DatasetVersionStatus.READY
        )
        if experiment is not None:
            self.initial.setdefault("experiment", experiment.pk)
            if experiment.default_dataset_version_id is not None:
                self.initial.setdefault("dataset_version", experiment.default_dataset_version_id)
        if self.is_bound:
            chosen = self.data.get("architecture")
        else:
            chosen = architecture if architecture in ARCHITECTURES else DEFAULT_ARCHITECTURE
            self.initial["architecture"] = chosen
        self.chosen_architecture: Architecture | None = ARCHITECTURES.get(chosen or "")
        for parameter in self.schema:
            if parameter.name in self.fields:
                raise ImproperlyConfigured(f"hyperparameter {parameter.name!r} clashes with a RunForm field")
            self.fields[parameter.name] = hyperparameter_field(parameter)

    @property
    def schema(self) -> tuple[Hyperparameter, ...]:
        """The hyperparameters shown: none while the chosen architecture is unknown."""
        return tuple(self.chosen_architecture.schema) if self.chosen_architecture is not None else ()

    @classmethod
    def initial_carried_over(cls, data: Mapping[str, Any], architecture: str | None) -> dict[str, Any]:
        """The values typed into the hyperparameter fields (``data``: the fields being
        replaced) that ``architecture`` also has, to keep them when the architecture
        changes. An unchecked checkbox is absent from ``data``: it is kept off when the
        fields being replaced had it (``SHOWN_ARCHITECTURE_FIELD``)."""
        chosen = ARCHITECTURES.get(architecture or "")
        shown = ARCHITECTURES.get(data.get(SHOWN_ARCHITECTURE_FIELD) or "")
        if chosen is None:
            return {}
        carried: dict[str, Any] = {}
        for parameter in chosen.schema:
            if parameter.type == ParamType.BOOL:
                if parameter.name in data:
                    carried[parameter.name] = True
                elif shown is not None and parameter.name in shown.schema:
                    carried[parameter.name] = False
            elif parameter.name in data:
                carried[parameter.name] = data[parameter.name]
        return carried

    # --- what the page shows ------------------------------------------------------

    def hyperparameter_groups(self) -> list[HyperparameterGroup]:
        """The hyperparameter fields by ``Hyperparameter.group``, in schema order."""
        groups: dict[str, HyperparameterGroup] = {}
        for parameter in self.schema:
            if parameter.group not in groups:
                title = GROUP_TITLES.get(parameter.group, capfirst(parameter.group))
                if parameter.group == "architecture" and self.chosen_architecture is not None:
                    title = f"{title}: {self.chosen_architecture.name}"
                groups[parameter.group] = HyperparameterGroup(parameter.group, title, [])
            groups[parameter.group].fields.append(self[parameter.name])
        return list(groups.values())

    def error_summary(self) -> list[tuple[str | None, str]]:
        """(id of the input to jump to or None, message) for every error, in page order."""
        entries: list[tuple[str | None, str]] = [(None, str(error)) for error in self.non_field_errors()]
        for bound in self:
            entries.extend((bound.id_for_label, f"{bound.label}: {error}") for error in bound.errors)
        return entries

    # --- what the service gets ------------------------------------------------------

    def hyperparameters(self) -> dict[str, Any]:
        """The hyperparameters as typed (text; a bool for a checkbox, off when unchecked),
        for the schema to coerce and check."""
        return {parameter.name: self.cleaned_data[parameter.name] for parameter in self.schema}

    def run_request(self) -> dict[str, Any]:
        """The validated form as ``services.run_queue``'s keyword arguments."""
        data = self.cleaned_data
        return {
            "experiment_id": data["experiment"].pk,
            "dataset_version_id": data["dataset_version"].pk,
            "architecture_key": data["architecture"],
            "hyperparameters": self.hyperparameters(),
            "name": data["name"],
            "use_augmentation": data["use_augmentation"],
        }

    def errors_from_service(self, error: ValidationError) -> None:
        """Put ``run_queue``'s ``ValidationError`` (keyed by argument or hyperparameter
        name) on the fields; a key with no field here becomes a form-wide error."""
        if not hasattr(error, "error_dict"):
            self.add_error(None, error)
            return
        for key, messages in error.message_dict.items():
            field = self._SERVICE_FIELDS.get(key, key)
            if field not in self.fields:
                field, messages = None, [f"{key}: {message}" for message in messages]
            for message in messages:
                self.add_error(field, message)
