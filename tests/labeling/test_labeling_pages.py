import pytest

from labeling.models import Label, Review
from tests.labeling.conftest import analyze_labeling_tables, label_conflicts

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def test_label_page_shows_the_first_unlabeled_video(logged_in_client, make_videos):
    first, _ = make_videos(2, description="<b>desc</b>", tags="初音ミク,VOCALOID")

    response = logged_in_client.get("/labeling/")

    body = response.content.decode()
    assert response.status_code == 200
    assert f'data-video-aid="{first.aid}"' in body
    assert "bilibili.com/video/" in body and "初音ミク" in body
    assert "&lt;b&gt;desc" in body  # descriptions are escaped, not rendered as HTML
    assert "<html" in body


def test_answer_writes_a_label_and_swaps_in_the_next_video(logged_in_client, user, make_videos):
    first, second = make_videos(2)

    response = logged_in_client.post("/labeling/answer", {"video_id": first.pk, "value": "1", "mode": "unlabeled"}, **HTMX)

    body = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in body  # a partial for htmx
    assert f'data-video-aid="{second.aid}"' in body
    assert 'id="progress"' in body and 'hx-swap-oob="true"' in body
    assert list(Label.objects.values_list("video_id", "user_id", "value")) == [(first.pk, user.pk, True)]


@pytest.mark.parametrize("payload", [{"value": "1"}, {"video_id": "x", "value": "1"}, {"video_id": "1", "value": "maybe"}])
def test_answer_with_bad_input_is_400_and_writes_nothing(logged_in_client, make_video, payload):
    make_video()

    response = logged_in_client.post("/labeling/answer", payload, **HTMX)

    assert response.status_code == 400
    assert Label.objects.count() == 0


def test_answer_for_a_missing_video_shows_an_error_and_writes_nothing(logged_in_client, make_video):
    make_video()

    response = logged_in_client.post("/labeling/answer", {"video_id": 99999999, "value": "0"}, **HTMX)

    assert response.status_code == 200
    assert "does not exist" in response.content.decode()
    assert Label.objects.count() == 0


def test_skip_moves_on_without_labeling(logged_in_client, make_videos):
    first, second = make_videos(2)

    response = logged_in_client.post("/labeling/skip", {"video_id": first.pk}, **HTMX)

    assert f'data-video-aid="{second.aid}"' in response.content.decode()
    assert Label.objects.count() == 0
    assert f'data-video-aid="{second.aid}"' in logged_in_client.get("/labeling/").content.decode()


def test_undo_brings_back_the_last_video(logged_in_client, make_videos):
    first, _ = make_videos(2)
    logged_in_client.post("/labeling/answer", {"video_id": first.pk, "value": "1"}, **HTMX)

    response = logged_in_client.post("/labeling/undo", {}, **HTMX)

    body = response.content.decode()
    assert f'data-video-aid="{first.aid}"' in body
    assert "Undid your" in body
    assert Label.objects.get().retracted_at is not None


def test_empty_queue_says_so(logged_in_client):
    assert "Nothing left in this queue" in logged_in_client.get("/labeling/").content.decode()


def test_low_agreement_mode_offers_the_tied_video_first(logged_in_client, make_videos, three_labelers, vote):
    agreed, tied = make_videos(2)
    ann, bob, cai = three_labelers
    vote(agreed, ann, True)
    vote(agreed, bob, True)
    vote(agreed, cai, False)
    vote(tied, ann, True)
    vote(tied, bob, False)

    body = logged_in_client.get("/labeling/?mode=low_agreement").content.decode()

    assert f'data-video-aid="{tied.aid}"' in body


def test_random_mode_never_offers_a_video_i_labeled(logged_in_client, user, make_videos, vote):
    labeled, unlabeled = make_videos(2)
    vote(labeled, user, True)

    for _ in range(5):
        assert f'data-video-aid="{unlabeled.aid}"' in logged_in_client.get("/labeling/?mode=random").content.decode()


