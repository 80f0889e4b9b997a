"""A build whose worker process is killed (SIGKILL, as the OOM killer does) completes by
itself, and a worker's own timer sweeps: real Celery workers (prefork: the build runs in
a child process) against the test database and broker.
"""

from __future__ import annotations

import os
import signal
import threading
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from datasets import services
from datasets.models import DatasetTask, DatasetTaskStatus, DatasetVersionStatus, Embedding
from datasets.services.embedding_store import EMBED_CHUNK_TEXTS
from datasets.tasks import build_dataset_version
from labeling.models import Label, Video
from tests.datasets.conftest import DIMENSIONS, EMBEDDING_API_KEY, EMBEDDING_KEY_ENV, MODEL_KEY, registry_toml
from tests.datasets.factories import NEGATIVE, POSITIVE, label, make_labelers, make_videos
from tests.support.celery_worker import running_worker
from tests.support.openai_embedding_server import OpenAIEmbeddingServer
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

DEADLINE_SECONDS = 180  # only a real hang reaches it
BATCH = 256


class GatedEmbeddingServer(OpenAIEmbeddingServer):
    """Answers the first ``open_requests`` requests, then holds every later one until
    ``release()``; a held request is then dropped (its client is gone by then)."""

    def __init__(self, *, open_requests: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.open_requests = open_requests
        self.released = threading.Event()
        self._seen = 0

    def release(self) -> None:
        self.released.set()

    def _next_fault(self):
        with self._lock:
            self._seen += 1
            held = self._seen > self.open_requests and not self.released.is_set()
        if held:
            self.released.wait(DEADLINE_SECONDS)
            return "disconnect"
        return super()._next_fault()


def wait_for_the_end_of(task: DatasetTask, what: str) -> DatasetTask:
    """The task's row once it has completed or failed."""
    return wait_until(
        lambda: DatasetTask.objects.filter(
            pk=task.pk, status__in=[DatasetTaskStatus.COMPLETED, DatasetTaskStatus.FAILED]
        ).first(),
        what,
    )


def child_pid_of(worker: "subprocess.Popen", task: DatasetTask) -> int:  # noqa: F821
    """The pid the task row names, checked to be a child of the worker this test started."""
    pid = int(task.worker.rsplit(":", 1)[1])
    parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    assert parent == worker.pid, f"pid {pid} is not a child of the test's worker {worker.pid}"
    return pid


def test_a_build_whose_worker_child_is_killed_completes_by_itself_reusing_stored_embeddings(
    tmp_path, monkeypatch, settings
):
    total = EMBED_CHUNK_TEXTS + 76  # one full chunk is stored before the kill, 76 texts are not
    with GatedEmbeddingServer(
        open_requests=EMBED_CHUNK_TEXTS // BATCH, dimensions=DIMENSIONS, api_key=EMBEDDING_API_KEY
    ) as server:
        registry = tmp_path / "embedding_models.toml"
        registry.write_text(
            registry_toml(server, max_batch_size=BATCH, concurrency=4).replace(
                "timeout_seconds = 5", f"timeout_seconds = {DEADLINE_SECONDS}"
            ),
            encoding="utf-8",
        )
        monkeypatch.setenv(EMBEDDING_KEY_ENV, EMBEDDING_API_KEY)
        settings.CVSA_EMBEDDING_MODELS_FILE = registry
        labelers = make_labelers(1)
        videos = make_videos(total, start_aid=800_000)
        label(videos, labelers, lambda index, video: POSITIVE if index % 2 else NEGATIVE)
        request = services.BuildRequest(aid_list=[video.aid for video in videos], embedding_model_key=MODEL_KEY)
        task = services.dataset_build_request(request, enqueue=False).task
        queue = f"takeover-{uuid.uuid4().hex[:8]}"
        worker_env = {"CVSA_EMBEDDING_MODELS_FILE": str(registry), EMBEDDING_KEY_ENV: EMBEDDING_API_KEY}
        with running_worker(queues=queue, name="takeover", env=worker_env) as worker:
            build_dataset_version.apply_async(args=[str(task.pk)], queue=queue, task_id=str(uuid.uuid4()))

            # The first chunk is stored; the second is being embedded (held by the server).
            wait_until(lambda: Embedding.objects.count() >= EMBED_CHUNK_TEXTS, "the first chunk to be stored")
            task.refresh_from_db()
            assert (task.status, task.worker_starts) == (DatasetTaskStatus.RUNNING, 1)
            killed = child_pid_of(worker, task)
            os.kill(killed, signal.SIGKILL)
            server.release()

            # Celery redelivers the message; it takes the build over and resumes it.
            finished = wait_for_the_end_of(task, "the build to finish")

    assert finished.status == DatasetTaskStatus.COMPLETED, finished.error
    assert finished.worker_starts == 2
    assert int(finished.worker.rsplit(":", 1)[1]) != killed
    version = finished.dataset_version
    assert version.status == DatasetVersionStatus.READY
    assert version.total_records == total
    # The second attempt embedded only what the first had not stored.
    assert (version.new_embeddings, version.reused_embeddings) == (76, EMBED_CHUNK_TEXTS)
    answered = [request for request in server.requests if request.status == 200]
    assert sum(request.batch_size for request in answered) == total
    assert Embedding.objects.count() == total


def test_any_worker_sweeps_and_takes_over_a_job_whose_heartbeat_stopped(settings):
    """No beat process: a worker's own timer finds the dead job and re-queues it, and a
    worker builds it (the project's local model, as in ``test_build_with_real_worker``)."""
    labeler = get_user_model().objects.create_user("sweep-labeler")
    videos = Video.objects.bulk_create([Video(aid=810_000 + n, title=f"视频 {n}", tags="测试") for n in range(10)])
    Label.objects.bulk_create([Label(video=video, user=labeler, value=bool(n % 2)) for n, video in enumerate(videos)])
    request = services.BuildRequest(aid_list=[video.aid for video in videos], embedding_model_key="local-default")
    task = services.dataset_build_request(request, enqueue=False).task
    DatasetTask.objects.filter(pk=task.pk).update(
        status=DatasetTaskStatus.RUNNING, attempts=1, worker_starts=1,
        heartbeat_at=timezone.now() - services.stale_after() - timedelta(minutes=1),
    )

    with running_worker(name="sweeper", env={"CVSA_SWEEP_INTERVAL_SECONDS": "1"}):
        finished = wait_for_the_end_of(task, "the swept build to finish")

    assert finished.status == DatasetTaskStatus.COMPLETED, finished.error
    assert finished.worker_starts == 2
    assert finished.dataset_version.total_records == 10
