"""core.timestamped: rows get their creation time once and their last-change time on every save."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
from django.utils import timezone

from core.timestamped import TimestampedModel
from labeling.models import Video
from tests.labeling.factories import VideoFactory

pytestmark = pytest.mark.django_db


def test_created_at_is_set_once_and_updated_at_on_every_save(monkeypatch):
    created = datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt_timezone.utc)
    monkeypatch.setattr(timezone, "now", lambda: created)
    video = VideoFactory()

    later = created + timedelta(hours=1)
    monkeypatch.setattr(timezone, "now", lambda: later)
    video.title = "renamed"
    video.save()
    video.refresh_from_db()

    assert (video.created_at, video.updated_at) == (created, later)


def test_the_base_is_abstract_and_its_fields_belong_to_each_table():
    assert TimestampedModel._meta.abstract
    assert issubclass(Video, TimestampedModel)
    assert Video._meta.get_field("created_at").model is Video
