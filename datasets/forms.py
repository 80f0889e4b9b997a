"""The dataset build form: what to build (model, selection, splits), validated field by field.

The form checks shapes (numbers, ratios, the aid list's syntax); the sampling selector
and the build service check the rest and their errors are put back on the fields
(``errors_from_service``), so the page shows every problem next to its input.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from datasets import selectors, services
from datasets.embedding_registry import EmbeddingRegistryError

AID_SEPARATORS = re.compile(r"[\s,，;；]+")
MAX_LISTED_BAD_AIDS = 10

MODE_AIDS = "aids"
MODE_SAMPLING = "sampling"
LABEL_ANY = ""


class DatasetBuildForm(forms.Form):
    name = forms.CharField(max_length=200, initial=services.DEFAULT_DATASET_NAME,
                           help_text="Versions of the same dataset are numbered 1, 2, …")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    embedding_model = forms.ChoiceField(choices=[])

    mode = forms.ChoiceField(
        choices=[(MODE_AIDS, "An aid list"), (MODE_SAMPLING, "A sampling strategy")],
        initial=MODE_SAMPLING, widget=forms.RadioSelect, label="Select videos by",
    )
    aid_list = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 4, "placeholder": "170001, 170002 …"}),
        label="aid list", help_text="Numbers separated by spaces, commas or new lines.",
    )
    strategy = forms.ChoiceField(
        choices=[(key, f"{key}: {meaning}") for key, meaning in selectors.SAMPLING_STRATEGIES.items()],
        initial="all", required=False,
    )
    limit = forms.IntegerField(required=False, min_value=1, max_value=selectors.MAX_SAMPLE_LIMIT,
                               help_text=f"Random strategies default to {selectors.DEFAULT_SAMPLE_LIMIT}.")
    label_value = forms.ChoiceField(
        required=False, choices=[(LABEL_ANY, "any"), ("true", "yes (in scope)"), ("false", "no")], label="Consensus",
    )
    published_after = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    published_before = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    min_duration = forms.IntegerField(required=False, min_value=0, help_text="seconds")
    max_duration = forms.IntegerField(required=False, min_value=0, help_text="seconds")
    uploader_mid = forms.IntegerField(required=False, min_value=0)
    title_contains = forms.CharField(required=False, max_length=200)
    tags_contains = forms.CharField(required=False, max_length=200)

    train_ratio = forms.FloatField(initial=services.DEFAULT_SPLIT_RATIOS[0], min_value=0, max_value=1)
    val_ratio = forms.FloatField(initial=services.DEFAULT_SPLIT_RATIOS[1], min_value=0, max_value=1)
    test_ratio = forms.FloatField(initial=services.DEFAULT_SPLIT_RATIOS[2], min_value=0, max_value=1)
    seed = forms.IntegerField(initial=42, min_value=-(2**63), max_value=2**63 - 1,
                              help_text="Fixes the split (and random sampling).")
    force_regenerate = forms.BooleanField(required=False, help_text="Embed every text again, even if stored.")
    include_inconsistent = forms.BooleanField(required=False, help_text="Keep videos whose labelers disagree.")

    METADATA_FIELDS = tuple(selectors.METADATA_FILTERS)
    SAMPLING_FIELDS = ("strategy", "limit", "label_value", *METADATA_FIELDS)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.registry_error: str | None = None
        try:
            registry = services.embedding_registry()
        except EmbeddingRegistryError as error:
            self.registry_error = str(error)
            return
        self.fields["embedding_model"].choices = [
            (spec.key, f"{spec.key} — {spec.name}, {spec.dimensions} dims ({spec.type})") for spec in registry
        ]
        self.fields["embedding_model"].initial = registry.default_key

    def clean_aid_list(self) -> list[int]:
        raw = self.cleaned_data.get("aid_list", "")
        tokens = [token for token in AID_SEPARATORS.split(raw.strip()) if token]
        # ASCII digits only: str.isdigit() accepts "²" and other digits int() refuses.
        # At most 18 digits: fits a bigint, and int() never sees a 5000-digit string.
        bad = [token for token in tokens if not re.fullmatch(r"[0-9]{1,18}", token) or int(token) <= 0]
        if bad:
            shown = ", ".join(token[:30] for token in bad[:MAX_LISTED_BAD_AIDS])
            shown += " …" if len(bad) > MAX_LISTED_BAD_AIDS else ""
            raise ValidationError(f"Not positive integers: {shown}")
        return list(dict.fromkeys(int(token) for token in tokens))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.registry_error:
            raise ValidationError(f"The embedding model registry is invalid: {self.registry_error}")
        if cleaned.get("mode") == MODE_AIDS:
            if "aid_list" in cleaned and not cleaned["aid_list"]:
                self.add_error("aid_list", "Give at least one aid.")
        elif cleaned.get("mode") == MODE_SAMPLING and not cleaned.get("strategy"):
            self.add_error("strategy", "Choose a sampling strategy.")
        ratios = [cleaned.get(name) for name in ("train_ratio", "val_ratio", "test_ratio")]
        if None not in ratios:
            if ratios[0] <= 0:
                self.add_error("train_ratio", "The train share must be above 0.")
            elif abs(sum(ratios) - 1.0) > 1e-6:
                self.add_error("test_ratio", f"The three ratios must sum to 1 (they sum to {sum(ratios):g}).")
        published = cleaned.get("published_after"), cleaned.get("published_before")
        if None not in published and published[0] >= published[1]:
            self.add_error("published_before", "Must be after “published after”.")
        durations = cleaned.get("min_duration"), cleaned.get("max_duration")
        if None not in durations and durations[0] > durations[1]:
            self.add_error("max_duration", "Must be at least the minimum duration.")
        return cleaned

    # --- what the services get ----------------------------------------------------

    def uses_sampling(self) -> bool:
        return self.cleaned_data["mode"] == MODE_SAMPLING

    def sampling_arguments(self) -> dict[str, Any]:
        data = self.cleaned_data
        metadata = {}
        for name in self.METADATA_FIELDS:
            value = data.get(name)
            if value in (None, ""):
                continue
            metadata[name] = value.isoformat() if hasattr(value, "isoformat") else value
        return {
            "strategy": data["strategy"],
            "limit": data.get("limit"),
            "label_value": {"true": True, "false": False}.get(data.get("label_value") or LABEL_ANY),
            "metadata_filter": metadata or None,
            "seed": data["seed"],
        }

    def request_arguments(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "dataset_name": data["name"].strip(),
            "description": data["description"],
            "embedding_model_key": data["embedding_model"],
            "split_ratios": (data["train_ratio"], data["val_ratio"], data["test_ratio"]),
            "seed": data["seed"],
            "force_regenerate": data["force_regenerate"],
            "include_inconsistent": data["include_inconsistent"],
        }

    # --- errors from the selector and the service ---------------------------------

    _SERVICE_FIELDS = {
        "aid_list": "aid_list",
        "embedding_model": "embedding_model",
        "dataset_name": "name",
        "description": "description",
        "seed": "seed",
        "split_ratios": "test_ratio",
        "strategy": "strategy",
        "limit": "limit",
        "label_value": "label_value",
    }

    def errors_from_service(self, error: ValidationError) -> None:
        """Put a service's ``ValidationError`` (keyed by its argument names) on the fields."""
        if not hasattr(error, "error_dict"):
            self.add_error(None, error)
            return
        for key, messages in error.message_dict.items():
            if key == "sampling":  # nothing matched the sampling criteria
                for message in messages:
                    self.add_error(None, message)
                continue
            field = self._SERVICE_FIELDS.get(key)
            if field is None and key.startswith("metadata_filter."):
                field = key.split(".", 1)[1]
            if field not in self.fields:
                field, messages = None, [f"{key}: {message}" for message in messages]
            if field is not None and self.uses_sampling() and field == "aid_list":
                field, messages = None, [f"Sampled videos: {message}" for message in messages]
            for message in messages:
                self.add_error(field, message)
