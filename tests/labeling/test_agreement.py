"""Agreement statistics: the maths against hand-computed values, the SQL selectors against rows, the page."""

import copy
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from labeling.agreement import (
    AgreementTable,
    agreement_summary,
    cohen_kappa,
    corpus_counts,
    fleiss_kappa,
    fleiss_kappa_weighted,
    interpret_kappa,
    overall_fleiss,
    pair_agreement_tables,
    percent_agreement,
    vote_histogram,
)
from labeling.models import Label, Review, Video
from labeling.agreement_views import agreement_dashboard

# ------------------------------------------------------------------ Cohen's kappa


def test_cohen_kappa_classic_table():
    # n = 50; p_o = (20 + 15) / 50 = 0.7
    # A yes = 25/50 = 0.5, B yes = 30/50 = 0.6 → p_e = 0.5·0.6 + 0.5·0.4 = 0.5
    # κ = (0.7 − 0.5) / (1 − 0.5) = 0.4
    assert cohen_kappa([[20, 5], [10, 15]]) == pytest.approx(0.4)
    assert cohen_kappa(AgreementTable(20, 5, 10, 15)) == pytest.approx(0.4)
    assert percent_agreement([[20, 5], [10, 15]]) == pytest.approx(70.0)


def test_cohen_kappa_perfect_chance_and_opposite():
    assert cohen_kappa([[3, 0], [0, 7]]) == pytest.approx(1.0)
    # Every cell equal: p_o = 0.5 and p_e = 0.5·0.5 + 0.5·0.5 = 0.5 → κ = 0.
    assert cohen_kappa([[10, 10], [10, 10]]) == pytest.approx(0.0)
    # Independent marginals (A yes 0.4, B yes 0.3; each cell = product · n): chance level.
    # p_o = (12 + 42) / 100 = 0.54; p_e = 0.4·0.3 + 0.6·0.7 = 0.54 → κ = 0.
    assert cohen_kappa([[12, 28], [18, 42]]) == pytest.approx(0.0)
    # Always opposite, balanced: p_o = 0, p_e = 0.5 → κ = −1.
    assert cohen_kappa([[0, 5], [5, 0]]) == pytest.approx(-1.0)
    assert percent_agreement([[0, 5], [5, 0]]) == 0.0


def test_cohen_kappa_undefined():
    # Both raters said "yes" to everything: p_o = p_e = 1 → 0/0.
    assert cohen_kappa([[5, 0], [0, 0]]) is None
    assert cohen_kappa([[0, 0], [0, 4]]) is None
    assert cohen_kappa([[0, 0], [0, 0]]) is None
    assert percent_agreement([[0, 0], [0, 0]]) is None
    # Each constant but opposite: p_o = 0, p_e = 1·0 + 0·1 = 0 → κ = 0, defined.
    assert cohen_kappa([[0, 4], [0, 0]]) == pytest.approx(0.0)


def test_interpretation_landis_koch():
    assert interpret_kappa(None) == "undefined"
    assert interpret_kappa(-0.1) == "poor"
    assert interpret_kappa(0.0) == "slight"
    assert interpret_kappa(0.2) == "slight"
    assert interpret_kappa(0.21) == "fair"
    assert interpret_kappa(0.4) == "fair"
    assert interpret_kappa(0.5) == "moderate"
    assert interpret_kappa(0.7) == "substantial"
    assert interpret_kappa(0.81) == "almost perfect"
    assert interpret_kappa(1.0) == "almost perfect"


# ------------------------------------------------------------------ Fleiss' kappa


def test_fleiss_kappa_small_hand_computed():
    # Items (yes, no): (2,0) (0,2) (1,1)
    # P_i = 1, 1, 0 → P̄ = 2/3; p_yes = 3/6 = 1/2 → P̄e = 1/4 + 1/4 = 1/2
    # κ = (2/3 − 1/2) / (1 − 1/2) = 1/3
    assert fleiss_kappa([(2, 0), (0, 2), (1, 1)]) == pytest.approx(1 / 3)


