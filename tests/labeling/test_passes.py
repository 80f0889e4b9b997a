"""Unsure (with a comment) and skip are persisted passes; undo and ← reach them too."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from labeling import passes, review_selectors
from labeling.models import Label, LabelPass, PassReason

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def test_unsure_with_a_comment_is_stored_and_the_next_card_is_served(logged_in_client, user, make_videos):
    first, second = make_videos(2)

    response = logged_in_client.post("/labeling/unsure", {"video_id": first.pk, "comment": "  UTAU or a human?  "}, **HTMX)

    assert response.status_code == 200
    assert f'data-video-aid="{second.aid}"' in response.content.decode().split("<template")[0]
    row = LabelPass.objects.get()
    assert (row.user, row.video, row.reason, row.comment) == (user, first, PassReason.UNSURE, "UTAU or a human?")
    assert not Label.objects.exists()  # a pass is not a vote


def test_skip_is_persisted_and_a_second_pass_replaces_the_first(logged_in_client, user, make_videos):
    first, _ = make_videos(2)

    assert logged_in_client.post("/labeling/skip", {"video_id": first.pk}, **HTMX).status_code == 200
    assert list(LabelPass.objects.values_list("reason", flat=True)) == ["skip"]
    logged_in_client.post("/labeling/unsure", {"video_id": first.pk, "comment": "hmm"}, **HTMX)

    assert list(LabelPass.objects.values_list("reason", "comment")) == [("unsure", "hmm")]


def test_a_too_long_comment_is_refused_and_nothing_written(logged_in_client, make_videos):
    first, _ = make_videos(2)

    response = logged_in_client.post("/labeling/unsure", {"video_id": first.pk, "comment": "x" * 2001}, **HTMX)

    assert response.status_code == 400 and "comment" in response.content.decode()
    assert not LabelPass.objects.exists()


def test_label_pass_checks_role_reason_and_comment(make_user, make_video):
    video = make_video()
    labeler, outsider = make_user("ann"), make_user("zed", group=None)

    with pytest.raises(PermissionDenied):
        passes.label_pass(user=outsider, video=video, reason="skip")
    with pytest.raises(ValidationError, match="reason"):
        passes.label_pass(user=labeler, video=video, reason="maybe")
    with pytest.raises(ValidationError, match="a skip has no comment"):
        passes.label_pass(user=labeler, video=video, reason="skip", comment="why")
    assert not LabelPass.objects.exists()


def test_answering_yes_removes_the_pass(logged_in_client, user, make_videos):
    first, _ = make_videos(2)
    passes.label_pass(user=user, video=first, reason="unsure", comment="?")

    logged_in_client.post("/labeling/answer", {"video_id": first.pk, "value": "1"}, **HTMX)

    assert not LabelPass.objects.exists()
    assert Label.objects.get().value is True


def test_undo_undoes_the_latest_answer_whether_a_vote_or_a_pass(logged_in_client, user, make_videos):
    first, second, _ = make_videos(3)
    logged_in_client.post("/labeling/answer", {"video_id": first.pk, "value": "0"}, **HTMX)
    logged_in_client.post("/labeling/unsure", {"video_id": second.pk, "comment": "c"}, **HTMX)

    response = logged_in_client.post("/labeling/undo", {}, **HTMX)
    assert f'data-video-aid="{second.aid}"' in response.content.decode()
    assert "Undid your “unsure”" in response.content.decode()
    assert not LabelPass.objects.exists()
    assert Label.objects.get().retracted_at is None

    logged_in_client.post("/labeling/undo", {}, **HTMX)
    assert Label.objects.get().retracted_at is not None


def test_previous_walks_back_through_answers_and_a_change_is_written(logged_in_client, user, make_videos):
    first, second, third = make_videos(3)
    logged_in_client.post("/labeling/answer", {"video_id": first.pk, "value": "0"}, **HTMX)
    logged_in_client.post("/labeling/unsure", {"video_id": second.pk, "comment": "odd"}, **HTMX)

    latest = logged_in_client.post("/labeling/previous", {"video_id": third.pk}, **HTMX).content.decode()
    assert f'data-video-aid="{second.aid}"' in latest and 'data-previous-answer="unsure"' in latest and "odd" in latest
    before = logged_in_client.post("/labeling/previous", {"video_id": second.pk, "previous": "1"}, **HTMX).content.decode()
    assert f'data-video-aid="{first.aid}"' in before and 'data-previous-answer="no"' in before

    # The card of an earlier answer posts confirm_change: answering changes it, no question.
    logged_in_client.post("/labeling/answer", {"video_id": first.pk, "value": "1", "confirm_change": "1", "previous": "1"}, **HTMX)
    assert Label.objects.filter(video=first).latest("created_at", "id").value is True
    # ... and unsure there replaces the vote.
    logged_in_client.post("/labeling/unsure", {"video_id": first.pk, "confirm_change": "1", "previous": "1"}, **HTMX)
    assert not Label.objects.filter(video=first, retracted_at__isnull=True).exists()
    assert LabelPass.objects.get(video=first).reason == "unsure"


def test_unsure_on_a_voted_video_without_confirmation_writes_nothing(logged_in_client, user, make_videos):
    first, _ = make_videos(2)
    Label.objects.create(video=first, user=user, value=True)

    response = logged_in_client.post("/labeling/unsure", {"video_id": first.pk}, **HTMX)

    assert "go back to it with ←" in response.content.decode()
    assert not LabelPass.objects.exists()
    assert Label.objects.get().retracted_at is None


def test_reviewers_read_unsure_answers_with_comments_in_one_query(make_user, make_videos, django_assert_num_queries):
    videos = make_videos(30)
    ann, bob = make_user("ann"), make_user("bob")
    for video in videos:
        passes.label_pass(user=ann, video=video, reason="unsure", comment=f"c{video.pk}")
        passes.label_pass(user=bob, video=video, reason="skip")

    with django_assert_num_queries(1):
        notes = review_selectors.unsure_answers_by_video([video.pk for video in videos])

    assert len(notes) == 30
    assert [(note.username, note.comment) for note in notes[videos[0].pk]] == [("ann", f"c{videos[0].pk}")]
