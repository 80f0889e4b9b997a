"""Hand-made videos for the cleaning tests: one per case, named by aid."""

from __future__ import annotations

from datetime import datetime, timezone

from labeling.models import Video


def video(aid: int, title: str, description: str = "", tags: str = "", **fields) -> Video:
    fields.setdefault("published_at", datetime(2024, 1, 1, tzinfo=timezone.utc))
    return Video.objects.create(aid=aid, title=title, description=description, tags=tags, **fields)


def bulk_videos(count: int, *, start_aid: int = 100_000, title: str = "x") -> list[Video]:
    """``count`` videos that every test rule below matches (title ``x``, no description)."""
    return Video.objects.bulk_create(
        Video(aid=start_aid + index, title=title, description="", tags="") for index in range(count)
    )
