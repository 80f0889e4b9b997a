"""The forms of the experiments pages: the list's filters and the experiment form.

Forms check shapes only and hand their data to ``experiments.services`` (names, tags,
the dataset version's readiness are checked there); a service's ``ValidationError``,
keyed by its argument names, is put back on the fields (``errors_from_service``).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from datasets import selectors as dataset_selectors
from datasets.models import DatasetVersion, DatasetVersionStatus
from experiments import services
from experiments.models import MAX_KEY_LENGTH, MAX_NAME_LENGTH, MetricDirection, RunStatus

#: Ready versions offered in a select (newest first): enough for any real team.
VERSION_CHOICES_LIMIT = 200
ANY = ""


def _version_label(version: DatasetVersion) -> str:
    return f"{version.dataset.name} v{version.number} ({version.embedding_model.key}, {version.total_records:,} records)"


def ready_version_choices() -> list[tuple[str, str]]:
    """(id, label) of the newest ready dataset versions: one query (the pages read it
    once and hand it to each form that offers versions)."""
    versions = dataset_selectors.dataset_version_list(status=DatasetVersionStatus.READY).defer("selection")[
        :VERSION_CHOICES_LIMIT
    ]
    return [(str(version.pk), _version_label(version)) for version in versions]


class ExperimentFilterForm(forms.Form):
    """The experiments list's filters (all optional)."""

    q = forms.CharField(required=False, max_length=200, label="Search",
                        widget=forms.TextInput(attrs={"type": "search", "placeholder": "name or description"}))
    tag = forms.ChoiceField(required=False, choices=[])
    status = forms.ChoiceField(required=False, label="With a run",
                               choices=[(ANY, "any status"), *RunStatus.choices])
    dataset_version = forms.ChoiceField(required=False, label="Dataset version", choices=[])
    deleted = forms.BooleanField(required=False, label="Deleted experiments")

    def __init__(self, *args, tags: list[str], versions: list[tuple[str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tag"].choices = [(ANY, "any tag"), *((tag, tag) for tag in tags)]
        self.fields["dataset_version"].choices = [(ANY, "any version"), *versions]

    def selector_filters(self) -> dict[str, Any]:
        """The valid filters as ``selectors.experiment_list`` keywords."""
        data = self.cleaned_data
        return {
            "search": data["q"] or None,
            "tag": data["tag"] or None,
            "status": data["status"] or None,
            "dataset_version_id": data["dataset_version"] or None,
            "deleted": data["deleted"],
        }


class ExperimentForm(forms.Form):
    """Create or edit an experiment."""

    name = forms.CharField(max_length=MAX_NAME_LENGTH)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    tags = forms.CharField(required=False, help_text="Comma-separated, e.g. mlp, baseline.")
    default_dataset_version = forms.ChoiceField(required=False, choices=[], label="Default dataset version",
                                                help_text="Ready versions only; new runs start from it.")
    metric_key = forms.CharField(max_length=MAX_KEY_LENGTH, initial=services.DEFAULT_METRIC_KEY, label="Metric",
                                 help_text="The metric that ranks runs, e.g. val_f1.")
    metric_direction = forms.ChoiceField(choices=MetricDirection.choices, initial=MetricDirection.MAXIMIZE,
                                         label="Direction")

    #: The services' argument names → the form's fields.
    _SERVICE_FIELDS = {"default_dataset_version_id": "default_dataset_version"}

    def __init__(self, *args, versions: list[tuple[str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["default_dataset_version"].choices = [(ANY, "— none —"), *versions]

    @classmethod
    def for_experiment(cls, experiment, data=None, *, versions: list[tuple[str, str]]) -> ExperimentForm:
        initial = {
            "name": experiment.name,
            "description": experiment.description,
            "tags": ", ".join(experiment.tags),
            "default_dataset_version": str(experiment.default_dataset_version_id or ""),
            "metric_key": experiment.metric_key,
            "metric_direction": experiment.metric_direction,
        }
        current = initial["default_dataset_version"]
        if current and current not in dict(versions):  # older than the versions offered
            versions = [*versions, (current, str(experiment.default_dataset_version))]
        return cls(data, initial=initial, prefix="edit", versions=versions)

    def clean_tags(self) -> list[str]:
        return [tag.strip() for tag in self.cleaned_data["tags"].split(",") if tag.strip()]

    def service_fields(self) -> dict[str, Any]:
        """The cleaned form as ``services.experiment_create`` / ``experiment_update`` keywords."""
        data = self.cleaned_data
        return {
            "name": data["name"],
            "description": data["description"],
            "tags": data["tags"],
            "default_dataset_version_id": data["default_dataset_version"] or None,
            "metric_key": data["metric_key"],
            "metric_direction": data["metric_direction"],
        }

    def errors_from_service(self, error: ValidationError) -> None:
        """Put a service's ``ValidationError`` on the fields it names (the rest on the form)."""
        if not hasattr(error, "error_dict"):
            self.add_error(None, error)
            return
        for key, messages in error.message_dict.items():
            field = self._SERVICE_FIELDS.get(key, key)
            for message in messages:
                self.add_error(field if field in self.fields else None, message)
