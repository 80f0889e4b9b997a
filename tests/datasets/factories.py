"""Corpus builders for the datasets tests: videos and labels straight into the tables."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone

from django.contrib.auth import get_user_model

from labeling.models import Label, Review, Video

# What the labelers answered on one video: one entry per labeler (None = no label).
Votes = Sequence[bool | None]

POSITIVE: Votes = (True,)
NEGATIVE: Votes = (False,)
UNLABELED: Votes = ()
TIE: Votes = (True, False)  # inconsistent, no consensus
MAJORITY_TRUE: Votes = (True, True, False)  # inconsistent, consensus True


def make_labelers(count: int = 3, prefix: str = "labeler") -> list:
    User = get_user_model()
    return [User.objects.create_user(username=f"{prefix}{index}", password="pw-for-tests-1") for index in range(count)]


def make_videos(
    count: int,
    *,
    start_aid: int = 1000,
    title: Callable[[int], str] | None = None,
    **fields,
) -> list[Video]:
    base = datetime(2024, 1, 1, tzinfo=timezone.utc)
    videos = [
        Video(
            aid=start_aid + index,
            title=title(index) if title else f"测试视频 {start_aid + index}",
            description=f"description of video {start_aid + index}",
            tags="VOCALOID,初音ミク",
            uploader_mid=100 + index % 5,
            published_at=base + timedelta(days=index),
            duration=60 + index,
            **fields,
        )
        for index in range(count)
    ]
    return Video.objects.bulk_create(videos)


def label(videos: Sequence[Video], users: Sequence, votes: Votes | Callable[[int, Video], Votes]) -> None:
    """Give each video the votes (one per user, in order); a callable picks per video."""
    labels = []
    for index, video in enumerate(videos):
        chosen = votes(index, video) if callable(votes) else votes
        for user, value in zip(users, chosen):
            if value is not None:
                labels.append(Label(video=video, user=user, value=value))
    Label.objects.bulk_create(labels)


def review(video: Video, reviewer, value: bool) -> Review:
    return Review.objects.create(video=video, reviewer=reviewer, value=value)
