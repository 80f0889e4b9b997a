from __future__ import annotations

import io
import re
from datetime import datetime, timezone as dt_timezone

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db.models import Count

from core.roles import LABELERS, REVIEWERS
from labeling.demo_data import DEMO_LABELERS, DEMO_REVIEWER, generate_demo_videos, load_demo_data
from labeling.models import Label, Review, Video, VideoConsensus
from tests.labeling.factories import VideoFactory

NOW = datetime(2026, 11, 1, tzinfo=dt_timezone.utc)


def test_generated_videos_are_deterministic_plausible_and_mixed():
    videos = generate_demo_videos(count=400, seed=7, now=NOW)

    assert [v.record for v in videos] == [v.record for v in generate_demo_videos(count=400, seed=7, now=NOW)]
    assert [v.record for v in videos] != [v.record for v in generate_demo_videos(count=400, seed=8, now=NOW)]
    aids = [v.aid for v in videos]
    assert aids == sorted(aids) and len(set(aids)) == 400 and aids[0] > 100_000_000
    bvids = [v.record["bvid"] for v in videos]
    assert len(set(bvids)) == 400
    assert all(re.fullmatch(r"BV1[1-9A-HJ-NP-Za-km-z]{9}", bvid) for bvid in bvids)
    assert all(re.fullmatch(r"https://i0\.hdslb\.com/bfs/archive/[0-9a-f]{40}\.jpg", v.record["pic"]) for v in videos)
    pubdates = [v.record["pubdate"] for v in videos]
    assert NOW.timestamp() - 3 * 366 * 86400 < min(pubdates) and max(pubdates) <= NOW.timestamp()
    share = sum(v.in_scope for v in videos) / len(videos)
    assert 0.2 < share < 0.35
    categories = {v.category for v in videos}
    assert {"synth-original", "synth-cover", "game", "vlog", "dance", "cooking", "tech", "human-cover"} <= categories
    in_scope_titles = " ".join(v.record["title"] for v in videos if v.in_scope)
    assert re.search("洛天依|初音ミク|言和|乐正绫", in_scope_titles)
    assert any("翻唱" in v.record["tags"] and not v.in_scope for v in videos)


@pytest.mark.django_db
def test_load_demo_creates_videos_users_labels_and_conflicts(groups):
    result = load_demo_data(videos=200, seed=7, now=NOW)

    assert Video.objects.count() == 200
    assert (result.videos.created, result.videos.rejected) == (200, 0)
    users = get_user_model().objects.filter(username__in=[*DEMO_LABELERS, DEMO_REVIEWER])
    assert {u.username for u in users} == {*DEMO_LABELERS, DEMO_REVIEWER}
    labelers = get_user_model().objects.filter(groups__name=LABELERS).values_list("username", flat=True)
    assert set(labelers) >= set(DEMO_LABELERS)
    assert get_user_model().objects.filter(username=DEMO_REVIEWER, groups__name=REVIEWERS).exists()
    assert {username for username, _ in result.new_users} == {*DEMO_LABELERS, DEMO_REVIEWER}
    assert all(get_user_model().objects.get(username=name).check_password(pw) for name, pw in result.new_users)

    assert Label.objects.count() == result.labels_created > 200
    labeled = Video.objects.filter(labels__isnull=False).distinct().count()
    assert 0.45 * 200 < labeled < 0.75 * 200
    assert Label.objects.filter(retracted_at__isnull=False).exists()  # an undo
    changed_minds = (
        Label.objects.filter(retracted_at__isnull=True).values("video", "user").annotate(n=Count("id")).filter(n__gt=1)
    )
    assert changed_minds.exists()
    # created_at spread over recent days, not all "now"
    times = list(Label.objects.values_list("created_at", flat=True))
    assert min(times) < max(times) and max(times) <= NOW
    assert VideoConsensus.objects.filter(is_inconsistent=True).exists()
    assert result.inconsistent_videos == VideoConsensus.objects.filter(is_inconsistent=True).count()
    assert Review.objects.count() == result.reviews_created
    # labelers mostly agree with the ground truth kept in raw
    agreed = sum(
        label.value == label.video.raw["demo"]["in_scope"] for label in Label.objects.select_related("video")
    )
    assert agreed / Label.objects.count() > 0.8


@pytest.mark.django_db
def test_load_demo_twice_is_idempotent_and_deterministic():
    load_demo_data(videos=200, seed=7, now=NOW)
    snapshot = list(Video.objects.order_by("aid").values_list("aid", "bvid", "title", "tags"))
    labels = Label.objects.count()

    second = load_demo_data(videos=200, seed=7, now=NOW)

    assert (second.videos.created, second.videos.updated) == (0, 200)
    assert second.labels_skipped and second.new_users == []
    assert list(Video.objects.order_by("aid").values_list("aid", "bvid", "title", "tags")) == snapshot
    assert Label.objects.count() == labels


@pytest.mark.django_db
def test_load_demo_command_output_and_if_empty():
    stdout = io.StringIO()

    call_command("load_demo", "--videos", "200", "--seed", "3", stdout=stdout, stderr=io.StringIO())

    output = stdout.getvalue()
    assert "Demo videos (seed 3): Imported 200 rows: 200 created, 0 updated, 0 rejected" in output
    assert re.search(r"Demo labels: \d+ labels on \d+ videos, \d+ reviews\.", output)
    assert re.search(r"^  labeler1 / \S+$", output, re.MULTILINE)
    assert "reviewer1 / " in output

    labels = Label.objects.count()
    call_command("load_demo", "--if-empty", stdout=(stdout := io.StringIO()))
    assert "Videos already exist" in stdout.getvalue()
    assert (Video.objects.count(), Label.objects.count()) == (200, labels)


@pytest.mark.django_db
def test_if_empty_does_nothing_when_any_video_exists():
    VideoFactory()

    result = load_demo_data(videos=50, if_empty=True)

    assert result.skipped
    assert Video.objects.count() == 1
    assert not get_user_model().objects.filter(username="labeler1").exists()


@pytest.mark.django_db
def test_load_demo_round_trips_grow_with_chunks_not_rows():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as small:
        load_demo_data(videos=100, seed=5, now=NOW)
    Label.objects.all().delete()
    Review.objects.all().delete()
    Video.objects.all().delete()
    with CaptureQueriesContext(connection) as large:
        load_demo_data(videos=2100, seed=5, now=NOW)

    # 2 more video chunks (SAVEPOINT, SELECT, INSERT, RELEASE each) and a few more label INSERTs.
    assert len(large) - len(small) <= 14
