"""Labelers asking for a card at the same moment (real connections, real threads)."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from labeling.models import LabelReservation
from labeling.queue import queue_next_videos

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("mode", ["unlabeled", "random"])
def test_concurrent_requests_reserve_different_videos(make_videos, make_user, settings, mode):
    settings.CVSA_LABELING_OVERLAP = 1
    make_videos(12)
    users = [make_user(f"concurrent{n}") for n in range(6)]
    barrier = threading.Barrier(len(users))

    def next_video(user):
        try:
            barrier.wait()
            return [video.pk for video in queue_next_videos(user=user, mode=mode)]
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(users)) as pool:
        served = [ids for ids in pool.map(next_video, users)]

    flat = [video_id for ids in served for video_id in ids]
    assert len(flat) == len(users) and len(set(flat)) == len(users)
    assert LabelReservation.objects.count() == len(users)


def test_with_overlap_two_a_single_video_goes_to_two_labelers_at_most(make_video, make_user, settings):
    settings.CVSA_LABELING_OVERLAP = 2
    video = make_video()
    users = [make_user(f"concurrent{n}") for n in range(5)]
    barrier = threading.Barrier(len(users))

    def next_video(user):
        try:
            barrier.wait()
            return [video.pk for video in queue_next_videos(user=user, mode="unlabeled")]
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(users)) as pool:
        served = list(pool.map(next_video, users))

    # Never more than the target; a request that found the row locked by another one
    # moved on instead of waiting, so the second seat may be taken by the next request.
    holders = [user for user, ids in zip(users, served) if ids == [video.pk]]
    assert 1 <= len(holders) <= 2
    if len(holders) == 1:
        later = next(user for user in users if user not in holders)
        assert [v.pk for v in queue_next_videos(user=later, mode="unlabeled")] == [video.pk]
    holding = set(LabelReservation.objects.filter(video=video).values_list("user_id", flat=True))
    assert len(holding) == 2
    assert all(queue_next_videos(user=user, mode="unlabeled") == [] for user in users if user.pk not in holding)
