"""The run state machine: legal moves, refusals that write nothing, timestamps, fencing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from datasets.models import DatasetVersionStatus
from experiments import services
from experiments.models import Run, RunStatus
from tests.experiments.factories import ExperimentFactory, RunFactory, dataset_version, running_run

pytestmark = pytest.mark.django_db

LEGAL = [
    (RunStatus.QUEUED, RunStatus.RUNNING),
    (RunStatus.QUEUED, RunStatus.CANCELLED),
    (RunStatus.QUEUED, RunStatus.FAILED),
    (RunStatus.RUNNING, RunStatus.SUCCEEDED),
    (RunStatus.RUNNING, RunStatus.FAILED),
    (RunStatus.RUNNING, RunStatus.CANCELLED),
]
ILLEGAL = [
    (start, to) for start in RunStatus.values for to in RunStatus.values if (start, to) not in LEGAL
]


def run_in(status: str) -> Run:
    run = RunFactory()
    if status == RunStatus.QUEUED:
        return run
    if status in (RunStatus.RUNNING, RunStatus.SUCCEEDED):
        run = services.run_transition(run.pk, RunStatus.RUNNING)
        if status == RunStatus.SUCCEEDED:
            run = services.run_transition(run.pk, RunStatus.SUCCEEDED)
        return run
    return services.run_transition(run.pk, status, error="boom")


def row(run: Run) -> dict:
    return Run.objects.filter(pk=run.pk).values().get()


def test_run_create_queues_a_run_with_its_params_on_the_experiments_default_version():
    experiment = ExperimentFactory()
    run = services.run_create(experiment.pk, architecture_key="mlp", seed=7, params={"lr": 0.001, "epochs": 30})
    run.refresh_from_db()
    assert (run.status, run.dataset_version_id, run.name, run.attempts) == (
        RunStatus.QUEUED, experiment.default_dataset_version_id, "mlp-1", 0
    )
    assert run.started_at is None and run.queued_at is not None
    assert dict(run.params.values_list("key", "value")) == {"lr": "0.001", "epochs": "30"}


@pytest.mark.parametrize("fields, message", [
    ({"architecture_key": "MLP net"}, "architecture_key"),
    ({"seed": -1}, "seed"),
    ({"seed": 1.5}, "seed"),
    ({"params": {"lr": float("nan")}}, "params.lr"),
    ({"params": {"bad key!": 1}}, "params.bad key!"),
    ({"origin_run_id": 999_999}, "origin_run_id"),
])
def test_run_create_refuses_bad_input_and_writes_nothing(fields, message):
    experiment = ExperimentFactory()
    with pytest.raises(ValidationError) as raised:
        services.run_create(experiment.pk, **{"architecture_key": "mlp", "seed": 1, **fields})
    assert message in raised.value.message_dict
    assert not Run.objects.exists()


def test_run_create_needs_a_ready_version_and_a_live_experiment():
    experiment = ExperimentFactory(default_dataset_version=None)
    with pytest.raises(ValidationError, match="no default dataset version"):
        services.run_create(experiment.pk, architecture_key="mlp", seed=1)
    building = dataset_version(DatasetVersionStatus.BUILDING)
    with pytest.raises(ValidationError, match="is building, not ready"):
        services.run_create(experiment.pk, architecture_key="mlp", seed=1, dataset_version_id=building.pk)
    services.experiment_delete(experiment.pk)
    with pytest.raises(ValidationError, match="is deleted; restore it first"):
        services.run_create(experiment.pk, architecture_key="mlp", seed=1, dataset_version_id=building.pk)
    assert not Run.objects.exists()


@pytest.mark.parametrize("start, to", LEGAL)
def test_legal_transitions_set_the_timestamps_of_the_new_status(start, to):
    run = run_in(start)
    moved = services.run_transition(run.pk, to, error="boom" if to == RunStatus.FAILED else "")
    stored = row(moved)
    assert stored["status"] == to
    if to == RunStatus.RUNNING:
        assert stored["started_at"] and stored["heartbeat_at"] and stored["finished_at"] is None
    else:
        assert stored["finished_at"] is not None
    if stored["started_at"] and stored["finished_at"]:
        assert stored["finished_at"] >= stored["started_at"]


@pytest.mark.parametrize("start, to", ILLEGAL)
def test_illegal_transitions_are_refused_and_write_nothing(start, to):
    run = run_in(start)
    before = row(run)
    with pytest.raises(ValidationError) as raised:
        services.run_transition(run.pk, to, error="boom")
    assert f"cannot go from {start} to {to}" in raised.value.message_dict["status"][0]
    assert row(run) == before


def test_an_unknown_status_and_a_failure_without_reason_are_refused():
    run = running_run()
    with pytest.raises(ValidationError, match="must be one of"):
        services.run_transition(run.pk, "paused")
    with pytest.raises(ValidationError, match="needs the reason"):
        services.run_transition(run.pk, RunStatus.FAILED)
    assert row(run)["status"] == RunStatus.RUNNING


def test_starting_and_cancelling_bump_the_fencing_attempt():
    run = RunFactory()
    started = services.run_transition(run.pk, RunStatus.RUNNING)
    assert started.attempts == 1
    cancelled = services.run_transition(run.pk, RunStatus.CANCELLED, error="cancelled by alice")
    assert cancelled.attempts == 2 and cancelled.error == "cancelled by alice"


def test_a_stale_worker_cannot_finish_a_cancelled_run():
    run = running_run()
    attempt = run.attempts
    services.run_transition(run.pk, RunStatus.CANCELLED)
    with pytest.raises(services.RunAttemptStale, match="cancelled or taken over"):
        services.run_transition(run.pk, RunStatus.SUCCEEDED, expected_attempt=attempt)
    assert row(run)["status"] == RunStatus.CANCELLED


def test_heartbeat_is_fenced_by_attempt():
    run = running_run()
    moment = timezone.now() + timedelta(minutes=1)
    services.run_heartbeat(run.pk, expected_attempt=run.attempts, now=moment)
    assert row(run)["heartbeat_at"] == moment
    assert services.run_is_current(run.pk, run.attempts)
    with pytest.raises(services.RunAttemptStale):
        services.run_heartbeat(run.pk, expected_attempt=run.attempts + 1)
    assert row(run)["heartbeat_at"] == moment


def test_reproducibility_record_merges_while_active_and_is_fenced():
    run = running_run()
    services.run_reproducibility_update(run.pk, {"torch": "2.13", "device": "cpu"}, expected_attempt=run.attempts)
    services.run_reproducibility_update(run.pk, {"device": "cuda"}, expected_attempt=run.attempts)
    assert row(run)["reproducibility"] == {"torch": "2.13", "device": "cuda"}
    with pytest.raises(services.RunAttemptStale):
        services.run_reproducibility_update(run.pk, {"device": "tpu"}, expected_attempt=run.attempts + 5)
    with pytest.raises(ValidationError, match="not JSON-serialisable"):
        services.run_reproducibility_update(run.pk, {"x": float("inf")})
    assert row(run)["reproducibility"] == {"torch": "2.13", "device": "cuda"}


def test_run_soft_delete_is_refused_while_active_and_restorable():
    run = running_run()
    with pytest.raises(ValidationError, match="is running; cancel it first"):
        services.run_delete(run.pk)
    services.run_transition(run.pk, RunStatus.SUCCEEDED)
    services.run_delete(run.pk)
    assert row(run)["deleted_at"] is not None
    with pytest.raises(ValidationError, match="cannot go from succeeded"):
        services.run_transition(run.pk, RunStatus.RUNNING)
    services.run_restore(run.pk)
    assert row(run)["deleted_at"] is None


def test_run_tags_are_set_at_creation_and_changed_later():
    run = services.run_create(
        ExperimentFactory().pk, architecture_key="mlp", seed=0, tags={"sweep": "3", "trial": "0"}
    )
    assert run.tags == {"sweep": "3", "trial": "0"}

    run = services.run_tags_set(run.pk, {"trial": None, "note": "wide"})
    assert run.tags == {"sweep": "3", "note": "wide"}

    with pytest.raises(ValidationError, match="only letters"):
        services.run_tags_set(run.pk, {"bad key!": "x"})
    assert Run.objects.get(pk=run.pk).tags == {"sweep": "3", "note": "wide"}
