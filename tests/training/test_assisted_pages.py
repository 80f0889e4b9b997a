"""The model-assisted labeling pages: the queue loop, the hint switch, the states with no
model, and the disagreement list."""

from __future__ import annotations

import pytest
from django.db import connection, reset_queries
from django.test.utils import CaptureQueriesContext

from labeling.models import Label, LabelSource, Video
from tests.training.assisted_factories import make_videos, model_version, review, score, vote
from training import services
from training.models import AssistedLabelingPreference, ModelStage, Prediction

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
LABEL_URL = "/training/assisted/label"
DISAGREEMENTS_URL = "/training/assisted/disagreements"


@pytest.fixture
def scored_version():
    """Production version of "m" (threshold .5) that scored 4 videos: av3 (.5), av2 (.55),
    av4 (.7), av1 (.95) in uncertainty order."""
    version = model_version("m", threshold=0.5, dimensions=3)
    videos = make_videos(4)
    score(version, videos, [0.95, 0.55, 0.5, 0.7], vectors=[(1, 0, 0), (0, 1, 0), (0, 0, 1), (-1, 0, 0)])
    return version, videos


def _card_aid(body: str) -> str | None:
    marker = 'data-video-aid="'
    return body.split(marker, 1)[1].split('"', 1)[0] if marker in body else None


# --- the queue loop --------------------------------------------------------------------

def test_labeler_gets_the_most_uncertain_video_and_no_hint_by_default(logged_in_client, scored_version):
    response = logged_in_client.get(LABEL_URL)

    body = response.content.decode()
    assert response.status_code == 200
    assert _card_aid(body) == "3"
    assert 'data-testid="serving-version"' in body and "m v1" in body
    assert 'data-testid="model-hint"' not in body and "0.500" not in body
    assert 'data-testid="hint-state">hidden' in body
    assert 'hx-post="/training/assisted/answer"' in body and 'data-action="yes"' in body and "js/labeling_keys.js" in body
    assert not AssistedLabelingPreference.objects.exists()


def test_answer_writes_my_human_label_and_swaps_in_the_next_card(logged_in_client, user, scored_version):
    _, videos = scored_version

    response = logged_in_client.post("/training/assisted/answer",
                                     {"video_id": videos[2].pk, "value": "1", "mode": "uncertain"}, **HTMX)

    body = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in body
    assert _card_aid(body) == "2"
    assert 'id="progress"' in body and 'hx-swap-oob="true"' in body
    assert list(Label.objects.values_list("video_id", "user_id", "value", "source")) == [
        (videos[2].pk, user.pk, True, LabelSource.HUMAN)
    ]


def test_predictions_never_become_labels(logged_in_client, user, scored_version):
    _, videos = scored_version
    for mode in ("uncertain", "disagree", "diverse"):
        logged_in_client.get(LABEL_URL, {"mode": mode})
    logged_in_client.get(DISAGREEMENTS_URL)
    logged_in_client.post("/training/assisted/answer", {"video_id": videos[0].pk, "value": "0", "mode": "diverse"}, **HTMX)

    # One label: the user's own "no", although the model said yes (0.95).
    assert list(Label.objects.values_list("user_id", "value", "source")) == [(user.pk, False, LabelSource.HUMAN)]
    assert Prediction.objects.count() == 4


def test_skip_moves_on_and_the_skipped_video_stays_away(logged_in_client, scored_version):
    _, videos = scored_version

    response = logged_in_client.post("/training/assisted/skip", {"video_id": videos[2].pk, "mode": "uncertain"}, **HTMX)
    assert _card_aid(response.content.decode()) == "2"
    assert _card_aid(logged_in_client.get(LABEL_URL).content.decode()) == "2"
    assert not Label.objects.exists()


def test_undo_retracts_my_last_answer_and_shows_that_video_again(logged_in_client, scored_version):
    _, videos = scored_version
    logged_in_client.post("/training/assisted/answer", {"video_id": videos[2].pk, "value": "1", "mode": "uncertain"}, **HTMX)

    response = logged_in_client.post("/training/assisted/undo", {"mode": "uncertain"}, **HTMX)

    body = response.content.decode()
    assert _card_aid(body) == "3"
    assert "Undid your “yes” on av3" in body
    assert Label.objects.get().retracted_at is not None


@pytest.mark.parametrize("payload", [{"value": "1"}, {"video_id": "x", "value": "1"},
                                     {"video_id": "1", "value": "maybe"}, {"video_id": "1", "value": "1", "mode": "odd"}])
def test_answer_with_bad_input_is_400_and_writes_nothing(logged_in_client, scored_version, payload):
    response = logged_in_client.post("/training/assisted/answer", payload, **HTMX)

    assert response.status_code == 400
    assert not Label.objects.exists()