@pytest.mark.parametrize("count", [10, 1000])
def test_label_page_queries_do_not_grow_with_videos(logged_in_client, make_videos, three_labelers, django_assert_max_num_queries, count):
    videos = make_videos(count)
    label_conflicts(videos[: count // 2], three_labelers)

    # + the guideline, the labeler's keys and the two prefetched cards (labeling.views).
    with django_assert_max_num_queries(13):
        assert logged_in_client.get("/labeling/?mode=low_agreement").status_code == 200
    with django_assert_max_num_queries(17):
        assert logged_in_client.post("/labeling/answer", {"video_id": videos[0].pk, "value": "1"}, **HTMX).status_code == 200


def test_labeler_cannot_open_or_resolve_reviews(logged_in_client, make_video, three_labelers):
    video = make_video()
    label_conflicts([video], three_labelers)

    assert logged_in_client.get("/labeling/review/").status_code == 403
    assert logged_in_client.post(f"/labeling/review/{video.pk}/resolve", {"value": "1"}).status_code == 403
    assert Review.objects.count() == 0


def test_reviewer_sees_conflicts_with_each_users_label_and_resolves_one(client, reviewer, make_videos, three_labelers):
    conflicted, _ = make_videos(2)
    label_conflicts([conflicted], three_labelers)
    client.force_login(reviewer)

    page = client.get("/labeling/review/").content.decode()
    assert conflicted.title in page
    assert "ann: yes" in page and "bob: no" in page and "cai: yes" in page

    response = client.post(f"/labeling/review/{conflicted.pk}/resolve", {"value": "0"}, **HTMX)

    assert response.status_code == 200
    assert "Resolved: no by rita" in response.content.decode()
    assert list(Review.objects.values_list("video_id", "reviewer_id", "value")) == [(conflicted.pk, reviewer.pk, False)]
    assert conflicted.title not in client.get("/labeling/review/").content.decode()


def test_review_search_filters_the_list(client, reviewer, make_videos, three_labelers):
    first, second = make_videos(2)
    label_conflicts([first, second], three_labelers)
    client.force_login(reviewer)

    body = client.get(f"/labeling/review/?q={second.aid}", **HTMX).content.decode()

    assert second.title in body and first.title not in body
    assert "<html" not in body


def test_resolve_with_bad_value_is_400(client, reviewer, make_video):
    client.force_login(reviewer)

    assert client.post(f"/labeling/review/{make_video().pk}/resolve", {"value": "x"}).status_code == 400
    assert Review.objects.count() == 0


@pytest.mark.parametrize("count", [10, 1000])
def test_review_list_queries_do_not_grow_with_conflicts(client, reviewer, make_videos, three_labelers, django_assert_max_num_queries, count):
    label_conflicts(make_videos(count), three_labelers)
    analyze_labeling_tables()
    client.force_login(reviewer)

    with django_assert_max_num_queries(8):
        response = client.get("/labeling/review/")

    assert response.status_code == 200
    assert f"{count} conflicting videos" in response.content.decode()


def test_video_detail_shows_full_history_including_undone_labels(logged_in_client, user, make_video, vote):
    video = make_video()
    vote(video, user, True)
    logged_in_client.post("/labeling/undo")
    vote(video, user, False)

    body = logged_in_client.get(f"/labeling/videos/{video.aid}/").content.decode()

    assert "(undone" in body
    assert body.count("<tr") >= 3


def test_resolving_a_missing_video_is_404(client, reviewer):
    client.force_login(reviewer)

    assert client.post("/labeling/review/99999999/resolve", {"value": "1"}).status_code == 404
    assert Review.objects.count() == 0


def test_second_reviewer_is_told_the_conflict_is_already_resolved(client, reviewer, make_user, make_video, three_labelers):
    video = make_video()
    label_conflicts([video], three_labelers)
    client.force_login(reviewer)
    client.post(f"/labeling/review/{video.pk}/resolve", {"value": "1"}, **HTMX)
    client.force_login(make_user("second-reviewer", group="reviewers"))

    response = client.post(f"/labeling/review/{video.pk}/resolve", {"value": "0"}, **HTMX)

    assert response.status_code == 200
    assert "already resolved by rita" in response.content.decode()
    assert list(Review.objects.values_list("value", flat=True)) == [True]


def test_search_with_a_non_ascii_digit_is_not_an_error(client, reviewer):
    client.force_login(reviewer)

    assert client.get("/labeling/review/?q=²").status_code == 200


def test_user_without_a_role_cannot_label(client, make_user, make_video):
    video = make_video()
    client.force_login(make_user("nobody", group=None))

    assert client.get("/labeling/").status_code == 403
    assert client.post("/labeling/answer", {"video_id": video.pk, "value": "1"}).status_code == 403
    assert Label.objects.count() == 0


def test_low_agreement_puts_open_conflicts_before_reviewed_ties(logged_in_client, make_videos, three_labelers, reviewer, vote):
    from labeling import services

    reviewed_tie, open_conflict = make_videos(2)
    ann, bob, cai = three_labelers
    vote(reviewed_tie, ann, True)
    vote(reviewed_tie, bob, False)
    services.review_create(video=reviewed_tie, reviewer=reviewer, value=True)
    vote(open_conflict, ann, True)
    vote(open_conflict, bob, True)
    vote(open_conflict, cai, False)

    body = logged_in_client.get("/labeling/?mode=low_agreement").content.decode()

    assert f'data-video-aid="{open_conflict.aid}"' in body


def test_labeled_today_counts_from_local_midnight(logged_in_client, user, make_videos, settings):
    import datetime as dt
    from zoneinfo import ZoneInfo

    from django.utils import timezone

    from labeling.selectors import labeling_progress

    settings.TIME_ZONE = "Asia/Shanghai"
    before_midnight, after_midnight = make_videos(2)
    now = timezone.now().astimezone(ZoneInfo("Asia/Shanghai"))
    local_midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    for video, moment in ((before_midnight, local_midnight - dt.timedelta(seconds=1)), (after_midnight, local_midnight + dt.timedelta(seconds=1))):
        label = Label.objects.create(video=video, user=user, value=True)
        Label.objects.filter(pk=label.pk).update(created_at=moment)

    progress = labeling_progress(user=user)

    assert (progress.labeled_today, progress.labeled_total) == (1, 2)


def test_history_restore_gets_the_full_page_not_a_fragment(client, reviewer):
    client.force_login(reviewer)

    response = client.get("/labeling/review/", HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true")

    assert "<html" in response.content.decode()
    assert "HX-Request" in response["Vary"]


def test_navigation_shows_review_only_to_reviewers(logged_in_client, client, reviewer):
    assert "/labeling/review/" not in logged_in_client.get("/labeling/agreement/").content.decode()
    client.force_login(reviewer)
    assert "/labeling/review/" in client.get("/labeling/agreement/").content.decode()
