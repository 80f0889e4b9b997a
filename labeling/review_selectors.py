"""Reads for the review pages and the blind API: what labelers said besides their votes
(unsure answers and their comments), a video's reviews with the superseded ones marked,
and which videos' votes a user may see. Fixed query counts."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Exists, OuterRef, QuerySet

from core.roles import can_review
from labeling.models import VOTING_SOURCES, Label, LabelPass, PassReason, Review, Video


@dataclass(frozen=True)
class UnsureAnswer:
    video_id: int
    username: str
    comment: str
    created_at: datetime


def unsure_answers_by_video(video_ids) -> dict[int, list[UnsureAnswer]]:
    """Each labeler's "unsure" answer (with its comment) per video, for a page of videos
    in one query (the ``labelpass_unsure_video_idx`` partial index)."""
    rows = (
        LabelPass.objects.filter(video_id__in=list(video_ids), reason=PassReason.UNSURE)
        .order_by("video_id", "created_at", "id")
        .values_list("video_id", "user__username", "comment", "created_at")
    )
    answers: dict[int, list[UnsureAnswer]] = defaultdict(list)
    for row in rows:
        answers[row[0]].append(UnsureAnswer(*row))
    return answers


@dataclass(frozen=True)
class ReviewEntry:
    review: Review
    superseded: bool  # a newer review of the same video replaced it


def video_reviews(video: Video) -> list[ReviewEntry]:
    """The video's reviews, newest first: the first one is the consensus, the older ones
    are marked superseded (a reviewer may re-review; the newest review wins)."""
    reviews = video.reviews.select_related("reviewer").order_by("-created_at", "-id")
    return [ReviewEntry(review=review, superseded=index > 0) for index, review in enumerate(reviews)]


# ------------------------------------------------------------------ blind labeling


def _votes_of(user) -> QuerySet[Label]:
    return Label.objects.filter(user=user, retracted_at__isnull=True, source__in=VOTING_SOURCES)


def visible_vote_video_ids(user, video_ids) -> set[int] | None:
    """Blind labeling for many videos: ``None`` when ``user`` may see every video's votes
    and consensus (reviewers, admins), else the ids among ``video_ids`` they voted on
    themselves (one query)."""
    if can_review(user):
        return None
    return set(_votes_of(user).filter(video_id__in=list(video_ids)).values_list("video_id", flat=True).distinct())


def voted_by(videos: QuerySet[Video], user) -> QuerySet[Video]:
    """``videos`` narrowed to those ``user`` voted on (for filters on consensus or votes,
    which would otherwise reveal others' votes to a labeler); unchanged for reviewers."""
    if can_review(user):
        return videos
    return videos.filter(Exists(_votes_of(user).filter(video=OuterRef("pk"))))
