"""The model-assisted queues: their order, what they leave out, their query counts."""

from __future__ import annotations

import pytest
from django.core.paginator import Paginator
from django.db import connection, reset_queries
from django.test.utils import CaptureQueriesContext

from labeling.models import Label, LabelSource, VideoConsensus
from labeling.services import label_create
from tests.training.assisted_factories import make_videos, model_version, review, score, vote
from training import assisted_selectors
from training.assisted_selectors import (
    AssistedMode,
    DisagreementOrder,
    assisted_queue_next,
    model_disagreements,
    uncertain_queue,
)
from training.models import ModelStage

pytestmark = pytest.mark.django_db


@pytest.fixture
def labeler(make_user):
    return make_user("lena", group="labelers")


@pytest.fixture
def others(make_user):
    return [make_user(name, group="labelers") for name in ("olga", "otto", "oleg")]


def _queue_aids(user, version, mode, **options) -> list[int]:
    """Every card of the queue in turn, answering each one (yes) as ``user`` would."""
    aids = []
    while (card := assisted_queue_next(user=user, version=version, mode=mode, **options)) is not None:
        aids.append(card.video.aid)
        label_create(video=card.video, user=user, value=True)
        assert len(aids) < 100, "the queue never ends"
    return aids


# --- uncertain -------------------------------------------------------------------------

def test_uncertain_queue_serves_the_probability_nearest_the_threshold_first(labeler):
    version = model_version(threshold=0.5)
    videos = make_videos(6)
    score(version, videos, [0.9, 0.52, 0.45, 0.1, 0.5, 0.61])

    # margins: .4, .02, .05, .4, 0, .11; the two .4 ties by video
    assert _queue_aids(labeler, version, AssistedMode.UNCERTAIN) == [5, 2, 3, 6, 1, 4]


def test_uncertain_queue_leaves_out_videos_with_a_consensus_or_my_answer(labeler, others, make_user):
    version = model_version(threshold=0.5)
    consensus, tie, reviewed_tie, mine, model_only, fresh = make_videos(6)
    score(version, [consensus, tie, reviewed_tie, mine, model_only, fresh], [0.5, 0.51, 0.5, 0.5, 0.6, 0.7])
    vote(consensus, others[0], True)                                   # one vote: a consensus
    vote(tie, others[0], True), vote(tie, others[1], False)            # a tie: no consensus yet
    vote(reviewed_tie, others[0], True), vote(reviewed_tie, others[1], False)
    review(reviewed_tie, make_user("rita", group="reviewers"), True)   # a review decides it
    vote(mine, labeler, False), vote(mine, others[0], True)            # a tie, but I answered it
    admin = make_user("ada", group="admins")
    vote(model_only, admin, True, source=LabelSource.MODEL)            # a model's label never votes

    assert [p.video.aid for p in uncertain_queue(user=labeler, version=version)] == [
        tie.aid, model_only.aid, fresh.aid
    ]


def test_uncertain_queue_reads_the_margin_index_in_order(labeler):
    """The plan walks ``prediction_version_margin_idx`` for ORDER BY margin LIMIT 1
    (ANALYZEd; thousands of predictions of several versions, so a sort would cost more)."""
    versions = [model_version("m", stage=stage) for stage in (ModelStage.PRODUCTION, ModelStage.ARCHIVED)]
    videos = make_videos(3000)
    for offset, version in enumerate(versions):
        score(version, videos, [((index * 7919 + offset) % 1000) / 1000 for index in range(len(videos))])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE training_prediction; ANALYZE labeling_video; ANALYZE labeling_label; "
                       "ANALYZE labeling_videolabelstats")

    plan = uncertain_queue(user=labeler, version=versions[0])[:1].explain()

    assert "prediction_version_margin_idx" in plan, plan
    assert "Sort Key: training_prediction.margin" not in plan.split("Incremental Sort")[0], plan


# --- disagree --------------------------------------------------------------------------

def test_disagree_queue_serves_the_most_confident_contradiction_first(labeler, others):
    version = model_version(threshold=0.5)
    says_no_yes, says_no_yes_surer, says_yes_no, agrees, unlabeled, tie = make_videos(6)
    score(version, [says_no_yes, says_no_yes_surer, says_yes_no, agrees, unlabeled, tie],
          [0.3, 0.1, 0.95, 0.9, 0.99, 0.0])
    vote(says_no_yes, others[0], True)
    vote(says_no_yes_surer, others[0], True), vote(says_no_yes_surer, others[1], True)
    vote(says_yes_no, others[0], False), vote(says_yes_no, others[1], False), vote(says_yes_no, others[2], True)
    vote(agrees, others[0], True)
    vote(tie, others[0], True), vote(tie, others[1], False)

    # margins .45 (0.95 vs consensus no), .4 (0.1 vs yes), .2 (0.3 vs yes)
    assert _queue_aids(labeler, version, AssistedMode.DISAGREE) == [says_yes_no.aid, says_no_yes_surer.aid, says_no_yes.aid]