def test_modes_serve_their_own_queue(logged_in_client, scored_version, make_user):
    _, videos = scored_version
    vote(videos[0], make_user("olga"), False)  # the model says yes at .95: the only disagreement

    assert _card_aid(logged_in_client.get(LABEL_URL, {"mode": "disagree"}).content.decode()) == "1"
    # Diverse: the unlabeled video farthest from av1's (1,0,0) is av4's (-1,0,0).
    assert _card_aid(logged_in_client.get(LABEL_URL, {"mode": "diverse"}).content.decode()) == "4"


# --- the hint switch -------------------------------------------------------------------

def test_hint_is_shown_only_after_the_user_turns_it_on(logged_in_client, user, make_user, scored_version):
    _, videos = scored_version

    response = logged_in_client.post("/training/assisted/hint",
                                     {"show": "1", "video_id": videos[2].pk, "mode": "uncertain"}, **HTMX)

    body = response.content.decode()
    assert response.status_code == 200
    assert _card_aid(body) == "3"  # the same card, now with the hint
    assert 'data-testid="model-hint"' in body and "0.500" in body and "says" in body
    assert 'id="assisted-hint-toggle"' in body and 'data-testid="hint-state">shown' in body
    assert AssistedLabelingPreference.objects.get(user=user).show_model_hint is True

    page = logged_in_client.get(LABEL_URL).content.decode()
    assert 'data-testid="model-hint"' in page
    # Per user: another labeler still sees no hint.
    other = logged_in_client.__class__()
    other.force_login(make_user("bob", group="labelers"))
    assert 'data-testid="model-hint"' not in other.get(LABEL_URL).content.decode()

    logged_in_client.post("/training/assisted/hint", {"show": "0", "video_id": videos[2].pk}, **HTMX)
    assert 'data-testid="model-hint"' not in logged_in_client.get(LABEL_URL).content.decode()
    assert AssistedLabelingPreference.objects.get(user=user).show_model_hint is False


def test_hint_switch_without_htmx_goes_back_to_the_queue(logged_in_client, scored_version):
    response = logged_in_client.post("/training/assisted/hint", {"show": "1", "mode": "diverse", "model": "m"})

    assert response.status_code == 302
    assert response["Location"] == "/training/assisted/label?mode=diverse&model=m"


def test_hint_switch_rejects_a_bad_value(logged_in_client, scored_version):
    assert logged_in_client.post("/training/assisted/hint", {"show": "yes"}, **HTMX).status_code == 400
    assert not AssistedLabelingPreference.objects.exists()


def test_assisted_hint_set_is_for_labelers_only(make_user):
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        services.assisted_hint_set(make_user("outsider", group=None), True)
    assert services.assisted_hint_set(make_user("lena"), True).show_model_hint is True


# --- who may -----------------------------------------------------------------------------

@pytest.mark.parametrize("group", ["labelers", "reviewers", "admins"])
def test_team_members_who_label_can_use_the_pages(client, make_user, scored_version, group):
    client.force_login(make_user("member", group=group))

    assert client.get(LABEL_URL).status_code == 200
    assert client.get(DISAGREEMENTS_URL).status_code == 200


@pytest.mark.parametrize("method, url, data", [
    ("get", LABEL_URL, {}), ("get", DISAGREEMENTS_URL, {}),
    ("post", "/training/assisted/answer", {"video_id": 1, "value": "1"}),
    ("post", "/training/assisted/skip", {"video_id": 1}), ("post", "/training/assisted/undo", {}),
    ("post", "/training/assisted/hint", {"show": "1"}),
])
def test_outsiders_cannot(client, make_user, scored_version, method, url, data):
    client.force_login(make_user("outsider", group=None))

    response = getattr(client, method)(url, data)

    assert response.status_code == 403
    assert not Label.objects.exists() and not AssistedLabelingPreference.objects.exists()


# --- when no model can serve -----------------------------------------------------------

def test_no_production_version_says_promote_one_first(logged_in_client):
    model_version("m", stage=ModelStage.STAGING)

    body = logged_in_client.get(LABEL_URL).content.decode()

    assert 'data-testid="assisted-unavailable"' in body
    assert "promote a version first" in body and 'href="/training/models/"' in body
    assert 'id="label-actions"' not in body


def test_several_models_in_production_must_be_named(logged_in_client):
    model_version("alpha")
    model_version("beta")

    body = logged_in_client.get(LABEL_URL).content.decode()
    assert "several models are in production" in body and "alpha" in body and "beta" in body
    assert 'data-testid="serving-version"' in logged_in_client.get(LABEL_URL, {"model": "beta"}).content.decode()


def test_unknown_model_is_said_so(logged_in_client, scored_version):
    body = logged_in_client.get(LABEL_URL, {"model": "nope"}).content.decode()

    assert "There is no registered model named “nope”." in body


def test_a_version_that_scored_nothing_says_so(logged_in_client):
    model_version("m")

    body = logged_in_client.get(LABEL_URL).content.decode()
    assert 'data-testid="assisted-unscored"' in body and "m v1 has not scored any video yet" in body


def test_an_emptied_queue_says_so(logged_in_client, user, scored_version):
    _, videos = scored_version
    for video in videos:
        vote(video, user, True)

    body = logged_in_client.get(LABEL_URL).content.decode()
    assert 'data-testid="assisted-empty"' in body and "Nothing left in this queue" in body