def test_fleiss_kappa_varying_raters_per_item():
    # Items (yes, no): (3,0) (1,1) (0,2) (2,1) and (1,0), which has one rater and is excluded.
    # P_1 = 3·2 / (3·2) = 1
    # P_2 = (0 + 0) / (2·1) = 0
    # P_3 = 2·1 / (2·1) = 1
    # P_4 = (2·1 + 0) / (3·2) = 1/3
    # P̄ = (1 + 0 + 1 + 1/3) / 4 = 7/12
    # ratings = 3 + 2 + 2 + 3 = 10; yes = 3 + 1 + 0 + 2 = 6 → p_yes = 3/5, p_no = 2/5
    # P̄e = 9/25 + 4/25 = 13/25
    # κ = (7/12 − 13/25) / (1 − 13/25) = (19/300) / (12/25) = 19/144 ≈ 0.1319
    expected = 19 / 144
    assert fleiss_kappa([(3, 0), (1, 1), (0, 2), (2, 1), (1, 0)]) == pytest.approx(expected)
    assert fleiss_kappa([(3, 0), (1, 1), (0, 2), (2, 1)]) == pytest.approx(expected)


def test_fleiss_kappa_wikipedia_example():
    # Wikipedia "Fleiss' kappa", worked example: 10 subjects, 14 raters, 5 categories → κ ≈ 0.210
    # (P̄ = 0.378, P̄e = 0.213). The implementation takes any number of categories.
    table = [
        (0, 0, 0, 0, 14),
        (0, 2, 6, 4, 2),
        (0, 0, 3, 5, 6),
        (0, 3, 9, 2, 0),
        (2, 2, 8, 1, 1),
        (7, 7, 0, 0, 0),
        (3, 2, 6, 3, 0),
        (2, 5, 3, 2, 2),
        (6, 5, 2, 1, 0),
        (0, 2, 2, 3, 7),
    ]
    assert fleiss_kappa(table) == pytest.approx(0.210, abs=5e-4)


def test_fleiss_kappa_two_raters_equals_scotts_pi():
    # With exactly two raters per item Fleiss' kappa is Scott's π. The classic table
    # [[20, 5], [10, 15]] as items: 20×(2,0), 5+10 × (1,1), 15×(0,2).
    # p_o = 35/50 = 0.7; pooled p_yes = (25 + 30) / 100 = 0.55 → p_e = 0.55² + 0.45² = 0.505
    # π = (0.7 − 0.505) / (1 − 0.505) = 13/33 ≈ 0.3939
    items = [(2, 0)] * 20 + [(1, 1)] * 15 + [(0, 2)] * 15
    assert fleiss_kappa(items) == pytest.approx(13 / 33)
    assert fleiss_kappa_weighted([((2, 0), 20), ((1, 1), 15), ((0, 2), 15)]) == pytest.approx(13 / 33)


def test_fleiss_kappa_undefined_cases():
    assert fleiss_kappa([]) is None
    assert fleiss_kappa([(1, 0), (0, 1)]) is None  # nobody has a second rater
    assert fleiss_kappa([(3, 0), (2, 0)]) is None  # every rating is "yes": P̄e = 1
    assert fleiss_kappa([(2, 0), (0, 2)]) == pytest.approx(1.0)


# ------------------------------------------------------------------ the SQL selectors

_aid = iter(range(1_000_000, 10_000_000))


def make_video(**fields) -> Video:
    aid = next(_aid)
    return Video.objects.create(aid=aid, title=f"video {aid}", **fields)


def make_user(username: str):
    return get_user_model().objects.create_user(username=username, password="pw-for-tests-1")


def label(video, user, value: bool, *, retracted: bool = False) -> Label:
    return Label.objects.create(
        video=video, user=user, value=value, retracted_at=timezone.now() if retracted else None
    )


@pytest.fixture
def corpus(db):
    """Five labelers, six videos. Effective labels (Y/N), after history and undo:

    v1: alice N (said Y, then N), bob N, carol N (her later Y was retracted); dave only
        has a retracted label → none
    v2: alice Y, bob N; reviewed → Y
    v3: alice Y, bob Y, carol N
    v4: erin Y
    v5: carol Y, erin N (tie)
    v6: nobody
    """
    alice, bob, carol, dave, erin = (make_user(name) for name in ("alice", "bob", "carol", "dave", "erin"))
    v1, v2, v3, v4, v5, v6 = (make_video() for _ in range(6))
    label(v1, alice, True)
    label(v1, alice, False)
    label(v1, bob, False)
    label(v1, carol, False)
    label(v1, carol, True, retracted=True)
    label(v1, dave, True, retracted=True)
    label(v2, alice, True)
    label(v2, bob, False)
    Review.objects.create(video=v2, reviewer=dave, value=True, note="clearly in scope")
    label(v3, alice, True)
    label(v3, bob, True)
    label(v3, carol, False)
    label(v4, erin, True)
    label(v5, carol, True)
    label(v5, erin, False)
    return {
        "users": {"alice": alice, "bob": bob, "carol": carol, "dave": dave, "erin": erin},
        "videos": [v1, v2, v3, v4, v5, v6],
    }


