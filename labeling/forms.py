from django import forms

from labeling.selectors import QueueMode


class AnswerForm(forms.Form):
    """A yes/no answer as the pages post it: value "1" or "0"."""

    value = forms.TypedChoiceField(choices=[("1", "yes"), ("0", "no")], coerce=lambda raw: raw == "1")
    note = forms.CharField(required=False, max_length=2000)
    # Set by the card's "change to yes/no?" button: the user means to replace their label.
    confirm_change = forms.BooleanField(required=False)


class CardForm(forms.Form):
    video_id = forms.IntegerField(min_value=1)
    mode = forms.ChoiceField(choices=QueueMode.choices, required=False)


class UnsureForm(forms.Form):
    """An "unsure" answer: an optional comment for reviewers."""

    comment = forms.CharField(required=False, max_length=2000, strip=True)
    # Set on the card of an earlier answer (←): the user means to replace their yes/no.
    confirm_change = forms.BooleanField(required=False)


class GuidelineForm(forms.Form):
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 24, "cols": 90}), max_length=50_000,
                           help_text="Markdown. Raw HTML is shown as text.")
    change_note = forms.CharField(required=False, max_length=200, help_text="What changed, for the version history.")


class KeysForm(forms.Form):
    """One field per card action: the KeyboardEvent.code of its key (the page fills it by
    pressing the key)."""

    def __init__(self, *args, actions: dict[str, tuple[str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        for action, (default, meaning) in actions.items():
            self.fields[action] = forms.CharField(max_length=30, label=action, help_text=f"{meaning} — default {default}")