# --- query counts ----------------------------------------------------------------------

def _seed(size: int, name: str, first_aid: int, others) -> None:
    version = model_version(name, threshold=0.5, dimensions=3)
    videos = make_videos(size, first_aid=first_aid)
    score(version, videos, [(index % 89) / 89 for index in range(size)],
          vectors=[(1, index % 11, index % 5) for index in range(size)])
    Label.objects.bulk_create([Label(video=video, user=others[index % 2], value=index % 3 == 0)
                               for index, video in enumerate(videos[: size // 2])])


@pytest.mark.parametrize("mode", ["uncertain", "disagree", "diverse"])
def test_a_card_costs_the_same_queries_for_10_or_1000_videos(logged_in_client, make_user, mode):
    others = [make_user("olga"), make_user("otto")]
    counts = []
    for size, name, first_aid in ((10, "small", 1), (1000, "large", 100_000)):
        _seed(size, name, first_aid, others)
        data = {"mode": mode, "model": name}
        reset_queries()  # the log keeps 9,000 queries: a full one would count nothing
        with CaptureQueriesContext(connection) as page:
            assert logged_in_client.get(LABEL_URL, data).status_code == 200
        card = _card_aid(logged_in_client.get(LABEL_URL, data, **HTMX).content.decode())
        reset_queries()
        with CaptureQueriesContext(connection) as answer:
            response = logged_in_client.post("/training/assisted/answer", {
                "video_id": Video.objects.get(aid=card).pk, "value": "1", **data}, **HTMX)
        assert response.status_code == 200 and _card_aid(response.content.decode()) is not None
        counts.append((len(page), len(answer)))
    assert counts[0] == counts[1], counts
    assert min(counts[0]) > 0


def test_disagreement_page_costs_the_same_queries_for_5_or_500(logged_in_client, make_user, django_assert_max_num_queries):
    olga = make_user("olga")
    counts = []
    for size, name, first_aid in ((5, "small", 1), (500, "large", 100_000)):
        version = model_version(name, threshold=0.5)
        videos = make_videos(size, first_aid=first_aid)
        score(version, videos, [0.9] * size)
        Label.objects.bulk_create([Label(video=video, user=olga, value=False) for video in videos])
        reset_queries()
        with CaptureQueriesContext(connection) as queries:
            response = logged_in_client.get(DISAGREEMENTS_URL, {"model": name})
        assert response.context["page"].paginator.count == size
        counts.append(len(queries))
    assert counts[0] == counts[1] > 0, counts
    with django_assert_max_num_queries(counts[0]):
        logged_in_client.get(DISAGREEMENTS_URL, {"model": "large", "page": "3"})


# --- the disagreement list -------------------------------------------------------------

def test_disagreement_list_shows_each_contradiction_with_its_votes_and_links(logged_in_client, make_user):
    version = model_version("m", threshold=0.5)
    videos = make_videos(4)
    score(version, videos, [0.2, 0.9, 0.6, 0.95])
    ann, bob = make_user("ann"), make_user("bob")
    vote(videos[0], ann, True), vote(videos[0], bob, True)            # yes 2-0; model no at .2
    vote(videos[1], ann, False)                                      # no; model yes at .9
    vote(videos[2], ann, True), vote(videos[2], bob, False)
    review(videos[2], make_user("rita", group="reviewers"), False)   # reviewed no; model yes at .6
    vote(videos[3], ann, True)                                       # agrees

    body = logged_in_client.get(DISAGREEMENTS_URL).content.decode()

    assert 'data-testid="disagreement-count">3<' in body
    rows = body.split('data-testid="disagreements"', 1)[1]
    assert rows.index('data-aid="2"') < rows.index('data-aid="1"') < rows.index('data-aid="3"')
    assert 'href="/labeling/videos/2/"' in rows and 'data-aid="4"' not in rows
    assert "2 / 0" in rows and "0 / 1" in rows

    least = logged_in_client.get(DISAGREEMENTS_URL, {"order": "least_confident"}, **HTMX).content.decode()
    assert "<html" not in least
    assert least.index('data-aid="3"') < least.index('data-aid="1"') < least.index('data-aid="2"')


def test_disagreement_list_paginates(logged_in_client, make_user):
    version = model_version("m", threshold=0.5)
    videos = make_videos(120)
    score(version, videos, [0.9] * 120)
    olga = make_user("olga")
    Label.objects.bulk_create([Label(video=video, user=olga, value=False) for video in videos])

    page3 = logged_in_client.get(DISAGREEMENTS_URL, {"page": "3"})

    assert page3.context["page"].number == 3 and len(page3.context["page"].object_list) == 20
    assert "Page 3 of 3" in page3.content.decode()


def test_disagreement_list_without_a_production_version(logged_in_client):
    body = logged_in_client.get(DISAGREEMENTS_URL).content.decode()

    assert 'data-testid="assisted-unavailable"' in body and "promote a version first" in body
