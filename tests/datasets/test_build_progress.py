"""A build's progress moves per embedding batch, not per stored chunk of 1,024 texts.

Nothing here depends on the machine's speed: the build runs on a clock the test moves,
and the fake OpenAI-compatible server answers the first batch and holds the rest until
the test has seen the task row (and the page) report that batch.
"""

from __future__ import annotations

import pytest

from datasets import services
from datasets.models import DatasetTask, DatasetTaskStatus
from datasets.services import embedding_store, job_lifecycle
from tests.datasets.conftest import MODEL_KEY, registry_toml
from tests.datasets.factories import NEGATIVE, POSITIVE, label, make_labelers, make_videos

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
BATCH = 8
TEXTS = 40  # 5 batches, well under one chunk (EMBED_CHUNK_TEXTS = 1024)


class ManualClock:
    """A build clock that stands still until the test moves it."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class TickingClock:
    """Each reading is one second after the previous one: every throttled write is due."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture
def small_batches(registry_file, embedding_server):
    """Batches of 8, one request at a time: the order of batches is the order of requests.
    The client's timeout is past the server's hang guard: a held batch ends when the test
    releases it, however slow the machine, or at the guard on a real hang."""
    toml = registry_toml(embedding_server, max_batch_size=BATCH, concurrency=1)
    registry_file.write_text(toml.replace("timeout_seconds = 5", "timeout_seconds = 120"), encoding="utf-8")
    return registry_file


@pytest.fixture
def pending_task(db, small_batches) -> DatasetTask:
    videos = make_videos(TEXTS, start_aid=70_000)
    label(videos, make_labelers(3), lambda index, video: POSITIVE if index % 2 else NEGATIVE)
    request = services.BuildRequest(aid_list=[video.aid for video in videos], embedding_model_key=MODEL_KEY)
    return services.dataset_build_request(request, enqueue=False).task


def record_written_rows(monkeypatch, on_write=None) -> list[dict]:
    """Every progress write of the build, as the row reads right after it (what a polling page sees)."""
    rows: list[dict] = []
    real_write = job_lifecycle.BuildProgress.write

    def write(progress, **extra):
        real_write(progress, **extra)
        row = DatasetTask.objects.values("current_step", "done", "total", "eta_seconds", "message").get(
            pk=progress.task_id
        )
        rows.append(row)
        if on_write is not None:
            on_write(row)

    monkeypatch.setattr(job_lifecycle.BuildProgress, "write", write)
    return rows


def test_a_build_under_one_chunk_writes_progress_and_an_eta_after_its_first_batch(
    pending_task, embedding_server, logged_in_client, monkeypatch
):
    clock = ManualClock()
    embedding_server.hold_requests(after=1)  # answer the first batch, hold the second
    seen_mid_build: list[tuple[dict, str]] = []

    def on_progress(snapshot):
        if snapshot["current_step"] != "generating_embeddings":
            return
        if snapshot["done"] == 0:
            clock.advance(4.0)  # the first batch takes 4 s of the build's clock
        elif snapshot["done"] < snapshot["total"]:
            clock.advance(1.0)  # past the write throttle: this batch's advance is written

    def on_write(row):
        if row["current_step"] == "generating_embeddings" and 0 < row["done"] < row["total"] and not seen_mid_build:
            block = logged_in_client.get(
                f"/datasets/versions/{pending_task.dataset_version_id}/progress", **HTMX
            ).content.decode()
            seen_mid_build.append((row, block))
            embedding_server.release_requests()

    rows = record_written_rows(monkeypatch, on_write)
    task = services.dataset_version_build(task_id=pending_task.pk, on_progress=on_progress, clock=clock)

    assert task.status == DatasetTaskStatus.COMPLETED, task.error
    assert embedding_server.batch_sizes == [BATCH] * (TEXTS // BATCH)
    (row, block), = seen_mid_build  # written while the second batch was still held at the server
    # ETA from the first batch: 4 s for 8 texts, 32 to go.
    assert row == {
        "current_step": "generating_embeddings", "done": BATCH, "total": TEXTS, "eta_seconds": 16.0,
        "message": f"Generated {BATCH}/{TEXTS} embeddings",
    }
    assert f"{BATCH} / {TEXTS}" in block and "about 16 s left" in block
    assert f"Generated {BATCH}/{TEXTS} embeddings" in block
    done = [written["done"] for written in rows if written["current_step"] == "generating_embeddings"]
    assert done[:2] == [0, BATCH] and done == sorted(done)


def test_progress_counts_texts_of_stored_chunks_plus_batches_of_the_chunk_being_embedded(
    pending_task, embedding_server, monkeypatch
):
    monkeypatch.setattr(embedding_store, "EMBED_CHUNK_TEXTS", 16)  # chunks of 16, 16, 8: two batches each at most
    rows = record_written_rows(monkeypatch)

    task = services.dataset_version_build(task_id=pending_task.pk, clock=TickingClock())

    assert task.status == DatasetTaskStatus.COMPLETED, task.error
    done = [row["done"] for row in rows if row["current_step"] == "generating_embeddings"]
    # Which batches the build's thread sees before their chunk ends depends on thread
    # timing; what it writes never does: counts in steps of a batch, never backwards,
    # never past the total, ending with every text stored.
    assert done == sorted(done) and done[-1] == TEXTS
    assert {0, 16, 32, 40} <= set(done) <= set(range(0, TEXTS + 1, BATCH))


def test_flush_writes_an_advance_the_throttle_held_back_once_a_write_is_due(
    pending_task, django_assert_num_queries
):
    DatasetTask.objects.filter(pk=pending_task.pk).update(status=DatasetTaskStatus.RUNNING, attempts=1)
    clock = ManualClock()
    progress = job_lifecycle.BuildProgress(pending_task.pk, 1, None, clock=clock)
    progress.step("generating_embeddings", total=TEXTS)

    with django_assert_num_queries(0):
        progress.advance(BATCH)  # right after the step's write: throttled
        progress.flush()  # still not due
    assert DatasetTask.objects.get(pk=pending_task.pk).done == 0

    clock.advance(job_lifecycle.PROGRESS_MIN_INTERVAL_SECONDS)
    with django_assert_num_queries(1):
        progress.flush()
        progress.flush()  # nothing left to write
    assert DatasetTask.objects.get(pk=pending_task.pk).done == BATCH
