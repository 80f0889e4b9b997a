import pytest
from rest_framework.test import APIClient

from labeling.models import Label
from tests.labeling.conftest import analyze_labeling_tables, label_conflicts

pytestmark = pytest.mark.django_db


@pytest.fixture
def reviewer_api_client(reviewer):
    """Consensus filters, the inconsistent list and others' votes: a reviewer's view (a
    labeler's is blind, see test_blind_api.py)."""
    client = APIClient()
    client.force_authenticate(reviewer)
    return client


def test_api_requires_authentication(make_video):
    response = APIClient().get("/api/v1/videos")

    assert response.status_code in (401, 403)
    assert "detail" in response.json()


def test_list_videos_with_consensus_filter(reviewer_api_client, make_videos, three_labelers, vote):
    positive, negative, unlabeled = make_videos(3)
    for user in three_labelers:
        vote(positive, user, True)
        vote(negative, user, False)

    body = reviewer_api_client.get("/api/v1/videos?consensus=true").json()

    assert [video["aid"] for video in body["results"]] == [positive.aid]
    assert body["results"][0]["consensus"]["consensus"] is True
    assert body["results"][0]["consensus"]["positive_votes"] == 3
    assert reviewer_api_client.get("/api/v1/videos?labeled=false").json()["count"] == 1


def test_list_videos_rejects_a_bad_filter(api_client):
    response = api_client.get("/api/v1/videos?consensus=maybe")

    assert response.status_code == 400
    assert "consensus" in response.json()["detail"]


def test_post_a_label(api_client, user, make_video):
    video = make_video()

    response = api_client.post("/api/v1/labels", {"aid": video.aid, "value": True}, format="json")

    assert response.status_code == 201
    assert response.json()["aid"] == video.aid and response.json()["user"] == user.username
    assert Label.objects.filter(video=video, user=user, value=True).count() == 1


@pytest.mark.parametrize(("payload", "field"), [
    ({"aid": 123456789, "value": True}, "aid"),
    ({"aid": "abc", "value": True}, "aid"),
    ({"value": True}, "aid"),
    ({"aid": 1, "value": "perhaps"}, "value"),
    ({"aid": 1, "value": True, "source": "oracle"}, "source"),
])
def test_post_a_bad_label_is_400_naming_the_field_and_writes_nothing(api_client, make_video, payload, field):
    make_video()

    response = api_client.post("/api/v1/labels", payload, format="json")

    assert response.status_code == 400
    assert response.json()["detail"].startswith(field)
    assert Label.objects.count() == 0


def test_inconsistent_list_has_effective_labels(reviewer_api_client, make_videos, three_labelers):
    conflicted, _ = make_videos(2)
    label_conflicts([conflicted], three_labelers)

    body = reviewer_api_client.get("/api/v1/videos/inconsistent").json()

    assert [video["aid"] for video in body["results"]] == [conflicted.aid]
    assert sorted((label["user"], label["value"]) for label in body["results"][0]["effective_labels"]) == [
        ("ann", True), ("bob", False), ("cai", True)
    ]


@pytest.mark.parametrize("count", [10, 1000])
def test_inconsistent_list_queries_do_not_grow(reviewer_api_client, make_videos, three_labelers, django_assert_max_num_queries, count):
    label_conflicts(make_videos(count), three_labelers)
    analyze_labeling_tables()

    with django_assert_max_num_queries(5):  # + the user's roles (blind labeling: a labeler sees fewer)
        response = reviewer_api_client.get("/api/v1/videos/inconsistent?limit=100")

    assert response.json()["count"] == count


def test_consensus_for_aids_post_and_get(reviewer_api_client, make_videos, three_labelers):
    videos = make_videos(2)
    label_conflicts(videos[:1], three_labelers)
    aids = [video.aid for video in videos]

    body = reviewer_api_client.post("/api/v1/consensus", {"aids": [*aids, 42]}, format="json").json()

    assert body["missing"] == [42]
    assert body["results"][str(aids[0])] == {
        "consensus": True, "positive_votes": 2, "negative_votes": 1, "is_tie": False, "is_inconsistent": True, "reviewed": False,
        "hidden": False,
    }
    assert body["results"][str(aids[1])]["consensus"] is None
    assert reviewer_api_client.get(f"/api/v1/consensus?aids={aids[0]},{aids[1]}").json()["results"].keys() == {str(a) for a in aids}


def test_consensus_with_bad_aids_is_400(api_client):
    response = api_client.post("/api/v1/consensus", {"aids": ["x"]}, format="json")

    assert response.status_code == 400
    assert response.json()["detail"].startswith("aids")
    assert api_client.post("/api/v1/consensus", {"aids": []}, format="json").status_code == 400


def test_a_labeler_cannot_post_machine_labels(api_client, make_video):
    response = api_client.post("/api/v1/labels", {"aid": make_video().aid, "value": True, "source": "model"}, format="json")

    assert response.status_code == 403
    assert "only admins" in response.json()["detail"]
    assert Label.objects.count() == 0


def test_a_user_without_a_role_cannot_post_labels(make_user, make_video):
    client = APIClient()
    client.force_authenticate(make_user("nobody", group=None))

    response = client.post("/api/v1/labels", {"aid": make_video().aid, "value": True}, format="json")

    assert response.status_code == 403
    assert Label.objects.count() == 0


def test_search_with_a_non_ascii_digit_is_not_an_error(api_client):
    assert api_client.get("/api/v1/videos?search=²").status_code == 200
    assert api_client.get("/api/v1/videos/inconsistent?search=²").status_code == 200
