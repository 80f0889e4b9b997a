"""The labeling queue with an overlap target and reservations (labeling.queue)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from labeling import selectors
from labeling.models import LabelPass, LabelReservation, PassReason
from labeling.queue import queue_next_videos, reservation_release
from tests.labeling.conftest import analyze_labeling_tables

pytestmark = pytest.mark.django_db


def next_ids(user, mode="unlabeled", count=1, **kwargs):
    return [video.pk for video in queue_next_videos(user=user, mode=mode, count=count, **kwargs)]


def test_a_video_stops_being_served_at_the_overlap_target(make_video, make_user, vote, settings):
    settings.CVSA_LABELING_OVERLAP = 2
    video = make_video()
    ann, bob, cai = (make_user(name) for name in ("ann", "bob", "cai"))

    assert next_ids(ann) == [video.pk]
    vote(video, ann, True)
    assert next_ids(bob) == [video.pk]
    vote(video, bob, False)

    assert next_ids(cai) == []
    assert selectors.labeling_queue_next(user=cai) is None
    settings.CVSA_LABELING_OVERLAP = 3
    assert next_ids(cai) == [video.pk]


def test_closest_to_the_target_first_then_aid(make_videos, make_user, vote, settings):
    settings.CVSA_LABELING_OVERLAP = 3
    fresh, one_vote, two_votes = make_videos(3)
    others = [make_user(name) for name in ("ann", "bob")]
    vote(one_vote, others[0], True)
    vote(two_votes, others[0], True)
    vote(two_votes, others[1], True)
    analyze_labeling_tables()

    assert next_ids(make_user("new"), count=3) == [two_votes.pk, one_vote.pk, fresh.pk]


def test_two_labelers_at_once_get_different_videos_unless_overlap_needs_it(make_videos, make_user, settings):
    settings.CVSA_LABELING_OVERLAP = 1
    first, second = make_videos(2)
    ann, bob, cai = (make_user(name) for name in ("ann", "bob", "cai"))

    assert next_ids(ann) == [first.pk]
    assert next_ids(bob) == [second.pk]
    assert next_ids(cai) == []  # both held by someone, and one vote each is the target

    settings.CVSA_LABELING_OVERLAP = 2
    assert next_ids(cai) == [first.pk]  # the target needs a second labeler on it


def test_a_reload_shows_the_same_card_and_an_answer_releases_it(make_videos, user, vote):
    first, second = make_videos(2)

    assert next_ids(user) == [first.pk]
    assert next_ids(user) == [first.pk]
    assert next_ids(user, count=2) == [first.pk, second.pk]
    vote(first, user, True)

    assert next_ids(user) == [second.pk]
    assert list(LabelReservation.objects.values_list("video_id", flat=True)) == [second.pk]


def test_passes_are_never_served_again_and_release_the_reservation(make_videos, user):
    skipped, unsure, other = make_videos(3)
    assert next_ids(user, count=2) == [skipped.pk, unsure.pk]
    LabelPass.objects.create(user=user, video=skipped, reason=PassReason.SKIP)
    LabelPass.objects.create(user=user, video=unsure, reason=PassReason.UNSURE)

    assert next_ids(user, count=3) == [other.pk]
    assert selectors.labeling_queue_next(user=user) == other
    assert not LabelReservation.objects.filter(video__in=[skipped, unsure]).exists()


def test_an_expired_reservation_frees_the_video(make_video, make_user, settings):
    settings.CVSA_LABELING_OVERLAP = 1
    video = make_video()
    ann, bob = make_user("ann"), make_user("bob")
    assert next_ids(ann) == [video.pk]
    assert next_ids(bob) == []

    later = timezone.now() + timedelta(seconds=settings.CVSA_LABELING_RESERVATION_SECONDS + 1)

    assert next_ids(bob, now=later) == [video.pk]
    assert list(LabelReservation.objects.values_list("user__username", flat=True)) == ["bob"]


def test_release_gives_the_video_back(make_video, make_user, settings):
    settings.CVSA_LABELING_OVERLAP = 1
    video = make_video()
    ann, bob = make_user("ann"), make_user("bob")
    next_ids(ann)

    assert reservation_release(user=ann, video_id=video.pk) == 1
    assert next_ids(bob) == [video.pk]


def test_switching_queue_drops_the_held_card(make_videos, user, three_labelers, vote):
    conflict, fresh = make_videos(2)
    vote(conflict, three_labelers[0], True)
    vote(conflict, three_labelers[1], False)
    assert next_ids(user) == [fresh.pk]

    assert next_ids(user, mode="low_agreement") == [conflict.pk]
    assert list(LabelReservation.objects.values_list("video_id", "mode")) == [(conflict.pk, "low_agreement")]


def test_low_agreement_serves_beyond_the_target_but_not_a_held_video(make_videos, make_user, three_labelers, vote):
    tie, agreed = make_videos(2)
    ann, bob, cai = three_labelers
    vote(tie, ann, True)
    vote(tie, bob, False)
    vote(agreed, ann, True)
    vote(agreed, bob, True)
    dan, eve = make_user("dan"), make_user("eve")

    assert next_ids(dan, mode="low_agreement") == [tie.pk]
    assert next_ids(eve, mode="low_agreement") == [agreed.pk]
    assert next_ids(cai, mode="low_agreement") == []


def test_random_mode_serves_only_what_needs_votes_and_i_have_not_done(make_videos, user, make_user, vote, settings):
    settings.CVSA_LABELING_OVERLAP = 1
    mine, full, open_ = make_videos(3)
    vote(mine, user, True)
    vote(full, make_user("ann"), True)

    for _ in range(5):
        assert next_ids(user, mode="random") == [open_.pk]


def test_a_labeler_who_did_the_head_of_the_queue_still_gets_the_rest(make_videos, user, settings):
    """The old queue walked the user's answered videos from the start (an anti-join in aid
    order); the head probe plus a random walk finds the rest within their bounded reads.
    With the head answered past the probe size, only the random walk can find them."""
    from labeling.models import Label
    from labeling.queue import PROBE_ROWS

    settings.CVSA_LABELING_OVERLAP = 2
    videos = make_videos(PROBE_ROWS * 4)
    Label.objects.bulk_create([Label(video=video, user=user, value=True) for video in videos[:-3]])

    found = next_ids(user, count=3)

    assert sorted(found) == sorted(video.pk for video in videos[-3:])


@pytest.mark.parametrize("count", [10, 1000])
def test_queue_and_progress_queries_do_not_grow(make_videos, user, three_labelers, django_assert_num_queries, count):
    from tests.labeling.conftest import label_conflicts

    videos = make_videos(count)
    label_conflicts(videos[: count // 2], three_labelers[:2])
    analyze_labeling_tables()

    with django_assert_num_queries(3):
        assert len(queue_next_videos(user=user, mode="unlabeled", count=2)) == 2
    with django_assert_num_queries(1):
        assert len(queue_next_videos(user=user, mode="unlabeled", count=2)) == 2  # held: one query
    with django_assert_num_queries(3):
        assert len(queue_next_videos(user=user, mode="low_agreement", count=1)) == 1
    with django_assert_num_queries(1):
        selectors.labeling_progress(user=user)
    with django_assert_num_queries(1):
        selectors.review_queue_counts()


def test_progress_counts_from_the_histograms(make_videos, user, make_user, vote, settings):
    settings.CVSA_LABELING_OVERLAP = 2
    done, full, half, passed, fresh = make_videos(5)
    ann, bob = make_user("ann"), make_user("bob")
    vote(done, user, True)
    vote(done, user, False)  # a changed answer: still one video
    vote(full, ann, True)
    vote(full, bob, True)
    vote(half, ann, True)
    LabelPass.objects.create(user=user, video=passed, reason=PassReason.SKIP)

    progress = selectors.labeling_progress(user=user)

    # Needing votes: done (1 vote), half, passed, fresh; minus done (mine) and passed.
    assert (progress.labeled_total, progress.labeled_today, progress.labeled_this_week, progress.remaining) == (1, 1, 1, 2)


def _rows_read(plan: dict) -> int:
    """Rows the scans of an EXPLAIN ANALYZE plan returned, over all their loops."""
    own = plan.get("Actual Rows", 0) * plan.get("Actual Loops", 1) if "Scan" in plan["Node Type"] else 0
    return own + sum(_rows_read(child) for child in plan.get("Plans", []))


def test_the_next_video_reads_a_bounded_number_of_rows_whatever_the_history(make_videos, user, settings):
    """The old queue (an anti-join from the start of the aid order) read every video the
    labeler had answered before finding the next one: 3,000 rows here."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from labeling.models import Label

    settings.CVSA_LABELING_OVERLAP = 2
    videos = make_videos(3010)
    Label.objects.bulk_create([Label(video=video, user=user, value=True) for video in videos[:3000]])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE labeling_videolabelstats; ANALYZE labeling_label")

    with CaptureQueriesContext(connection) as queries:
        assert selectors.labeling_queue_next(user=user) == videos[3000]
    assert len(queries) == 2  # the bounded probe found it (no full walk), then the video's row
    first = queries.captured_queries[0]["sql"]
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + first)
        plan = cursor.fetchone()[0][0]["Plan"]

    assert _rows_read(plan) < 1000, _rows_read(plan)
