"""The form that starts a label-issue scan: a dataset version and an architecture with
optional hyperparameter overrides (JSON), or a run whose architecture and params it
reuses. The service validates everything again (``label_issue_scan_create``); its
errors land on the fields here."""

from __future__ import annotations

import json

from django import forms
from django.core.exceptions import ValidationError

from datasets.models import DatasetVersion, DatasetVersionStatus
from training.architectures import ARCHITECTURES
from training.models import MAX_FOLDS, MIN_FOLDS
from training.services.label_issues import DEFAULT_FOLDS

#: The service's error keys → this form's fields (a hyperparameter's name → "hyperparameters").
SERVICE_FIELDS = {"dataset_version_id": "dataset_version", "architecture": "architecture", "folds": "folds",
                  "run_id": None, "hyperparameters": "hyperparameters"}


def ready_version_choices() -> list[tuple[str, str]]:
    versions = (DatasetVersion.objects.filter(status=DatasetVersionStatus.READY).select_related("dataset")
                .only("id", "number", "total_records", "dataset__name").order_by("dataset__name", "-number"))
    return [("", "— choose a ready version —")] + [
        (str(version.pk), f"{version.dataset.name} v{version.number} ({version.total_records} records)")
        for version in versions
    ]


class LabelIssueScanForm(forms.Form):
    run = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    dataset_version = forms.ChoiceField(label="Dataset version", required=False,
                                        help_text="All its rows (train, val and test) are split into folds.")
    architecture = forms.ChoiceField(required=False, help_text="From a run: leave it as the run's.")
    hyperparameters = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": '{"epochs": 20, "learning_rate": 0.001}'}),
        help_text="A JSON object overriding hyperparameters (the run's, or the architecture's defaults); "
                  "the seed also seeds the folds.",
    )
    folds = forms.IntegerField(min_value=MIN_FOLDS, max_value=MAX_FOLDS, initial=DEFAULT_FOLDS,
                               help_text="k: each video is predicted by a model trained on the other k−1 folds.")

    def __init__(self, *args, run=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.source_run = run
        self.fields["dataset_version"].choices = ready_version_choices()
        self.fields["architecture"].choices = [("", "— the run's —" if run else "— choose —")] + [
            (key, architecture.name) for key, architecture in ARCHITECTURES.items()
        ]

    def clean_hyperparameters(self) -> dict:
        text = self.cleaned_data["hyperparameters"].strip()
        if not text:
            return {}
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValidationError(f"not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})") from None
        if not isinstance(value, dict):
            raise ValidationError("must be a JSON object, e.g. {\"epochs\": 20}")
        return value

    def scan_request(self) -> dict:
        """The service's keyword arguments."""
        data = self.cleaned_data
        return {
            "run_id": data.get("run"),
            "dataset_version_id": data.get("dataset_version") or None,
            "architecture_key": data.get("architecture") or None,
            "hyperparameters": data.get("hyperparameters") or {},
            "folds": data["folds"],
        }

    def errors_from_service(self, error: ValidationError) -> None:
        if not hasattr(error, "error_dict"):
            self.add_error(None, error)
            return
        for key, messages in error.message_dict.items():
            field = SERVICE_FIELDS.get(key, "hyperparameters")
            if field is None:
                self.add_error(None, [f"{key}: {message}" for message in messages])
            elif field == "hyperparameters" and key != "hyperparameters":
                self.add_error(field, [f"{key}: {message}" for message in messages])
            else:
                self.add_error(field, messages)
