"""Integrity of frozen versions, model identity, fencing, the sweeper and database constraints.

Against the real PostgreSQL + pgvector and a real loopback OpenAI-protocol server.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connections, transaction
from django.utils import timezone

from datasets import services
from datasets.services import build as build_job
from datasets.services import embedding_models, job_lifecycle
from datasets.models import (
    DatasetTask,
    DatasetTaskStatus,
    DatasetVersion,
    DatasetVersionItem,
    DatasetVersionStatus,
    Embedding,
    EmbeddingModel,
)
from tests.datasets.conftest import DIMENSIONS, MODEL_KEY, registry_toml
from tests.datasets.factories import NEGATIVE, POSITIVE, label, make_labelers, make_videos
from tests.datasets.job_locks import wait_until_a_session_waits_for_a_lock

pytestmark = pytest.mark.django_db


@pytest.fixture
def videos(db):
    users = make_labelers(2)
    positive = make_videos(6, start_aid=500)
    negative = make_videos(4, start_aid=900)
    label(positive, users, POSITIVE)
    label(negative, users, NEGATIVE)
    return positive + negative


def aids(videos) -> list[int]:
    return [video.aid for video in videos]


def request(videos, *, user=None, **fields) -> DatasetTask:
    fields.setdefault("embedding_model_key", MODEL_KEY)
    build = services.BuildRequest(aid_list=aids(videos), **fields)
    return services.dataset_build_request(build, user=user, enqueue=False).task


def built(videos, **kwargs) -> DatasetTask:
    task = services.dataset_version_build(task_id=request(videos, **kwargs).pk)
    assert task.status == DatasetTaskStatus.COMPLETED, task.error
    return task


# --- 2. a registry key's identity: (name, provider type, dimensions) -------------------------


def test_a_key_with_stored_vectors_keeps_its_name_type_and_dimensions(videos, registry_file, embedding_server):
    built(videos)
    row = EmbeddingModel.objects.get(key=MODEL_KEY)
    original = registry_file.read_text()

    spec = services.embedding_registry().get(MODEL_KEY)
    for change in [{"name": "another-model"}, {"dimensions": 16}, {"type": "local"}]:
        with pytest.raises(ValidationError) as raised:
            embedding_models.embedding_models_upsert([dataclasses.replace(spec, **change)])
        message = " ".join(raised.value.message_dict["embedding_model"])
        assert f"embedding model '{MODEL_KEY}' already has stored vectors for name/type/dimensions" in message
        assert "add the changed model under a new key" in message.lower()
        assert EmbeddingModel.objects.filter(  # unchanged
            pk=row.pk, name=row.name, provider_type=row.provider_type, dimensions=row.dimensions
        ).exists()
    # Through the registry file and the sync: refused too, and nothing else written either.
    registry_file.write_text(original.replace(f"dimensions = {DIMENSIONS}", "dimensions = 16")
                             .replace("max_batch_size = 16", "max_batch_size = 5"))
    with pytest.raises(ValidationError, match="already has stored vectors"):
        services.embedding_models_sync()
    assert EmbeddingModel.objects.get(pk=row.pk).max_batch_size == 16

    # Anything else may change.
    registry_file.write_text(original.replace("max_batch_size = 16", "max_batch_size = 7").replace("max_tokens = 512",
                                                                                                  "max_tokens = 256"))
    synced = services.embedding_models_sync()[MODEL_KEY]
    assert (synced.pk, synced.max_batch_size, synced.max_tokens) == (row.pk, 7, 256)


def test_identity_may_change_while_no_vector_is_stored(registry_file):
    services.embedding_models_sync()
    registry_file.write_text(registry_file.read_text().replace(f"dimensions = {DIMENSIONS}", "dimensions = 16"))

    assert services.embedding_models_sync()[MODEL_KEY].dimensions == 16


def test_a_build_request_under_a_changed_identity_is_refused_and_writes_nothing(videos, registry_file, embedding_server):
    built(videos)
    registry_file.write_text(registry_file.read_text().replace(f"dimensions = {DIMENSIONS}", "dimensions = 16"))
    versions = DatasetVersion.objects.count()

    with pytest.raises(ValidationError) as raised:
        request(videos)

    assert "already has stored vectors" in " ".join(raised.value.message_dict["embedding_model"])
    assert DatasetVersion.objects.count() == versions
    assert EmbeddingModel.objects.get(key=MODEL_KEY).dimensions == DIMENSIONS


def test_a_running_build_under_a_changed_identity_fails_with_that_message(videos, registry_file, embedding_server):
    built(videos[:2])
    task = request(videos)
    registry_file.write_text(registry_file.read_text().replace('name = "fake-embedding-model"', 'name = "renamed"'))

    task = services.dataset_version_build(task_id=task.pk)

    assert task.status == DatasetTaskStatus.FAILED
    assert f"embedding model '{MODEL_KEY}' already has stored vectors" in task.error
    assert "under a new key" in task.error
    assert "ValidationError" not in task.error
    assert task.dataset_version.status == DatasetVersionStatus.FAILED
    assert EmbeddingModel.objects.get(key=MODEL_KEY).name == "fake-embedding-model"


# --- 5. the content hash names the model, dimensions and template ---------------------------


def test_the_same_videos_built_with_two_models_hash_differently(
    videos, registry_file, embedding_server, tmp_path, settings
):
    second = f"""