def by_names(pairs):
    return {(p.user_a, p.user_b): p for p in pairs}


def test_pair_tables_use_effective_labels_of_common_videos(corpus):
    pairs = by_names(pair_agreement_tables())
    # dave has no effective label; erin shares a video only with carol.
    assert set(pairs) == {("alice", "bob"), ("alice", "carol"), ("bob", "carol"), ("carol", "erin")}
    for pair in pairs.values():
        assert pair.user_a_id < pair.user_b_id

    # alice/bob: v1 N/N, v2 Y/N, v3 Y/Y → table [[1, 1], [0, 1]]
    # p_o = 2/3; A yes 2/3, B yes 1/3 → p_e = 2/9 + 2/9 = 4/9; κ = (2/3 − 4/9)/(5/9) = 0.4
    ab = pairs[("alice", "bob")]
    assert ab.table == AgreementTable(both_yes=1, a_yes_b_no=1, a_no_b_yes=0, both_no=1)
    assert ab.n == 3
    assert ab.percent_agreement == pytest.approx(200 / 3)
    assert ab.kappa == pytest.approx(0.4)
    assert ab.interpretation == "fair"

    # alice/carol: v1 N/N (carol's retracted Y ignored), v3 Y/N → [[0, 1], [0, 1]]
    # p_o = 1/2; A yes 1/2, B yes 0 → p_e = 1/2 → κ = 0
    ac = pairs[("alice", "carol")]
    assert ac.table == AgreementTable(0, 1, 0, 1)
    assert ac.kappa == pytest.approx(0.0)
    assert pairs[("bob", "carol")].table == AgreementTable(0, 1, 0, 1)

    ce = pairs[("carol", "erin")]
    assert ce.table == AgreementTable(0, 1, 0, 0)
    assert ce.percent_agreement == 0.0


def test_a_later_label_replaces_an_earlier_one_by_created_at_not_by_id(db):
    alice, bob = make_user("alice"), make_user("bob")
    video = make_video()
    label(video, bob, True)
    label(video, alice, True)
    older = label(video, alice, False)  # higher id, but backdated below
    Label.objects.filter(pk=older.pk).update(created_at=timezone.now() - timedelta(days=1))
    (pair,) = pair_agreement_tables()
    assert pair.table == AgreementTable(both_yes=1)

    # Undoing alice's latest label makes the previous one effective again.
    Label.objects.filter(video=video, user=alice, value=True).update(retracted_at=timezone.now())
    (pair,) = pair_agreement_tables()
    assert (pair.user_a, pair.user_b) == ("alice", "bob")  # alice was created first: lower id
    assert pair.table == AgreementTable(a_no_b_yes=1)

    # Undoing both of alice's labels removes her from the pairs.
    Label.objects.filter(video=video, user=alice).update(retracted_at=timezone.now())
    assert pair_agreement_tables() == []


def test_corpus_counts(corpus):
    counts = corpus_counts()
    assert counts.videos == 6
    assert counts.labeled_videos == 5
    assert counts.labels == 12  # 14 labels, 2 retracted (alice's replaced v1 label still counts here)
    assert counts.effective_labels == 11
    assert counts.consensus_positive == 3  # v2 (review), v3 (2:1), v4
    assert counts.consensus_negative == 1  # v1
    assert counts.ties == 1  # v5; v2 was 1:1 too, but a review settled it
    assert counts.ties_settled == 1  # v2
    # Every labeled video is counted once on the cards.
    assert counts.consensus_positive + counts.consensus_negative + counts.ties == counts.labeled_videos
    assert counts.inconsistent == 2  # v3 and v5; v2 disagrees but is reviewed
    assert counts.reviewed == 1


def test_overall_fleiss_from_the_vote_histogram(corpus):
    # Videos with ≥ 2 effective labels: v1 (0,3), v2 (1,1), v3 (2,1), v5 (1,1); v4 has one.
    assert vote_histogram() == [(0, 3, 1), (1, 1, 2), (2, 1, 1)]
    # P_i = 1, 0, 1/3, 0 → P̄ = 1/3; yes = 4 of 10 ratings → P̄e = 0.16 + 0.36 = 0.52
    # κ = (1/3 − 13/25) / (12/25) = −7/18 ≈ −0.389
    fleiss = overall_fleiss()
    assert fleiss.kappa == pytest.approx(-7 / 18)
    assert fleiss.interpretation == "poor"
    assert fleiss.items == 4
    assert fleiss.ratings == 10


