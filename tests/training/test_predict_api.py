"""``POST /api/v1/predict`` and the scoring-jobs API: any team member scores videos by
aid or raw items with the production version (or a named version); bad input is a 400
naming the problem with nothing embedded or written; jobs are started and cancelled by
admins and read by the team."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from datasets.models import Embedding
from labeling.models import Label, Video
from tests.support.api_errors import assert_refused
from tests.support.openai_embedding_server import OpenAIEmbeddingServer
from tests.training.registry_factories import registered_version, trained_run
from tests.training.scoring_factories import (
    DIMENSIONS,
    FAKE_API_KEY,
    embeddings_keyed_by_text,
    fake_remote_model,
    served_by,
)
from training import services
from training.models import JobStatus, ModelStage, Prediction, ScoringJob
from training.prediction_cache import prediction_cache
from training.services import scoring

pytestmark = pytest.mark.django_db

PREDICT = "/api/v1/predict"
JOBS = "/api/v1/scoring-jobs"


@pytest.fixture(autouse=True)
def artifacts(tmp_path, settings):
    settings.CVSA_ARTIFACTS_DIR = tmp_path / "artifacts"
    prediction_cache.clear()
    yield
    prediction_cache.clear()


@pytest.fixture
def embedding_server():
    with OpenAIEmbeddingServer(dimensions=DIMENSIONS, api_key=FAKE_API_KEY) as server:
        yield server


@pytest.fixture
def remote_model(embedding_server, tmp_path, settings, monkeypatch):
    return fake_remote_model(embedding_server, tmp_path, settings, monkeypatch)


@pytest.fixture
def production():
    """Version 1 of "vocaloid" in production, its videos' texts keyed to their vectors."""
    run = trained_run(rows=60, dimensions=8, seed=3)
    version = registered_version("vocaloid", run=run, stage=ModelStage.PRODUCTION)
    embeddings_keyed_by_text(run.dataset_version)
    return version


@pytest.fixture
def admin_api(make_user):
    client = APIClient()
    client.force_authenticate(make_user("ada", group="admins"))
    return client


@pytest.fixture
def enqueued(monkeypatch):
    sent: list[int] = []
    monkeypatch.setattr(scoring, "scoring_job_enqueue", lambda job_id, celery_task_id, claim_attempt=None: sent.append(job_id))
    return sent


def some_aids(version, count: int = 3) -> list[int]:
    return list(Video.objects.filter(dataset_items__version=version.run.dataset_version)
                .order_by("aid").values_list("aid", flat=True)[:count])


# --- predict ----------------------------------------------------------------------------


def test_a_labeler_scores_videos_by_aid_with_the_production_version(api_client, production):
    aids = some_aids(production)

    response = api_client.post(PREDICT, {"aids": aids}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["model"], body["version"], body["version_number"]) == ("vocaloid", production.pk, 1)
    assert body["threshold"] == pytest.approx(production.threshold)
    expected = services.predict_aids(production, aids)
    assert body["predictions"] == [{"aid": row.aid, "probability": row.probability, "label": row.label}
                                   for row in expected]


def test_raw_items_are_scored_without_aids_and_a_named_version_of_any_stage_can_score(
    api_client, production, remote_model, embedding_server
):
    candidate = served_by(registered_version("other"), remote_model)
    item = {"title": "初音ミク", "description": "新曲", "tags": "VOCALOID,原创"}

    response = api_client.post(PREDICT, {"items": [item], "version": candidate.pk}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["model"], body["version"]) == ("other", candidate.pk)
    (prediction,) = body["predictions"]
    assert set(prediction) == {"probability", "label"}
    assert len(embedding_server.requests) == 1 and Embedding.objects.filter(model=remote_model).count() == 1


def test_the_next_request_after_a_promotion_is_served_by_the_new_version(api_client, production):
    aids = some_aids(production, 1)
    assert api_client.post(PREDICT, {"aids": aids, "model": "vocaloid"}, format="json").json()["version_number"] == 1
    second = registered_version("vocaloid", stage=ModelStage.STAGING,
                                run=trained_run(production.run.experiment, seed=9))
    services.model_version_transition(second.pk, to_stage=ModelStage.PRODUCTION)

    body = api_client.post(PREDICT, {"aids": aids, "model": "vocaloid"}, format="json").json()

    assert (body["version"], body["version_number"]) == (second.pk, 2)


