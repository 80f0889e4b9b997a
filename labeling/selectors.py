"""Reads of the labeling app. Every function costs a fixed number of queries, whatever N."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, models
from django.db.models import Count, F, FilteredRelation, Q, QuerySet
from django.utils import timezone

from core.roles import can_review
from labeling.models import (
    VOTING_SOURCES,
    EffectiveLabel,
    Label,
    Review,
    ReviewCounts,
    Video,
    VideoConsensus,
)

# An aid is a positive bigint; str.isdigit() would also accept "²".
_AID_SEARCH = re.compile(r"[0-9]{1,18}")
# What people paste to name a video: a bare aid, "av104902138" (any case), "BV1xx411c7mD",
# or a bilibili.com/video/... link holding one of those.
_AV_REFERENCE = re.compile(r"[Aa][Vv]([0-9]{1,18})")
_BV_REFERENCE = re.compile(r"[Bb][Vv]([0-9A-Za-z]{10})")
_VIDEO_LINK = re.compile(r"bilibili\.com/video/([AaBb][Vv][0-9A-Za-z]+)")


class QueueMode(models.TextChoices):
    UNLABELED = "unlabeled", "Unlabeled by me"
    LOW_AGREEMENT = "low_agreement", "Low agreement"
    RANDOM = "random", "Random"


@dataclass(frozen=True)
class LabelingProgress:
    labeled_today: int
    labeled_total: int
    remaining: int
    labeled_this_week: int = 0


@dataclass(frozen=True)
class UserLabel:
    video_id: int
    user_id: int
    username: str
    value: bool
    created_at: datetime


def _my_votes(user) -> QuerySet:
    """The user's own answers: a model label written under their account is not one."""
    return Label.objects.filter(user=user, retracted_at__isnull=True, source__in=VOTING_SOURCES)


def labeling_queue_next(*, user, mode: str = QueueMode.UNLABELED, exclude_video_ids=()) -> Video | None:
    """The next video the queue would hand ``user`` (see ``labeling.queue``), without
    reserving it: never one they voted on or passed, nor one at the overlap target."""
    from labeling.queue import queue_candidate_ids

    ids = queue_candidate_ids(user=user, mode=mode, exclude_video_ids=exclude_video_ids)
    return Video.objects.filter(pk=ids[0]).first() if ids else None


_PROGRESS = """
SELECT
    (SELECT count(DISTINCT video_id) FROM labeling_label
     WHERE user_id = %(user)s AND retracted_at IS NULL AND source IN ('human', 'import') AND created_at >= %(day)s),
    (SELECT count(DISTINCT video_id) FROM labeling_label
     WHERE user_id = %(user)s AND retracted_at IS NULL AND source IN ('human', 'import') AND created_at >= %(week)s),
    (SELECT coalesce(sum(videos), 0) FROM labeling_labelervotecountvideos WHERE user_id = %(user)s),
    (SELECT coalesce(sum(videos), 0) FROM labeling_votecountvideos WHERE total_votes < %(overlap)s)
    - (SELECT coalesce(sum(videos), 0) FROM labeling_labelervotecountvideos
       WHERE user_id = %(user)s AND total_votes < %(overlap)s)
    - (SELECT count(*) FROM labeling_labelpass p JOIN labeling_videolabelstats s ON s.video_id = p.video_id
       WHERE p.user_id = %(user)s AND s.total_votes < %(overlap)s AND NOT (%(user)s = ANY(s.voter_ids)))
"""


def labeling_progress(*, user) -> LabelingProgress:
    """Videos the user labeled today, this week (since Monday, local time) and ever, and
    how many still need votes that they have neither voted on nor passed: one query,
    whatever the corpus or their history (the totals come from the trigger-kept vote-count
    histograms of migration 0010, not from counting labels)."""
    start_of_day = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    start_of_week = start_of_day - timedelta(days=start_of_day.weekday())
    with connection.cursor() as cursor:
        cursor.execute(_PROGRESS, {"user": user.pk, "day": start_of_day, "week": start_of_week,
                                   "overlap": settings.CVSA_LABELING_OVERLAP})
        today, week, total, remaining = cursor.fetchone()
    return LabelingProgress(today, int(total), int(remaining), week)


