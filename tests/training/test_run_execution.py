"""Training runs in this process (``services.run_train``): what a run writes, how it
ends, and how its status stays true when it is cancelled, fails, or is run twice."""

from __future__ import annotations

import pytest
import torch

from core import jobs
from experiments import services as tracking
from experiments.models import Artifact, MetricPoint, Run, RunMetricSummary, RunStatus
from tests.experiments.factories import ExperimentFactory
from tests.training.factories import separable_dataset_version
from training import services
from training.trainer import EpochMetrics

pytestmark = pytest.mark.django_db

EPOCH_KEYS = {"train_loss", "val_loss", "val_f1", "val_accuracy", "val_roc_auc", "learning_rate", "epoch_seconds"}


@pytest.fixture
def version():
    return separable_dataset_version(rows=60, dimensions=8, seed=3)


@pytest.fixture
def experiment(version):
    return ExperimentFactory(default_dataset_version=version)


def queue(experiment, **hyperparameters) -> Run:
    return services.run_queue(
        experiment_id=experiment.pk, architecture_key=hyperparameters.pop("architecture", "mlp"),
        hyperparameters={"epochs": 4, "batch_size": 16, "early_stopping_patience": 0, **hyperparameters},
    )


def test_a_run_trains_logs_one_batch_per_epoch_and_succeeds(experiment, tmp_path, settings):
    settings.CVSA_ARTIFACTS_DIR = tmp_path
    run = queue(experiment, seed=7)
    epochs: list[EpochMetrics] = []

    finished = services.run_train(run.pk, on_epoch=epochs.append)

    assert finished.status == RunStatus.SUCCEEDED, finished.error
    assert finished.started_at <= finished.finished_at and finished.worker_starts == 1
    assert [epoch.epoch for epoch in epochs] == [1, 2, 3, 4]
    for step in (1, 2, 3, 4):
        assert set(MetricPoint.objects.filter(run=run, step=step).exclude(
            key__startswith="test_").exclude(key__startswith="final_").exclude(key__in=["threshold", "best_epoch"])
            .values_list("key", flat=True)) == EPOCH_KEYS
    summaries = {summary.key: summary.latest_value for summary in RunMetricSummary.objects.filter(run=run)}
    for key in ("test_f1", "test_roc_auc", "test_pr_auc", "test_accuracy", "final_val_f1"):
        assert 0.0 <= summaries[key] <= 1.0
    assert summaries["test_roc_auc"] > 0.9  # separable vectors
    assert summaries["test_tn"] + summaries["test_fp"] + summaries["test_fn"] + summaries["test_tp"] == 12
    weights = Artifact.objects.get(run=run, path=services.WEIGHTS_PATH)
    size, sha256 = tracking.file_sha256(tracking.artifact_file(run.pk, weights.path))
    assert (weights.size, weights.sha256) == (size, sha256)
    saved = torch.load(tracking.artifact_file(run.pk, weights.path), weights_only=True)
    assert saved["config"]["architecture"] == "mlp" and saved["input_dimensions"] == 8
    log = tracking.artifact_file(run.pk, tracking.RUN_LOG_PATH).read_text()
    assert "epoch 4:" in log and "finished: 4 epoch(s)" in log
    record = finished.reproducibility
    assert record["dataset_content_hash"] == experiment.default_dataset_version.content_hash
    assert record["hyperparameters"]["seed"] == 7 and record["seed"] == 7
    assert record["device"] == "cpu" and record["deterministic"] is True
    for key in ("code_version", "python", "torch", "numpy", "scikit_learn", "device_name", "duration_seconds",
                "started_at", "finished_at", "embedding_model"):
        assert record[key] not in (None, ""), key


def test_two_cpu_runs_with_the_same_seed_give_identical_metrics(experiment, tmp_path, settings):
    settings.CVSA_ARTIFACTS_DIR = tmp_path
    first = services.run_train(queue(experiment, seed=11).pk)
    second = services.run_train(queue(experiment, seed=11).pk)

    def values(run):
        return sorted(MetricPoint.objects.filter(run=run).exclude(key="epoch_seconds").values_list("key", "step", "value"))

    assert first.status == second.status == RunStatus.SUCCEEDED
    assert values(first) == values(second) and len(values(first)) > 20
    sha = {run.pk: Artifact.objects.get(run=run, path=services.WEIGHTS_PATH).sha256 for run in (first, second)}
    assert sha[first.pk] == sha[second.pk]


