"""Writes of the labeling app: labels (append only), undo (retraction), reviews."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from core.roles import can_label, can_review, can_write_machine_labels
from labeling.models import VOTING_SOURCES, Label, LabelSource, Review, Video, VideoConsensus


def label_create(*, video: Video, user, value: bool, source: str = LabelSource.HUMAN) -> Label:
    """Append a label. A repeated answer adds a row but never a second vote:
    consensus counts each user's latest human (or imported) label only; a ``model`` label
    is history, never a vote."""
    if not can_label(user):
        raise PermissionDenied("only labelers, reviewers and admins can label videos")
    if source not in LabelSource.values:
        raise ValidationError({"source": f"must be one of {', '.join(LabelSource.values)} (got {source!r})"})
    if source != LabelSource.HUMAN and not can_write_machine_labels(user):
        raise PermissionDenied(f"only admins can write labels with source {source!r}")
    if not isinstance(value, bool):
        raise ValidationError({"value": f"must be true or false (got {value!r})"})
    return Label.objects.create(video=video, user=user, value=value, source=source)


@transaction.atomic
def label_undo_last(*, user) -> Label | None:
    """Retract the user's most recent answer; the one before it (if any) counts again.

    A model label written under the same account is not an answer of theirs, so undo
    passes over it. The row lock makes two concurrent undos retract two different labels,
    not one twice.
    """
    label = (
        Label.objects.select_for_update()
        .filter(user=user, retracted_at__isnull=True, source__in=VOTING_SOURCES)
        .order_by("-created_at", "-id")
        .select_related("video")
        .first()
    )
    if label is None:
        return None
    label.retracted_at = timezone.now()
    label.save(update_fields=["retracted_at"])
    return label


@transaction.atomic
def review_create(*, video: Video, reviewer, value: bool, note: str | None = "", only_if_unresolved: bool = False) -> Review:
    """A reviewer's final answer; the latest review overrides the vote.

    ``only_if_unresolved`` is what the review queue sends: the video row is locked, so
    of two reviewers resolving the same conflict at once the second is told it is
    already resolved instead of silently overriding the first.
    """
    if not can_review(reviewer):
        raise PermissionDenied("only reviewers can resolve conflicts")
    if not isinstance(value, bool):
        raise ValidationError({"value": f"must be true or false (got {value!r})"})
    Video.objects.select_for_update().filter(pk=video.pk).exists()
    if only_if_unresolved:
        consensus = VideoConsensus.objects.select_related("review__reviewer").get(video=video)
        if not consensus.is_inconsistent:
            by = f" by {consensus.review.reviewer}" if consensus.review else ""
            raise ValidationError(f"av{video.aid} is already resolved{by}")
    return Review.objects.create(video=video, reviewer=reviewer, value=value, note=(note or "").strip())
