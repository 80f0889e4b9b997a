"""The dataset build form: what to build (model, selection, splits), validated field by field.

The form checks shapes (numbers, ratios, the aid list's syntax) and turns its data into
a ``services.BuildRequest`` (``build_request()``); the build service checks the rest
(the model and its API key, the corpus, the sampling) and its errors are put back on
the fields (``errors_from_service``), so the page shows every problem next to its input.
A build of more than ``CONFIRM_ABOVE_VIDEOS`` videos needs the ``confirm_large`` box
ticked: the form counts the videos (``video_count``) whenever the selection is valid.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.text import capfirst

from datasets import selectors, services
from datasets.embedding_registry import EmbeddingRegistryError

AID_SEPARATORS = re.compile(r"[\s,，;；]+")
MAX_LISTED_BAD_AIDS = 10
#: Builds of more videos than this ask for an explicit confirmation (embedding costs money).
CONFIRM_ABOVE_VIDEOS = 5_000

MODE_AIDS = "aids"
MODE_SAMPLING = "sampling"
LABEL_ANY = ""


class DatasetBuildForm(forms.Form):
    name = forms.CharField(max_length=services.MAX_DATASET_NAME_LENGTH, initial=services.DEFAULT_DATASET_NAME,
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
    seed = forms.IntegerField(initial=services.DEFAULT_SEED, min_value=-(2**63), max_value=2**63 - 1,
                              help_text="Fixes the split (and random sampling).")
    force_regenerate = forms.BooleanField(required=False, help_text="Embed every text again, even if stored.")
    include_inconsistent = forms.BooleanField(required=False, help_text="Keep videos whose labelers disagree.")
    confirm_large = forms.BooleanField(
        required=False, label="I understand this embeds every selected video",
        help_text=f"Required for builds of more than {CONFIRM_ABOVE_VIDEOS:,} videos.",
    )

    METADATA_FIELDS = tuple(selectors.METADATA_FILTERS)
    SAMPLING_FIELDS = ("strategy", "limit", "label_value", *METADATA_FIELDS)
    #: The fields that decide which videos are built from (and so their count).
    SELECTION_FIELDS = ("mode", "aid_list", *SAMPLING_FIELDS, "seed", "include_inconsistent")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.registry_error: str | None = None
        #: Videos the build would use, once the selection fields are valid (None before).
        self.video_count: int | None = None
        try:
            registry = services.embedding_registry()
        except EmbeddingRegistryError as error:
            self.registry_error = str(error)
            return
        self.fields["embedding_model"].choices = [(spec.key, self._model_label(spec)) for spec in registry]
        self.fields["embedding_model"].initial = registry.default_key

    @staticmethod
    def _model_label(spec) -> str:
        label = f"{spec.key} — {spec.name}, {spec.dimensions} dims ({spec.type})"
        if spec.api_key_is_set is False:
            label += f" · API key not set ({spec.api_key_env})"
        return label

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
        self._count_and_confirm()
        return cleaned

    def _count_and_confirm(self) -> None:
        """Count the selected videos (one query) and require ``confirm_large`` above
        ``CONFIRM_ABOVE_VIDEOS``: server-side, whatever the page's script did."""
        if any(name in self._errors for name in self.SELECTION_FIELDS) or "mode" not in self.cleaned_data:
            return
        try:
            self.video_count = services.build_request_video_count(self._selection_request())
        except ValidationError as error:
            self.errors_from_service(error)
            return
        if self.video_count > CONFIRM_ABOVE_VIDEOS and not self.cleaned_data.get("confirm_large"):
            self.add_error("confirm_large", (
                f"This build uses {self.video_count:,} videos (more than {CONFIRM_ABOVE_VIDEOS:,}): "
                "tick the box to confirm, or narrow the selection."
            ))

    @property
    def confirm_above(self) -> int:
        return CONFIRM_ABOVE_VIDEOS

    @property
    def needs_confirmation(self) -> bool:
        return self.video_count is not None and self.video_count > CONFIRM_ABOVE_VIDEOS

    # --- what the services get ----------------------------------------------------

    def uses_sampling(self) -> bool:
        return self.cleaned_data["mode"] == MODE_SAMPLING

    def sampling_request(self) -> services.SamplingRequest:
        data = self.cleaned_data
        metadata = {}
        for name in self.METADATA_FIELDS:
            value = data.get(name)
            if value in (None, ""):
                continue
            metadata[name] = value.isoformat() if hasattr(value, "isoformat") else value
        return services.SamplingRequest(
            strategy=data["strategy"],
            limit=data.get("limit"),
            label_value={"true": True, "false": False}.get(data.get("label_value") or LABEL_ANY),
            metadata_filter=metadata or None,
            seed=data.get("seed"),
        )

    def _selection_request(self) -> services.BuildRequest:
        """Only the selection (for counting): the other fields may still be invalid."""
        return services.BuildRequest(
            embedding_model_key=self.cleaned_data.get("embedding_model") or "",
            include_inconsistent=self.cleaned_data.get("include_inconsistent", False),
            **self._videos(),
        )

    def _videos(self) -> dict[str, Any]:
        if self.uses_sampling():
            return {"sampling": self.sampling_request()}
        return {"aid_list": self.cleaned_data["aid_list"]}

    def build_request(self) -> services.BuildRequest:
        """The validated form as the build service's request (raises its ``ValidationError``)."""
        data = self.cleaned_data
        return services.BuildRequest(
            embedding_model_key=data["embedding_model"],
            dataset_name=data["name"],
            description=data["description"],
            split_ratios=(data["train_ratio"], data["val_ratio"], data["test_ratio"]),
            seed=data["seed"],
            force_regenerate=data["force_regenerate"],
            include_inconsistent=data["include_inconsistent"],
            **self._videos(),
        )

    def error_summary(self) -> list[tuple[str | None, str]]:
        """(id of the input to jump to or None, message) for every error, in page order."""
        entries: list[tuple[str | None, str]] = [(None, str(error)) for error in self.non_field_errors()]
        for bound in self:
            if not bound.errors:
                continue
            anchor = bound.id_for_label or (f"{bound.auto_id}_0" if bound.auto_id else None)
            entries.extend((anchor, f"{capfirst(bound.label)}: {error}") for error in bound.errors)
        return entries

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
