import pytest

from labeling import selectors, services
from labeling.models import VideoConsensus
from tests.labeling.conftest import label_conflicts

pytestmark = pytest.mark.django_db


def consensus(video) -> VideoConsensus:
    return VideoConsensus.objects.get(video=video)


def test_unlabeled_video_has_no_consensus(make_video):
    row = consensus(make_video())

    assert (row.positive_votes, row.negative_votes, row.value) == (0, 0, None)
    assert not row.is_inconsistent and not row.is_tie
    assert row.agreement is None


def test_a_users_latest_label_replaces_their_earlier_one(make_video, three_labelers, vote):
    video = make_video()
    ann, bob, _ = three_labelers
    vote(video, ann, False)
    vote(video, ann, True)
    vote(video, bob, True)

    row = consensus(video)

    assert (row.positive_votes, row.negative_votes, row.value) == (2, 0, True)
    assert not row.is_inconsistent


def test_repeated_answers_count_once(make_video, user, vote):
    video = make_video()
    for _ in range(3):
        vote(video, user, True)

    assert (consensus(video).positive_votes, consensus(video).negative_votes) == (1, 0)


def test_majority_wins_but_disagreement_is_inconsistent(make_video, three_labelers):
    video = make_video()
    label_conflicts([video], three_labelers)

    row = consensus(video)

    assert row.value is True
    assert row.is_inconsistent
    assert row.agreement == pytest.approx(2 / 3)


def test_tie_has_no_consensus_and_is_inconsistent(make_video, three_labelers, vote):
    video = make_video()
    vote(video, three_labelers[0], True)
    vote(video, three_labelers[1], False)

    row = consensus(video)

    assert row.value is None and row.is_tie and row.is_inconsistent


def test_review_overrides_the_vote_and_resolves(make_video, three_labelers, reviewer):
    video = make_video()
    label_conflicts([video], three_labelers)

    services.review_create(video=video, reviewer=reviewer, value=False, note="a human cover")

    row = consensus(video)
    assert row.value is False
    assert not row.is_inconsistent
    assert row.review_value is False


def test_latest_review_wins(make_video, three_labelers, reviewer):
    video = make_video()
    label_conflicts([video], three_labelers)
    services.review_create(video=video, reviewer=reviewer, value=False)
    services.review_create(video=video, reviewer=reviewer, value=True)

    assert consensus(video).value is True


def test_undo_retracts_the_latest_label_and_the_previous_counts_again(make_video, user, vote):
    video = make_video()
    vote(video, user, False)
    vote(video, user, True)

    undone = services.label_undo_last(user=user)

    assert undone.value is True and undone.retracted_at is not None
    assert consensus(video).value is False
    assert video.labels.count() == 2  # history kept


def test_undo_with_nothing_to_undo_returns_none(user):
    assert services.label_undo_last(user=user) is None


def test_inconsistent_videos_lists_only_unresolved_conflicts(make_videos, three_labelers, reviewer, vote):
    conflicted, resolved, agreed = make_videos(3)
    label_conflicts([conflicted, resolved], three_labelers)
    services.review_create(video=resolved, reviewer=reviewer, value=True)
    for user in three_labelers:
        vote(agreed, user, True)

    assert list(selectors.inconsistent_videos()) == [conflicted]


def test_effective_labels_by_video(make_videos, three_labelers, vote):
    first, second = make_videos(2)
    ann, bob, _ = three_labelers
    vote(first, ann, True)
    vote(first, ann, False)
    vote(first, bob, True)
    vote(second, bob, False)

    labels = selectors.effective_labels_by_video([first.pk, second.pk])

    assert sorted((label.username, label.value) for label in labels[first.pk]) == [("ann", False), ("bob", True)]
    assert [(label.username, label.value) for label in labels[second.pk]] == [("bob", False)]


@pytest.mark.parametrize("count", [10, 1000])
def test_consensus_for_many_aids_is_one_query(make_videos, three_labelers, django_assert_num_queries, count):
    videos = make_videos(count)
    label_conflicts(videos, three_labelers)

    with django_assert_num_queries(1):
        found = selectors.consensus_by_aid([video.aid for video in videos])

    assert len(found) == count
    assert all(row.is_inconsistent for row in found.values())


def test_a_user_without_a_role_cannot_label(make_video, make_user):
    from django.core.exceptions import PermissionDenied

    from labeling.models import Label

    with pytest.raises(PermissionDenied):
        services.label_create(video=make_video(), user=make_user("nobody", group=None), value=True)
    assert Label.objects.count() == 0


def test_only_admins_write_machine_labels(make_video, user, make_user):
    from django.core.exceptions import PermissionDenied

    from labeling.models import Label

    video = make_video()
    with pytest.raises(PermissionDenied, match="only admins"):
        services.label_create(video=video, user=user, value=True, source="model")
    services.label_create(video=video, user=make_user("root", group="admins"), value=True, source="model")

    assert list(Label.objects.values_list("source", flat=True)) == ["model"]


def test_resolving_an_already_resolved_conflict_is_refused(make_video, three_labelers, reviewer, make_user):
    from django.core.exceptions import ValidationError

    from labeling.models import Review

    video = make_video()
    label_conflicts([video], three_labelers)
    services.review_create(video=video, reviewer=reviewer, value=True, only_if_unresolved=True)

    with pytest.raises(ValidationError, match="already resolved by rita"):
        services.review_create(video=video, reviewer=make_user("second", group="reviewers"), value=False, only_if_unresolved=True)
    assert Review.objects.count() == 1


def test_labeler_cannot_create_a_review(make_video, user):
    from django.core.exceptions import PermissionDenied

    from labeling.models import Review

    with pytest.raises(PermissionDenied):
        services.review_create(video=make_video(), reviewer=user, value=True)
    assert Review.objects.count() == 0