@pytest.mark.parametrize("payload, fragments", [
    ({}, ("either aids or items",)),
    ({"aids": [1], "items": [{"title": "x"}]}, ("either aids or items",)),
    ({"aids": []}, ("aids",)),
    ({"aids": list(range(1, 1002))}, ("aids", "1000")),
    ({"items": [{"title": "x"}] * 1001}, ("at most 1000 items",)),
    ({"items": []}, ("items", "must not be empty")),
    ({"aids": ["abc"]}, ("aids",)),
    ({"aids": [999_999_999]}, ("no video with aid 999999999",)),
    ({"items": [{"title": ""}]}, ("item 0: no text to score",)),
    ({"aids": [1], "model": "nope"}, ("no registered model is named 'nope'",)),
    ({"aids": [1], "version": 987654}, ("model version 987654 does not exist",)),
])
def test_bad_input_is_a_400_naming_it_and_nothing_is_embedded_or_written(
    api_client, production, payload, fragments, embedding_server
):
    embeddings, labels = Embedding.objects.count(), Label.objects.count()

    response = api_client.post(PREDICT, payload, format="json")

    assert_refused(response, 400, *fragments)
    assert (Embedding.objects.count(), Label.objects.count(), Prediction.objects.count()) == (embeddings, labels, 0)


def test_a_version_of_another_model_than_the_one_named_is_refused(api_client, production):
    other = registered_version("other")

    response = api_client.post(PREDICT, {"aids": some_aids(production, 1), "model": "vocaloid",
                                         "version": other.pk}, format="json")

    assert_refused(response, 400, f"model version {other.pk} is version 1 of 'other', not of 'vocaloid'")


def test_no_production_version_is_a_400_saying_so(api_client):
    registered_version("candidate-only")

    assert_refused(api_client.post(PREDICT, {"items": [{"title": "x"}]}, format="json"), 400,
                   "no model has a production version")


def test_predict_needs_a_team_role(make_user, production):
    client = APIClient()
    client.force_authenticate(make_user("outsider", group=None))

    assert client.post(PREDICT, {"aids": some_aids(production, 1)}, format="json").status_code == 403
    assert APIClient().post(PREDICT, {"aids": [1]}, format="json").status_code in (401, 403)


# --- scoring jobs --------------------------------------------------------------------------


def test_an_admin_starts_a_scoring_job_and_the_team_reads_it(
    admin_api, api_client, production, enqueued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_api.post(JOBS, {"version": production.pk,
                                         "video_filter": {"search": "video", "only_unscored": True}}, format="json")

    assert response.status_code == 201, response.content
    job = response.json()
    assert (job["status"], job["version"], job["model"], job["version_number"]) == ("queued", production.pk,
                                                                                    "vocaloid", 1)
    assert job["video_filter"] == {"search": "video", "only_unscored": True}
    assert enqueued == [job["id"]]
    assert api_client.get(f"{JOBS}/{job['id']}").json()["id"] == job["id"]
    listed = api_client.get(JOBS, {"version": production.pk}).json()["results"]
    assert [row["id"] for row in listed] == [job["id"]]


def test_a_labeler_cannot_start_or_cancel_a_scoring_job(api_client, production, enqueued):
    job = services.scoring_job_create(version_id=production.pk, enqueue=False)

    assert api_client.post(JOBS, {"version": production.pk}, format="json").status_code == 403
    assert api_client.post(f"{JOBS}/{job.pk}/cancel").status_code == 403
    assert ScoringJob.objects.count() == 1 and enqueued == []


@pytest.mark.parametrize("payload, fragments", [
    ({"version": 987654}, ("model version 987654 does not exist",)),
    ({"version": "x"}, ("version",)),
    ({"version": 1, "video_filter": {"only_unscored": "maybe"}}, ("only_unscored",)),
    ({"version": 1, "video_filter": {"aids": []}}, ("aids",)),
])
def test_a_bad_scoring_job_request_is_a_400_and_writes_nothing(admin_api, payload, fragments, enqueued):
    assert_refused(admin_api.post(JOBS, payload, format="json"), 400, *fragments)
    assert not ScoringJob.objects.exists() and enqueued == []


def test_an_admin_cancels_a_queued_job_and_a_finished_one_is_a_400(admin_api, production):
    job = services.scoring_job_create(version_id=production.pk, enqueue=False)

    response = admin_api.post(f"{JOBS}/{job.pk}/cancel")

    assert response.status_code == 200 and response.json()["status"] == JobStatus.CANCELLED
    assert_refused(admin_api.post(f"{JOBS}/{job.pk}/cancel"), 400, "cancelled")
    assert_refused(admin_api.get(f"{JOBS}/987654"), 404, "Scoring job not found")
