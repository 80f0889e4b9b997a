"""Blind labeling in the JSON API (issue 14): a labeler never gets others' votes or the
consensus of a video they have not voted on; reviewers and admins see everything."""

import pytest
from rest_framework.test import APIClient

from labeling.models import Label
from tests.labeling.conftest import label_conflicts


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def corpus(make_videos, three_labelers, make_user):
    """Two conflicts voted by ann/bob/cai; dora (a labeler) voted on the first only."""
    voted, unvoted = make_videos(2)
    label_conflicts([voted, unvoted], three_labelers)
    dora = make_user("dora", group="labelers")
    Label.objects.create(video=voted, user=dora, value=False)
    return {"voted": voted, "unvoted": unvoted, "dora": dora, "rita": make_user("rita", group="reviewers")}


def test_video_detail_hides_the_consensus_until_the_labeler_voted(corpus):
    dora = _client(corpus["dora"])

    hidden = dora.get(f"/api/v1/videos/{corpus['unvoted'].aid}").json()["consensus"]
    shown = dora.get(f"/api/v1/videos/{corpus['voted'].aid}").json()["consensus"]

    assert hidden == {"consensus": None, "positive_votes": None, "negative_votes": None, "is_tie": None,
                      "is_inconsistent": None, "reviewed": None, "hidden": True}
    assert shown["hidden"] is False and shown["positive_votes"] == 2 and shown["negative_votes"] == 2
    reviewer_view = _client(corpus["rita"]).get(f"/api/v1/videos/{corpus['unvoted'].aid}").json()["consensus"]
    assert reviewer_view["hidden"] is False and reviewer_view["consensus"] is True


def test_video_list_hides_per_video_and_consensus_filters_match_only_voted_videos(corpus):
    dora = _client(corpus["dora"])

    rows = {row["aid"]: row["consensus"] for row in dora.get("/api/v1/videos").json()["results"]}
    assert rows[corpus["unvoted"].aid]["hidden"] is True and rows[corpus["voted"].aid]["hidden"] is False

    inconsistent = [row["aid"] for row in dora.get("/api/v1/videos?inconsistent=true").json()["results"]]
    assert inconsistent == [corpus["voted"].aid]  # the other conflict would reveal its votes
    by_consensus = [row["aid"] for row in dora.get("/api/v1/videos?consensus=none").json()["results"]]
    assert by_consensus == [corpus["voted"].aid]  # 2:2 tie, and voted by dora

    reviewer_rows = _client(corpus["rita"]).get("/api/v1/videos?inconsistent=true").json()["results"]
    assert len(reviewer_rows) == 2 and not any(row["consensus"]["hidden"] for row in reviewer_rows)


def test_inconsistent_list_gives_a_labeler_only_the_conflicts_they_voted_on(corpus):
    body = _client(corpus["dora"]).get("/api/v1/videos/inconsistent").json()

    assert [row["aid"] for row in body["results"]] == [corpus["voted"].aid]
    assert {label["user"] for label in body["results"][0]["effective_labels"]} == {"ann", "bob", "cai", "dora"}
    assert len(_client(corpus["rita"]).get("/api/v1/videos/inconsistent").json()["results"]) == 2


def test_consensus_endpoint_hides_unvoted_aids_from_a_labeler(corpus):
    aids = f"{corpus['voted'].aid},{corpus['unvoted'].aid},1"
    body = _client(corpus["dora"]).get(f"/api/v1/consensus?aids={aids}").json()

    assert body["results"][str(corpus["unvoted"].aid)]["hidden"] is True
    assert body["results"][str(corpus["unvoted"].aid)]["consensus"] is None
    assert body["results"][str(corpus["voted"].aid)]["hidden"] is False
    assert body["missing"] == [1]
    reviewer = _client(corpus["rita"]).post("/api/v1/consensus", {"aids": [corpus["unvoted"].aid]}, format="json").json()
    assert reviewer["results"][str(corpus["unvoted"].aid)] == {
        "consensus": True, "positive_votes": 2, "negative_votes": 1, "is_tie": False, "is_inconsistent": True,
        "reviewed": False, "hidden": False,
    }


@pytest.mark.parametrize("count", [10, 300])
def test_blind_video_list_costs_constant_queries(make_videos, three_labelers, make_user, django_assert_num_queries, count):
    label_conflicts(make_videos(count), three_labelers)
    dora = _client(make_user("dora", group="labelers"))

    # roles, count, page, the labeler's votes on the page
    with django_assert_num_queries(4):
        assert dora.get("/api/v1/videos?limit=1000").status_code == 200
