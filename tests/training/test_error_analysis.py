"""Error analysis: the predictions a run saves, and its test-split mistakes (selector,
page, API) read back from them with the videos' current labels."""

from __future__ import annotations

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from datasets.selectors import dataset_version_arrays
from experiments import services as tracking
from experiments.models import Artifact, RunMetricSummary, RunStatus
from labeling.models import Label, Video
from labeling.services import review_create
from tests.experiments.factories import ExperimentFactory, running_run
from tests.training.factories import separable_dataset_version
from training import selectors, services
from training.predictions import PREDICTIONS_PATH, Predictions, predictions_read, predictions_write

pytestmark = pytest.mark.django_db

FIRST_AID = 50_000_000


@pytest.fixture
def experiment(artifacts):
    return ExperimentFactory(default_dataset_version=separable_dataset_version(rows=60, dimensions=8, seed=5))


@pytest.fixture
def team(make_user):
    return {"admin": make_user("boss", group="admins"), "labeler": make_user("lab", group="labelers"),
            "other": make_user("other", group="labelers"), "outsider": make_user("nobody", group=None)}


def finished_run_with_predictions(experiment, rows, *, threshold=0.5):
    """A succeeded run whose ``predictions.npz`` holds ``rows``: (aid, split, label, probability)."""
    run = running_run(experiment=experiment)
    folder = tracking.run_artifact_dir(run.pk)
    folder.mkdir(parents=True)
    probability = np.array([row[3] for row in rows], dtype=np.float64)
    predictions_write(folder / PREDICTIONS_PATH, Predictions(
        aid=np.array([row[0] for row in rows], dtype=np.int64),
        split=np.array([row[1] for row in rows], dtype="<U5"),
        label=np.array([row[2] for row in rows], dtype=np.int8), probability=probability.astype(np.float32),
        predicted=probability >= threshold, threshold=threshold,
    ))
    tracking.run_artifact_record(run.pk, PREDICTIONS_PATH)
    return tracking.run_transition(run.pk, RunStatus.SUCCEEDED)


def videos(count: int, *, first_aid: int = FIRST_AID) -> list[Video]:
    return Video.objects.bulk_create([
        Video(aid=first_aid + index, title=f"song {index}", tags="VOCALOID,初音ミク", uploader_name=f"uploader {index}")
        for index in range(count)
    ])


# (aid offset, split, version label, probability): threshold 0.5.
HAND_BUILT = [
    (0, "test", 0, 0.91),  # FP, confidence 0.91
    (1, "test", 1, 0.20),  # FN, confidence 0.80
    (2, "test", 0, 0.55),  # FP, confidence 0.55
    (3, "test", 1, 0.45),  # FN, confidence 0.55 (tie with aid 2: by aid)
    (4, "test", 1, 0.99),  # right
    (5, "test", 0, 0.01),  # right
    (6, "test", 0, 0.50),  # FP at the threshold itself (>= threshold is positive), confidence 0.5
    (7, "val", 0, 0.99),  # a val mistake: not listed
    (8, "val", 1, 0.40),  # a val mistake: not listed
]


@pytest.fixture
def hand_built(experiment, team):
    video_rows = videos(9)
    # aid 0: two labelers disagree now; aid 1: relabeled since (the consensus is now "no");
    # aid 2: disagreement settled by a review; others unlabeled.
    Label.objects.bulk_create([
        Label(video=video_rows[0], user=team["labeler"], value=True),
        Label(video=video_rows[0], user=team["other"], value=False),
        Label(video=video_rows[1], user=team["labeler"], value=False),
        Label(video=video_rows[2], user=team["labeler"], value=True),
        Label(video=video_rows[2], user=team["other"], value=False),
    ])
    review_create(video=video_rows[2], reviewer=team["admin"], value=False)
    rows = [(FIRST_AID + offset, split, label, probability) for offset, split, label, probability in HAND_BUILT]
    return finished_run_with_predictions(experiment, rows)


# --- what a run saves ---------------------------------------------------------------------


