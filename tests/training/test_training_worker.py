"""Training runs through real Celery workers (prefork: the run trains in a child
process, as in production) against the test database and broker."""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import pytest
from django.db.models import Count

from experiments import services as tracking
from experiments.models import Artifact, MetricPoint, Run, RunStatus
from tests.experiments.factories import ExperimentFactory
from tests.support.celery_worker import running_worker
from tests.support.waiting import wait_until
from tests.training.factories import separable_dataset_version
from training import services
from training.services import queueing
from training.tasks import train_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

FINISHED = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


def wait_for_the_end_of(run: Run, what: str) -> Run:
    return wait_until(lambda: Run.objects.filter(pk=run.pk, status__in=FINISHED).first(), what, interval=0.2)


def test_a_real_worker_trains_a_queued_run_to_success(celery_worker_process):
    experiment = ExperimentFactory(default_dataset_version=separable_dataset_version(rows=60, seed=2))

    run = services.run_queue(
        experiment_id=experiment.pk, architecture_key="mlp",
        hyperparameters={"epochs": 5, "batch_size": 16, "early_stopping_patience": 0},
    )
    assert run.status == RunStatus.QUEUED

    finished = wait_for_the_end_of(run, "the run to finish")

    assert finished.status == RunStatus.SUCCEEDED, finished.error
    assert finished.started_at <= finished.finished_at and finished.worker_starts == 1
    # One metric batch per epoch: every point of an epoch carries the batch's wall time.
    per_epoch = (MetricPoint.objects.filter(run=run, step__lte=5, key__in=["train_loss", "val_loss", "val_f1"])
                 .values("step").annotate(times=Count("wall_time", distinct=True), keys=Count("key")))
    assert sorted((row["step"], row["times"], row["keys"]) for row in per_epoch) == [(s, 1, 3) for s in range(1, 6)]
    for artifact in Artifact.objects.filter(run=run):
        assert tracking.file_sha256(tracking.artifact_file(run.pk, artifact.path)) == (artifact.size, artifact.sha256)
    assert {artifact.path for artifact in Artifact.objects.filter(run=run)} == {
        services.WEIGHTS_PATH, "predictions.npz", "run.log"
    }
    summaries = {summary.key: summary.latest_value for summary in finished.metric_summaries.all()}
    assert 0.5 < summaries["test_roc_auc"] <= 1.0 and 0.0 <= summaries["test_f1"] <= 1.0
    assert finished.reproducibility["worker"].rsplit(":", 1)[1] != str(os.getpid())


def child_pid_of(worker, run: Run) -> int:
    """The pid the run row names, checked to be a child of the worker this test started."""
    pid = int(run.worker.rsplit(":", 1)[1])
    parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    assert parent == worker.pid, f"pid {pid} is not a child of the test's worker {worker.pid}"
    return pid


def test_a_run_whose_worker_child_is_killed_is_taken_over_then_cancelled(monkeypatch):
    """SIGKILL (as the OOM killer does) mid-run: Celery redelivers the message, a new
    child takes the run over at once (the dead one's lock is free) and trains it from
    the start; the run never stays "running" without a live worker. A cancel then stops
    the new worker at its next check."""
    monkeypatch.setattr(queueing, "run_enqueue", lambda *args, **kwargs: True)  # this test sends the message itself
    experiment = ExperimentFactory(default_dataset_version=separable_dataset_version(rows=400, dimensions=32))
    run = services.run_queue(
        experiment_id=experiment.pk, architecture_key="mlp",
        hyperparameters={"epochs": 1000, "batch_size": 4, "early_stopping_patience": 0},
    )
    queue = f"training-takeover-{uuid.uuid4().hex[:8]}"
    with running_worker(queues=queue, name="training-takeover") as worker:
        train_run.apply_async(args=[run.pk], queue=queue, task_id=run.celery_task_id)
        wait_until(lambda: MetricPoint.objects.filter(run=run, key="train_loss").exists(), "the first epoch")
        run.refresh_from_db()
        assert (run.status, run.worker_starts) == (RunStatus.RUNNING, 1)
        killed = child_pid_of(worker, run)
        os.kill(killed, signal.SIGKILL)

        taken_over = wait_until(
            lambda: Run.objects.filter(pk=run.pk, worker_starts=2, status=RunStatus.RUNNING)
            .exclude(worker=run.worker).first(),
            "another worker child to take the run over",
        )
        assert int(taken_over.worker.rsplit(":", 1)[1]) != killed

        def new_attempt_trained_an_epoch() -> bool:
            log = tracking.artifact_file(run.pk, "run.log").read_text()
            return "epoch 1:" in log.partition("taken over after its worker died")[2]

        wait_until(new_attempt_trained_an_epoch, "an epoch of the new attempt")

        tracking.run_cancel(run.pk)
        cancelled = wait_for_the_end_of(run, "the run to end")
        # The worker noticed: it wrote its last log line and released the run.
        wait_until(lambda: "cancelled or taken over" in tracking.artifact_file(run.pk, "run.log").read_text(),
                   "the worker to stop")

    assert cancelled.status == RunStatus.CANCELLED
    log = tracking.artifact_file(run.pk, "run.log").read_text()
    assert "attempt 2 of" in log and "taken over after its worker died" in log
    assert not Artifact.objects.filter(run=run, path=services.WEIGHTS_PATH).exists()
