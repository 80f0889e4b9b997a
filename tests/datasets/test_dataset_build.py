"""Dataset version builds end to end: request → Celery (eager) → frozen version.

Against the real PostgreSQL + pgvector and a real loopback OpenAI-protocol server.
"""

from __future__ import annotations

import hashlib
import os
import threading
from datetime import timedelta

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from datasets import services
from datasets.services import build as build_job
from datasets.services import embedding_store, job_lifecycle
from datasets.models import (
    Dataset,
    DatasetTask,
    DatasetTaskStatus,
    DatasetVersion,
    DatasetVersionItem,
    DatasetVersionStatus,
    Embedding,
    EmbeddingModel,
    FrozenDatasetVersionError,
)
from datasets.selectors import dataset_version_arrays
from datasets.text_composition import compose_video_text, text_checksum
from tests.datasets.conftest import DIMENSIONS, MODEL_KEY
from tests.datasets.job_locks import live_worker_holding_the_lock_of, wait_until_a_session_waits_for_a_lock
from tests.datasets.factories import (
    MAJORITY_TRUE,
    NEGATIVE,
    POSITIVE,
    TIE,
    UNLABELED,
    label,
    make_labelers,
    make_videos,
    review,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def labelers(db):
    return make_labelers(3)


@pytest.fixture
def corpus(labelers):
    """20 positive, 10 negative, 3 unlabeled, 2 ties, 2 majority-true conflicts,
    1 conflict settled by a review (False), 1 labeled video whose text is empty."""
    positive = make_videos(20, start_aid=1000)
    negative = make_videos(10, start_aid=2000)
    unlabeled = make_videos(3, start_aid=3000)
    ties = make_videos(2, start_aid=4000)
    majority = make_videos(2, start_aid=5000)
    reviewed = make_videos(1, start_aid=6000)
    empty = make_videos(1, start_aid=7000, title=lambda index: "<p></p>")
    empty[0].description = ""
    empty[0].tags = ""
    empty[0].save()
    label(positive, labelers, POSITIVE)
    label(negative, labelers, NEGATIVE)
    label(unlabeled, labelers, UNLABELED)
    label(ties, labelers, TIE)
    label(majority, labelers, MAJORITY_TRUE)
    label(reviewed, labelers, TIE)
    review(reviewed[0], labelers[2], False)
    label(empty, labelers, POSITIVE)
    return {
        "positive": positive,
        "negative": negative,
        "unlabeled": unlabeled,
        "ties": ties,
        "majority": majority,
        "reviewed": reviewed,
        "empty": empty,
        "all": positive + negative + unlabeled + ties + majority + reviewed + empty,
    }


def build(django_capture_on_commit_callbacks, **kwargs) -> DatasetTask:
    kwargs.setdefault("embedding_model_key", MODEL_KEY)
    with django_capture_on_commit_callbacks(execute=True):
        task = services.dataset_build_request(services.BuildRequest(**kwargs)).task
    task.refresh_from_db()
    return task


def aids_of(videos) -> list[int]:
    return [video.aid for video in videos]


# --- the happy path ---------------------------------------------------------------


def test_build_freezes_a_version_with_counts_labels_and_splits(
    corpus, registry_file, embedding_server, celery_eager, django_capture_on_commit_callbacks
):
    task = build(
        django_capture_on_commit_callbacks,
        aid_list=aids_of(corpus["all"]),
        description="first build",
        split_ratios=(0.6, 0.2, 0.2),
        seed=7,
    )

    assert task.status == DatasetTaskStatus.COMPLETED, task.error
    assert task.current_step == "completed"
    assert task.percentage == 100.0
    assert task.completed_steps == task.total_steps == len(services.BUILD_STEPS)
    assert task.started_at and task.completed_at and task.heartbeat_at
    version = task.dataset_version
    assert version.status == DatasetVersionStatus.READY
    assert version.frozen_at is not None
    assert version.dataset.name == services.DEFAULT_DATASET_NAME
    assert version.number == 1
    assert version.description == "first build"
    assert version.embedding_model.key == MODEL_KEY
    assert version.text_template_version == "v1"

    # 20 positive + 10 negative + 1 reviewed (False); excluded: 3 unlabeled, 2 ties +
    # 2 majority conflicts (inconsistent), 1 empty text.
    assert version.total_records == 31
    assert (version.positives, version.negatives) == (20, 11)
    assert version.unlabeled_excluded == 3
    assert version.inconsistent_excluded == 4
    assert version.inconsistent_included == 0
    assert version.empty_text_excluded == 1
    assert version.missing_excluded == 0
    assert version.new_embeddings == 31
    assert version.reused_embeddings == 0

    items = list(DatasetVersionItem.objects.filter(version=version).select_related("video", "embedding"))
    assert len(items) == 31
    labels = {item.video.aid: item.label for item in items}
    assert all(labels[aid] for aid in aids_of(corpus["positive"]))
    assert not any(labels[aid] for aid in aids_of(corpus["negative"]))
    assert labels[corpus["reviewed"][0].aid] is False
    # Stratified split: 20 positives → 12/4/4, 11 negatives → 7/2/2 (largest remainder).
    per_split = {(item.split, item.label) for item in items}
    assert per_split  # sanity
    counts = {}
    for item in items:
        counts[(item.split, item.label)] = counts.get((item.split, item.label), 0) + 1
    assert counts == {("train", True): 12, ("val", True): 4, ("test", True): 4,
                      ("train", False): 7, ("val", False): 2, ("test", False): 2}
    assert (version.train_count, version.val_count, version.test_count) == (19, 6, 6)
    assert version.split_counts["train"] == {"total": 19, "positives": 12, "negatives": 7}

    # Items point at the embedding of their own composed text.
    for item in items:
        text = compose_video_text(title=item.video.title, description=item.video.description, tags=item.video.tags)
        assert item.embedding.checksum == text_checksum(text)
        assert item.embedding.dimensions == DIMENSIONS

    expected_hash = hashlib.sha256(
        (
            f"{MODEL_KEY}\t{DIMENSIONS}\tv1\n"  # header: model key, dimensions, text template version
            + "".join(
                f"{item.video.aid}\t{item.embedding.checksum}\t{int(item.label)}\t{item.split}\n"
                for item in sorted(items, key=lambda item: item.video.aid)
            )
        ).encode()
    ).hexdigest()
    assert version.content_hash == expected_hash

    assert task.result["dataset_id"] == str(version.pk)
    assert task.result["stats"] == {
        "total_records": 31,
        "new_embeddings": 31,
        "reused_embeddings": 0,
        "inconsistent_labels": 4,
        "embedding_model": MODEL_KEY,
    }
    # Batches of the model's max_batch_size (16), only the 31 usable texts embedded.
    assert sorted(embedding_server.batch_sizes) == [15, 16]
    assert Embedding.objects.count() == 31


def test_vectors_read_back_exactly_as_the_provider_returned_them(
    corpus, registry_file, embedding_server, celery_eager, django_capture_on_commit_callbacks
):
    task = build(django_capture_on_commit_callbacks, aid_list=aids_of(corpus["positive"] + corpus["negative"]))

    arrays = dataset_version_arrays(task.dataset_version_id)

    assert arrays.X.dtype == np.float32 and arrays.X.shape == (30, DIMENSIONS)
    assert arrays.aids.tolist() == sorted(aids_of(corpus["positive"] + corpus["negative"]))
    by_aid = {video.aid: video for video in corpus["positive"] + corpus["negative"]}
    for row, aid in enumerate(arrays.aids.tolist()):
        video = by_aid[aid]
        text = compose_video_text(title=video.title, description=video.description, tags=video.tags)
        np.testing.assert_array_equal(arrays.X[row], embedding_server.expected_embedding(text))
        assert arrays.y[row] == (1 if aid < 2000 else 0)
    items = dict(DatasetVersionItem.objects.filter(version_id=task.dataset_version_id).values_list("video__aid", "split"))
    assert arrays.splits.tolist() == [items[aid] for aid in arrays.aids.tolist()]


def test_include_inconsistent_keeps_majority_conflicts_but_not_ties(
    corpus, registry_file, embedding_server, celery_eager, django_capture_on_commit_callbacks
):
    task = build(
        django_capture_on_commit_callbacks,
        aid_list=aids_of(corpus["positive"] + corpus["ties"] + corpus["majority"]),
        include_inconsistent=True,
    )

    version = task.dataset_version
    assert version.status == DatasetVersionStatus.READY
    assert version.total_records == 22
    assert version.inconsistent_included == 2
    assert version.inconsistent_excluded == 2  # the ties: no label to include
    flagged = DatasetVersionItem.objects.filter(version=version, is_inconsistent=True)
    assert sorted(flagged.values_list("video__aid", flat=True)) == aids_of(corpus["majority"])
    assert all(flagged.values_list("label", flat=True))


def test_identical_texts_are_embedded_and_stored_once(
    labelers, registry_file, embedding_server, celery_eager, django_capture_on_commit_callbacks
):
    twins = make_videos(4, start_aid=100, title=lambda index: "同じタイトル")
    for video in twins:
        video.description = "same"
    type(twins[0]).objects.bulk_update(twins, ["description"])
    label(twins, labelers, POSITIVE)

    task = build(django_capture_on_commit_callbacks, aid_list=aids_of(twins))

    version = task.dataset_version
    assert version.total_records == 4
    assert version.new_embeddings == 1
    assert Embedding.objects.count() == 1
    assert embedding_server.batch_sizes == [1]
    assert set(DatasetVersionItem.objects.filter(version=version).values_list("embedding_id", flat=True)) == {
        Embedding.objects.get().pk
    }


# --- reuse, regeneration, resume ------------------------------------------------------


def test_a_second_build_reuses_every_embedding_without_any_request(
    corpus, registry_file, embedding_server, celery_eager, django_capture_on_commit_callbacks
):
    aids = aids_of(corpus["positive"] + corpus["negative"])
    first = build(django_capture_on_commit_callbacks, aid_list=aids)
    stored = Embedding.objects.count()
    requests = len(embedding_server.requests)

    second = build(django_capture_on_commit_callbacks, aid_list=aids, description="again")

    assert second.status == DatasetTaskStatus.COMPLETED
    assert second.dataset_version.number == first.dataset_version.number + 1
    assert second.dataset_version.new_embeddings == 0
    assert second.dataset_version.reused_embeddings == 30
    assert Embedding.objects.count() == stored == 30
    assert len(embedding_server.requests) == requests
    # Same members, labels, seed and texts → same content hash.
    assert second.dataset_version.content_hash == first.dataset_version.content_hash


def test_force_regenerate_overwrites_vectors_no_ready_version_uses_and_keeps_the_others(
    corpus, registry_file, embedding_server, celery_eager, django_capture_on_commit_callbacks, monkeypatch
):
    positive, negative = aids_of(corpus["positive"]), aids_of(corpus["negative"])
    # v1 freezes the 20 positives. The 10 negatives' vectors are stored by a build that
    # failed before freezing (no ready version uses them).
    v1 = build(django_capture_on_commit_callbacks, aid_list=positive).dataset_version
    loose = services.dataset_build_request(
        services.BuildRequest(aid_list=negative, embedding_model_key=MODEL_KEY), enqueue=False
    ).task
    services.dataset_version_build(task_id=loose.pk)
    services.dataset_version_delete(loose.dataset_version_id)
    assert Embedding.objects.count() == 30 and DatasetVersionItem.objects.count() == 20
    v1_arrays = dataset_version_arrays(v1.pk)
    before = dict(Embedding.objects.values_list("checksum", "id"))
    Embedding.objects.update(created_at=timezone.now() - timedelta(days=1))
    embedding_server.reset()
    from tests.support import openai_embedding_server as fake_api

    original = fake_api.deterministic_embedding
    monkeypatch.setattr(fake_api, "deterministic_embedding", lambda text, dims: -original(text, dims))  # new answers

    task = build(django_capture_on_commit_callbacks, aid_list=positive + negative, force_regenerate=True)

    version = task.dataset_version
    assert version.status == DatasetVersionStatus.READY, task.error
    assert sum(embedding_server.batch_sizes) == 30  # every text re-embedded...
    assert (version.new_embeddings, version.reused_embeddings) == (10, 20)  # ...10 overwritten, v1's 20 kept
    assert task.result["frozen_vectors_kept"] == 20
    assert "20 vector(s) used by ready versions were kept" in task.message
    assert dict(Embedding.objects.values_list("checksum", "id")) == before  # same rows, nothing stored twice
    old = Embedding.objects.filter(created_at__lt=timezone.now() - timedelta(hours=1))
    assert sorted(old.values_list("dataset_items__video__aid", flat=True).distinct()) == sorted(positive)
    # The frozen v1 is bit for bit what it was.
    v1.refresh_from_db()
    after = dataset_version_arrays(v1.pk)
    np.testing.assert_array_equal(after.X, v1_arrays.X)
    np.testing.assert_array_equal(after.aids, v1_arrays.aids)
    assert v1.content_hash == DatasetVersion.objects.get(pk=v1.pk).content_hash
    # The negatives' vectors (used by no ready version) are the new answers; v1's are kept.
    by_aid = {video.aid: video for video in corpus["positive"] + corpus["negative"]}
    rows = dataset_version_arrays(version.pk)
    for row, aid in enumerate(rows.aids.tolist()):
        video = by_aid[aid]
        expected = original(compose_video_text(title=video.title, description=video.description, tags=video.tags), DIMENSIONS)
        np.testing.assert_array_equal(rows.X[row], -expected if aid in negative else expected)


def test_a_failing_api_fails_the_task_keeps_stored_chunks_and_resume_reuses_them(
    corpus, registry_file, embedding_server, celery_eager, django_capture_on_commit_callbacks, monkeypatch
):
    # 30 texts in chunks of 10, requests of 5 texts: chunk 1 = requests 1-2 succeed,
    # then the API fails for good (max_retries = 0 in the test registry).
    monkeypatch.setattr(embedding_store, "EMBED_CHUNK_TEXTS", 10)
    registry_file.write_text(registry_file.read_text().replace("max_batch_size = 16", "max_batch_size = 5")
                             .replace("concurrency = 4", "concurrency = 1"))
    answered = {"count": 0}

    def fail_after_two_requests():
        answered["count"] += 1
        return 500 if answered["count"] > 2 else None

    monkeypatch.setattr(embedding_server, "_next_fault", fail_after_two_requests)
    aids = aids_of(corpus["positive"] + corpus["negative"])

    task = build(django_capture_on_commit_callbacks, aid_list=aids)

    assert task.status == DatasetTaskStatus.FAILED
    assert task.current_step == "generating_embeddings"
    assert "500" in task.error and "kept" in task.error and "resume" in task.error
    assert task.message.startswith("Task failed: ")
    assert task.completed_at is not None
    version = DatasetVersion.objects.get(pk=task.dataset_version_id)
    assert version.status == DatasetVersionStatus.FAILED
    assert not DatasetVersionItem.objects.exists()
    assert Embedding.objects.count() == 10  # the first chunk stayed

    # The API recovers; resuming continues and reuses the stored chunk.
    monkeypatch.setattr(embedding_server, "_next_fault", lambda: None)
    embedding_server.reset()
    with django_capture_on_commit_callbacks(execute=True):
        services.dataset_task_resume(task.pk)
    task.refresh_from_db()
    version.refresh_from_db()

    assert task.status == DatasetTaskStatus.COMPLETED, task.error
    assert task.attempts == 3  # first worker, the resume (fencing), the second worker
    assert task.error == ""
    assert version.status == DatasetVersionStatus.READY
    assert (version.reused_embeddings, version.new_embeddings) == (10, 20)
    assert sum(embedding_server.batch_sizes) == 20
    assert Embedding.objects.count() == 30
    assert DatasetVersionItem.objects.filter(version=version).count() == 30


def test_resume_refuses_tasks_that_are_not_failed(
    corpus, registry_file, embedding_server, celery_eager, django_capture_on_commit_callbacks
):
    task = build(django_capture_on_commit_callbacks, aid_list=aids_of(corpus["positive"]))
    with pytest.raises(ValidationError, match="completed"):
        services.dataset_task_resume(task.pk)


# --- delivery semantics, stale workers, cancellation -------------------------------


def pending_build(corpus, **kwargs) -> DatasetTask:
    request = services.BuildRequest(aid_list=aids_of(corpus["positive"]), embedding_model_key=MODEL_KEY, **kwargs)
    return services.dataset_build_request(request, enqueue=False).task


def test_a_second_delivery_of_a_task_its_live_worker_runs_returns_at_once(
    corpus, registry_file, embedding_server, django_assert_max_num_queries
):
    task = pending_build(corpus)
    DatasetTask.objects.filter(pk=task.pk).update(status=DatasetTaskStatus.RUNNING, heartbeat_at=timezone.now(), attempts=1)

    with live_worker_holding_the_lock_of(task.pk), django_assert_max_num_queries(2):
        result = services.dataset_version_build(task_id=task.pk)

    assert result.status == DatasetTaskStatus.RUNNING
    assert result.attempts == 1
    assert embedding_server.requests == []


def test_a_redelivered_task_whose_worker_died_is_taken_over(corpus, registry_file, embedding_server):
    task = pending_build(corpus)
    stale = timezone.now() - services.stale_after() - timedelta(seconds=5)
    DatasetTask.objects.filter(pk=task.pk).update(
        status=DatasetTaskStatus.RUNNING, heartbeat_at=stale, attempts=1, worker_starts=1
    )

    result = services.dataset_version_build(task_id=task.pk)

    assert result.status == DatasetTaskStatus.COMPLETED
    assert (result.attempts, result.worker_starts) == (2, 2)


def test_a_task_whose_worker_died_a_moment_ago_is_taken_over_at_once(corpus, registry_file, embedding_server):
    """The worker child was killed (its heartbeat is fresh, but nobody holds the task's
    lock any more): the redelivered message takes over without waiting for the sweeper."""
    task = pending_build(corpus)
    DatasetTask.objects.filter(pk=task.pk).update(
        status=DatasetTaskStatus.RUNNING, heartbeat_at=timezone.now(), attempts=1, worker_starts=1
    )

    result = services.dataset_version_build(task_id=task.pk)

    assert result.status == DatasetTaskStatus.COMPLETED, result.error
    assert (result.attempts, result.worker_starts) == (2, 2)
    assert result.worker.endswith(f":{os.getpid()}")


def test_a_redelivered_message_waits_for_the_lock_of_a_worker_that_is_dying(
    corpus, registry_file, embedding_server
):
    task = pending_build(corpus)
    DatasetTask.objects.filter(pk=task.pk).update(
        status=DatasetTaskStatus.RUNNING, heartbeat_at=timezone.now(), attempts=1, worker_starts=1
    )
    with live_worker_holding_the_lock_of(task.pk) as dying_worker:
        # The worker's session ends (the process died) while the redelivery waits for its lock.
        dying_worker.inc_thread_sharing()

        def die_once_the_redelivery_waits():
            try:
                wait_until_a_session_waits_for_a_lock()
                dying_worker.close()
            finally:
                connections.close_all()

        ended = threading.Thread(target=die_once_the_redelivery_waits)
        ended.start()
        result = services.dataset_version_build(task_id=task.pk, lock_wait_seconds=50)
        ended.join()

    assert result.status == DatasetTaskStatus.COMPLETED, result.error
    assert result.worker_starts == 2


def test_a_task_whose_workers_keep_dying_is_failed_once_its_attempts_are_used_up(
    corpus, registry_file, embedding_server, settings
):
    settings.CVSA_JOB_MAX_ATTEMPTS = 3
    task = pending_build(corpus)
    DatasetTask.objects.filter(pk=task.pk).update(
        status=DatasetTaskStatus.RUNNING, heartbeat_at=timezone.now(), attempts=5, worker_starts=3,
        current_step="generating_embeddings",
    )

    result = services.dataset_version_build(task_id=task.pk)

    assert result.status == DatasetTaskStatus.FAILED
    assert result.error == (
        "its worker died during generating_embeddings (killed, e.g. out of memory?) and 3 of 3 attempts are used up; "
        "embeddings stored so far are kept: resume the task to continue"
    )
    assert result.dataset_version.status == DatasetVersionStatus.FAILED
    assert embedding_server.requests == []
    # A resume starts a new run with all its attempts.
    resumed = services.dataset_task_resume(task.pk, enqueue=False)
    assert services.dataset_version_build(task_id=resumed.pk).status == DatasetTaskStatus.COMPLETED


def test_completed_and_failed_tasks_are_not_rerun_by_a_delivery(corpus, registry_file, embedding_server):
    task = pending_build(corpus)
    services.dataset_version_build(task_id=task.pk)
    embedding_server.reset()

    again = services.dataset_version_build(task_id=task.pk)

    assert again.status == DatasetTaskStatus.COMPLETED and again.attempts == 1
    assert DatasetVersionItem.objects.count() == 20
    assert embedding_server.requests == []


def test_the_sweeper_requeues_a_task_whose_worker_stopped_its_heartbeat_and_it_resumes(
    corpus, registry_file, embedding_server, celery_eager, django_capture_on_commit_callbacks, settings
):
    settings.CVSA_JOB_MAX_ATTEMPTS = 3
    lost = pending_build(corpus)
    alive = pending_build(corpus)
    heartbeat = timezone.now() - timedelta(minutes=20)
    DatasetTask.objects.filter(pk=lost.pk).update(
        status=DatasetTaskStatus.RUNNING, heartbeat_at=heartbeat, current_step="generating_embeddings",
        attempts=1, worker_starts=1,
    )
    DatasetTask.objects.filter(pk=alive.pk).update(status=DatasetTaskStatus.RUNNING, heartbeat_at=timezone.now())

    with django_capture_on_commit_callbacks() as queued:
        assert services.dataset_task_mark_stale(older_than=timedelta(minutes=5)) == 1

    lost.refresh_from_db()
    assert lost.status == DatasetTaskStatus.RUNNING  # handed over, not failed
    assert (lost.attempts, lost.worker_starts) == (2, 2)  # the dead worker's writes are fenced out
    assert lost.message == (
        f"Worker lost (no heartbeat since {heartbeat.strftime('%Y-%m-%dT%H:%M:%SZ')}) during generating_embeddings: "
        "re-queued, attempt 2 of 3"
    )
    assert DatasetTask.objects.get(pk=alive.pk).status == DatasetTaskStatus.RUNNING
    assert len(queued) == 1
    queued[0]()  # the message is sent (eager: the build runs now) and takes over exactly that attempt

    lost.refresh_from_db()
    assert lost.status == DatasetTaskStatus.COMPLETED, lost.error
    assert (lost.attempts, lost.worker_starts) == (3, 2)


def test_the_sweeper_fails_a_task_without_heartbeat_once_its_attempts_are_used_up(corpus, registry_file, settings):
    settings.CVSA_JOB_MAX_ATTEMPTS = 2
    lost = pending_build(corpus)
    heartbeat = timezone.now() - timedelta(minutes=20)
    DatasetTask.objects.filter(pk=lost.pk).update(
        status=DatasetTaskStatus.RUNNING, heartbeat_at=heartbeat, current_step="generating_embeddings",
        worker_starts=2,
    )

    assert services.dataset_task_mark_stale(older_than=timedelta(minutes=5)) == 1

    lost.refresh_from_db()
    assert lost.status == DatasetTaskStatus.FAILED
    assert lost.error == (
        f"worker lost (no heartbeat since {heartbeat.strftime('%Y-%m-%dT%H:%M:%SZ')}) during generating_embeddings, "
        "after 2 of 2 attempts; resume the task to continue"
    )
    assert lost.message == f"Task failed: {lost.error}"  # the same helper as every other failure
    assert lost.completed_at is not None
    assert lost.dataset_version.status == DatasetVersionStatus.FAILED
    assert lost.dataset_version.error == lost.error
    # The sweeper's Celery task runs the same service.
    from datasets.tasks import sweep_stale_dataset_tasks

    assert sweep_stale_dataset_tasks.apply().get() == 0


def test_one_sweep_at_a_time_a_worker_skips_while_another_sweeps(corpus, registry_file):
    lost = pending_build(corpus)
    DatasetTask.objects.filter(pk=lost.pk).update(
        status=DatasetTaskStatus.RUNNING, heartbeat_at=timezone.now() - timedelta(minutes=20)
    )
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:  # another worker is sweeping (holds the sweep lock)
            cursor.execute("BEGIN; SELECT pg_advisory_xact_lock(hashtextextended('datasets.sweeper', 0))")
        assert services.dataset_task_mark_stale(wait=False) == 0
    finally:
        other.close()
    assert DatasetTask.objects.get(pk=lost.pk).attempts == 0
    assert services.dataset_task_mark_stale(wait=False) == 1


def test_a_cancelled_task_stops_at_its_next_progress_write(corpus, registry_file, embedding_server):
    task = pending_build(corpus)
    seen = []

    def cancel_once_embedding_starts(snapshot):
        seen.append(snapshot["current_step"])
        if snapshot["current_step"] == "generating_embeddings" and len(seen) and seen.count("generating_embeddings") == 1:
            services.dataset_task_cancel(task.pk)

    result = services.dataset_version_build(task_id=task.pk, on_progress=cancel_once_embedding_starts)

    assert result.status == DatasetTaskStatus.CANCELLED
    assert result.dataset_version.status == DatasetVersionStatus.FAILED
    assert not DatasetVersionItem.objects.exists()


# --- bad input: clear errors, nothing written ------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field", "fragment"),
    [
        ({"embedding_model_key": "nope"}, "embedding_model", "Invalid embedding model: 'nope'"),
        ({"aid_list": []}, "aid_list", "is empty"),
        ({"aid_list": [1000, "x", -3]}, "aid_list", "'x', -3"),
        ({"aid_list": [1000, 999_999, 888_888]}, "aid_list", "2 aid(s) not in the corpus: 999999, 888888"),
        ({"aid_list": [3000, 3001]}, "aid_list", "none of the 2 video(s) has a consensus label"),
        ({"split_ratios": (0.5, 0.2, 0.2)}, "split_ratios", "must sum to 1"),
        ({"split_ratios": (0.0, 0.5, 0.5)}, "split_ratios", "train must be in (0, 1]"),
        ({"split_ratios": (0.8, 0.2)}, "split_ratios", "got 2"),
        ({"seed": "abc"}, "seed", "must be an integer"),
        ({"dataset_name": "  "}, "dataset_name", "non-empty"),
    ],
)
def test_bad_requests_name_the_field_and_write_nothing(corpus, registry_file, kwargs, field, fragment):
    fields = {"aid_list": aids_of(corpus["positive"]), "embedding_model_key": MODEL_KEY} | kwargs

    with pytest.raises(ValidationError) as raised:
        services.dataset_build_request(services.BuildRequest(**fields), enqueue=False)

    assert field in raised.value.message_dict
    assert fragment in " ".join(raised.value.message_dict[field])
    assert not Dataset.objects.exists()
    assert not DatasetVersion.objects.exists()
    assert not DatasetTask.objects.exists()


