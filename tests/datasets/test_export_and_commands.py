"""Export (Parquet, NPZ), the management commands, deletion and cleanup."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import numpy as np
import pyarrow.parquet as pq
import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from datasets import services
from datasets.models import (
    DatasetTask,
    DatasetTaskStatus,
    DatasetVersion,
    DatasetVersionItem,
    DatasetVersionStatus,
    Embedding,
)
from datasets.selectors import (
    as_uuid,
    dataset_statistics,
    dataset_task_counts,
    dataset_task_list,
    dataset_version_arrays,
)
from datasets.text_composition import compose_video_text
from tests.datasets.conftest import DIMENSIONS, MODEL_KEY
from tests.datasets.factories import NEGATIVE, POSITIVE, label, make_labelers, make_videos

pytestmark = pytest.mark.django_db


@pytest.fixture
def videos(db):
    users = make_labelers(2)
    positive = make_videos(12, start_aid=500)
    negative = make_videos(8, start_aid=900)
    label(positive, users, POSITIVE)
    label(negative, users, NEGATIVE)
    return positive + negative


def pending_build(aids: list[int]) -> DatasetTask:
    """A build of ``aids`` requested and left pending (not queued)."""
    request = services.BuildRequest(embedding_model_key=MODEL_KEY, aid_list=aids)
    return services.dataset_build_request(request, enqueue=False).task


@pytest.fixture
def ready_version(videos, registry_file, embedding_server) -> DatasetVersion:
    task = pending_build([video.aid for video in videos])
    task = services.dataset_version_build(task_id=task.pk)
    assert task.status == DatasetTaskStatus.COMPLETED, task.error
    return DatasetVersion.objects.get(pk=task.dataset_version_id)


def test_parquet_export_round_trips(ready_version, videos, embedding_server, tmp_path):
    with CaptureQueriesContext(connection) as queries:
        path = services.dataset_version_export(ready_version, format="parquet", path=tmp_path / "out" / "v.parquet")

    assert len(queries.captured_queries) == 3  # version row, vectors COPY, titles
    table = pq.read_table(path)
    assert table.schema.field("vector").type.list_size == DIMENSIONS
    assert str(table.schema.field("vector").type.value_type) == "float"
    metadata = {key.decode(): value.decode() for key, value in table.schema.metadata.items()}
    assert metadata["cvsa.dataset_version"] == str(ready_version.pk)
    assert metadata["cvsa.content_hash"] == ready_version.content_hash
    assert metadata["cvsa.embedding_model"] == MODEL_KEY
    data = table.to_pydict()
    by_aid = {video.aid: video for video in videos}
    assert data["aid"] == sorted(by_aid)
    for aid, label_value, title, vector in zip(data["aid"], data["label"], data["title"], data["vector"]):
        video = by_aid[aid]
        assert label_value is (aid < 900)
        assert title == video.title
        text = compose_video_text(title=video.title, description=video.description, tags=video.tags)
        np.testing.assert_array_equal(np.array(vector, dtype=np.float32), embedding_server.expected_embedding(text))
    splits = dict(DatasetVersionItem.objects.filter(version=ready_version).values_list("video__aid", "split"))
    assert data["split"] == [splits[aid] for aid in data["aid"]]


def test_npz_export_round_trips(ready_version, tmp_path):
    path = services.dataset_version_export(ready_version.pk, format="npz", path=tmp_path / "v.npz")

    assert path.name == "v.npz"
    with np.load(path) as archive:
        assert set(archive.files) == {"X", "y", "aid", "split"}
        arrays = dataset_version_arrays(ready_version.pk)
        np.testing.assert_array_equal(archive["X"], arrays.X)
        np.testing.assert_array_equal(archive["y"], arrays.y)
        np.testing.assert_array_equal(archive["aid"], arrays.aids)
        assert archive["split"].tolist() == arrays.splits.tolist()
        assert archive["X"].dtype == np.float32 and archive["X"].shape == (20, DIMENSIONS)
        assert int(archive["y"].sum()) == 12


def test_unready_versions_and_unknown_formats_are_refused(videos, registry_file, tmp_path):
    task = pending_build([video.aid for video in videos])
    with pytest.raises(ValidationError, match="building, not ready"):
        services.dataset_version_export(task.dataset_version_id, format="npz", path=tmp_path / "x.npz")
    with pytest.raises(ValidationError, match="unknown export format 'csv'"):
        services.dataset_version_export(task.dataset_version_id, format="csv", path=tmp_path / "x.csv")


def test_export_dataset_command(ready_version, tmp_path):
    output = tmp_path / "cmd.parquet"
    call_command("export_dataset", str(ready_version.pk), "--format", "parquet", "--output", str(output))
    assert pq.read_table(output).num_rows == 20

    with pytest.raises(CommandError, match="not found"):
        call_command("export_dataset", "00000000-0000-0000-0000-000000000000", "--output", str(output))


def test_build_dataset_command_sync_with_an_aids_file(videos, registry_file, embedding_server, tmp_path, capsys):
    aids_file = tmp_path / "aids.txt"
    aids_file.write_text("# chosen by hand\n" + "\n".join(f"av{video.aid}" for video in videos[:15]) + "\n")

    call_command("build_dataset", "--aids-file", str(aids_file), "--model", MODEL_KEY,
                 "--description", "from cli", "--sync", "--split", "0.6,0.2,0.2")

    version = DatasetVersion.objects.get()
    assert version.status == DatasetVersionStatus.READY
    assert version.total_records == 15
    assert version.description == "from cli"
    assert version.selection["strategy"] == "aid_list"
    assert "ready: 15 records" in capsys.readouterr().out


def test_build_dataset_command_queues_an_aids_file_once_per_aid(videos, registry_file, tmp_path, capsys):
    aids_file = tmp_path / "aids.json"
    aids_file.write_text(json.dumps([videos[0].aid, videos[1].aid, videos[0].aid]))

    call_command("build_dataset", "--aids-file", str(aids_file), "--model", MODEL_KEY)

    task = DatasetTask.objects.get()
    version = task.dataset_version
    assert task.status == DatasetTaskStatus.PENDING and task.celery_task_id  # queued on commit
    assert version.requested_aids == [videos[0].aid, videos[1].aid]
    assert version.selection == {"strategy": "aid_list", "source": str(aids_file)}
    assert version.seed == services.DEFAULT_SEED
    assert (version.train_ratio, version.val_ratio, version.test_ratio) == pytest.approx(services.DEFAULT_SPLIT_RATIOS)
    assert f"Queued build task {task.pk} for dataset version {version.pk} (2 aids)" in capsys.readouterr().out


def test_build_dataset_command_queues_a_sampled_build(
    videos, registry_file, embedding_server, celery_eager, django_capture_on_commit_callbacks, capsys
):
    with django_capture_on_commit_callbacks(execute=True):
        call_command("build_dataset", "--strategy", "random", "--limit", "5", "--sample-seed", "3")

    task = DatasetTask.objects.get()
    assert task.status == DatasetTaskStatus.COMPLETED
    assert task.dataset_version.total_records == 5
    assert task.dataset_version.selection["strategy"] == "random"
    assert task.dataset_version.selection["limit"] == 5
    assert f"Queued build task {task.pk}" in capsys.readouterr().out


def test_build_dataset_command_reports_bad_input(videos, registry_file, tmp_path):
    aids_file = tmp_path / "aids.json"
    aids_file.write_text(json.dumps([123456789]))
    with pytest.raises(CommandError, match="aid_list: 1 aid"):
        call_command("build_dataset", "--aids-file", str(aids_file), "--sync")
    with pytest.raises(CommandError, match="embedding_model: Invalid embedding model: 'nope'"):
        call_command("build_dataset", "--strategy", "all", "--model", "nope", "--sync")
    with pytest.raises(CommandError, match="unknown filter"):
        call_command("build_dataset", "--strategy", "all", "--filter", "colour=red", "--sync")
    assert not DatasetVersion.objects.exists()


def test_build_dataset_command_resumes_a_failed_build(
    videos, registry_file, embedding_server, celery_eager, django_capture_on_commit_callbacks, capsys
):
    task = pending_build([video.aid for video in videos])
    embedding_server.always_fail_with = 500
    assert services.dataset_version_build(task_id=task.pk).status == DatasetTaskStatus.FAILED
    embedding_server.always_fail_with = None

    with django_capture_on_commit_callbacks(execute=True):
        call_command("build_dataset", "--resume", str(task.pk))

    task.refresh_from_db()
    assert task.status == DatasetTaskStatus.COMPLETED, task.error
    assert task.dataset_version.status == DatasetVersionStatus.READY
    assert f"Resumed build task {task.pk}" in capsys.readouterr().out


def test_build_dataset_command_resume_in_process_and_its_errors(videos, registry_file, embedding_server, capsys):
    task = pending_build([video.aid for video in videos])
    with pytest.raises(CommandError, match=f"task_id: task {task.pk} is pending; only failed or cancelled"):
        call_command("build_dataset", "--resume", str(task.pk))
    services.dataset_task_cancel(task.pk)

    call_command("build_dataset", "--resume", str(task.pk), "--sync")

    assert DatasetTask.objects.get(pk=task.pk).status == DatasetTaskStatus.COMPLETED
    assert "ready: 20 records" in capsys.readouterr().out
    with pytest.raises(CommandError, match="--resume: no task 00000000-0000-0000-0000-000000000000"):
        call_command("build_dataset", "--resume", "00000000-0000-0000-0000-000000000000")
    with pytest.raises(CommandError, match="task_id: not a valid id: 'nope'"):
        call_command("build_dataset", "--resume", "nope")


# --- deletion and cleanup -------------------------------------------------------------


def age_versions(queryset, created_at) -> None:
    """Move ``created_at`` back, ready versions included: the database refuses any UPDATE
    of a ready version (trigger ``dataset_version_ready_immutable``), so the test turns
    the trigger off for this one statement (inside the test's transaction)."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no pending (deferred FK) events: ALTER TABLE may run
        cursor.execute("ALTER TABLE datasets_datasetversion DISABLE TRIGGER dataset_version_ready_immutable")
        try:
            queryset.update(created_at=created_at)
        finally:
            cursor.execute("ALTER TABLE datasets_datasetversion ENABLE TRIGGER dataset_version_ready_immutable")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def test_delete_removes_the_version_and_its_items_but_keeps_embeddings(ready_version):
    task = DatasetTask.objects.get(dataset_version=ready_version)

    services.dataset_version_delete(str(ready_version.pk))

    assert not DatasetVersion.objects.exists()
    assert not DatasetVersionItem.objects.exists()
    assert Embedding.objects.count() == 20
    task.refresh_from_db()
    assert task.dataset_version_id is None
    with pytest.raises(DatasetVersion.DoesNotExist):
        services.dataset_version_delete(ready_version.pk)


def test_a_version_being_built_cannot_be_deleted(videos, registry_file):
    task = pending_build([video.aid for video in videos])
    with pytest.raises(ValidationError, match="being built"):
        services.dataset_version_delete(task.dataset_version_id)


def test_tasks_cleanup_removes_only_old_finished_tasks(ready_version, videos, registry_file):
    old_done = DatasetTask.objects.get()
    pending = pending_build([videos[0].aid])
    DatasetTask.objects.filter(pk=old_done.pk).update(completed_at=timezone.now() - timedelta(hours=30))
    DatasetTask.objects.filter(pk=pending.pk).update(created_at=timezone.now() - timedelta(days=3))

    assert services.dataset_tasks_cleanup(max_age_hours=24) == 1
    assert list(DatasetTask.objects.values_list("pk", flat=True)) == [pending.pk]
    assert DatasetVersion.objects.filter(pk=ready_version.pk).exists()
    with pytest.raises(ValidationError, match="max_age_hours"):
        services.dataset_tasks_cleanup(max_age_hours=-1)


def test_versions_cleanup_removes_old_failed_builds_and_keeps_ready_ones(ready_version, videos, registry_file):
    failed = pending_build([videos[0].aid])
    DatasetTask.objects.filter(pk=failed.pk).update(status=DatasetTaskStatus.FAILED)
    DatasetVersion.objects.filter(pk=failed.dataset_version_id).update(status=DatasetVersionStatus.FAILED)
    recent_failed = pending_build([videos[1].aid])
    DatasetTask.objects.filter(pk=recent_failed.pk).update(status=DatasetTaskStatus.FAILED)
    DatasetVersion.objects.filter(pk=recent_failed.dataset_version_id).update(status=DatasetVersionStatus.FAILED)
    long_ago = timezone.now() - timedelta(days=40)
    age_versions(DatasetVersion.objects.exclude(pk=recent_failed.dataset_version_id), long_ago)

    assert services.dataset_versions_cleanup(max_age_days=30) == {"removed": 1, "kept_in_use": 0}
    assert set(DatasetVersion.objects.values_list("pk", flat=True)) == {
        ready_version.pk,
        recent_failed.dataset_version_id,
    }
    assert services.dataset_versions_cleanup(max_age_days=30, include_ready=True) == {"removed": 1, "kept_in_use": 0}
    assert list(DatasetVersion.objects.values_list("pk", flat=True)) == [recent_failed.dataset_version_id]


def test_task_and_dataset_listings(ready_version, videos, registry_file):
    pending_build([videos[0].aid])

    counts = dataset_task_counts()
    assert counts == {"total_count": 2, "pending_count": 1, "running_count": 0, "completed_count": 1,
                      "failed_count": 0, "cancelled_count": 0}
    assert [task.status for task in dataset_task_list(limit=50)] == ["pending", "completed"]
    assert [task.status for task in dataset_task_list(status="completed")] == ["completed"]
    with pytest.raises(ValidationError, match="unknown task status"):
        dataset_task_list(status="done")
    stats = dataset_statistics()
    assert stats["total_datasets"] == 2 and stats["valid_datasets"] == 1 and stats["total_records"] == 20
    progress = DatasetTask.objects.get(status="completed").progress_dict()
    assert progress["percentage"] == 100.0 and progress["current_step"] == "completed"
    assert progress["completed_steps"] == progress["total_steps"] == 6


def test_ids_are_read_by_one_public_function_that_names_the_field():
    known = uuid.uuid4()
    assert as_uuid(known, "task_id") is known
    assert as_uuid(str(known), "task_id") == known
    with pytest.raises(ValidationError) as raised:
        as_uuid("nope", "dataset_id")
    assert raised.value.message_dict == {"dataset_id": ["not a valid id: 'nope'"]}