def test_empty_corpus(db):
    summary = agreement_summary()
    assert summary.pairs == []
    assert summary.fleiss.kappa is None and summary.fleiss.items == 0
    assert summary.counts.videos == 0 and summary.counts.effective_labels == 0 and summary.counts.labels == 0


def model_label(video, user, value: bool) -> Label:
    return Label.objects.create(video=video, user=user, value=value, source="model")


def test_model_labels_change_no_agreement_statistic(corpus):
    """Issue 10 item 11: a model's labels are no rater's answers."""
    before = agreement_summary()
    scorer = make_user("scorer")
    alice = corpus["users"]["alice"]
    v1, v2, v3, v4, v5, v6 = corpus["videos"]
    for video in corpus["videos"]:
        model_label(video, scorer, True)  # would pair with everyone and add yes votes
    model_label(v1, alice, True)  # later than alice's human N on v1, under her account
    model_label(v6, alice, False)  # would make v6 labeled and give alice a new common video

    after = agreement_summary()

    assert after == before
    assert "scorer" not in {name for pair in after.pairs for name in (pair.user_a, pair.user_b)}
    assert after.counts.labels == 12 and after.counts.effective_labels == 11
    assert vote_histogram() == [(0, 3, 1), (1, 1, 2), (2, 1, 1)]


# ------------------------------------------------------------------ query count


def _bulk_corpus(users, start: int, count: int) -> None:
    videos = Video.objects.bulk_create(
        [Video(aid=500_000 + i, title=f"bulk {i}") for i in range(start, start + count)]
    )
    labels = []
    for i, video in enumerate(videos, start=start):
        for j, user in enumerate(users):
            labels.append(Label(video=video, user=user, value=(i + j) % 3 != 0))
        if i % 4 == 0:  # some history and some undo
            labels.append(Label(video=video, user=users[0], value=False, retracted_at=timezone.now()))
    Label.objects.bulk_create(labels)


def _page_request(user):
    request = RequestFactory().get("/labeling/agreement/")
    # A copy per request, like the auth middleware's: roles are cached on the user object.
    request.user = copy.copy(user)
    request.user.__dict__.pop("_cvsa_role_names", None)
    return request


def test_query_count_does_not_grow_with_the_corpus(db, django_assert_max_num_queries):
    users = [make_user(f"bulk{j}") for j in range(3)]

    _bulk_corpus(users, 0, 10)
    with CaptureQueriesContext(connection) as small:
        small_summary = agreement_summary()
    with CaptureQueriesContext(connection) as small_page:
        assert agreement_dashboard(_page_request(users[0])).status_code == 200

    _bulk_corpus(users, 10, 490)
    with django_assert_max_num_queries(4):
        big_summary = agreement_summary()
    with django_assert_max_num_queries(5):  # the summary's 4 + the user's roles for the navigation
        response = agreement_dashboard(_page_request(users[0]))
    assert response.status_code == 200

    with CaptureQueriesContext(connection) as big:
        agreement_summary()
    with CaptureQueriesContext(connection) as big_page:
        agreement_dashboard(_page_request(users[0]))
    assert len(small) == len(big) == 4
    assert len(small_page) == len(big_page)

    assert small_summary.counts.videos == 10 and big_summary.counts.videos == 500
    assert [p.n for p in big_summary.pairs] == [500, 500, 500]
    assert big_summary.fleiss.items == 500


# ------------------------------------------------------------------ the page


def test_agreement_page_renders_pairs_kappas_and_fleiss(corpus):
    response = agreement_dashboard(_page_request(corpus["users"]["erin"]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "<h1>Labeling agreement</h1>" in html
    for name in ("alice", "bob", "carol", "erin"):
        assert f">{name}</a></td>" in html
    assert ">dave</a></td>" not in html  # no effective label
    assert "0.400" in html and "fair" in html  # alice/bob
    assert "66.7%" in html
    assert "-0.389" in html  # Fleiss overall
    assert "Poor agreement, over 4 videos" in html
    # stat tiles
    assert '<div class="stat">12</div>' in html  # labels
    assert '<div class="stat">11</div>' in html  # effective labels


def test_agreement_page_with_no_labels(db):
    response = agreement_dashboard(_page_request(make_user("solo")))
    assert response.status_code == 200
    html = response.content.decode()
    assert "No two labelers have labeled the same video yet." in html
    assert "No video has been labeled by two or more people yet." in html


def test_agreement_page_only_answers_get(db):
    request = RequestFactory().post("/labeling/agreement/")
    request.user = make_user("poster")
    assert agreement_dashboard(request).status_code == 405