def test_a_queue_outage_marks_the_task_failed_instead_of_losing_it(
    corpus, registry_file, django_capture_on_commit_callbacks, monkeypatch
):
    from datasets.tasks import build_dataset_version

    def broker_down(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(build_dataset_version, "apply_async", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        task = services.dataset_build_request(
            services.BuildRequest(aid_list=aids_of(corpus["positive"]), embedding_model_key=MODEL_KEY)
        ).task

    task.refresh_from_db()
    assert task.status == DatasetTaskStatus.FAILED
    assert "broker unavailable" in task.error
    assert task.dataset_version.status == DatasetVersionStatus.FAILED


# --- database invariants -----------------------------------------------------------------


def test_a_ready_version_cannot_be_saved_again(
    corpus, registry_file, embedding_server, celery_eager, django_capture_on_commit_callbacks
):
    task = build(django_capture_on_commit_callbacks, aid_list=aids_of(corpus["positive"]))
    version = DatasetVersion.objects.get(pk=task.dataset_version_id)
    version.description = "edited"
    with pytest.raises(FrozenDatasetVersionError):
        version.save()


def test_vectors_of_any_dimension_share_the_table_and_must_match_their_dimensions(registry_file):
    models = services.embedding_models_sync()
    small, model = models[MODEL_KEY], EmbeddingModel.objects.create(
        key="big", name="big", provider_type="openai-compatible", dimensions=3072, max_tokens=8192, max_batch_size=10
    )
    Embedding.objects.create(model=small, checksum="a" * 64, dimensions=8, vector=np.ones(8))
    Embedding.objects.create(model=model, checksum="a" * 64, dimensions=3072, vector=np.ones(3072))
    with transaction.atomic(), pytest.raises(IntegrityError, match="embedding_vector_dims_match"):
        Embedding.objects.create(model=small, checksum="b" * 64, dimensions=8, vector=np.ones(9))
    with transaction.atomic(), pytest.raises(IntegrityError, match="embedding_model_checksum_unique"):
        Embedding.objects.create(model=small, checksum="a" * 64, dimensions=8, vector=np.ones(8))


def test_embedding_models_sync_upserts_by_key_and_only_rewrites_changed_rows(registry_file):
    first = services.embedding_models_sync()
    row = first[MODEL_KEY]
    assert (row.dimensions, row.provider_type, row.max_batch_size) == (DIMENSIONS, "openai-compatible", 16)

    # now() is the transaction's start time: age the row to see whether a sync rewrites it.
    old = timezone.now() - timedelta(days=1)
    EmbeddingModel.objects.update(updated_at=old)
    again = services.embedding_models_sync()
    assert again[MODEL_KEY].pk == row.pk
    assert again[MODEL_KEY].updated_at == old

    registry_file.write_text(registry_file.read_text().replace("max_batch_size = 16", "max_batch_size = 32"))
    changed = services.embedding_models_sync()
    assert changed[MODEL_KEY].pk == row.pk
    assert changed[MODEL_KEY].max_batch_size == 32
    assert changed[MODEL_KEY].updated_at > old
    assert EmbeddingModel.objects.count() == 1


# --- round trips do not grow with N ------------------------------------------------------

#: A build's clock that never advances: only step boundaries write progress.
STOPPED_CLOCK = lambda: 0.0  # noqa: E731
#: claim + lock 1, the task 1, model upsert 1, videos 1, lookup 1, step writes 3, the
#: embedding chunk 3 (stage, COPY, upsert), freeze 5 (savepoint, version, items COPY,
#: task, release), unlock 1, the returned row 1.
BUILD_ROUND_TRIPS = 18


def test_round_trips_do_not_grow_with_the_number_of_videos(
    labelers, registry_file, embedding_server, monkeypatch
):
    """Chunk sizes stated here: 2048 texts per embedding chunk (one COPY + one upsert),
    20,000 checksums per lookup; so both N = 50 and N = 2000 are one chunk of each.
    The build's clock stands still, so no throttled progress write depends on how fast
    this machine is: the count is exact."""
    monkeypatch.setattr(embedding_store, "EMBED_CHUNK_TEXTS", 2048)
    monkeypatch.setattr(embedding_store, "LOOKUP_CHUNK_CHECKSUMS", 20_000)
    registry_file.write_text(registry_file.read_text().replace("max_batch_size = 16", "max_batch_size = 256"))

    def counted_build(count: int, start_aid: int) -> tuple[list[str], list[str]]:
        videos = make_videos(count, start_aid=start_aid)
        label(videos, labelers, lambda index, video: POSITIVE if index % 3 else NEGATIVE)
        services.embedding_models_sync()  # outside the count, like a warm registry
        with CaptureQueriesContext(connection) as request_queries:
            request = services.BuildRequest(
                aid_list=aids_of(videos), embedding_model_key=MODEL_KEY, dataset_name=f"n{count}"
            )
            task = services.dataset_build_request(request, enqueue=False).task
        with CaptureQueriesContext(connection) as build_queries:
            task = services.dataset_version_build(task_id=task.pk, clock=STOPPED_CLOCK)
        assert task.status == DatasetTaskStatus.COMPLETED, task.error
        assert task.dataset_version.total_records == count
        return (
            [query["sql"] for query in request_queries.captured_queries],
            [query["sql"] for query in build_queries.captured_queries],
        )

    small_request, small_build = counted_build(50, start_aid=10_000)
    large_request, large_build = counted_build(2000, start_aid=20_000)

    assert len(small_request) == len(large_request), (small_request, large_request)
    assert len(large_request) <= 12, large_request
    assert len(small_build) == len(large_build) == BUILD_ROUND_TRIPS, (small_build, large_build)
    assert sum(sql.startswith("COPY") for sql in large_build) == 2  # the vectors chunk, the items
    assert sorted(embedding_server.batch_sizes) == [50, 208] + [256] * 7  # max_batch_size 256


def test_warm_rebuild_round_trips_do_not_grow_either(labelers, registry_file, embedding_server):
    def warm_rebuild(count: int, start_aid: int) -> int:
        videos = make_videos(count, start_aid=start_aid)
        label(videos, labelers, POSITIVE)
        task = services.dataset_build_request(
            services.BuildRequest(aid_list=aids_of(videos), embedding_model_key=MODEL_KEY), enqueue=False
        ).task
        services.dataset_version_build(task_id=task.pk)
        task = services.dataset_build_request(
            services.BuildRequest(aid_list=aids_of(videos), embedding_model_key=MODEL_KEY), enqueue=False
        ).task
        with CaptureQueriesContext(connection) as queries:
            task = services.dataset_version_build(task_id=task.pk, clock=STOPPED_CLOCK)
        assert task.dataset_version.reused_embeddings == count
        return len(queries.captured_queries)

    assert warm_rebuild(30, start_aid=50_000) == warm_rebuild(600, start_aid=60_000)


# --- the Celery task ---------------------------------------------------------------------


def flaky_loader(monkeypatch, failures: int) -> list:
    from django.db import OperationalError

    real = build_job._load_videos
    calls = []

    def load(aids):
        calls.append(len(aids))
        if len(calls) <= failures:
            raise OperationalError("server closed the connection unexpectedly")
        return real(aids)

    monkeypatch.setattr(build_job, "_load_videos", load)
    return calls


def test_the_celery_task_retries_transient_database_errors(
    corpus, registry_file, embedding_server, celery_eager, monkeypatch
):
    from datasets.tasks import build_dataset_version

    task = pending_build(corpus)
    calls = flaky_loader(monkeypatch, failures=1)

    # throw=False: eager apply() then runs the retry itself (as a worker would, later).
    result = build_dataset_version.apply(args=[str(task.pk)], task_id="celery-id-1", throw=False)

    assert result.successful() and result.get()["status"] == "completed"

    task.refresh_from_db()
    assert len(calls) == 2
    assert task.status == DatasetTaskStatus.COMPLETED, task.error
    assert task.attempts == 2
    assert task.celery_task_id == "celery-id-1"


def test_the_retry_takes_over_even_when_the_release_could_not_reach_the_database(
    corpus, registry_file, embedding_server, celery_eager, monkeypatch
):
    from datasets.tasks import build_dataset_version

    task = pending_build(corpus)
    flaky_loader(monkeypatch, failures=1)
    # The release is skipped, as when the database is still down: the task stays "running" as attempt 1.
    monkeypatch.setattr(job_lifecycle, "_task_release_after_transient_error", lambda task_id, attempt: None)

    result = build_dataset_version.apply(args=[str(task.pk)], task_id="celery-id-2", throw=False)

    task.refresh_from_db()
    assert result.successful() and task.status == DatasetTaskStatus.COMPLETED, task.error
    assert task.attempts == 2


def test_a_redelivered_retry_message_does_not_take_over_a_live_run(corpus, registry_file):
    from django.utils import timezone

    task = pending_build(corpus)
    DatasetTask.objects.filter(pk=task.pk).update(
        status=DatasetTaskStatus.RUNNING, attempts=2, celery_task_id="celery-id-3", heartbeat_at=timezone.now()
    )

    with live_worker_holding_the_lock_of(task.pk):
        returned = services.dataset_version_build(task_id=task.pk, celery_task_id="celery-id-3", claim_attempt=1)

    assert (returned.status, returned.attempts) == (DatasetTaskStatus.RUNNING, 2)


def test_the_celery_task_gives_up_after_its_retries_and_fails_the_task(
    corpus, registry_file, embedding_server, celery_eager, monkeypatch
):
    from django.db import OperationalError

    from datasets.tasks import DB_RETRY_DELAYS_SECONDS, build_dataset_version

    task = pending_build(corpus)
    calls = flaky_loader(monkeypatch, failures=100)

    # The last allowed attempt (eager apply() cannot chain several retries itself).
    result = build_dataset_version.apply(args=[str(task.pk)], retries=len(DB_RETRY_DELAYS_SECONDS), throw=False)

    assert result.failed() and isinstance(result.result, OperationalError)
    task.refresh_from_db()
    assert len(calls) == 1
    assert task.status == DatasetTaskStatus.FAILED
    assert task.error.startswith("database unavailable after 3 retries: server closed the connection")
    assert task.dataset_version.status == DatasetVersionStatus.FAILED


def test_storing_a_chunk_another_build_already_stored_keeps_the_first_vectors(registry_file):
    model = services.embedding_models_sync()[MODEL_KEY]
    checksums = [text_checksum(f"text {index}") for index in range(3)]
    embedding_store._stage_prepare()
    first = embedding_store._embeddings_store(model.pk, checksums, np.ones((3, DIMENSIONS), dtype=np.float32), overwrite=False)
    assert (first.inserted, first.written, first.frozen_kept) == (3, 3, 0)

    again = embedding_store._embeddings_store(model.pk, checksums, np.zeros((3, DIMENSIONS), dtype=np.float32), overwrite=False)

    assert again.ids == first.ids
    assert (again.inserted, again.written) == (0, 0)  # another build stored them first: not counted as new
    assert all(np.array_equal(vector, np.ones(DIMENSIONS)) for vector in Embedding.objects.values_list("vector", flat=True))
    replaced = embedding_store._embeddings_store(
        model.pk, checksums[:1], np.zeros((1, DIMENSIONS), dtype=np.float32), overwrite=True
    )
    assert (replaced.inserted, replaced.written, replaced.frozen_kept) == (0, 1, 0)
    assert np.array_equal(Embedding.objects.get(pk=first.ids[checksums[0]]).vector, np.zeros(DIMENSIONS))
    assert Embedding.objects.count() == 3
