"""The review page (issue 14): a resolved row leaves the list and the counters move without
a reload, a note, re-review supersedes, BV links, descriptions, unsure answers and
comments, and a friendly 403 for a labeler."""

import pytest

from labeling.models import LabelPass, PassReason, Review
from tests.labeling.conftest import label_conflicts

HTMX = {"HTTP_HX_REQUEST": "true"}


def test_resolving_removes_the_row_and_updates_the_counters_out_of_band(client, reviewer, make_videos, three_labelers):
    first, second, third = make_videos(3)
    label_conflicts([first, second, third], three_labelers)
    client.force_login(reviewer)
    assert "3 conflicting videos" in client.get("/labeling/review/").content.decode()

    response = client.post(f"/labeling/review/{first.pk}/resolve", {"value": "1", "note": "official upload"}, **HTMX)

    body = response.content.decode()
    assert response.status_code == 200
    # No row comes back: the outerHTML swap of the row with nothing removes it.
    assert f'id="review-row-{first.pk}"' not in body and "<tr" not in body
    assert 'id="queue-counts"' in body and 'hx-swap-oob="true"' in body
    assert "2 conflicting videos" in body
    assert "Resolved: yes by rita" in body and "official upload" in body
    review = Review.objects.get()
    assert (review.video_id, review.value, review.note) == (first.pk, True, "official upload")


def test_counters_after_resolving_keep_the_search_and_the_shown_count(client, reviewer, make_videos, three_labelers):
    first, second = make_videos(2)
    label_conflicts([first, second], three_labelers)
    client.force_login(reviewer)

    body = client.post(
        f"/labeling/review/{first.pk}/resolve", {"value": "0", "q": str(second.aid), "show": "conflicts"}, **HTMX
    ).content.decode()

    assert "1 conflicting video " in body and "1 shown" in body


def test_review_rows_link_the_bv_id_show_the_description_and_unsure_answers(client, reviewer, make_video, three_labelers, make_user):
    video = make_video(description="作词：某人\n作曲：另一人")
    label_conflicts([video], three_labelers)
    doubter = make_user("dora", group="labelers")
    LabelPass.objects.create(video=video, user=doubter, reason=PassReason.UNSURE, comment="cover or original?")
    LabelPass.objects.create(video=video, user=make_user("sam", group="labelers"), reason=PassReason.SKIP)
    client.force_login(reviewer)

    body = client.get("/labeling/review/").content.decode()

    assert f'href="https://www.bilibili.com/video/{video.bvid}"' in body
    assert "<details" in body and "作曲：另一人" in body
    assert "dora: unsure" in body and "cover or original?" in body
    assert "sam:" not in body  # a skip is no answer for the reviewer


@pytest.mark.parametrize("count", [10, 500])
def test_review_list_with_unsure_answers_costs_constant_queries(client, reviewer, make_videos, three_labelers, make_user, django_assert_num_queries, count):
    videos = make_videos(count)
    label_conflicts(videos, three_labelers)
    doubter = make_user("dora", group="labelers")
    LabelPass.objects.bulk_create([LabelPass(video=video, user=doubter, reason=PassReason.UNSURE) for video in videos])
    client.force_login(reviewer)

    # session, user, roles, page, count, counters, labels, unsure answers
    with django_assert_num_queries(8):
        assert client.get("/labeling/review/").status_code == 200


def test_re_review_of_a_resolved_video_supersedes_the_earlier_review(client, reviewer, make_video, three_labelers, make_user):
    video = make_video()
    label_conflicts([video], three_labelers)
    client.force_login(reviewer)
    client.post(f"/labeling/review/{video.pk}/resolve", {"value": "1"}, **HTMX)
    # The queue refuses a second resolve of a resolved video (two reviewers at once)...
    stale = client.post(f"/labeling/review/{video.pk}/resolve", {"value": "0"}, **HTMX).content.decode()
    assert "already resolved" in stale and Review.objects.count() == 1

    # ...the video's page takes a deliberate new review, which becomes the consensus.
    second_reviewer = make_user("otto", group="reviewers")
    client.force_login(second_reviewer)
    response = client.post(f"/labeling/review/{video.pk}/supersede", {"value": "0", "note": "it is a cover"})

    assert response.status_code == 302
    assert Review.objects.count() == 2
    video.consensus.refresh_from_db()
    page = client.get(f"/labeling/videos/{video.aid}/").content.decode()
    assert "consensus: <strong>no</strong>" in page
    assert page.count('data-testid="superseded"') == 1  # the first review, not the newest
    assert "it is a cover" in page and "Review again" in page


def test_re_review_with_a_bad_value_writes_nothing(client, reviewer, make_video):
    video = make_video()
    client.force_login(reviewer)

    response = client.post(f"/labeling/review/{video.pk}/supersede", {"value": "maybe"}, follow=True)

    assert Review.objects.count() == 0
    assert "Choose yes or no" in response.content.decode()


def test_a_labeler_cannot_re_review(logged_in_client, make_video):
    video = make_video()
    assert logged_in_client.post(f"/labeling/review/{video.pk}/supersede", {"value": "1"}).status_code == 403
    assert Review.objects.count() == 0
    assert 'data-testid="re-review"' not in logged_in_client.get(f"/labeling/videos/{video.aid}/").content.decode()


def test_a_labeler_opening_the_review_queue_gets_a_friendly_403(logged_in_client, user):
    response = logged_in_client.get("/labeling/review/")

    body = response.content.decode()
    assert response.status_code == 403
    assert "<h1>Not allowed</h1>" in body
    assert "The review queue is where reviewers settle" in body and "Only reviewers and admins" in body
    assert f"signed in as <strong>{user.username}</strong> (labeler)" in body
    assert 'href="/"' in body
