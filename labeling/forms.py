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
