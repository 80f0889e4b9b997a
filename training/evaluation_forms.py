"""The form that queues an evaluation of a model version: a ready dataset version of the
version's embedding model and a split. The service checks everything again
(``evaluation_create``); its errors land on the fields here."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from training.evaluation_selectors import evaluation_dataset_versions
from training.models import EvaluationSplit, ModelVersion

#: The service's error keys → this form's fields.
SERVICE_FIELDS = {"dataset_version_id": "dataset_version", "split": "split"}


def dataset_version_label(version) -> str:
    test_rows = ((version.split_counts or {}).get("test") or {}).get("total")
    test = "" if test_rows is None else f", {test_rows} test"
    return f"{version.dataset.name} v{version.number} ({version.total_records} records{test})"


class EvaluationForm(forms.Form):
    dataset_version = forms.ChoiceField(
        label="Dataset version",
        help_text="Ready versions with the model version's embedding model (its own run's, or a newer one).",
    )
    split = forms.ChoiceField(choices=EvaluationSplit.choices, initial=EvaluationSplit.TEST)

    def __init__(self, *args, version: ModelVersion, **kwargs):
        super().__init__(*args, **kwargs)
        self.version = version
        self.fields["dataset_version"].choices = [("", "— choose a ready version —")] + [
            (str(candidate.pk), dataset_version_label(candidate)) for candidate in evaluation_dataset_versions(version)
        ]

    def evaluation_request(self) -> dict:
        """The service's keyword arguments."""
        return {"version_id": self.version.pk, "dataset_version_id": self.cleaned_data["dataset_version"],
                "split": self.cleaned_data["split"]}

    def errors_from_service(self, error: ValidationError) -> None:
        if not hasattr(error, "error_dict"):
            self.add_error(None, error)
            return
        for key, messages in error.message_dict.items():
            field = SERVICE_FIELDS.get(key)
            for message in messages:
                self.add_error(field, message)