def my_effective_label(*, user, video: Video) -> Label | None:
    """The user's own label that counts on ``video`` (None: they have not answered it)."""
    return _my_votes(user).filter(video=video).order_by("-created_at", "-id").first()


def can_see_votes(*, user, video: Video) -> bool:
    """Blind labeling: others' votes and the consensus of a video are shown to reviewers
    and admins, and to a labeler only once they voted on it themselves."""
    return can_review(user) or _my_votes(user).filter(video=video).exists()


def effective_labels_by_video(video_ids) -> dict[int, list[UserLabel]]:
    """Each user's effective label per video, for many videos in one query."""
    rows = (
        EffectiveLabel.objects.filter(video_id__in=list(video_ids))
        .order_by("video_id", "user__username")
        .values_list("video_id", "user_id", "user__username", "value", "created_at")
    )
    labels: dict[int, list[UserLabel]] = defaultdict(list)
    for row in rows:
        labels[row[0]].append(UserLabel(*row))
    return labels


def video_reference_condition(text: str, *, prefix: str = "") -> Q | None:
    """Exact-match condition when ``text`` names one video, else None: a bare aid,
    "av104902138" (any case), "BV1xx411c7mD" or a bilibili.com/video/ link. ``prefix``
    reaches the video through a relation (``"video__"`` for labels and reviews). BV ids
    are case-sensitive after the prefix, so only the prefix is normalised."""
    text = text.strip()
    link = _VIDEO_LINK.search(text)
    if link:
        text = link.group(1)
    if _AID_SEARCH.fullmatch(text):
        return Q(**{f"{prefix}aid": int(text)})
    if match := _AV_REFERENCE.fullmatch(text):
        return Q(**{f"{prefix}aid": int(match.group(1))})
    if match := _BV_REFERENCE.fullmatch(text):
        return Q(**{f"{prefix}bvid": "BV" + match.group(1)})
    return None


def _video_search(search: str) -> Q:
    condition = Q(title__icontains=search) | Q(tags__icontains=search) | Q(bvid__iexact=search)
    reference = video_reference_condition(search)
    if reference is not None:
        condition |= reference
    return condition


REVIEW_ORDERINGS = {
    "votes": [F("label_stats__total_votes").desc(), F("label_stats__aid")],
    "recent": [F("label_stats__last_labeled_at").desc(nulls_last=True), F("label_stats__aid")],
    "aid": ["aid"],
}


def inconsistent_videos(*, search: str = "", order: str = "votes") -> QuerySet[Video]:
    videos = Video.objects.filter(label_stats__is_inconsistent=True).select_related("consensus")
    if search:
        videos = videos.filter(_video_search(search))
    return videos.order_by(*REVIEW_ORDERINGS.get(order, REVIEW_ORDERINGS["votes"]))


class ReviewQueueShow(models.TextChoices):
    ALL = "all", "Conflicts and requests"
    CONFLICTS = "conflicts", "Conflicts only"
    REQUESTS = "requests", "Review requests only"


#: The review queue's orderings: the conflicts' ones, and oldest request first.
REVIEW_QUEUE_ORDERINGS = {
    **REVIEW_ORDERINGS,
    "requested": [F("open_request__created_at").asc(nulls_last=True), "aid"],
}
# The trigger-kept stats (labelstats_conflicts_idx), not the consensus view: the view
# would compute every video's votes to find the conflicts.
_IS_CONFLICT = Q(label_stats__is_inconsistent=True)
_IS_REQUESTED = Q(label_stats__review_requested=True)
_SHOWN = {
    ReviewQueueShow.ALL: _IS_CONFLICT | _IS_REQUESTED,
    ReviewQueueShow.CONFLICTS: _IS_CONFLICT,
    ReviewQueueShow.REQUESTS: _IS_REQUESTED,
}


