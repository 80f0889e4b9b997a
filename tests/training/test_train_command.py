"""``manage.py train``: the schema's validation (every bad field listed, nothing
written), training in process with ``--sync``, and following a worker's run."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from experiments import services as tracking
from experiments.models import Experiment, Param, Run, RunStatus
from tests.experiments.factories import ExperimentFactory
from tests.training.factories import separable_dataset_version
from training.management.commands import train as train_command


def train(*args: str) -> str:
    out = io.StringIO()
    call_command("train", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.fixture
def version(db):
    return separable_dataset_version(rows=60, dimensions=8, seed=1)


@pytest.fixture(autouse=True)
def artifacts_dir(settings, tmp_path):
    """Run ids restart in every test database: each test writes its runs' files apart."""
    settings.CVSA_ARTIFACTS_DIR = tmp_path / "artifacts"
    return settings.CVSA_ARTIFACTS_DIR


# --- bad input --------------------------------------------------------------------


@pytest.mark.django_db
def test_bad_assignments_name_every_field_and_write_nothing(version):
    with pytest.raises(CommandError) as raised:
        train("--dataset-version", str(version.pk), "--arch", "mlp",
              "--set", "lr=5", "--set", "epochs=abc", "--set", "dropuot=0.2")

    message = str(raised.value)
    assert "learning_rate: must be between 1e-06 and 1 (got 5)" in message
    assert "epochs: must be an integer (got 'abc')" in message
    assert "dropuot: unknown hyperparameter; did you mean 'dropout'?" in message
    assert not Run.objects.exists() and not Param.objects.exists()
    assert not Experiment.objects.exists()  # not even the default experiment


@pytest.mark.django_db
def test_a_malformed_assignment_is_refused(version):
    with pytest.raises(CommandError, match="expected name=value"):
        train("--dataset-version", str(version.pk), "--arch", "mlp", "--set", "epochs")
    assert not Experiment.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(("args", "expected"), [
    (("--arch", "transformer"), "architecture: unknown architecture 'transformer'"),
    (("--arch", "mlp", "--dataset-version", "00000000-0000-0000-0000-000000000000"),
     "dataset_version_id: dataset version 00000000-0000-0000-0000-000000000000 does not exist"),
    (("--arch", "mlp", "--dataset-version", "v1"), "dataset_version_id: not a valid id: 'v1'"),
    (("--arch", "mlp", "--experiment", "no such experiment"),
     "experiment: no live experiment has the id or name 'no such experiment'"),
])
def test_unknown_version_architecture_or_experiment_is_refused(version, args, expected):
    if "--dataset-version" not in args:
        args = (*args, "--dataset-version", str(version.pk))
    with pytest.raises(CommandError) as raised:
        train(*args)

    assert expected in str(raised.value)
    assert not Run.objects.exists() and not Experiment.objects.exists()


