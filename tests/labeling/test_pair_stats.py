"""The agreement counters the triggers keep (migration 0011) always equal a computation from
scratch, whatever wrote the labels: the service, undo, imports' bulk INSERT … SELECT, model
labels (never a vote), reviews, review requests, video and label deletes. And the pages that
read them cost a constant number of queries."""

import random

import pytest
from django.core.paginator import Paginator
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from labeling import agreement, selectors, services
from labeling.agreement import (
    AgreementTable,
    agreement_summary,
    labeler_agreement,
    pair_agreement_tables,
    pair_disagreements,
)
from labeling.models import (
    EffectiveLabel,
    Label,
    LabelerConsensusStats,
    LabelerPairStats,
    LabelSource,
    ReviewCounts,
    ReviewRequest,
    Video,
    VideoConsensus,
    VideoLabelStats,
)

pytestmark = pytest.mark.django_db


def pair_tables_from_scratch() -> dict[tuple[int, int], tuple[int, int, int, int]]:
    """(user_a, user_b) → (both_yes, a_yes_b_no, a_no_b_yes, both_no) over the effective labels."""
    by_video: dict[int, dict[int, bool]] = {}
    for video_id, user_id, value in EffectiveLabel.objects.values_list("video_id", "user_id", "value"):
        by_video.setdefault(video_id, {})[user_id] = value
    tables: dict[tuple[int, int], list[int]] = {}
    for votes in by_video.values():
        for a, a_value in votes.items():
            for b, b_value in votes.items():
                if a < b:
                    cell = {(True, True): 0, (True, False): 1, (False, True): 2, (False, False): 3}[a_value, b_value]
                    tables.setdefault((a, b), [0, 0, 0, 0])[cell] += 1
    return {pair: tuple(cells) for pair, cells in tables.items()}


def consensus_stats_from_scratch() -> dict[int, tuple[int, int, int]]:
    """user → (labeled, compared, agreed), by the consensus view's rule."""
    consensus = {row.video_id: row for row in VideoConsensus.objects.all()}
    stats: dict[int, list[int]] = {}
    for video_id, user_id, value in EffectiveLabel.objects.values_list("video_id", "user_id", "value"):
        row = consensus[video_id]
        counts = stats.setdefault(user_id, [0, 0, 0])
        counts[0] += 1
        if row.value is not None and (row.total_votes >= 2 or row.review_value is not None):
            counts[1] += 1
            counts[2] += row.value == value
    return {user_id: tuple(counts) for user_id, counts in stats.items()}