def test_a_trained_run_saves_its_val_and_test_predictions_matching_its_confusion_matrix(experiment):
    run = services.run_queue(experiment_id=experiment.pk, architecture_key="logreg", enqueue=False,
                             hyperparameters={"epochs": 3, "batch_size": 16, "threshold_mode": "max_val_f1"})
    run = services.run_train(run.pk)
    assert run.status == RunStatus.SUCCEEDED, run.error

    artifact = Artifact.objects.get(run=run, path=PREDICTIONS_PATH)
    file = tracking.artifact_file(run.pk, PREDICTIONS_PATH)
    assert (artifact.size, artifact.sha256) == tracking.file_sha256(file)
    predictions = predictions_read(file)
    arrays = dataset_version_arrays(experiment.default_dataset_version_id)
    held_out = arrays.splits != "train"
    assert predictions.aid.tolist() == [*arrays.aids[arrays.splits == "val"], *arrays.aids[arrays.splits == "test"]]
    assert sorted(predictions.aid.tolist()) == sorted(arrays.aids[held_out].tolist())
    by_aid = dict(zip(arrays.aids.tolist(), arrays.y.tolist()))
    assert predictions.label.tolist() == [by_aid[aid] for aid in predictions.aid.tolist()]
    summaries = dict(RunMetricSummary.objects.filter(run=run).values_list("key", "latest_value"))
    assert predictions.threshold == summaries["threshold"]
    for split, prefix in (("test", "test_"), ("val", "final_val_")):
        rows = predictions.split == split
        predicted, label = predictions.predicted[rows], predictions.label[rows] == 1
        assert (predicted & ~label).sum() == summaries[f"{prefix}fp"]
        assert (~predicted & label).sum() == summaries[f"{prefix}fn"]
        assert (predicted & label).sum() == summaries[f"{prefix}tp"]
    assert ((predictions.probability >= 0) & (predictions.probability <= 1)).all()
    errors = selectors.run_errors(run.pk)
    assert (errors.false_positives, errors.false_negatives) == (summaries["test_fp"], summaries["test_fn"])
    assert errors.test_rows == (arrays.splits == "test").sum()


# --- the selector --------------------------------------------------------------------------


def test_the_mistakes_are_the_hand_built_files_test_mistakes_most_confident_first(hand_built):
    errors = selectors.run_errors(hand_built.pk)

    assert (errors.test_rows, errors.false_positives, errors.false_negatives, errors.matching) == (7, 3, 2, 5)
    assert errors.threshold == 0.5
    assert [(mistake.aid - FIRST_AID, mistake.kind) for mistake in errors.mistakes] == [
        (0, "fp"), (1, "fn"), (2, "fp"), (3, "fn"), (6, "fp"),
    ]
    assert [round(mistake.confidence, 4) for mistake in errors.mistakes] == [0.91, 0.8, 0.55, 0.55, 0.5]
    first, relabeled, reviewed, unlabeled, _ = errors.mistakes
    assert first.video.title == "song 0" and first.video.uploader_name == "uploader 0"
    assert first.video.tag_list == ["VOCALOID", "初音ミク"]
    assert first.probability == pytest.approx(0.91) and first.version_label is False
    assert (first.labelers, first.labelers_disagree, first.reviewed, first.current_label) == (2, True, False, None)
    assert (relabeled.version_label, relabeled.current_label, relabeled.label_changed) == (True, False, True)
    assert (relabeled.labelers, relabeled.labelers_disagree) == (1, False)
    assert (reviewed.labelers_disagree, reviewed.reviewed, reviewed.current_label) == (True, True, False)
    assert (unlabeled.labelers, unlabeled.current_label, unlabeled.label_changed) == (0, None, False)


def test_least_confident_first_and_the_kind_filters(hand_built):
    least = selectors.run_errors(hand_built.pk, order=selectors.MistakeOrder.LEAST_CONFIDENT)
    positives = selectors.run_errors(hand_built.pk, kind="fp")
    negatives = selectors.run_errors(hand_built.pk, kind="fn")

    assert [mistake.aid - FIRST_AID for mistake in least.mistakes] == [6, 2, 3, 1, 0]
    assert [mistake.aid - FIRST_AID for mistake in positives.mistakes] == [0, 2, 6]
    assert [mistake.aid - FIRST_AID for mistake in negatives.mistakes] == [1, 3]
    # The counts stay those of the whole split.
    assert (negatives.false_positives, negatives.false_negatives, negatives.matching) == (3, 2, 2)


def test_a_page_of_mistakes(hand_built):
    errors = selectors.run_errors(hand_built.pk, offset=2, limit=2)

    assert [mistake.aid - FIRST_AID for mistake in errors.mistakes] == [2, 3] and errors.matching == 5


def test_a_deleted_video_is_listed_without_its_details(experiment):
    run = finished_run_with_predictions(experiment, [(FIRST_AID + 99, "test", 1, 0.1)])

    (mistake,) = selectors.run_errors(run.pk).mistakes

    assert mistake.video is None and mistake.labelers == 0 and mistake.current_label is None