def test_disagree_queue_leaves_out_my_own_answers_and_follows_reviews(labeler, others, make_user):
    version = model_version(threshold=0.5)
    mine, reviewed = make_videos(2)
    score(version, [mine, reviewed], [0.9, 0.9])
    vote(mine, labeler, False)                                        # I said no: not a second opinion
    vote(reviewed, others[0], True), vote(reviewed, others[1], False)
    review(reviewed, make_user("rita", group="reviewers"), False)     # the review's no is the consensus

    assert _queue_aids(labeler, version, AssistedMode.DISAGREE) == [reviewed.aid]


def test_model_disagreements_lists_every_contradiction_with_its_votes(others, make_user):
    version = model_version(threshold=0.5)
    videos = make_videos(5)
    score(version, videos, [0.2, 0.8, 0.6, 0.45, 0.9])
    vote(videos[0], others[0], True), vote(videos[0], others[1], True), vote(videos[0], others[2], False)
    vote(videos[1], others[0], False)
    vote(videos[2], others[0], False), vote(videos[2], others[1], True)
    review(videos[2], make_user("rita", group="reviewers"), False)
    vote(videos[3], others[0], False)                                 # agrees (no, 0.45)
    # videos[4]: unlabeled, never a disagreement

    rows = list(model_disagreements(version))
    assert [(row.video.aid, row.video.consensus.value, row.video.consensus.positive_votes,
             row.video.consensus.negative_votes) for row in rows] == [(2, False, 0, 1), (1, True, 2, 1), (3, False, 1, 1)]
    least = model_disagreements(version, order=DisagreementOrder.LEAST_CONFIDENT)
    assert [row.video.aid for row in least] == [3, 1, 2]
    assert [row.video.aid for row in model_disagreements(version, order=DisagreementOrder.AID)] == [1, 2, 3]


# --- diverse ---------------------------------------------------------------------------

#: Hand-made 3-d vectors: cosine distance to LABELED is ~0 for NEAR, 1 for SIDEWAYS, ~2 for OPPOSITE.
LABELED, NEAR, SIDEWAYS, OPPOSITE, NEAR_OPPOSITE = (1, 0, 0), (1, 0.1, 0), (0, 1, 0), (-1, 0.05, 0), (-1, 0, 0.1)


def test_diverse_queue_picks_the_video_farthest_from_what_is_labeled(labeler, others):
    version = model_version(dimensions=3)
    labeled, near, sideways, opposite, near_opposite = make_videos(5)
    score(version, [labeled, near, sideways, opposite, near_opposite], [0.5] * 5,
          vectors=[LABELED, NEAR, SIDEWAYS, OPPOSITE, NEAR_OPPOSITE])
    vote(labeled, others[0], True)

    first = assisted_queue_next(user=labeler, version=version, mode=AssistedMode.DIVERSE, sample_start=0)
    assert first.video == opposite
    assert first.nearest_distance == pytest.approx(1 + 1 / (1 + 0.05**2) ** 0.5, abs=1e-6)

    # Once it is labeled, its near-duplicate is close to a labeled video: sideways is farthest now.
    label_create(video=opposite, user=labeler, value=False)
    second = assisted_queue_next(user=labeler, version=version, mode=AssistedMode.DIVERSE, sample_start=0)
    assert second.video == sideways
    assert second.nearest_distance == pytest.approx(1 - 0.05 / (1 + 0.05**2) ** 0.5, abs=1e-6)  # to the opposite one

    label_create(video=sideways, user=labeler, value=False)
    assert _queue_aids(labeler, version, AssistedMode.DIVERSE, sample_start=0) == [near_opposite.aid, near.aid]


def test_diverse_queue_keeps_away_from_recently_served_videos(labeler):
    version = model_version(dimensions=3)
    videos = make_videos(3)
    score(version, videos, [0.5] * 3, vectors=[LABELED, NEAR, OPPOSITE])

    # Nothing labeled, nothing served: the first candidate.
    assert assisted_queue_next(user=labeler, version=version, mode=AssistedMode.DIVERSE,
                               sample_start=0).nearest_distance is None
    card = assisted_queue_next(user=labeler, version=version, mode=AssistedMode.DIVERSE, sample_start=0,
                               recent_video_ids=[videos[2].pk])
    assert card.video == videos[0]  # (1,0,0) is a bit farther from the served (-1,.05,0) than (1,.1,0)


def test_diverse_queue_never_serves_a_labeled_video_and_honours_skips(labeler, others):
    version = model_version(dimensions=3)
    videos = make_videos(4)
    score(version, videos, [0.5] * 4, vectors=[LABELED, NEAR, SIDEWAYS, OPPOSITE])
    vote(videos[0], others[0], True)
    vote(videos[3], labeler, True)  # the farthest, but labeled

    card = assisted_queue_next(user=labeler, version=version, mode=AssistedMode.DIVERSE, sample_start=0)
    assert card.video == videos[2]
    card = assisted_queue_next(user=labeler, version=version, mode=AssistedMode.DIVERSE, sample_start=0,
                               exclude_video_ids=[videos[2].pk])
    assert card.video == videos[1]