# --- machine labels never vote (issue 10 item 11) -----------------------------------


@pytest.fixture
def model_writer(make_user):
    """An admin account that writes ``source=model`` labels, as a scoring job would."""
    return make_user("scorer", group="admins")


def model_label(video, user, value: bool):
    return services.label_create(video=video, user=user, value=value, source="model")


def test_a_model_label_does_not_change_the_consensus(make_video, three_labelers, model_writer, vote):
    video = make_video()
    vote(video, three_labelers[0], True)
    model_label(video, model_writer, False)

    row = consensus(video)

    assert (row.positive_votes, row.negative_votes, row.total_votes) == (1, 0, 1)
    assert row.value is True and not row.is_tie and not row.is_inconsistent
    assert row.agreement == 1.0


def test_a_model_label_cannot_break_a_tie_or_make_a_conflict(make_videos, three_labelers, model_writer, vote):
    tied, agreed = make_videos(2)
    ann, bob, _ = three_labelers
    vote(tied, ann, True)
    vote(tied, bob, False)
    vote(agreed, ann, True)
    for video in (tied, agreed):
        model_label(video, model_writer, True)
    model_label(agreed, model_writer, False)

    assert consensus(tied).value is None and consensus(tied).is_tie and consensus(tied).is_inconsistent
    assert consensus(agreed).value is True and not consensus(agreed).is_inconsistent
    assert list(selectors.inconsistent_videos()) == [tied]


def test_a_model_label_after_a_users_own_answer_leaves_that_answer_in_force(make_video, user, make_user, vote):
    admin = make_user("root", group="admins")
    video = make_video()
    vote(video, admin, True)
    model_label(video, admin, False)  # written under the same account, later

    row = consensus(video)

    assert (row.positive_votes, row.negative_votes, row.value) == (1, 0, True)
    assert [(label.username, label.value) for label in selectors.effective_labels_by_video([video.pk])[video.pk]] == [
        ("root", True)
    ]


def test_imported_labels_vote(make_video, three_labelers):
    from labeling.models import Label

    video = make_video()
    Label.objects.create(video=video, user=three_labelers[0], value=False, source="import")

    assert consensus(video).value is False and consensus(video).total_votes == 1


def test_a_video_with_only_model_labels_is_unlabeled(make_video, model_writer):
    video = make_video()
    model_label(video, model_writer, True)

    row = consensus(video)

    assert (row.total_votes, row.value, row.last_labeled_at) == (0, None, None)
    assert selectors.effective_labels_by_video([video.pk]) == {}
    assert list(selectors.videos_filtered(labeled=False)) == [video]


def test_a_model_label_does_not_take_a_video_out_of_the_writers_queue(make_videos, make_user, vote):
    admin = make_user("root", group="admins")
    scored, answered = make_videos(2)
    model_label(scored, admin, True)
    vote(answered, admin, False)

    assert selectors.labeling_queue_next(user=admin) == scored
    progress = selectors.labeling_progress(user=admin)
    assert (progress.labeled_total, progress.labeled_today, progress.remaining) == (1, 1, 1)


def test_undo_passes_over_a_model_label(make_video, make_user, vote):
    admin = make_user("root", group="admins")
    video = make_video()
    answer = vote(video, admin, True)
    machine = model_label(video, admin, False)

    undone = services.label_undo_last(user=admin)

    assert undone.pk == answer.pk
    machine.refresh_from_db()
    assert machine.retracted_at is None  # the model's row is history, not the user's answer
    assert services.label_undo_last(user=admin) is None


def test_a_model_label_does_not_reopen_a_review(make_video, three_labelers, reviewer, model_writer):
    video = make_video()
    label_conflicts([video], three_labelers)
    services.review_create(video=video, reviewer=reviewer, value=False)
    model_label(video, model_writer, True)

    row = consensus(video)

    assert row.value is False and not row.is_inconsistent
    assert (row.positive_votes, row.negative_votes) == (2, 1)


def test_model_labels_stay_in_the_history_marked_as_model(make_video, three_labelers, model_writer, vote, client):
    video = make_video()
    vote(video, three_labelers[0], True)
    machine = model_label(video, model_writer, False)

    labels, _ = selectors.video_history(video)
    assert [(label.user.username, label.source) for label in labels] == [("scorer", "model"), ("ann", "human")]
    assert str(machine).startswith("scorer: no (model) at ")

    client.force_login(three_labelers[0])  # voted on it: history is blind only before one votes
    page = client.get(f"/labeling/videos/{video.aid}/").content.decode()
    assert "scorer" in page and "Model" in page


def test_migration_0006_reverses_to_the_previous_view(make_video, three_labelers, model_writer, vote):
    import importlib

    from django.db import connection

    migration = importlib.import_module("labeling.migrations.0006_model_labels_never_vote")
    video = make_video()
    vote(video, three_labelers[0], True)
    model_label(video, model_writer, False)

    with connection.cursor() as cursor:
        cursor.execute(migration.PREVIOUS_EFFECTIVE_VIEW)
        assert consensus(video).total_votes == 2  # the old rule: the model's label voted
        cursor.execute(migration.CREATE_EFFECTIVE_VIEW)
    assert consensus(video).total_votes == 1


@pytest.mark.parametrize("source", ["human", "import", "model"])
def test_the_view_and_voting_sources_agree_on_what_votes(make_video, make_user, source):
    from labeling.models import VOTING_SOURCES, EffectiveLabel, Label

    label = Label.objects.create(video=make_video(), user=make_user("root", group="admins"), value=True, source=source)

    assert EffectiveLabel.objects.filter(label=label).exists() is (source in VOTING_SOURCES) is label.is_vote
