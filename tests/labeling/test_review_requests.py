"""Review requests: videos sent to the review queue with a reason (here from a
label-issue scan), shown to reviewers beside the conflicts even when the labelers
agree, and resolved by the next review of the video, exactly like a conflict."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from labeling import services
from labeling.models import Label, Review, ReviewRequest
from tests.labeling.conftest import label_conflicts
from tests.training.factories import separable_dataset_version
from training.models import JobStatus, LabelIssue, LabelIssueScan

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


def succeeded_scan(version, *, issues: int, user=None) -> LabelIssueScan:
    """A finished scan of ``version`` whose first ``issues`` items are its issues (given
    label = the item's, probability the opposite of it)."""
    scan = LabelIssueScan.objects.create(
        dataset_version=version, architecture_key="logreg", hyperparameters={"seed": 0}, folds=2,
        status=JobStatus.SUCCEEDED, folds_done=2, issue_count=issues, created_by=user, finished_at=timezone.now(),
    )
    items = list(version.items.order_by("video__aid").values_list("video_id", "label")[:issues])
    LabelIssue.objects.bulk_create([
        LabelIssue(scan=scan, video_id=video_id, given_label=label, probability=0.1 if label else 0.9,
                   label_quality=0.1 + rank / 1000, rank=rank)
        for rank, (video_id, label) in enumerate(items, start=1)
    ])
    return scan


@pytest.fixture
def admin(make_user):
    return make_user("ada", group="admins")


@pytest.fixture
def version():
    return separable_dataset_version(rows=20, dimensions=4)


def agreeing_votes(video, users, value: bool) -> None:
    Label.objects.bulk_create([Label(video=video, user=user, value=value) for user in users])


def test_send_to_review_from_the_scan_page_puts_agreed_videos_in_the_review_queue(
    client, admin, reviewer, version, three_labelers
):
    scan = succeeded_scan(version, issues=5, user=admin)
    first, second = LabelIssue.objects.filter(scan=scan).order_by("rank").select_related("video")[:2]
    agreeing_votes(first.video, three_labelers, first.given_label)  # the labelers agree with the given label
    client.force_login(reviewer)

    response = client.post(f"/training/label-issues/{scan.pk}/review-requests",
                           {"video_ids": [first.video_id, second.video_id], "reason": ""}, follow=True)

    assert "Sent 2 videos to review." in response.content.decode()
    requests = {request.video_id: request for request in ReviewRequest.objects.all()}
    assert set(requests) == {first.video_id, second.video_id}
    given = "yes" if first.given_label else "no"
    assert requests[first.video_id].reason == (
        f"A model trained on the other folds predicts {first.probability:.2f} (probability of yes) for this video, "
        f"labeled {given}")
    assert requests[first.video_id].source == f"label issues of {version.dataset.name} v{version.number}"
    assert requests[first.video_id].requested_by == reviewer

    page = client.get("/labeling/review/").content.decode()
    assert first.video.title in page and second.video.title in page
    assert requests[first.video_id].reason in page
    assert f"Review requested</strong> by rita from label issues of {version.dataset.name} v{version.number}" in page
    assert "labelers agree" in page
    assert "0 conflicting videos · 2 review requests" in page


def test_a_review_resolves_the_request_like_a_conflict(client, reviewer, make_user, admin, version, three_labelers):
    scan = succeeded_scan(version, issues=1)
    issue = LabelIssue.objects.select_related("video").get(scan=scan)
    agreeing_votes(issue.video, three_labelers, True)
    services.review_request_create_many([issue.video_id], reason="the model says no", source="label issues", user=admin)
    client.force_login(reviewer)

    response = client.post(f"/labeling/review/{issue.video_id}/resolve", {"value": "0"}, **HTMX)

    assert "Resolved: no by rita" in response.content.decode()
    request = ReviewRequest.objects.get()
    review = Review.objects.get()
    assert request.resolved_by == review and request.resolved_at == review.created_at
    assert issue.video.title not in client.get("/labeling/review/").content.decode()
    # A second reviewer is told, as for a conflict.
    client.force_login(make_user("second-reviewer", group="reviewers"))
    late = client.post(f"/labeling/review/{issue.video_id}/resolve", {"value": "1"}, **HTMX)
    assert "already resolved by rita" in late.content.decode()
    assert Review.objects.count() == 1


def test_any_review_of_the_video_resolves_its_open_request(reviewer, admin, make_video):
    video = make_video()
    services.review_request_create_many([video.pk], reason="check it", source="label issues", user=admin)

    review = services.review_create(video=video, reviewer=reviewer, value=True)

    assert ReviewRequest.objects.get().resolved_by == review


def test_sending_again_is_idempotent_and_a_resolved_video_can_be_requested_again(admin, reviewer, make_videos):
    first, second = make_videos(2)

    assert services.review_request_create_many([first.pk], reason="r", source="s", user=admin).created == 1
    counts = services.review_request_create_many([first.pk, second.pk, second.pk], reason="r", source="s", user=admin)
    assert (counts.created, counts.already_open) == (1, 1)
    assert ReviewRequest.objects.count() == 2

    services.review_create(video=first, reviewer=reviewer, value=True)
    assert services.review_request_create_many([first.pk], reason="again", source="s", user=admin).created == 1
    assert ReviewRequest.objects.filter(video=first).count() == 2


@pytest.mark.parametrize(("video_ids", "reason", "source", "field"), [
    ([], "r", "s", "video_ids"),
    ([987654321], "r", "s", "video_ids"),
    (["1"], "r", "s", "video_ids"),
    (None, "  ", "s", "reason"),
    (None, "r", "", "source"),
    (None, "r", "x" * 51, "source"),
])
def test_bad_requests_are_refused_and_write_nothing(admin, make_video, video_ids, reason, source, field):
    video = make_video()

    with pytest.raises(ValidationError) as raised:
        services.review_request_create_many([video.pk] if video_ids is None else video_ids, reason=reason,
                                            source=source, user=admin)

    assert field in raised.value.message_dict
    assert not ReviewRequest.objects.exists()


def test_labelers_cannot_send_to_review(client, user, admin, version):
    scan = succeeded_scan(version, issues=2)
    video_id = LabelIssue.objects.filter(scan=scan).values_list("video_id", flat=True).first()

    with pytest.raises(PermissionDenied):
        services.review_request_create_many([video_id], reason="r", source="s", user=user)
    client.force_login(user)
    response = client.post(f"/training/label-issues/{scan.pk}/review-requests", {"video_ids": [video_id]})
    assert response.status_code == 403
    assert not ReviewRequest.objects.exists()


def test_a_video_that_is_not_an_issue_of_the_scan_is_refused_from_the_page(client, reviewer, version, make_video):
    scan = succeeded_scan(version, issues=2)
    client.force_login(reviewer)

    response = client.post(f"/training/label-issues/{scan.pk}/review-requests",
                           {"video_ids": [make_video().pk]}, follow=True)

    assert "not label issues of scan" in response.content.decode()
    assert not ReviewRequest.objects.exists()


def test_the_queue_can_show_only_requests_or_only_conflicts(client, reviewer, admin, make_videos, three_labelers):
    conflicted, requested = make_videos(2)
    label_conflicts([conflicted], three_labelers)
    services.review_request_create_many([requested.pk], reason="look", source="label issues", user=admin)
    client.force_login(reviewer)

    only_requests = client.get("/labeling/review/?show=requests", **HTMX).content.decode()
    only_conflicts = client.get("/labeling/review/?show=conflicts", **HTMX).content.decode()

    assert requested.title in only_requests and conflicted.title not in only_requests
    assert conflicted.title in only_conflicts and requested.title not in only_conflicts


@pytest.mark.parametrize("count", [10, 500])
def test_review_queue_queries_do_not_grow_with_requests(
    client, reviewer, admin, make_videos, three_labelers, django_assert_num_queries, count
):
    videos = make_videos(count * 2)
    label_conflicts(videos[:count], three_labelers)
    services.review_request_create_many([video.pk for video in videos[count // 2:]], reason="model doubts it",
                                        source="label issues", user=admin)
    client.force_login(reviewer)
    client.get("/labeling/review/")  # warm the session and role lookups the same way for both sizes

    with django_assert_num_queries(8):
        response = client.get("/labeling/review/")

    assert response.status_code == 200
    assert f"{count} conflicting videos · {count * 2 - count // 2} review requests" in response.content.decode()
