"""Labeling a team can trust (issue 14): stale cards never relabel silently, the queue's
pages are never cached, expired sessions send htmx back to log in, blind history, the
card's formatting and the labeler's home page."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from labeling.models import Label
from tests.labeling.conftest import label_conflicts

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def _card_aid(body: str) -> str | None:
    match = re.search(r'id="label-card"[^>]*data-video-aid="(\d+)"', body)
    return match.group(1) if match else None


@pytest.mark.parametrize("url", ["/labeling/", "/labeling/?mode=random"])
def test_label_page_is_never_cached(logged_in_client, make_videos, url):
    make_videos(2)

    response = logged_in_client.get(url)

    assert "no-store" in response["Cache-Control"]


@pytest.mark.parametrize("url", ["/labeling/answer", "/labeling/skip", "/labeling/undo"])
def test_card_partials_are_never_cached(logged_in_client, make_videos, url):
    first, _ = make_videos(2)

    response = logged_in_client.post(url, {"video_id": first.pk, "value": "1"}, **HTMX)

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]


def test_video_history_is_never_cached(logged_in_client, make_video):
    video = make_video()

    assert "no-store" in logged_in_client.get(f"/labeling/videos/{video.aid}/")["Cache-Control"]


def test_a_vote_on_a_video_already_labeled_differently_asks_before_changing(logged_in_client, user, make_videos, vote):
    first, _ = make_videos(2)
    earlier = vote(first, user, False)

    response = logged_in_client.post("/labeling/answer", {"video_id": first.pk, "value": "1", "mode": "unlabeled"}, **HTMX)

    body = response.content.decode()
    assert response.status_code == 200
    assert _card_aid(body) == str(first.aid)  # the same card, not the next one
    assert 'data-testid="change-confirm"' in body
    assert f"You labeled this <strong>no</strong> at {timezone.localtime(earlier.created_at):%H:%M}" in body
    assert "change to <strong>yes</strong>?" in body
    assert '"confirm_change": "1"' in body and 'hx-post="/labeling/answer"' in body
    assert list(Label.objects.values_list("video_id", "value")) == [(first.pk, False)]


def test_confirmed_change_writes_the_new_label_and_moves_on(logged_in_client, user, make_videos, vote):
    first, second = make_videos(2)
    vote(first, user, False)

    response = logged_in_client.post(
        "/labeling/answer", {"video_id": first.pk, "value": "1", "confirm_change": "1"}, **HTMX
    )

    assert _card_aid(response.content.decode()) == str(second.aid)
    assert Label.objects.filter(video=first, user=user).latest("created_at", "id").value is True


def test_the_same_answer_again_writes_nothing(logged_in_client, user, make_videos, vote):
    first, second = make_videos(2)
    vote(first, user, True)

    response = logged_in_client.post("/labeling/answer", {"video_id": first.pk, "value": "1"}, **HTMX)

    body = response.content.decode()
    assert _card_aid(body) == str(second.aid)
    assert "already labeled" in body
    assert Label.objects.count() == 1


def test_after_undo_the_video_is_answered_again_without_a_question(logged_in_client, user, make_videos, vote):
    first, _ = make_videos(2)
    vote(first, user, False)
    logged_in_client.post("/labeling/undo", **HTMX)

    response = logged_in_client.post("/labeling/answer", {"video_id": first.pk, "value": "1"}, **HTMX)

    assert 'data-testid="change-confirm"' not in response.content.decode()
    assert Label.objects.filter(retracted_at__isnull=True).get().value is True


def test_assisted_queue_asks_before_changing_too(logged_in_client, user, make_videos, vote):
    first, _ = make_videos(2)
    vote(first, user, True)

    response = logged_in_client.post(
        "/training/assisted/answer", {"video_id": first.pk, "value": "0", "model": "m"}, **HTMX
    )

    body = response.content.decode()
    assert 'data-testid="change-confirm"' in body and 'hx-post="/training/assisted/answer"' in body
    assert '<input type="hidden" name="model" value="m">' in body
    assert Label.objects.count() == 1


def test_expired_session_on_htmx_redirects_to_login_and_back_to_the_queue(client, make_video):
    video = make_video()

    response = client.post(
        "/labeling/answer", {"video_id": video.pk, "value": "1"},
        HTTP_HX_CURRENT_URL="http://testserver/labeling/?mode=low_agreement", **HTMX,
    )

    assert response.status_code == 200
    assert response["HX-Redirect"] == "/accounts/login/?next=/labeling/%3Fmode%3Dlow_agreement"
    assert response.content == b""  # never the login page inside the card
    assert Label.objects.count() == 0


def test_expired_session_ignores_a_foreign_current_url(client, make_video):
    response = client.post("/labeling/skip", {"video_id": make_video().pk},
                           HTTP_HX_CURRENT_URL="https://evil.example/phish", **HTMX)

    assert response["HX-Redirect"] == "/accounts/login/?next=/"


def test_expired_session_without_htmx_still_redirects(client):
    response = client.get("/labeling/?mode=random")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/labeling/%3Fmode%3Drandom"


def test_history_is_blind_for_a_labeler_who_has_not_voted(logged_in_client, make_video, three_labelers):
    video = make_video()
    label_conflicts([video], three_labelers)

    body = logged_in_client.get(f"/labeling/videos/{video.aid}/").content.decode()

    assert 'data-testid="blind"' in body
    assert "ann" not in body and "bob" not in body and "2 yes / 1 no" not in body
    assert "Consensus" not in body


def test_history_shows_votes_once_the_labeler_voted(logged_in_client, user, make_video, three_labelers, vote):
    video = make_video()
    label_conflicts([video], three_labelers)
    vote(video, user, True)

    body = logged_in_client.get(f"/labeling/videos/{video.aid}/").content.decode()

    assert 'data-testid="blind"' not in body
    assert "3 yes / 1 no" in body and "ann" in body


def test_an_undone_vote_makes_the_history_blind_again(logged_in_client, user, make_video, three_labelers, vote):
    video = make_video()
    label_conflicts([video], three_labelers)
    vote(video, user, True)
    logged_in_client.post("/labeling/undo")

    body = logged_in_client.get(f"/labeling/videos/{video.aid}/").content.decode()

    assert 'data-testid="blind"' in body and "(undone" in body and "bob" not in body


def test_reviewer_always_sees_the_votes(client, reviewer, make_video, three_labelers):
    video = make_video()
    label_conflicts([video], three_labelers)
    client.force_login(reviewer)

    body = client.get(f"/labeling/videos/{video.aid}/").content.decode()

    assert "2 yes / 1 no" in body and "ann" in body


@pytest.mark.parametrize("seconds, shown", [(5, "0:05"), (95, "1:35"), (3600, "1:00:00"), (3725, "1:02:05")])
def test_card_shows_the_duration_as_a_clock(logged_in_client, make_video, seconds, shown):
    make_video(duration=seconds)

    body = logged_in_client.get("/labeling/").content.decode()

    assert f'data-testid="duration">{shown}<' in body


def test_card_shows_the_cover_without_a_referrer_and_the_question_as_a_heading(logged_in_client, make_video):
    make_video(cover_url="https://i0.hdslb.com/bfs/archive/cover.jpg")

    body = logged_in_client.get("/labeling/").content.decode()

    image = re.search(r'<img class="label-cover"[^>]*>', body).group(0)
    assert 'src="https://i0.hdslb.com/bfs/archive/cover.jpg"' in image
    assert 'referrerpolicy="no-referrer"' in image and 'loading="lazy"' in image
    assert 'width="240"' in image and 'height="150"' in image
    assert '<h2 class="label-question"' in body


def test_card_without_a_cover_has_no_image(logged_in_client, make_video):
    make_video(cover_url="")

    assert "<img" not in logged_in_client.get("/labeling/").content.decode()


def test_home_shows_a_labeler_their_work_not_the_infrastructure(logged_in_client, user, make_videos, vote):
    videos = make_videos(5)
    vote(videos[0], user, True)
    vote(videos[1], user, False)
    old = vote(videos[2], user, True)
    Label.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=30))

    body = logged_in_client.get("/").content.decode()

    assert "System health" not in body
    assert re.search(r'data-testid="home-labeled-today">2<', body)
    assert re.search(r'data-testid="home-labeled-week">2<', body)
    assert re.search(r'data-testid="home-remaining">2<', body)
    assert 'href="/labeling/"' in body


def test_home_of_an_admin_shows_their_work_and_health(client, make_user):
    client.force_login(make_user("adele", group="admins"))

    body = client.get("/").content.decode()

    assert "System health" in body and 'data-testid="my-work"' in body


@pytest.mark.parametrize("count", [10, 1000])
def test_answer_queries_do_not_grow_with_labels(logged_in_client, user, make_videos, vote, three_labelers, django_assert_max_num_queries, count):
    videos = make_videos(count)
    label_conflicts(videos[:-2], three_labelers)
    Label.objects.bulk_create([Label(video=video, user=user, value=True) for video in videos[:-2]])

    with django_assert_max_num_queries(14):
        response = logged_in_client.post("/labeling/answer", {"video_id": videos[0].pk, "value": "0"}, **HTMX)

    assert 'data-testid="change-confirm"' in response.content.decode()
