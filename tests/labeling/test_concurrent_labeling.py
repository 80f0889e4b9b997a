"""Several labelers at once: no error, no double count (real connections, real threads)."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from labeling import services
from labeling.models import Label, VideoConsensus

pytestmark = pytest.mark.django_db(transaction=True)


def _in_own_connection(work):
    def run(*args):
        try:
            return work(*args)
        finally:
            connection.close()

    return run


def test_many_labelers_and_double_submits_at_once_count_each_user_once(make_user, make_video):
    video = make_video()
    users = [make_user(f"concurrent{n}", group="labelers") for n in range(6)]

    @_in_own_connection
    def answer(user_index: int):
        user = users[user_index % len(users)]
        services.label_create(video=video, user=user, value=user_index % len(users) < 4)

    # Each user answers twice at the same time (a double key press).
    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(answer, range(12)))

    consensus = VideoConsensus.objects.get(video=video)
    assert Label.objects.filter(video=video).count() == 12
    assert (consensus.positive_votes, consensus.negative_votes) == (4, 2)


def test_concurrent_undos_retract_different_labels(make_user, make_videos):
    user = make_user("undoer", group="labelers")
    for video in make_videos(4):
        services.label_create(video=video, user=user, value=True)

    undo = _in_own_connection(lambda _: services.label_undo_last(user=user))
    with ThreadPoolExecutor(max_workers=3) as pool:
        undone = [label.pk for label in pool.map(undo, range(3))]

    assert len(set(undone)) == 3
    assert Label.objects.filter(user=user, retracted_at__isnull=True).count() == 1
