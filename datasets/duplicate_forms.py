"""The duplicate-scan form: which kinds, and for near duplicates the model, threshold
and neighbours. Shapes only; ``services.duplicates.deduplication_params_clean`` decides."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.utils.text import capfirst

from datasets.models import DuplicateKind
from datasets.services.duplicates import DEFAULT_NEIGHBOURS, DEFAULT_THRESHOLD, MAX_NEIGHBOURS, MAX_THRESHOLD


class DeduplicationScanForm(forms.Form):
    kinds = forms.MultipleChoiceField(
        choices=DuplicateKind.choices, widget=forms.CheckboxSelectMultiple,
        initial=[DuplicateKind.EXACT, DuplicateKind.NEAR],
    )
    embedding_model = forms.ChoiceField(
        required=False, help_text="Near duplicates: the model whose vectors are compared")
    threshold = forms.FloatField(
        required=False, initial=DEFAULT_THRESHOLD, min_value=0, max_value=MAX_THRESHOLD,
        help_text=f"Cosine distance below which two texts are near duplicates (0 < t ≤ {MAX_THRESHOLD})",
        widget=forms.NumberInput(attrs={"step": "0.005"}),
    )
    neighbours = forms.IntegerField(
        required=False, initial=DEFAULT_NEIGHBOURS, min_value=1, max_value=MAX_NEIGHBOURS,
        help_text="Nearest neighbours looked at per text",
    )

    def __init__(self, *args, models=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["embedding_model"].choices = [("", "—")] + [
            (model.key, f"{model.key} ({model.dimensions}d)") for model in models
        ]
        if models and not self.is_bound:
            self.fields["embedding_model"].initial = models[0].key

    def params(self) -> dict:
        data = self.cleaned_data
        params = {"kinds": data["kinds"]}
        if DuplicateKind.NEAR in data["kinds"]:
            params["embedding_model"] = data.get("embedding_model") or None
            for name in ("threshold", "neighbours"):
                if data.get(name) is not None:
                    params[name] = data[name]
        return params

    def errors_from_service(self, error: ValidationError) -> None:
        for field, messages in getattr(error, "message_dict", {"__all__": error.messages}).items():
            self.add_error(field if field in self.fields else None, messages)

    def error_summary(self) -> list[tuple[str | None, str]]:
        entries: list[tuple[str | None, str]] = [(None, str(error)) for error in self.non_field_errors()]
        for bound in self:
            anchor = bound.id_for_label or (f"{bound.auto_id}_0" if bound.auto_id else None)
            entries.extend((anchor, f"{capfirst(bound.label)}: {error}") for error in bound.errors)
        return entries