def test_a_cancel_stops_the_run_at_the_next_check_and_keeps_its_curves(experiment, tmp_path, settings):
    settings.CVSA_ARTIFACTS_DIR = tmp_path
    run = queue(experiment, epochs=50)

    def cancel_after_second_epoch(metrics: EpochMetrics) -> None:
        if metrics.epoch == 2:
            tracking.run_cancel(run.pk)

    finished = services.run_train(run.pk, on_epoch=cancel_after_second_epoch)

    assert finished.status == RunStatus.CANCELLED and finished.error == ""
    assert set(MetricPoint.objects.filter(run=run).values_list("step", flat=True)) == {1, 2}
    assert not Artifact.objects.filter(run=run, path=services.WEIGHTS_PATH).exists()
    assert "cancelled or taken over" in tracking.artifact_file(run.pk, tracking.RUN_LOG_PATH).read_text()


def test_a_cancelled_or_finished_run_is_not_run_again(experiment, tmp_path, settings):
    settings.CVSA_ARTIFACTS_DIR = tmp_path
    cancelled = queue(experiment)
    tracking.run_cancel(cancelled.pk)
    assert services.run_train(cancelled.pk).status == RunStatus.CANCELLED
    assert not MetricPoint.objects.filter(run=cancelled).exists()

    done = services.run_train(queue(experiment).pk)
    points = MetricPoint.objects.filter(run=done).count()
    again = services.run_train(done.pk)  # a duplicate message
    assert again.status == RunStatus.SUCCEEDED and again.attempts == done.attempts
    assert MetricPoint.objects.filter(run=done).count() == points


def test_a_diverging_run_fails_with_the_reason_in_its_error_and_log(experiment, tmp_path, settings, monkeypatch):
    settings.CVSA_ARTIFACTS_DIR = tmp_path
    from training.services import execution

    def diverge(*args, **kwargs):
        raise execution.TrainingError("the training loss became nan at epoch 1: lower the learning rate")

    monkeypatch.setattr(execution, "train", diverge)
    run = services.run_train(queue(experiment).pk)

    assert run.status == RunStatus.FAILED
    assert "lower the learning rate" in run.error
    assert "failed: the training loss became nan" in tracking.artifact_file(run.pk, tracking.RUN_LOG_PATH).read_text()


def test_a_run_whose_worker_died_is_taken_over_and_trains_from_the_start(experiment, tmp_path, settings):
    """The first worker claimed the run and logged an epoch, then died (its lock is free)."""
    settings.CVSA_ARTIFACTS_DIR = tmp_path
    run = queue(experiment, seed=5)
    claim = jobs.job_claim(services.RUN_JOB, run.pk)
    jobs.job_lock_release(services.RUN_JOB, run.pk)  # the dead worker's connection closed
    tracking.run_metrics_log(run.pk, [("train_loss", 1, 123.0)], expected_attempt=claim.attempt)

    finished = services.run_train(run.pk)

    assert finished.status == RunStatus.SUCCEEDED and finished.worker_starts == 2
    assert MetricPoint.objects.get(run=run, key="train_loss", step=1).value != 123.0
    assert "taken over after its worker died" in tracking.artifact_file(run.pk, tracking.RUN_LOG_PATH).read_text()


def test_the_last_allowed_takeover_fails_the_run_instead(experiment, tmp_path, settings):
    settings.CVSA_ARTIFACTS_DIR = tmp_path
    settings.CVSA_JOB_MAX_ATTEMPTS = 1
    run = queue(experiment)
    jobs.job_claim(services.RUN_JOB, run.pk)
    jobs.job_lock_release(services.RUN_JOB, run.pk)

    finished = services.run_train(run.pk)

    assert finished.status == RunStatus.FAILED
    assert "attempts are used up" in finished.error