def assert_counters_match_labels():
    kept = {
        (row.user_a_id, row.user_b_id): (row.both_yes, row.a_yes_b_no, row.a_no_b_yes, row.both_no)
        for row in LabelerPairStats.objects.all()
    }
    assert {pair: cells for pair, cells in kept.items() if any(cells)} == pair_tables_from_scratch()
    assert all(min(cells) >= 0 for cells in kept.values())
    consensus = {
        row.user_id: (row.labeled, row.compared, row.agreed)
        for row in LabelerConsensusStats.objects.all() if row.labeled
    }
    assert consensus == consensus_stats_from_scratch()
    yes_voters = {
        row.video_id: sorted(label.user_id for label in EffectiveLabel.objects.filter(video_id=row.video_id, value=True))
        for row in VideoLabelStats.objects.all()
    }
    assert dict(VideoLabelStats.objects.values_list("video_id", "yes_voter_ids")) == yes_voters
    open_requests = ReviewRequest.objects.filter(resolved_at__isnull=True).values("video").distinct().count()
    assert selectors.review_queue_counts() == {
        "conflicts": VideoConsensus.objects.filter(is_inconsistent=True).count(),
        "requests": open_requests,
    }


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_random_writes_keep_the_counters_equal_to_a_computation_from_scratch(seed, make_videos, make_user, reviewer):
    rng = random.Random(seed)
    videos = make_videos(8)
    users = [make_user(f"labeler{n}", group="labelers") for n in range(4)]
    admin = make_user("root", group="admins")
    for _ in range(70):
        action = rng.random()
        video, user = rng.choice(videos), rng.choice(users)
        if action < 0.4:
            services.label_create(video=video, user=user, value=rng.random() < 0.5)
        elif action < 0.5:
            services.label_undo_last(user=user)
        elif action < 0.57:
            services.label_create(video=video, user=admin, value=rng.random() < 0.5, source=LabelSource.MODEL)
        elif action < 0.64:
            services.review_create(video=video, reviewer=reviewer, value=rng.random() < 0.5)
        elif action < 0.7:
            services.review_request_create_many([video.pk], reason="model disagrees", source="test", user=reviewer)
        elif action < 0.8:
            # An import: one INSERT … SELECT writing many labels (one transition table).
            with connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO labeling_label (video_id, user_id, value, source, created_at) "
                    "SELECT v.id, %s, random() < 0.5, 'import', clock_timestamp() FROM labeling_video v "
                    "WHERE v.id = ANY(%s)",
                    [user.pk, [choice.pk for choice in rng.sample(videos, 3)]],
                )
        elif action < 0.86:
            Label.objects.filter(video=video, user=user).update(retracted_at=timezone.now())  # a bulk undo
        elif action < 0.93:
            Label.objects.filter(pk__in=Label.objects.filter(video=video).values("pk")[:2]).delete()
        else:
            Video.objects.filter(pk=video.pk).delete()
            videos.remove(video)
            videos.extend(make_videos(1))
        assert_counters_match_labels()


def test_an_import_of_every_video_by_three_labelers(make_videos, three_labelers):
    make_videos(200)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO labeling_label (video_id, user_id, value, source, created_at) "
            "SELECT v.id, u.id, (v.id + u.id) %% 3 = 0, 'import', now() FROM labeling_video v, auth_user u "
            "WHERE u.id = ANY(%s)",
            [[user.pk for user in three_labelers]],
        )

    assert LabelerPairStats.objects.count() == 3
    assert sum(pair.n for pair in pair_agreement_tables()) == 600
    assert_counters_match_labels()


def test_the_pair_table_moves_a_video_between_cells(make_video, three_labelers, vote):
    ann, bob, _ = three_labelers
    video = make_video()
    vote(video, ann, True)
    vote(video, bob, True)
    (pair,) = pair_agreement_tables()
    assert pair.table == AgreementTable(both_yes=1)

    vote(video, bob, False)  # bob changes his mind: the video leaves "both yes"
    (pair,) = pair_agreement_tables()
    assert pair.table == AgreementTable(a_yes_b_no=1)

    services.label_undo_last(user=ann)  # ann has no label left: the pair has no common video
    assert pair_agreement_tables() == []
    assert LabelerPairStats.objects.get().both_yes == 0  # the row stays, at zero


def test_a_review_moves_agreement_with_consensus_but_no_pair(make_video, three_labelers, reviewer, vote):
    ann, bob, _ = three_labelers
    video = make_video()
    vote(video, ann, True)
    vote(video, bob, False)  # a tie: no consensus to compare with
    pairs_before = pair_agreement_tables()
    assert labeler_agreement(ann.pk).consensus.compared == 0
    assert selectors.review_queue_counts()["conflicts"] == 1

    services.review_create(video=video, reviewer=reviewer, value=False)

    assert pair_agreement_tables() == pairs_before
    assert (labeler_agreement(ann.pk).consensus.compared, labeler_agreement(ann.pk).consensus.agreed) == (1, 0)
    assert (labeler_agreement(bob.pk).consensus.compared, labeler_agreement(bob.pk).consensus.agreed) == (1, 1)
    assert selectors.review_queue_counts()["conflicts"] == 0
    assert_counters_match_labels()


