"""Predictions of a registered version: they equal the trainer's own test evaluation on
the same rows; texts with no stored vector are embedded once, through the store; the
weights load once per process and the production version is re-resolved per call, so
a promotion is served without a restart; stored predictions are upserts with their
margin and never labels (no label, consensus or dataset label changes)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from datasets import services as dataset_services
from datasets.models import DatasetTaskStatus, DatasetVersionItem, Embedding
from experiments.services import run_artifact_dir
from labeling.models import Label, Video, VideoConsensus
from tests.datasets.factories import NEGATIVE, POSITIVE, TIE, label, make_labelers, make_videos
from tests.support.openai_embedding_server import OpenAIEmbeddingServer
from tests.training.registry_factories import registered_version, trained_run
from tests.training.scoring_factories import (
    DIMENSIONS,
    FAKE_API_KEY,
    FAKE_MODEL_KEY,
    embeddings_keyed_by_text,
    fake_remote_model,
    served_by,
)
from training import services
from training.models import ModelStage, Prediction
from training.prediction_cache import PredictionCache, prediction_cache
from training.predictions import PREDICTIONS_PATH, predictions_read
from training.served_models import load_classifier

pytestmark = pytest.mark.django_db


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


def sent_texts(server: OpenAIEmbeddingServer) -> list[str]:
    return [text for request in server.requests for text in request.inputs]


# --- equal to the trainer -----------------------------------------------------------


def test_predictions_equal_the_trainers_own_test_evaluation_on_the_same_rows():
    run = trained_run(rows=80, dimensions=8, seed=4)
    version = registered_version("vocaloid", run=run)
    embeddings_keyed_by_text(run.dataset_version)
    logged = predictions_read(run_artifact_dir(run.pk) / PREDICTIONS_PATH)
    test_rows = logged.split == "test"

    scored = services.predict_aids(version, logged.aid[test_rows].tolist())

    assert [row.aid for row in scored] == logged.aid[test_rows].tolist()
    np.testing.assert_allclose([row.probability for row in scored], logged.probability[test_rows], atol=1e-6)
    assert [row.label for row in scored] == logged.predicted[test_rows].tolist()


def test_a_raw_item_with_a_videos_text_gets_that_videos_probability():
    run = trained_run(rows=60, dimensions=8, seed=2)
    version = registered_version(run=run)
    embeddings_keyed_by_text(run.dataset_version)
    video = Video.objects.filter(dataset_items__version=run.dataset_version).order_by("aid").first()

    (by_aid,) = services.predict_aids(version, [video.aid])
    (by_item,) = services.predict_items(version, [{"title": video.title, "description": video.description,
                                                    "tags": video.tags}])

    assert by_item.aid is None
    assert (by_item.probability, by_item.label) == (by_aid.probability, by_aid.label)
    assert by_aid.label == (by_aid.probability >= version.threshold)


# --- bad input ------------------------------------------------------------------------


def test_unknown_aids_are_named_and_nothing_is_embedded_or_written(remote_model, embedding_server):
    version = served_by(registered_version(), remote_model)
    known = make_videos(2, start_aid=50_000)

    with pytest.raises(ValidationError) as refused:
        services.predict_aids(version, [known[0].aid, 999_999_001, known[1].aid, 999_999_002])

    assert "999999001, 999999002" in str(refused.value.message_dict["aids"])
    assert embedding_server.requests == [] and not Embedding.objects.filter(model=remote_model).exists()


@pytest.mark.parametrize("items, message", [
    ([], "non-empty list"),
    ([{"title": ""}], "item 0: no text to score"),
    ([{"title": "ok"}, {"title": 3}], "item 1: title must be text"),
    ([{"title": "ok", "label": True}], "item 0: unknown field(s) label"),
    ([{"title": "x"}] * 1001, "at most 1000 items"),
])
def test_bad_items_are_refused_with_the_item_named(items, message, remote_model, embedding_server):
    version = served_by(registered_version(), remote_model)

    with pytest.raises(ValidationError) as refused:
        services.predict_items(version, items)

    assert message in str(refused.value.message_dict["items"])
    assert embedding_server.requests == []


# --- missing embeddings ---------------------------------------------------------------


def test_a_text_with_no_stored_vector_is_embedded_once_and_stored(remote_model, embedding_server):
    version = served_by(registered_version(), remote_model)
    item = {"title": "初音ミク 新曲", "description": "a new song", "tags": ["VOCALOID", "原创"]}

    first = services.predict_items(version, [item, item])
    second = services.predict_items(version, [item])

    assert len(sent_texts(embedding_server)) == 1  # the repeat in one call and the second call embed nothing
    assert Embedding.objects.filter(model=remote_model).count() == 1
    assert first[0] == first[1] == second[0]


def test_videos_are_embedded_with_the_versions_model_and_found_by_the_next_call(remote_model, embedding_server):
    version = served_by(registered_version(), remote_model)
    videos = make_videos(3, start_aid=60_000)

    first = services.predict_aids(version, [video.aid for video in videos])
    embedding_server.reset()
    second = services.predict_aids(version, [video.aid for video in reversed(videos)])

    assert embedding_server.requests == []
    assert Embedding.objects.filter(model=remote_model).count() == 3
    assert {row.aid: row.probability for row in first} == {row.aid: row.probability for row in second}


# --- loading once, reloading after a promotion ------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_weights_load_once_per_process_even_when_threads_ask_together():
    version = registered_version()
    loads: list[str] = []
    gate = threading.Barrier(8)

    def counting_loader(path, **options):
        loads.append(str(path))
        return load_classifier(path, **options)

    cache = PredictionCache(loader=counting_loader)
    results = []

    def ask():
        try:
            gate.wait()
            results.append(cache.served(version.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(loads) == 1 and cache.loads == 1
    assert len({id(result) for result in results}) == 1
    assert cache.served(version.pk) is results[0] and cache.loads == 1


def test_the_production_version_is_reloaded_after_a_promotion_without_a_restart(django_assert_num_queries):
    first = registered_version("vocaloid", stage=ModelStage.PRODUCTION, seed=1)
    cache = PredictionCache()
    assert cache.production("vocaloid").version_id == first.pk
    with django_assert_num_queries(1):  # the cheap per-request check, weights already loaded
        assert cache.production("vocaloid").version_id == first.pk

    second = registered_version("vocaloid", stage=ModelStage.STAGING, seed=2)
    services.model_version_transition(second.pk, to_stage=ModelStage.PRODUCTION)

    served = cache.production("vocaloid")
    assert served.version_id == second.pk and served.number == 2
    assert cache.loads == 2
    assert cache.production().version_id == second.pk  # the only model in production


def test_production_resolution_errors_name_the_problem():
    cache = PredictionCache()
    with pytest.raises(ValidationError, match="no model has a production version"):
        cache.production()
    registered_version("candidate-only")
    with pytest.raises(ValidationError, match="'candidate-only' has no production version"):
        cache.production("candidate-only")
    with pytest.raises(ValidationError, match="no registered model is named 'nope'"):
        cache.production("nope")
    registered_version("a", stage=ModelStage.PRODUCTION)
    registered_version("b", stage=ModelStage.PRODUCTION)
    with pytest.raises(ValidationError, match=r"several models have a production version \(a, b\)"):
        cache.production()


# --- stored predictions -------------------------------------------------------------------


def test_predictions_store_upserts_one_row_per_video_with_its_margin():
    version = registered_version()
    videos = make_videos(3, start_aid=70_000)
    embedding_ids = list(Embedding.objects.values_list("pk", flat=True)[:3])
    ids = [video.pk for video in videos]

    assert services.predictions_store(version, ids, [0.1, 0.5, 0.9], embedding_ids) == 3
    assert services.predictions_store(version, ids[:1], [0.95], embedding_ids[:1]) == 1

    stored = {row.video_id: row for row in Prediction.objects.filter(model_version=version)}
    assert {video_id: row.probability for video_id, row in stored.items()} == dict(zip(ids, [0.95, 0.5, 0.9]))
    for row in stored.values():
        assert row.margin == pytest.approx(abs(row.probability - version.threshold))


def test_predictions_store_refuses_repeated_videos_and_bad_probabilities_writing_nothing():
    version = registered_version()
    videos = make_videos(2, start_aid=71_000)
    embedding_id = Embedding.objects.values_list("pk", flat=True).first()

    with pytest.raises(ValueError, match="appears twice"):
        services.predictions_store(version, [videos[0].pk] * 2, [0.1, 0.2], [embedding_id] * 2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        services.predictions_store(version, [videos[1].pk], [float("nan")], [embedding_id])
    assert not Prediction.objects.exists()


@pytest.fixture
def eager_celery():
    from cvsa_ml.celery import app

    previous = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = previous


def test_prediction_rows_never_become_labels_consensus_or_dataset_labels(
    remote_model, embedding_server, eager_celery, django_capture_on_commit_callbacks
):
    version = served_by(registered_version(), remote_model)
    humans = make_labelers(2)
    positive, negative = make_videos(3, start_aid=80_000), make_videos(3, start_aid=81_000)
    tied, unlabeled = make_videos(2, start_aid=82_000), make_videos(2, start_aid=83_000)
    label(positive, humans, POSITIVE)
    label(negative, humans, NEGATIVE)
    label(tied, humans, TIE)
    every = positive + negative + tied + unlabeled
    labels_before = sorted(Label.objects.values_list("video_id", "user_id", "value", "source"))
    consensus_before = sorted(VideoConsensus.objects.values_list("video_id", "value", "is_inconsistent"))

    job = services.scoring_job_create(version_id=version.pk, enqueue=False)
    finished = services.scoring_job_run(job.pk)

    assert finished.status == "succeeded", finished.error
    assert Prediction.objects.filter(model_version=version).count() >= len(every)
    assert sorted(Label.objects.values_list("video_id", "user_id", "value", "source")) == labels_before
    assert sorted(VideoConsensus.objects.values_list("video_id", "value", "is_inconsistent")) == consensus_before
    with django_capture_on_commit_callbacks(execute=True):
        task = dataset_services.dataset_build_request(dataset_services.BuildRequest(
            aid_list=[video.aid for video in every], embedding_model_key=FAKE_MODEL_KEY, include_inconsistent=True,
        )).task
    task.refresh_from_db()
    assert task.status == DatasetTaskStatus.COMPLETED, task.error
    frozen = dict(DatasetVersionItem.objects.filter(version=task.dataset_version).values_list("video__aid", "label"))
    assert frozen == {**{video.aid: True for video in positive}, **{video.aid: False for video in negative}}
    assert (task.dataset_version.unlabeled_excluded, task.dataset_version.inconsistent_excluded) == (2, 2)
