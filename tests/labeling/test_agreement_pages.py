"""Agreement drill-downs (issue 14): one labeler's agreement, a pair's disagreements, the
labeler's home page ("my work"), and settled ties no longer counted as open ties."""

import pytest
from django.core.paginator import Paginator
from django.db import connection
from django.test.utils import CaptureQueriesContext

from labeling.agreement import labeler_agreement, pair_disagreements
from labeling.models import Label, Review, Video
from tests.labeling.conftest import label_conflicts


def _votes(video, pairs):
    Label.objects.bulk_create([Label(video=video, user=user, value=value) for user, value in pairs])


@pytest.fixture
def team(make_user, make_videos):
    """ann/bob/cai on 4 videos: v1 Y/Y/Y, v2 Y/N/Y, v3 N/N/-, v4 Y/N (tie, then reviewed yes)."""
    ann, bob, cai = (make_user(name, group="labelers") for name in ("ann", "bob", "cai"))
    reviewer = make_user("rita", group="reviewers")
    v1, v2, v3, v4, v5 = make_videos(5)
    _votes(v1, [(ann, True), (bob, True), (cai, True)])
    _votes(v2, [(ann, True), (bob, False), (cai, True)])
    _votes(v3, [(ann, False), (bob, False)])
    _votes(v4, [(ann, True), (bob, False)])
    Review.objects.create(video=v4, reviewer=reviewer, value=True)
    return {"ann": ann, "bob": bob, "cai": cai, "rita": reviewer, "videos": [v1, v2, v3, v4, v5]}


def test_agreement_cards_add_up_to_the_labeled_videos(client, team):
    client.force_login(team["rita"])
    body = client.get("/labeling/agreement/").content.decode()

    # Labeled 4: yes v1, v2, v4 (tie settled by review) + no v3 + no open tie.
    assert 'data-testid="open-ties">0<' in body
    assert "+ 1 settled by review" in body


def test_labeler_agreement_with_consensus_and_each_peer(team):
    ann = labeler_agreement(team["ann"].pk)

    assert ann.labeled == 4
    # Compared on v1..v4 (each has ≥ 2 votes); ann matches the consensus everywhere.
    assert (ann.consensus.compared, ann.consensus.agreed, ann.consensus.percent) == (4, 4, 100.0)
    peers = {peer.other: peer for peer in ann.peers}
    assert set(peers) == {"bob", "cai"}
    # ann/bob: v1 YY, v2 YN, v3 NN, v4 YN → [[1, 2], [0, 1]]: p_o = 1/2, p_e = 3/4·1/4 + 1/4·3/4 = 3/8, κ = 0.2
    assert peers["bob"].n == 4 and peers["bob"].kappa == pytest.approx(0.2)
    bob = labeler_agreement(team["bob"].pk)
    assert (bob.consensus.compared, bob.consensus.agreed) == (4, 2)  # v2 and v4 differ from the consensus
    assert {peer.other for peer in bob.peers} == {"ann", "cai"}


def test_labeler_page_and_pair_drill_down(client, team):
    ann, bob = team["ann"], team["bob"]
    client.force_login(team["rita"])

    page = client.get(f"/labeling/agreement/labelers/{ann.pk}/").content.decode()
    assert 'data-testid="labeler-labeled">4<' in page and "100.0%" in page
    assert f'href="/labeling/agreement/pairs/{ann.pk}/{bob.pk}/"' in page

    drill = client.get(f"/labeling/agreement/pairs/{ann.pk}/{bob.pk}/").content.decode()
    v2, v4 = team["videos"][1], team["videos"][3]
    assert drill.count('data-testid="disagreement-row"') == 2
    assert f"av{v2.aid}" in drill and f"av{v4.aid}" in drill
    assert "2 videos with different effective labels" in drill


def test_pair_disagreements_paginate_in_constant_queries(make_user, make_videos, django_assert_num_queries):

    ann, bob = make_user("ann"), make_user("bob")
    for count in (10, 300):
        Video.objects.all().delete()
        videos = make_videos(count)
        Label.objects.bulk_create([Label(video=v, user=u, value=(u == ann)) for v in videos for u in (ann, bob)])
        with django_assert_num_queries(2):  # count + page
            page = Paginator(pair_disagreements(ann.pk, bob.pk), 50).get_page(1)
            rows = [(video.a_value, video.b_value, video.consensus.is_tie) for video in page.object_list]
        assert page.paginator.count == count and rows[0] == (True, False, True)


def test_labeler_sees_only_their_own_pairs_disagreements(client, team):
    ann, bob, cai = team["ann"], team["bob"], team["cai"]
    client.force_login(ann)

    assert client.get(f"/labeling/agreement/pairs/{ann.pk}/{bob.pk}/").status_code == 200
    denied = client.get(f"/labeling/agreement/pairs/{bob.pk}/{cai.pk}/")
    assert denied.status_code == 403
    assert "only reviewers, admins and the two labelers" in denied.content.decode()
    assert client.get(f"/labeling/agreement/pairs/{ann.pk}/99999/").status_code == 404


def test_home_shows_my_work_agreement_and_what_waits(client, team):
    client.force_login(team["bob"])
    body = client.get("/").content.decode()

    assert 'data-testid="my-agreement"' in body
    assert 'data-testid="labeler-labeled">4<' in body
    assert "50.0%" in body  # bob agrees with the consensus on 2 of 4
    assert "<td>ann</td>" in body and "<td>cai</td>" in body
    assert 'data-testid="home-remaining">1<' in body  # v5
    assert "home-review-waiting" not in body  # not a reviewer


def test_home_shows_a_reviewer_the_open_conflicts(client, make_user, make_videos, three_labelers):
    label_conflicts(make_videos(3), three_labelers)
    client.force_login(make_user("rita", group="reviewers"))

    body = client.get("/").content.decode()

    assert "Waiting for review: <strong>3</strong> open conflicts" in body


def test_home_queries_do_not_grow_with_the_corpus(client, make_videos, three_labelers):
    client.force_login(three_labelers[0])
    sizes = []
    for count in (10, 400):
        label_conflicts(make_videos(count), three_labelers)
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/").status_code == 200
        sizes.append(len(queries))
    assert sizes[0] == sizes[1] <= 8