def test_review_counts_follow_requests_and_their_resolution(make_videos, three_labelers, reviewer):
    videos = make_videos(3)
    services.review_request_create_many([video.pk for video in videos], reason="check", source="test", user=reviewer)
    assert selectors.review_queue_counts() == {"conflicts": 0, "requests": 3}

    services.review_create(video=videos[0], reviewer=reviewer, value=True)

    assert selectors.review_queue_counts() == {"conflicts": 0, "requests": 2}
    assert_counters_match_labels()


def test_truncating_the_corpus_empties_the_counters(make_videos, three_labelers):
    from tests.labeling.conftest import label_conflicts

    label_conflicts(make_videos(4), three_labelers)
    assert selectors.review_queue_counts()["conflicts"] == 4
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the test's transaction holds deferred FK checks
        cursor.execute("TRUNCATE labeling_review, labeling_label, labeling_video CASCADE")

    assert not LabelerPairStats.objects.exists() and not LabelerConsensusStats.objects.exists()
    assert selectors.review_queue_counts() == {"conflicts": 0, "requests": 0}
    assert not ReviewCounts.objects.exists()
    label_conflicts(make_videos(2), three_labelers)
    assert selectors.review_queue_counts()["conflicts"] == 2
    assert_counters_match_labels()


# ------------------------------------------------------------------ query counts


def _labeled_corpus(make_videos, users, count: int) -> None:
    videos = make_videos(count)
    Label.objects.bulk_create([
        Label(video=video, user=user, value=(i + j) % 3 != 0)
        for i, video in enumerate(videos) for j, user in enumerate(users)
    ])


def test_agreement_reads_cost_the_same_for_10_and_300_videos(make_videos, three_labelers, reviewer):
    sizes = []
    for count in (10, 300):
        _labeled_corpus(make_videos, three_labelers, count)
        with CaptureQueriesContext(connection) as summary:
            agreement_summary()
        with CaptureQueriesContext(connection) as labeler:
            labeler_agreement(three_labelers[0].pk)
        with CaptureQueriesContext(connection) as pair_page:
            page = Paginator(pair_disagreements(three_labelers[0].pk, three_labelers[1].pk), 50).get_page(1)
            rows = [(video.a_value, video.b_value, video.consensus.value) for video in page.object_list]
        with CaptureQueriesContext(connection) as counts:
            selectors.review_queue_counts()
        sizes.append((len(summary), len(labeler), len(pair_page), len(counts)))
        assert rows and all(a != b for a, b, _ in rows)
    assert sizes[0] == sizes[1] == (4, 2, 2, 1)


@pytest.mark.parametrize("sparse_pair_videos", [0, 20_000], ids=["walk-by-aid", "gin-then-sort"])
def test_pair_disagreements_count_and_page_agree_in_either_order(
    sparse_pair_videos, make_videos, three_labelers, monkeypatch, django_assert_num_queries
):
    monkeypatch.setattr(agreement, "SPARSE_PAIR_VIDEOS", sparse_pair_videos)
    ann, bob, _ = three_labelers
    _labeled_corpus(make_videos, three_labelers, 120)
    differing = [
        video_id for video_id in Video.objects.order_by("aid").values_list("pk", flat=True)
        if dict(EffectiveLabel.objects.filter(video_id=video_id).values_list("user_id", "value"))[ann.pk]
        != dict(EffectiveLabel.objects.filter(video_id=video_id).values_list("user_id", "value"))[bob.pk]
    ]

    for first, second in ((ann, bob), (bob, ann)):
        paginator = Paginator(pair_disagreements(first.pk, second.pk), 50)
        assert paginator.count == len(differing) == 80
        listed = [video.pk for number in paginator.page_range for video in paginator.page(number).object_list]
        assert listed == differing
        with django_assert_num_queries(2):  # count + page
            list(Paginator(pair_disagreements(first.pk, second.pk), 50).get_page(2).object_list)
        video = paginator.page(1).object_list[0]
        assert video.a_value == EffectiveLabel.objects.get(video=video, user=first).value
        assert video.b_value == EffectiveLabel.objects.get(video=video, user=second).value