def test_diverse_queue_compares_a_bounded_window_of_candidates_wrapping_around(labeler, monkeypatch):
    monkeypatch.setattr(assisted_selectors, "DIVERSE_CANDIDATES", 2)
    version = model_version(dimensions=3)
    videos = make_videos(4)
    score(version, videos, [0.5] * 4, vectors=[NEAR, SIDEWAYS, LABELED, OPPOSITE])
    served = [videos[2].pk]  # (1,0,0)

    # From the start: only the first two are compared (sideways wins, not the opposite one).
    assert assisted_queue_next(user=labeler, version=version, mode=AssistedMode.DIVERSE, sample_start=0,
                               recent_video_ids=served).video == videos[1]
    # From the last video: it and, wrapping around, the first.
    assert assisted_queue_next(user=labeler, version=version, mode=AssistedMode.DIVERSE, sample_start=0.99,
                               recent_video_ids=served).video == videos[3]


def test_diverse_queue_skips_videos_the_version_has_no_vector_for(labeler):
    version = model_version(dimensions=3)
    with_vector, without = make_videos(2)
    score(version, [with_vector], [0.5], vectors=[LABELED])
    score(version, [without], [0.5])

    assert _queue_aids(labeler, version, AssistedMode.DIVERSE) == [with_vector.aid]


# --- every mode ------------------------------------------------------------------------

@pytest.mark.parametrize("mode", AssistedMode.values)
def test_every_mode_honours_skips_and_never_serves_my_labeled_videos(mode, labeler, others):
    version = model_version(threshold=0.5, dimensions=3)
    videos = make_videos(4)
    score(version, videos, [0.6, 0.55, 0.9, 0.1], vectors=[LABELED, NEAR, SIDEWAYS, OPPOSITE])
    if mode == AssistedMode.DISAGREE:
        for video in videos:
            vote(video, others[0], False)   # every one contradicts videos 0-2's yes
    vote(videos[0], labeler, True)

    served = []
    skipped = []
    while (card := assisted_queue_next(user=labeler, version=version, mode=mode, exclude_video_ids=skipped,
                                       sample_start=0)) is not None:
        served.append(card.video.pk)
        skipped.append(card.video.pk)
    assert videos[0].pk not in served
    assert len(served) == len(set(served))
    assert set(served) == ({videos[1].pk, videos[2].pk} if mode == AssistedMode.DISAGREE
                           else {videos[1].pk, videos[2].pk, videos[3].pk})


@pytest.mark.parametrize("mode", AssistedMode.values)
def test_the_next_card_costs_the_same_queries_for_10_or_2000_videos(mode, labeler, others,
                                                                    django_assert_max_num_queries):
    expected = 2 if mode == AssistedMode.DIVERSE else 1
    counts = []
    for size, name in ((10, "small"), (2000, "large")):
        version = model_version(name, threshold=0.5, dimensions=3)
        videos = make_videos(size, first_aid=len(counts) * 100_000 + 1)
        score(version, videos, [(index % 97) / 97 for index in range(size)],
              vectors=[(1, index % 13, index % 7) for index in range(size)])
        Label.objects.bulk_create([Label(video=video, user=others[index % 3], value=index % 2 == 0)
                                   for index, video in enumerate(videos[: size // 2])])
        reset_queries()  # the log keeps 9,000 queries: a full one would count nothing
        with django_assert_max_num_queries(expected) as queries:
            card = assisted_queue_next(user=labeler, version=version, mode=mode,
                                       exclude_video_ids=[videos[-1].pk], recent_video_ids=[videos[0].pk])
        assert card is not None and card.video.pk != videos[-1].pk
        counts.append(len(queries))
    assert counts == [expected, expected]


def test_model_disagreements_page_costs_the_same_queries_for_5_or_500(others):
    counts = []
    for size, name in ((5, "small"), (500, "large")):
        version = model_version(name, threshold=0.5)
        videos = make_videos(size, first_aid=len(counts) * 100_000 + 1)
        score(version, videos, [0.9] * size)
        Label.objects.bulk_create([Label(video=video, user=others[0], value=False) for video in videos])
        reset_queries()
        with CaptureQueriesContext(connection) as queries:
            page = Paginator(model_disagreements(version), 50).get_page(1)
            rows = [(p.video.aid, p.video.consensus.negative_votes) for p in page.object_list]
        assert len(rows) == min(size, 50)
        counts.append(len(queries))
    assert counts == [2, 2]


# --- predictions are never labels ------------------------------------------------------

def test_queues_write_nothing_and_predictions_never_become_labels(labeler):
    version = model_version(threshold=0.5, dimensions=3)
    videos = make_videos(3)
    score(version, videos, [0.9, 0.1, 0.5], vectors=[LABELED, NEAR, OPPOSITE])

    for mode in AssistedMode.values:
        assisted_queue_next(user=labeler, version=version, mode=mode)
    list(model_disagreements(version))

    assert not Label.objects.exists()
    assert list(VideoConsensus.objects.filter(video__in=videos).values_list("total_votes", flat=True)) == [0, 0, 0]
