"""The fields an assisted labeling card posts back (``labeling/partials/card.html``)."""

from django import forms

from training.assisted_selectors import AssistedMode


class AssistedCardForm(forms.Form):
    video_id = forms.IntegerField(min_value=1)
    mode = forms.ChoiceField(choices=AssistedMode.choices, required=False)
    model = forms.CharField(required=False, max_length=200)
