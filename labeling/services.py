"""Writes of the labeling app: labels (append only), undo (retraction), reviews."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from labeling.models import Label, LabelSource, Review, Video
from labeling.roles import ADMINS, REVIEWERS, user_has_role


def _existing_video(video_id: int) -> Video:
    try:
        return Video.objects.get(pk=video_id)
    except (Video.DoesNotExist, ValueError, TypeError):
        raise ValidationError({"video": f"video {video_id!r} does not exist"}) from None


def label_create(*, video_id: int, user, value: bool, source: str = LabelSource.HUMAN) -> Label:
    """Append a label. A repeated answer adds a row but never a second vote:
    consensus counts each user's latest label only."""
    if source not in LabelSource.values:
        raise ValidationError({"source": f"must be one of {', '.join(LabelSource.values)} (got {source!r})"})
    if not isinstance(value, bool):
        raise ValidationError({"value": f"must be true or false (got {value!r})"})
    video = _existing_video(video_id)
    return Label.objects.create(video=video, user=user, value=value, source=source)


@transaction.atomic
def label_undo_last(*, user) -> Label | None:
    """Retract the user's most recent label; the one before it (if any) counts again.

    The row lock makes two concurrent undos retract two different labels, not one twice.
    """
    label = (
        Label.objects.select_for_update()
        .filter(user=user, retracted_at__isnull=True)
        .order_by("-created_at", "-id")
        .select_related("video")
        .first()
    )
    if label is None:
        return None
    label.retracted_at = timezone.now()
    label.save(update_fields=["retracted_at"])
    return label


def review_create(*, video_id: int, reviewer, value: bool, note: str = "") -> Review:
    """A reviewer's final answer; the latest review overrides the vote."""
    if not user_has_role(reviewer, REVIEWERS, ADMINS):
        raise PermissionDenied("only reviewers can resolve conflicts")
    if not isinstance(value, bool):
        raise ValidationError({"value": f"must be true or false (got {value!r})"})
    video = _existing_video(video_id)
    return Review.objects.create(video=video, reviewer=reviewer, value=value, note=note.strip())