@pytest.mark.django_db
def test_no_wait_prints_the_id_of_the_queued_run_in_the_default_experiment(version,
                                                                           django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        out = train("--dataset-version", str(version.pk), "--arch", "logreg", "--set", "lr=1e-2",
                    "--name", "baseline", "--no-wait")

    run = Run.objects.get()
    assert out.strip() == str(run.pk)
    assert len(callbacks) == 1  # sent to the training queue once committed
    assert (run.status, run.name, run.architecture_key, run.experiment.name) == (
        RunStatus.QUEUED, "baseline", "logreg", "default")
    assert run.params.get(key="learning_rate").value == "0.01"
    # A second run joins the same default experiment; an experiment is found by id or name.
    train("--dataset-version", str(version.pk), "--arch", "logreg", "--no-wait")
    named = ExperimentFactory(name="wider", default_dataset_version=version)
    train("--arch", "mlp", "--experiment", "wider", "--no-wait")  # its default version
    train("--arch", "mlp", "--experiment", str(named.pk), "--no-wait")
    assert Experiment.objects.count() == 2
    assert named.runs.count() == 2


# --- training in this process ------------------------------------------------------


@pytest.mark.django_db
def test_sync_trains_here_and_prints_the_epochs_and_final_metrics(version, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        out = train("--dataset-version", str(version.pk), "--arch", "mlp", "--set", "epochs=3",
                    "--set", "hidden_sizes=16", "--set", "lr=0.05", "--set", "batch_size=8", "--set", "patience=0",
                    "--sync")

    assert callbacks == []  # no message queued for a worker

    run = Run.objects.get()
    assert run.status == RunStatus.SUCCEEDED
    lines = out.splitlines()
    epochs = [line.split("  ")[0] for line in lines if line.startswith("epoch ")]
    assert epochs == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert f"Run {run.pk} (mlp-1) succeeded." in out
    test_line = next(line for line in lines if line.strip().startswith("test ") and "F1" in line)
    for label in ("F1", "ROC-AUC", "PR-AUC", "accuracy"):
        assert f"{label} " in test_line
    summaries = {summary.key: summary.latest_value for summary in run.metric_summaries.all()}
    assert f"F1 {summaries['test_f1']:.4f}" in test_line
    assert summaries["test_roc_auc"] > 0.9  # separable data
    assert f"threshold {summaries['threshold']:.4f}" in out
    assert "best epoch" in out
    weights = run.artifacts.get(path="model.pt")
    assert f"sha256 {weights.sha256}" in out
    assert str(tracking.run_artifact_dir(run.pk) / "model.pt") in out


@pytest.mark.django_db
def test_sync_exits_non_zero_with_the_reason_when_the_run_fails(version, monkeypatch):
    def diverge(*args, **kwargs):
        from training.trainer import TrainingDiverged

        raise TrainingDiverged("the training loss became nan at epoch 1")

    monkeypatch.setattr("training.services.execution.train", diverge)

    with pytest.raises(CommandError) as raised:
        train("--dataset-version", str(version.pk), "--arch", "logreg", "--sync")

    run = Run.objects.get()
    assert run.status == RunStatus.FAILED
    assert str(raised.value) == f"Run {run.pk} failed: the training loss became nan at epoch 1"


# --- following a worker's run -----------------------------------------------------


class ScriptedWorker:
    """Stands in for the worker between two polls of the command (its ``time.sleep``):
    each call moves the run one step on, through the same services a worker uses."""

    def __init__(self, *, epochs: int, end: str) -> None:
        self.epochs = epochs
        self.end = end
        self.step = 0

    def __call__(self, seconds: float) -> None:
        run = Run.objects.get()
        self.step += 1
        if self.step == 1:
            tracking.run_transition(run.pk, RunStatus.RUNNING)
        elif self.step <= self.epochs + 1:
            epoch = self.step - 1
            tracking.run_metrics_log(run.pk, [("train_loss", epoch, 1 / epoch), ("val_loss", epoch, 1 / epoch),
                                              ("val_f1", epoch, 0.5 + epoch / 10)])
            if self.end == RunStatus.CANCELLED and epoch == 2:
                tracking.run_cancel(run.pk)
        elif self.end == RunStatus.SUCCEEDED:
            tracking.run_metrics_log(run.pk, [("test_f1", self.epochs, 0.875), ("test_roc_auc", self.epochs, 0.9),
                                              ("test_pr_auc", self.epochs, 0.85), ("test_accuracy", self.epochs, 0.8),
                                              ("threshold", self.epochs, 0.5), ("best_epoch", self.epochs, 3)])
            tracking.run_transition(run.pk, RunStatus.SUCCEEDED)
        else:
            tracking.run_transition(run.pk, RunStatus.FAILED, error="worker lost (no heartbeat since 12:00)")


@pytest.mark.django_db
def test_waiting_shows_each_epoch_the_worker_logs_then_the_final_metrics(version, monkeypatch):
    monkeypatch.setattr(train_command.time, "sleep", ScriptedWorker(epochs=3, end=RunStatus.SUCCEEDED))

    out = train("--dataset-version", str(version.pk), "--arch", "mlp", "--set", "epochs=3")

    assert [line for line in out.splitlines() if line.startswith("epoch ")] == [
        "epoch 1/3  train_loss 1.0000  val_loss 1.0000  val_f1 0.6000",
        "epoch 2/3  train_loss 0.5000  val_loss 0.5000  val_f1 0.7000",
        "epoch 3/3  train_loss 0.3333  val_loss 0.3333  val_f1 0.8000",
    ]
    assert "test  F1 0.8750  ROC-AUC 0.9000  PR-AUC 0.8500  accuracy 0.8000" in out
    assert "best epoch 3" in out


@pytest.mark.django_db
@pytest.mark.parametrize(("end", "expected"), [
    (RunStatus.FAILED, "failed: worker lost (no heartbeat since 12:00)"),
    (RunStatus.CANCELLED, "was cancelled."),
])
def test_waiting_exits_non_zero_when_the_run_fails_or_is_cancelled(version, monkeypatch, end, expected):
    monkeypatch.setattr(train_command.time, "sleep", ScriptedWorker(epochs=3, end=end))

    with pytest.raises(CommandError) as raised:
        train("--dataset-version", str(version.pk), "--arch", "mlp", "--set", "epochs=3")

    assert str(raised.value) == f"Run {Run.objects.get().pk} {expected}"
    assert raised.value.returncode == 1


@pytest.mark.django_db
def test_each_poll_costs_the_same_queries_however_many_epochs_are_logged(version, monkeypatch):
    """A poll reads the run with its params, summaries and artifacts, never its points:
    the queries between two sleeps are the same at epoch 1 and at epoch 40."""
    worker = ScriptedWorker(epochs=40, end=RunStatus.SUCCEEDED)
    context = CaptureQueriesContext(connection)
    marks: list[tuple[int, int]] = []

    def sleep(seconds):
        entered = len(context.captured_queries)
        worker(seconds)
        marks.append((entered, len(context.captured_queries)))

    monkeypatch.setattr(train_command.time, "sleep", sleep)
    with context:
        train("--dataset-version", str(version.pk), "--arch", "mlp", "--set", "epochs=40")

    polls = [next_entered - left for (_, left), (next_entered, _) in zip(marks, marks[1:])]
    assert len(polls) == 41 and len(set(polls)) == 1, polls