def _review_queue_base(search: str, show: str) -> QuerySet[Video]:
    # At most one open request per video (a partial unique index): the join adds no rows.
    videos = Video.objects.annotate(
        open_request=FilteredRelation("review_requests", condition=Q(review_requests__resolved_at__isnull=True))
    ).filter(_SHOWN.get(show, _SHOWN[ReviewQueueShow.ALL]))
    if search:
        videos = videos.filter(_video_search(search))
    return videos


def review_queue(*, search: str = "", order: str = "votes", show: str = ReviewQueueShow.ALL) -> QuerySet[Video]:
    """What reviewers resolve: the unresolved conflicts and the videos with an open
    review request (their labelers may agree), in one query per page. Each video carries
    its consensus and, when requested, ``request_reason``, ``request_source``,
    ``request_by`` (a username, or None) and ``request_created_at``."""
    # The filter and order read the stats' partial index, so the consensus view is joined
    # for the page's rows only (a nested loop under the LIMIT: < 1 ms at 1M videos).
    return (
        _review_queue_base(search, show)
        .select_related("consensus")
        .annotate(
            request_reason=F("open_request__reason"),
            request_source=F("open_request__source"),
            request_by=F("open_request__requested_by__username"),
            request_created_at=F("open_request__created_at"),
        )
        .order_by(*REVIEW_QUEUE_ORDERINGS.get(order, REVIEW_QUEUE_ORDERINGS["votes"]))
    )


def review_queue_counts(*, search: str = "") -> dict[str, int]:
    """``conflicts`` and ``requests`` in the queue (a video may be both), in one query.
    Without a search: the totals the triggers keep (``ReviewCounts``, one row). With
    one: counted live, each through its own index (an OR of the two would scan every video)."""
    if not search:
        totals = ReviewCounts.objects.values_list("conflicts", "requests").first()
        conflict_count, request_count = totals or (0, 0)
        return {"conflicts": int(conflict_count), "requests": int(request_count)}
    conflicts = Video.objects.filter(_IS_CONFLICT, _video_search(search))
    requests = Video.objects.filter(_IS_REQUESTED, _video_search(search))
    conflicts_sql, conflicts_params = conflicts.values("pk").query.sql_with_params()
    requests_sql, requests_params = requests.values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT (SELECT count(*) FROM ({conflicts_sql}) c), (SELECT count(*) FROM ({requests_sql}) r)",
            [*conflicts_params, *requests_params],
        )
        conflict_count, request_count = cursor.fetchone()
    return {"conflicts": conflict_count, "requests": request_count}


def video_by_aid(aid: int) -> Video | None:
    return Video.objects.filter(aid=aid).first()


def consensus_by_aid(aids) -> dict[int, VideoConsensus]:
    rows = VideoConsensus.objects.filter(video__aid__in=list(aids)).select_related("video")
    return {row.video.aid: row for row in rows}


def video_history(video: Video) -> tuple[list[Label], list[Review]]:
    labels = list(video.labels.select_related("user").order_by("-created_at", "-id"))
    reviews = list(video.reviews.select_related("reviewer").order_by("-created_at", "-id"))
    return labels, reviews


def videos_filtered(*, search: str = "", consensus: str | None = None, inconsistent: bool | None = None,
                    labeled: bool | None = None) -> QuerySet[Video]:
    """Videos for the API list: consensus joined from the view (one query per page)."""
    videos = Video.objects.select_related("consensus").order_by("aid")
    if search:
        videos = videos.filter(_video_search(search))
    if consensus == "true":
        videos = videos.filter(consensus__value=True)
    elif consensus == "false":
        videos = videos.filter(consensus__value=False)
    elif consensus == "none":
        videos = videos.filter(consensus__value__isnull=True)
    if inconsistent is not None:
        videos = videos.filter(consensus__is_inconsistent=inconsistent)
    if labeled is not None:
        videos = videos.filter(consensus__total_votes__gt=0) if labeled else videos.filter(consensus__total_votes=0)
    return videos