@pytest.mark.parametrize(("arguments", "field"), [({"kind": "tp"}, "kind"), ({"order": "random"}, "order")])
def test_a_bad_kind_or_order_is_refused(hand_built, arguments, field):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as raised:
        selectors.run_errors(hand_built.pk, **arguments)
    assert field in raised.value.message_dict


def test_a_run_without_predictions_says_so(experiment):
    unfinished = running_run(experiment=experiment)
    broken = finished_run_with_predictions(experiment, [(FIRST_AID, "test", 1, 0.1)])
    tracking.artifact_file(broken.pk, PREDICTIONS_PATH).write_bytes(b"not a zip file")

    with pytest.raises(selectors.RunPredictionsMissing, match="has no predictions file .* it has not finished"):
        selectors.run_errors(unfinished.pk)
    with pytest.raises(selectors.RunPredictionsMissing, match="cannot be read"):
        selectors.run_errors(broken.pk)


def mistakes_rows(count: int) -> list[tuple[int, str, int, float]]:
    """``count`` test mistakes (alternately FP and FN) and as many right answers."""
    rows = []
    for index in range(count):
        label = index % 2
        rows.append((FIRST_AID + index, "test", label, 0.9 - label * 0.8 + (index % 7) / 100))
        rows.append((FIRST_AID + 10_000 + index, "test", label, 0.1 + label * 0.8))
    return rows


def test_the_selector_costs_two_queries_for_10_or_200_mistakes(experiment, team, django_assert_num_queries):
    video_rows = videos(200)
    Label.objects.bulk_create([Label(video=video, user=team["labeler"], value=True) for video in video_rows])
    small = finished_run_with_predictions(experiment, mistakes_rows(10))
    large = finished_run_with_predictions(experiment, mistakes_rows(200))

    for run, expected in ((small, 10), (large, 200)):
        with django_assert_num_queries(2):
            errors = selectors.run_errors(run.pk, limit=1000)
        assert len(errors.mistakes) == expected
        assert all(mistake.video is not None and mistake.labelers == 1 for mistake in errors.mistakes)


def test_the_page_and_the_api_cost_the_same_queries_for_10_or_200_mistakes(experiment, team, client):
    videos(200)
    small = finished_run_with_predictions(experiment, mistakes_rows(10))
    large = finished_run_with_predictions(experiment, mistakes_rows(200))
    client.force_login(team["labeler"])
    api = APIClient()
    api.force_authenticate(team["labeler"])
    counts = {}
    for run in (small, large):
        with CaptureQueriesContext(connection) as page_queries:
            assert client.get(reverse("training:run-errors", args=[run.pk])).status_code == 200
        with CaptureQueriesContext(connection) as api_queries:
            assert api.get(f"/api/v1/runs/{run.pk}/errors", {"limit": 1000}).status_code == 200
        counts[run.pk] = (len(page_queries), len(api_queries))
    assert counts[small.pk] == counts[large.pk]


# --- the page ------------------------------------------------------------------------------


def test_the_page_lists_the_mistakes_with_counts_and_links(hand_built, client, team):
    client.force_login(team["labeler"])

    page = client.get(reverse("training:run-errors", args=[hand_built.pk]))

    assert reverse("training:run-errors", args=[hand_built.pk]) == f"/training/runs/{hand_built.pk}/errors"
    html = page.content.decode()
    assert page.status_code == 200
    assert '<strong data-count="fp">3</strong>' in html and '<strong data-count="fn">2</strong>' in html
    assert '<strong data-count="rows">7</strong>' in html
    aids = [mistake.aid for mistake in page.context["errors"].mistakes]
    assert aids == [FIRST_AID + offset for offset in (0, 1, 2, 3, 6)]
    positions = [html.index(f'data-aid="{aid}"') for aid in aids]
    assert positions == sorted(positions)
    assert "song 0" in html and "uploader 0" in html and "初音ミク" in html and "disagree" in html
    assert f'href="{reverse("labeling:video-detail", args=[FIRST_AID])}"' in html
    assert f'href="{reverse("labeling:review-list")}?q=av{FIRST_AID}"' in html
    assert f'data-aid="{FIRST_AID + 4}"' not in html and f'data-aid="{FIRST_AID + 7}"' not in html


def test_the_page_sorts_and_filters(hand_built, client, team):
    client.force_login(team["labeler"])
    url = reverse("training:run-errors", args=[hand_built.pk])

    least = client.get(url, {"order": "least_confident"})
    negatives = client.get(url, {"kind": "fn"}, headers={"HX-Request": "true"})
    bad = client.get(url, {"kind": "everything"})

    assert [mistake.aid - FIRST_AID for mistake in least.context["errors"].mistakes] == [6, 2, 3, 1, 0]
    html = negatives.content.decode()
    assert "<html" not in html and 'id="run-mistakes"' in html
    assert html.count('data-kind="fn"') == 2 and 'data-kind="fp"' not in html
    assert bad.status_code == 400 and "kind: must be fp or fn" in bad.content.decode()


