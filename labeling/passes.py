"""Passes (a labeler skipped a video, or answered "unsure" with an optional comment), the
undo of a labeler's last answer whichever kind it was, and the way back to their earlier
answers (the card's ← key).

A pass is not a vote: consensus and agreement never count it. One row per (user, video),
the latest pass wins; answering the video yes or no later removes the pass."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from core.roles import can_label
from labeling import services
from labeling.models import VOTING_SOURCES, EffectiveLabel, Guideline, Label, LabelPass, PassReason, Video

MAX_COMMENT_LENGTH = 2000


def label_pass(*, user, video: Video, reason: str, comment: str = "", guideline: Guideline | None = None) -> LabelPass:
    """Record that ``user`` passed on ``video`` (``reason``: skip or unsure) — an upsert:
    a second pass on the same video replaces the first (reason, comment, guideline, time).
    A skip carries no comment."""
    if not can_label(user):
        raise PermissionDenied("only labelers, reviewers and admins can label videos")
    if reason not in PassReason.values:
        raise ValidationError({"reason": f"must be one of {', '.join(PassReason.values)} (got {reason!r})"})
    comment = (comment or "").strip()
    if len(comment) > MAX_COMMENT_LENGTH:
        raise ValidationError({"comment": f"at most {MAX_COMMENT_LENGTH} characters (got {len(comment)})"})
    if reason == PassReason.SKIP and comment:
        raise ValidationError({"comment": "a skip has no comment: answer “unsure” to leave one"})
    # update_or_create locks an existing row; two concurrent first passes meet the unique
    # constraint, and the loser's create turns into the update (Django retries the get).
    passed, _ = LabelPass.objects.update_or_create(
        user=user, video=video, defaults={"reason": reason, "comment": comment, "guideline": guideline}
    )
    return passed


@transaction.atomic
def unsure_replacing_vote(*, user, video: Video, comment: str = "", guideline: Guideline | None = None) -> LabelPass:
    """The labeler changes their yes/no on ``video`` to "unsure" (explicitly, from the
    card of an earlier answer): their votes on it are retracted and the pass written."""
    passed = label_pass(user=user, video=video, reason=PassReason.UNSURE, comment=comment, guideline=guideline)
    Label.objects.filter(user=user, video=video, retracted_at__isnull=True, source__in=VOTING_SOURCES).update(
        retracted_at=timezone.now()
    )
    return passed


def pass_clear(*, user, video: Video) -> None:
    """The labeler answered ``video`` yes or no: their pass on it no longer holds."""
    LabelPass.objects.filter(user=user, video=video).delete()


def user_pass(*, user, video: Video) -> LabelPass | None:
    return LabelPass.objects.filter(user=user, video=video).first()


@dataclass(frozen=True)
class UndoneAnswer:
    video: Video
    answer: str  # "yes", "no", "unsure" or "skip"


@transaction.atomic
def answer_undo_last(*, user) -> UndoneAnswer | None:
    """Undo the user's most recent answer, a vote (retracted: the one before it counts
    again) or a pass (deleted: the video is served to them again). None: nothing to undo."""
    last_pass = (
        LabelPass.objects.select_for_update().filter(user=user).order_by("-updated_at", "-id").select_related("video").first()
    )
    last_vote = (
        Label.objects.filter(user=user, retracted_at__isnull=True, source__in=VOTING_SOURCES)
        .order_by("-created_at", "-id").values_list("created_at", flat=True).first()
    )
    if last_pass is not None and (last_vote is None or last_pass.updated_at > last_vote):
        last_pass.delete()
        return UndoneAnswer(last_pass.video, last_pass.reason)
    label = services.label_undo_last(user=user)
    if label is None:
        return None
    return UndoneAnswer(label.video, "yes" if label.value else "no")


@dataclass(frozen=True)
class PreviousAnswer:
    """One of the user's earlier answers, shown again on the card by ←."""

    video: Video
    answer: str  # "yes", "no", "unsure" or "skip"
    comment: str
    answered_at: datetime


def _answered_at(user, video_id: int) -> datetime | None:
    times = [
        EffectiveLabel.objects.filter(user=user, video_id=video_id).values_list("created_at", flat=True).first(),
        LabelPass.objects.filter(user=user, video_id=video_id).values_list("updated_at", flat=True).first(),
    ]
    times = [moment for moment in times if moment is not None]
    return max(times) if times else None


def previous_answer(*, user, before_video_id: int | None = None) -> PreviousAnswer | None:
    """The user's latest answer (their effective vote or their pass on a video), or with
    ``before_video_id`` the latest one given before their answer on that video: pressing
    ← again walks further back. At most four queries."""
    votes = EffectiveLabel.objects.filter(user=user)
    passes = LabelPass.objects.filter(user=user)
    if before_video_id is not None:
        cutoff = _answered_at(user, before_video_id)
        if cutoff is None:  # the card's video is not answered (yet): start from the latest
            before_video_id = None
        else:
            votes = votes.filter(created_at__lt=cutoff).exclude(video_id=before_video_id)
            passes = passes.filter(updated_at__lt=cutoff).exclude(video_id=before_video_id)
    vote = votes.order_by("-created_at", "-label_id").select_related("video").first()
    passed = passes.order_by("-updated_at", "-id").select_related("video").first()
    if passed is not None and (vote is None or passed.updated_at > vote.created_at):
        return PreviousAnswer(passed.video, passed.reason, passed.comment, passed.updated_at)
    if vote is None:
        return None
    return PreviousAnswer(vote.video, "yes" if vote.value else "no", "", vote.created_at)
