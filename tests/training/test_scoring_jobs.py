"""Batch scoring jobs: a job scores all or filtered videos in chunks and stores one
prediction per video (equal to a single prediction's); its query count does not grow
with the number of videos; progress, cancel (fenced: nothing written after it), failure
with the reason, the sweeper; admins only; and a job run by a real Celery worker."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core import jobs
from experiments.services import run_artifact_dir
from labeling.models import Video
from tests.datasets.factories import make_videos
from tests.support.openai_embedding_server import OpenAIEmbeddingServer
from tests.support.waiting import wait_until
from tests.training.registry_factories import registered_version, trained_run
from tests.training.scoring_factories import (
    DIMENSIONS,
    FAKE_API_KEY,
    embeddings_keyed_by_text,
    fake_remote_model,
    served_by,
)
from training import services
from training.models import JobStatus, Prediction, ScoringJob
from training.prediction_cache import prediction_cache
from training.services import scoring

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_cache():
    prediction_cache.clear()
    yield
    prediction_cache.clear()


@pytest.fixture
def artifacts(tmp_path, settings):
    settings.CVSA_ARTIFACTS_DIR = tmp_path / "artifacts"


@pytest.fixture
def embedding_server():
    with OpenAIEmbeddingServer(dimensions=DIMENSIONS, api_key=FAKE_API_KEY) as server:
        yield server


@pytest.fixture
def remote_model(embedding_server, tmp_path, settings, monkeypatch):
    return fake_remote_model(embedding_server, tmp_path, settings, monkeypatch)


@pytest.fixture
def version(artifacts, remote_model):
    """A version whose inputs come from the fake remote model (texts embedded on demand)."""
    return served_by(registered_version("vocaloid"), remote_model)


@pytest.fixture
def enqueued(monkeypatch):
    sent: list[tuple[int, str, int | None]] = []
    monkeypatch.setattr(scoring, "scoring_job_enqueue",
                        lambda job_id, celery_task_id, claim_attempt=None: sent.append((job_id, celery_task_id,
                                                                                         claim_attempt)))
    return sent


def run_job(version, video_filter=None, **options) -> ScoringJob:
    job = services.scoring_job_create(version_id=version.pk, video_filter=video_filter, enqueue=False)
    return services.scoring_job_run(job.pk, **options)


def stored(version) -> dict[int, float]:
    return dict(Prediction.objects.filter(model_version=version).values_list("video__aid", "probability"))


# --- scoring --------------------------------------------------------------------------------


def test_a_job_scores_every_video_and_stores_what_a_single_prediction_says(version, embedding_server):
    make_videos(25, start_aid=90_000)
    total = Video.objects.count()

    job = run_job(version, chunk_videos=10)

    assert job.status == JobStatus.SUCCEEDED, job.error
    assert (job.total, job.done, job.embedded) == (total, total, total)
    assert job.message.startswith(f"scored {total} of {total} videos, {total} new texts embedded")
    predictions = stored(version)
    assert len(predictions) == total
    single = services.predict_aids(version, sorted(predictions)[:50])
    # Equal up to float32 rounding: a forward pass's sums depend on the batch it is in.
    assert {row.aid: row.probability for row in single} == pytest.approx(
        {aid: predictions[aid] for aid in sorted(predictions)[:50]}, abs=1e-6)
    for row in Prediction.objects.filter(model_version=version):
        assert row.margin == pytest.approx(abs(row.probability - version.threshold))
        assert row.embedding_id is not None
    assert Video.objects.filter(labels__isnull=False).count() == 0  # no prediction became a label


def test_a_second_job_embeds_nothing_and_replaces_the_predictions(version, embedding_server):
    make_videos(5, start_aid=91_000)
    run_job(version)
    first = stored(version)
    embedding_server.reset()

    again = run_job(version)

    assert again.embedded == 0 and embedding_server.requests == []
    assert stored(version) == first and Prediction.objects.filter(model_version=version).count() == len(first)


def test_filters_choose_the_videos(version):
    songs = make_videos(4, start_aid=92_000, title=lambda index: f"Miku Song {index}")
    others = make_videos(3, start_aid=93_000, title=lambda index: f"talk {index}")

    by_search = run_job(version, {"search": "miku song"})
    assert by_search.total == 4 and set(stored(version)) == {video.aid for video in songs}

    by_aids = run_job(version, {"aids": [others[0].aid, others[1].aid]})
    assert by_aids.total == 2

    unscored = run_job(version, {"only_unscored": True})
    assert unscored.total == Video.objects.count() - 6
    assert len(stored(version)) == Video.objects.count()


def test_the_query_count_does_not_grow_with_the_number_of_videos(artifacts):
    run = trained_run(rows=60, dimensions=8, seed=5)
    version = registered_version(run=run)
    embeddings_keyed_by_text(run.dataset_version)
    prediction_cache.served(version.pk)  # weights loaded: the job's queries only

    def queries_of_a_job(aids: list[int]) -> int:
        job = services.scoring_job_create(version_id=version.pk, video_filter={"aids": aids}, enqueue=False)
        with CaptureQueriesContext(connection) as captured:
            finished = services.scoring_job_run(job.pk)
        assert finished.status == JobStatus.SUCCEEDED and finished.done == len(aids), finished.error
        return len(captured)

    aids = list(Video.objects.order_by("aid").values_list("aid", flat=True))
    assert queries_of_a_job(aids[:5]) == queries_of_a_job(aids[:50])


def test_the_query_count_of_many_videos_with_stored_vectors_does_not_grow(artifacts, remote_model, embedding_server):
    version = served_by(registered_version(), remote_model)
    make_videos(500, start_aid=100_000)
    run_job(version)  # every text embedded and stored once
    prediction_cache.served(version.pk)

    def queries_of_a_job(count: int) -> int:
        aids = list(Video.objects.order_by("aid").values_list("aid", flat=True)[:count])
        job = services.scoring_job_create(version_id=version.pk, video_filter={"aids": aids}, enqueue=False)
        with CaptureQueriesContext(connection) as captured:
            finished = services.scoring_job_run(job.pk)
        assert finished.status == JobStatus.SUCCEEDED and finished.done == count and finished.embedded == 0
        return len(captured)

    assert queries_of_a_job(50) == queries_of_a_job(500)


# --- cancel, failure, permissions ----------------------------------------------------------


def test_a_cancel_between_chunks_stops_the_job_and_nothing_more_is_written(version, monkeypatch):
    make_videos(30, start_aid=94_000)
    job = services.scoring_job_create(version_id=version.pk, enqueue=False)
    writes = []
    store = scoring.predictions_store

    def store_then_cancel(*args, **kwargs):
        written = store(*args, **kwargs)
        writes.append(written)
        if len(writes) == 1:
            ScoringJob.objects.filter(pk=job.pk).update(status=JobStatus.CANCELLED, attempts=job.attempts + 10)
        return written

    monkeypatch.setattr(scoring, "predictions_store", store_then_cancel)

    finished = services.scoring_job_run(job.pk, chunk_videos=10)

    assert finished.status == JobStatus.CANCELLED and writes == [10]
    assert Prediction.objects.filter(model_version=version).count() == 10


def test_cancel_of_a_queued_job_and_of_a_finished_one(version):
    job = services.scoring_job_create(version_id=version.pk, enqueue=False)

    assert services.scoring_job_cancel(job.pk).status == JobStatus.CANCELLED
    assert services.scoring_job_run(job.pk).status == JobStatus.CANCELLED  # never starts
    with pytest.raises(ValidationError, match="only a queued or running job can be cancelled"):
        services.scoring_job_cancel(job.pk)
    assert not Prediction.objects.exists()


def test_a_job_whose_weights_file_changed_fails_with_the_reason(version):
    job = services.scoring_job_create(version_id=version.pk, enqueue=False)
    (run_artifact_dir(version.run_id) / "model.pt").write_bytes(b"not the weights")

    finished = services.scoring_job_run(job.pk)

    assert finished.status == JobStatus.FAILED and "changed since its run recorded it" in finished.error
    assert not Prediction.objects.exists()


def test_only_admins_start_jobs_and_bad_filters_write_nothing(version, make_user):
    with pytest.raises(PermissionDenied):
        services.scoring_job_create(version_id=version.pk, user=make_user("lea", group="labelers"), enqueue=False)
    for bad, message in (({"colour": "red"}, "unknown key(s) colour"), ({"only_unscored": 1}, "true or false"),
                         ({"aids": [0]}, "not video aids"), ({"search": "x" * 201}, "at most 200"), ([], "object")):
        with pytest.raises(ValidationError, match=re.escape(message)):
            services.scoring_job_create(version_id=version.pk, video_filter=bad, enqueue=False)
    with pytest.raises(ValidationError, match="does not exist"):
        services.scoring_job_create(version_id=987_654, enqueue=False)
    assert not ScoringJob.objects.exists()


# --- the sweeper ----------------------------------------------------------------------------


def running_with_dead_worker(job: ScoringJob, *, minutes_silent: int) -> ScoringJob:
    claim = jobs.job_claim(scoring.SCORING_JOB, job.pk)
    jobs.job_lock_release(scoring.SCORING_JOB, job.pk)
    ScoringJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=minutes_silent))
    assert claim.worker_starts == 1
    return ScoringJob.objects.get(pk=job.pk)


def test_a_job_whose_worker_died_is_requeued_and_the_next_worker_finishes_it(
    version, enqueued, django_capture_on_commit_callbacks
):
    job = services.scoring_job_create(version_id=version.pk, enqueue=False)
    stale = running_with_dead_worker(job, minutes_silent=10)

    with django_capture_on_commit_callbacks(execute=True):
        assert services.scoring_jobs_mark_stale(older_than=timedelta(minutes=5)) == 1

    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.attempts == stale.attempts + 1 and job.message.startswith("re-queued")
    assert enqueued == [(job.pk, job.celery_task_id, job.attempts)]
    finished = services.scoring_job_run(job.pk, celery_task_id=job.celery_task_id, claim_attempt=job.attempts)
    assert finished.status == JobStatus.SUCCEEDED and finished.worker_starts == 2
    assert Prediction.objects.filter(model_version=version).count() == finished.done


def test_a_job_that_used_up_its_attempts_and_a_lost_queued_one_are_failed(version, enqueued, settings):
    settings.CVSA_JOB_MAX_ATTEMPTS = 1
    dead = running_with_dead_worker(services.scoring_job_create(version_id=version.pk, enqueue=False),
                                    minutes_silent=10)
    lost = services.scoring_job_create(version_id=version.pk, enqueue=False)
    ScoringJob.objects.filter(pk=lost.pk).update(created_at=timezone.now() - timedelta(days=2))
    live = services.scoring_job_create(version_id=version.pk, enqueue=False)

    assert services.scoring_jobs_mark_stale(older_than=timedelta(minutes=5), pending_older_than=timedelta(hours=1)) == 2

    statuses = dict(ScoringJob.objects.values_list("pk", "status"))
    assert statuses == {dead.pk: JobStatus.FAILED, lost.pk: JobStatus.FAILED, live.pk: JobStatus.QUEUED}
    assert ScoringJob.objects.get(pk=dead.pk).error.startswith("worker lost")
    assert ScoringJob.objects.get(pk=lost.pk).error.startswith("never started")
    assert enqueued == []


# --- a real worker ---------------------------------------------------------------------------


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_a_queued_scoring_job(celery_worker_process):
    run = trained_run(rows=60, dimensions=8, seed=6)  # artifacts where the worker reads them (CVSA_DATA_DIR)
    version = registered_version("worker-scored", run=run)
    embeddings_keyed_by_text(run.dataset_version)

    job = services.scoring_job_create(version_id=version.pk)

    finished = wait_until(
        lambda: ScoringJob.objects.filter(pk=job.pk, status__in=[JobStatus.SUCCEEDED, JobStatus.FAILED,
                                                                 JobStatus.CANCELLED]).first(),
        "the scoring job to finish", interval=0.2,
    )
    assert finished.status == JobStatus.SUCCEEDED, finished.error
    assert (finished.total, finished.done, finished.embedded) == (60, 60, 0)
    assert finished.worker and finished.worker_starts == 1
    single = services.predict_aids(version, sorted(stored(version)))
    assert {row.aid: row.probability for row in single} == pytest.approx(stored(version), abs=1e-6)
