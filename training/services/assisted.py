"""Writes of model-assisted labeling: a labeler's preference. (The labels themselves are
written by ``labeling.services.label_create``, as human labels of the labeler.)"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError

from core.roles import can_label
from training.models import AssistedLabelingPreference


def assisted_hint_set(user, show: bool) -> AssistedLabelingPreference:
    """Show (or hide) the model's probability and decision on ``user``'s assisted cards.
    Off until they turn it on, so that a labeler is not biased by the model unasked."""
    if not can_label(user):
        raise PermissionDenied("only labelers, reviewers and admins can label videos")
    if not isinstance(show, bool):
        raise ValidationError({"show": f"must be true or false (got {show!r})"})
    preference, _ = AssistedLabelingPreference.objects.update_or_create(
        user=user, defaults={"show_model_hint": show}
    )
    return preference