[models.other-remote]
name = "other-embedding-model"
dimensions = {DIMENSIONS}
type = "openai-compatible"
api_endpoint = "{embedding_server.base_url}"
max_tokens = 512
max_batch_size = 16
api_key_env = "CVSA_TEST_DATASET_EMBED_KEY"
max_retries = 0
timeout_seconds = 5
"""
    registry_file.write_text(registry_toml(embedding_server, extra_models=second))

    first = built(videos).dataset_version
    other = built(videos, embedding_model_key="other-remote").dataset_version

    assert first.content_hash != other.content_hash
    items = DatasetVersionItem.objects.filter(version=first).select_related("video", "embedding").order_by("video__aid")
    body = "".join(f"{i.video.aid}\t{i.embedding.checksum}\t{int(i.label)}\t{i.split}\n" for i in items)
    assert first.content_hash == hashlib.sha256(f"{MODEL_KEY}\t{DIMENSIONS}\tv1\n{body}".encode()).hexdigest()
    assert other.content_hash == hashlib.sha256(f"other-remote\t{DIMENSIONS}\tv1\n{body}".encode()).hexdigest()


# --- 7. new_embeddings counts the rows this build stored ----------------------------------


def test_vectors_another_build_stored_meanwhile_count_as_reused(videos, registry_file, embedding_server, monkeypatch):
    built(videos)
    real = build_job.existing_embeddings
    calls = {"n": 0}

    def nothing_yet_on_the_first_lookup(*args):
        calls["n"] += 1
        return {} if calls["n"] == 1 else real(*args)  # as if another build stored them right after the lookup

    monkeypatch.setattr(build_job, "existing_embeddings", nothing_yet_on_the_first_lookup)

    version = built(videos).dataset_version

    assert sum(embedding_server.batch_sizes) == 20  # embedded twice: 10 + 10 ...
    assert (version.new_embeddings, version.reused_embeddings) == (0, 10)  # ... but stored once
    assert Embedding.objects.count() == 10


# --- 3. the sweeper: pending forever ------------------------------------------------------


def test_the_sweeper_fails_tasks_still_pending_after_the_visibility_timeout(videos, registry_file, settings):
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 600}
    lost, fresh, resumed = request(videos), request(videos), request(videos)
    DatasetTask.objects.filter(pk__in=[lost.pk, resumed.pk]).update(
        created_at=timezone.now() - timedelta(minutes=21)
    )
    # Resumed a minute ago: queued recently, although created long ago.
    DatasetTask.objects.filter(pk=resumed.pk).update(status=DatasetTaskStatus.FAILED)
    DatasetVersion.objects.filter(pk=resumed.dataset_version_id).update(status=DatasetVersionStatus.FAILED)
    services.dataset_task_resume(resumed.pk, enqueue=False)

    assert services.dataset_task_mark_stale() == 1

    lost.refresh_from_db()
    assert lost.status == DatasetTaskStatus.FAILED
    assert lost.error == "never started (message lost?): resume it"
    assert lost.message == "Task failed: never started (message lost?): resume it"
    assert lost.completed_at is not None
    assert lost.dataset_version.status == DatasetVersionStatus.FAILED
    assert DatasetTask.objects.get(pk=fresh.pk).status == DatasetTaskStatus.PENDING
    assert DatasetTask.objects.get(pk=resumed.pk).status == DatasetTaskStatus.PENDING

    # 10 min visibility + 10 min margin: 19 minutes is not yet lost.
    DatasetTask.objects.filter(pk=fresh.pk).update(created_at=timezone.now() - timedelta(minutes=19))
    assert services.dataset_task_mark_stale() == 0


def test_the_sweeper_runs_on_the_default_queue():
    from cvsa_ml.celery import app

    route = app.amqp.router.route({}, "datasets.tasks.sweep_stale_dataset_tasks")
    assert route["queue"].name == "default"
    assert app.amqp.router.route({}, "datasets.tasks.build_dataset_version")["queue"].name == "embeddings"


# --- 4. fencing -----------------------------------------------------------------------------


def swept_then_broken(task: DatasetTask):
    """A ``_load_videos`` for a worker that stalled long enough for the sweeper to take its
    task (fail it, or hand it over), then hits an error."""

    def load_videos(aids_):
        DatasetTask.objects.filter(pk=task.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
        assert services.dataset_task_mark_stale() == 1
        raise ValueError("boom")

    return load_videos


def test_a_worker_that_fails_after_being_swept_does_not_overwrite_the_sweepers_verdict(
    videos, registry_file, embedding_server, monkeypatch, settings
):
    settings.CVSA_JOB_MAX_ATTEMPTS = 1  # the sweeper fails it instead of re-queueing it
    task = request(videos)
    monkeypatch.setattr(build_job, "_load_videos", swept_then_broken(task))

    result = services.dataset_version_build(task_id=task.pk)

    assert result.status == DatasetTaskStatus.FAILED
    assert result.error.startswith("worker lost")
    assert "boom" not in result.error


def test_a_worker_that_comes_back_after_its_task_was_requeued_writes_nothing(
    videos, registry_file, embedding_server, monkeypatch, django_capture_on_commit_callbacks
):
    task = request(videos)
    monkeypatch.setattr(build_job, "_load_videos", swept_then_broken(task))  # the sweeper hands it over

    with django_capture_on_commit_callbacks() as queued:
        result = services.dataset_version_build(task_id=task.pk)

    assert len(queued) == 1  # the re-queued message (not sent here)
    assert result.status == DatasetTaskStatus.RUNNING
    assert (result.attempts, result.worker_starts) == (2, 2)
    assert result.error == "" and result.message.endswith("re-queued, attempt 2 of 3")


def test_resume_and_cancel_bump_the_fencing_token(videos, registry_file):
    task = request(videos)
    assert services.dataset_task_cancel(task.pk).attempts == 1
    resumed = services.dataset_task_resume(task.pk, enqueue=False)
    assert resumed.attempts == 2 and resumed.status == DatasetTaskStatus.PENDING
    # A worker still holding attempt 1 can write nothing, even once the task runs again.
    old = job_lifecycle.BuildProgress(task.pk, 1, None)
    DatasetTask.objects.filter(pk=task.pk).update(status=DatasetTaskStatus.RUNNING)
    with pytest.raises(services.BuildAborted):
        old.write()


# --- 9. sample, then build ----------------------------------------------------------------


def test_request_from_sampling_records_the_selection(videos, registry_file):
    started = services.dataset_build_request(
        services.BuildRequest(
            embedding_model_key=MODEL_KEY,
            sampling={"strategy": "random", "limit": 4, "seed": 3, "label_value": True},
            description="sampled",
        ),
        enqueue=False,
    )
    task, sample = started.task, started.sample

    version = task.dataset_version
    assert sample.sampled_count == 4 and sorted(version.requested_aids) == sorted(sample.aid_list)
    assert version.selection == sample.selection() and version.selection["strategy"] == "random"
    assert version.description == "sampled"


def test_request_from_sampling_with_no_match_is_refused_and_writes_nothing(videos, registry_file):
    with pytest.raises(ValidationError) as raised:
        services.dataset_build_request(
            services.BuildRequest(
                embedding_model_key=MODEL_KEY, sampling={"strategy": "all", "metadata_filter": {"min_duration": 10_000}}
            ),
            enqueue=False,
        )
    assert raised.value.message_dict == {"sampling": ["No AIDs found matching the sampling criteria"]}
    assert not DatasetVersion.objects.exists()
    with pytest.raises(ValidationError, match="unknown key"):
        services.BuildRequest(embedding_model_key=MODEL_KEY, sampling={"strategy": "all", "colour": "red"})


# --- 8. database constraints ----------------------------------------------------------------


def refused(sql_or_callable, match: str):
    with transaction.atomic(), pytest.raises(IntegrityError, match=match):
        sql_or_callable()


def test_choices_are_enforced_by_the_database(videos, registry_file, embedding_server):
    version = built(videos).dataset_version
    task = DatasetTask.objects.get(dataset_version=version)
    pending = request(videos)

    refused(lambda: DatasetVersionItem.objects.filter(version=version).update(split="hold"), "dataset_item_split_valid")
    refused(lambda: DatasetVersion.objects.filter(pk=pending.dataset_version_id).update(status="done"),
            "dataset_version_status_valid")
    refused(lambda: DatasetTask.objects.filter(pk=task.pk).update(status="paused"), "dataset_task_status_valid")
    refused(lambda: DatasetTask.objects.filter(pk=task.pk).update(type="export"), "dataset_task_type_valid")


def test_a_ready_version_must_have_counts_that_add_up(videos, registry_file):
    version = request(videos).dataset_version
    frozen = {"status": DatasetVersionStatus.READY, "frozen_at": timezone.now(), "content_hash": "a" * 64}
    refused(
        lambda: DatasetVersion.objects.filter(pk=version.pk).update(
            **frozen, total_records=10, train_count=8, val_count=1, test_count=0, positives=6, negatives=4
        ),
        "dataset_version_ready_counts_add_up",
    )
    refused(
        lambda: DatasetVersion.objects.filter(pk=version.pk).update(
            **frozen, total_records=10, train_count=8, val_count=1, test_count=1, positives=6, negatives=3
        ),
        "dataset_version_ready_counts_add_up",
    )


def test_at_most_one_live_task_per_version(videos, registry_file):
    task = request(videos)
    refused(
        lambda: DatasetTask.objects.create(dataset_version=task.dataset_version, status=DatasetTaskStatus.RUNNING),
        "dataset_task_one_active_per_version",
    )
    DatasetTask.objects.create(dataset_version=task.dataset_version, status=DatasetTaskStatus.FAILED)  # finished: fine
    # Resume refuses (clearly) a second live task instead of tripping the index.
    other = DatasetTask.objects.create(dataset_version=task.dataset_version, status=DatasetTaskStatus.CANCELLED)
    with pytest.raises(ValidationError, match="already being built"):
        services.dataset_task_resume(other.pk, enqueue=False)


def test_the_database_refuses_any_update_of_a_ready_version_but_allows_deleting_it(
    videos, registry_file, embedding_server, django_user_model
):
    user = django_user_model.objects.create_user(username="creator", password="pw-for-tests-1")
    version = built(videos, user=user).dataset_version
    assert version.created_by_id == user.pk

    refused(lambda: DatasetVersion.objects.filter(pk=version.pk).update(description="edited"), "is frozen")
    refused(lambda: DatasetVersion.objects.filter(pk=version.pk).update(created_at=timezone.now()), "is frozen")
    refused(lambda: DatasetVersion.objects.filter(pk=version.pk).update(status=DatasetVersionStatus.FAILED),
            "is frozen")
    # Deleting the creator's account only unlinks it (ON DELETE SET NULL).
    user.delete()
    assert DatasetVersion.objects.get(pk=version.pk).created_by_id is None

    services.dataset_version_delete(version.pk)
    assert not DatasetVersion.objects.filter(pk=version.pk).exists()


# --- 6. cleanup re-checks inside its transaction ----------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_cleanup_does_not_delete_a_version_resumed_while_it_runs(videos, registry_file):
    task = request(videos)
    services.dataset_task_cancel(task.pk)
    DatasetVersion.objects.filter(pk=task.dataset_version_id).update(created_at=timezone.now() - timedelta(days=40))
    locked, resume_now = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def resume_in_another_session():
        try:
            with transaction.atomic():
                DatasetTask.objects.select_for_update().get(pk=task.pk)  # resume has taken its lock...
                locked.set()
                resume_now.wait(60)
                services.dataset_task_resume(task.pk, enqueue=False)  # ...and finishes after cleanup started
        except BaseException as error:  # noqa: BLE001
            errors.append(error)
        finally:
            connections.close_all()

    def cleanup_in_another_session(outcome: dict):
        try:
            outcome.update(services.dataset_versions_cleanup(max_age_days=30))
        except BaseException as error:  # noqa: BLE001
            errors.append(error)
        finally:
            connections.close_all()

    resumer = threading.Thread(target=resume_in_another_session)
    resumer.start()
    assert locked.wait(60)
    outcome: dict = {}
    cleaner = threading.Thread(target=cleanup_in_another_session, args=(outcome,))
    cleaner.start()
    wait_until_a_session_waits_for_a_lock(locktype=None)  # the cleanup now waits on the task's row lock
    resume_now.set()
    resumer.join(60)
    cleaner.join(60)

    assert not errors, errors
    assert outcome == {"removed": 0, "kept_in_use": 0}
    task.refresh_from_db()
    assert task.status == DatasetTaskStatus.PENDING
    assert task.dataset_version_id is not None
    assert DatasetVersion.objects.get(pk=task.dataset_version_id).status == DatasetVersionStatus.BUILDING