def test_the_page_pages_through_many_mistakes(experiment, client, team):
    run = finished_run_with_predictions(experiment, mistakes_rows(150))
    client.force_login(team["labeler"])
    url = reverse("training:run-errors", args=[run.pk])

    first, second = client.get(url), client.get(url, {"page": "2"})

    assert len(first.context["errors"].mistakes) == 100 and len(second.context["errors"].mistakes) == 50
    assert "page 2 of 2" in second.content.decode()
    assert "?kind=&amp;order=most_confident&amp;page=2" in first.content.decode()
    first_aids = {mistake.aid for mistake in first.context["errors"].mistakes}
    assert first_aids.isdisjoint(mistake.aid for mistake in second.context["errors"].mistakes)


def test_a_run_without_predictions_shows_a_clear_message(experiment, client, team):
    run = running_run(experiment=experiment)
    client.force_login(team["labeler"])

    page = client.get(reverse("training:run-errors", args=[run.pk]))

    assert page.status_code == 404
    assert f"Run {run.pk} has no predictions file (predictions.npz)" in page.content.decode()
    assert client.get(reverse("training:run-errors", args=[987654])).status_code == 404


def test_only_the_team_sees_the_page(hand_built, client, team):
    url = reverse("training:run-errors", args=[hand_built.pk])
    assert client.get(url).status_code in (302, 403)
    client.force_login(team["outsider"])
    assert client.get(url).status_code == 403


def test_the_run_page_links_to_its_mistakes_only_when_it_saved_predictions(hand_built, experiment, client, team):
    without = running_run(experiment=experiment)
    client.force_login(team["labeler"])

    with_link = client.get(reverse("experiments:run-detail", args=[hand_built.pk])).content.decode()
    without_link = client.get(reverse("experiments:run-detail", args=[without.pk])).content.decode()

    assert f'href="{reverse("training:run-errors", args=[hand_built.pk])}"' in with_link
    assert 'data-testid="run-errors-link"' not in without_link


# --- the API -------------------------------------------------------------------------------


def test_the_api_lists_the_mistakes(hand_built, team):
    api = APIClient()
    api.force_authenticate(team["labeler"])

    response = api.get(f"/api/v1/runs/{hand_built.pk}/errors", {"kind": "fp", "limit": 2})

    assert response.status_code == 200, response.content
    body = response.json()
    assert {key: body[key] for key in ("run", "threshold", "test_rows", "false_positives", "false_negatives",
                                      "count")} == {"run": hand_built.pk, "threshold": 0.5, "test_rows": 7,
                                                    "false_positives": 3, "false_negatives": 2, "count": 3}
    first, second = body["results"]
    assert (first["aid"], second["aid"]) == (FIRST_AID, FIRST_AID + 2)
    assert first == {
        "aid": FIRST_AID, "kind": "fp", "probability": pytest.approx(0.91), "confidence": pytest.approx(0.91),
        "version_label": False, "current_label": None, "labelers": 2, "positive_votes": 1, "negative_votes": 1,
        "labelers_disagree": True, "reviewed": False, "title": "song 0", "tags": ["VOCALOID", "初音ミク"],
        "uploader": "uploader 0", "history_url": reverse("labeling:video-detail", args=[FIRST_AID]),
        "review_url": f"{reverse('labeling:review-list')}?q=av{FIRST_AID}",
    }


def test_the_api_refuses_bad_queries_and_runs_without_predictions(hand_built, experiment, team):
    api = APIClient()
    api.force_authenticate(team["labeler"])
    unfinished = running_run(experiment=experiment)

    assert api.get(f"/api/v1/runs/{hand_built.pk}/errors", {"kind": "tp"}).status_code == 400
    assert api.get(f"/api/v1/runs/{hand_built.pk}/errors", {"limit": 0}).status_code == 400
    assert api.get("/api/v1/runs/987654/errors").status_code == 404
    missing = api.get(f"/api/v1/runs/{unfinished.pk}/errors")
    assert missing.status_code == 404 and "has no predictions file" in missing.json()["detail"]
    api.force_authenticate(team["outsider"])
    assert api.get(f"/api/v1/runs/{hand_built.pk}/errors").status_code == 403
