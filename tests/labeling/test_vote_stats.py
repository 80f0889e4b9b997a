"""VideoLabelStats (trigger-kept vote counts) always equals the consensus view, whatever
wrote the labels: the service, undo, imports' bulk INSERTs, model labels, reviews."""

import random

import pytest
from django.db import connection
from django.utils import timezone

from labeling import services
from labeling.models import (
    Label, LabelerVoteCountVideos, LabelSource, Review, Video, VideoConsensus, VideoLabelStats, VoteCountVideos,
)

pytestmark = pytest.mark.django_db

COMPARED = ("positive_votes", "negative_votes", "total_votes", "review_value", "is_inconsistent", "agreement",
            "last_labeled_at")


def assert_stats_match_consensus():
    consensus = {row["video_id"]: row for row in VideoConsensus.objects.values("video_id", *COMPARED)}
    stats = {row["video_id"]: row for row in VideoLabelStats.objects.values("video_id", *COMPARED)}
    assert stats == consensus
    # The histograms agree with the rows they summarise.
    by_votes = {}
    for row in VideoLabelStats.objects.values("total_votes", "voter_ids"):
        by_votes[row["total_votes"]] = by_votes.get(row["total_votes"], 0) + 1
    assert {row.total_votes: row.videos for row in VoteCountVideos.objects.exclude(videos=0)} == by_votes
    per_user = {}
    for row in VideoLabelStats.objects.values("total_votes", "voter_ids"):
        for user_id in row["voter_ids"]:
            key = (user_id, row["total_votes"])
            per_user[key] = per_user.get(key, 0) + 1
    assert {(row.user_id, row.total_votes): row.videos
            for row in LabelerVoteCountVideos.objects.exclude(videos=0)} == per_user


def test_every_video_gets_a_row_on_insert(make_videos):
    videos = make_videos(5)

    assert set(VideoLabelStats.objects.values_list("video_id", flat=True)) == {video.pk for video in videos}
    assert VoteCountVideos.objects.get(total_votes=0).videos == 5
    assert_stats_match_consensus()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_label_undo_review_sequences_keep_stats_equal_to_the_view(seed, make_videos, make_user, reviewer):
    rng = random.Random(seed)
    videos = make_videos(6)
    users = [make_user(f"labeler{n}", group="labelers") for n in range(4)]
    admin = make_user("root", group="admins")
    for _ in range(60):
        action = rng.random()
        video, user = rng.choice(videos), rng.choice(users)
        if action < 0.5:
            services.label_create(video=video, user=user, value=rng.random() < 0.5)
        elif action < 0.65:
            services.label_undo_last(user=user)
        elif action < 0.75:
            services.label_create(video=video, user=admin, value=rng.random() < 0.5, source=LabelSource.MODEL)
        elif action < 0.85:
            services.review_create(video=video, reviewer=reviewer, value=rng.random() < 0.5)
        else:
            # An import: one statement writing many labels (the transition table has them all).
            now = timezone.now()
            Label.objects.bulk_create([
                Label(video=choice, user=rng.choice(users), value=rng.random() < 0.5, source=LabelSource.IMPORT,
                      created_at=now)
                for choice in rng.sample(videos, 3)
            ])
        assert_stats_match_consensus()


def test_model_labels_never_vote(make_video, make_user):
    video = make_video()
    admin = make_user("root", group="admins")

    services.label_create(video=video, user=admin, value=True, source=LabelSource.MODEL)

    stats = VideoLabelStats.objects.get(video=video)
    assert (stats.total_votes, stats.voter_ids, stats.low_agreement_tier) == (0, [], None)
    assert_stats_match_consensus()


def test_a_bulk_import_statement_recomputes_every_touched_video(make_videos, three_labelers):
    videos = make_videos(300)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO labeling_label (video_id, user_id, value, source, created_at) "
            "SELECT v.id, u.id, (v.id + u.id) %% 3 = 0, 'import', now() FROM labeling_video v, auth_user u "
            "WHERE u.id = ANY(%s)",
            [[user.pk for user in three_labelers]],
        )

    assert VideoLabelStats.objects.filter(total_votes=3).count() == 300
    assert VoteCountVideos.objects.get(total_votes=3).videos == 300
    assert LabelerVoteCountVideos.objects.get(user=three_labelers[0], total_votes=3).videos == 300
    assert_stats_match_consensus()
    # Undo of many at once (one UPDATE statement).
    Label.objects.filter(user=three_labelers[0], video__in=videos[:100]).update(retracted_at=timezone.now())
    assert LabelerVoteCountVideos.objects.get(user=three_labelers[0], total_votes=3).videos == 200
    assert_stats_match_consensus()


def test_deleting_videos_and_labels_keeps_the_histograms(make_videos, three_labelers, vote):
    keep, gone = make_videos(2)
    for video in (keep, gone):
        vote(video, three_labelers[0], True)
    Label.objects.filter(video=keep).delete()
    Video.objects.filter(pk=gone.pk).delete()

    assert list(VideoLabelStats.objects.values_list("video_id", "total_votes")) == [(keep.pk, 0)]
    assert_stats_match_consensus()


def test_a_review_resolves_the_conflict_in_the_stats(make_video, three_labelers, reviewer, vote):
    video = make_video()
    vote(video, three_labelers[0], True)
    vote(video, three_labelers[1], False)
    assert VideoLabelStats.objects.get(video=video).is_inconsistent

    Review.objects.create(video=video, reviewer=reviewer, value=True)

    stats = VideoLabelStats.objects.get(video=video)
    assert (stats.is_inconsistent, stats.review_value) == (False, True)
    assert_stats_match_consensus()
