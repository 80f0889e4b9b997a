"""Experiments: create / update / soft delete / restore, and the purge (service and command)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.utils import timezone

from datasets.models import DatasetVersionStatus
from experiments import services
from experiments.models import Experiment, MetricPoint, Param, Run, RunMetricSummary, RunStatus
from tests.experiments.factories import (
    ExperimentFactory,
    RunFactory,
    dataset_version,
    ready_dataset_version,
    running_run,
)
from tests.labeling.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_create_cleans_name_and_tags():
    owner = UserFactory()
    version = ready_dataset_version()
    experiment = services.experiment_create(
        name="  wider   MLP ", owner=owner, tags=["MLP", " baseline ", "mlp"], default_dataset_version_id=version.pk,
        metric_key="val_loss", metric_direction="min",
    )
    experiment.refresh_from_db()
    assert (experiment.name, experiment.tags, experiment.owner, experiment.default_dataset_version_id) == (
        "wider MLP", ["mlp", "baseline"], owner, version.pk
    )
    assert (experiment.metric_key, experiment.metric_direction) == ("val_loss", "min")


@pytest.mark.parametrize("fields, field", [
    ({"name": ""}, "name"),
    ({"name": "x" * 201}, "name"),
    ({"tags": "mlp"}, "tags"),
    ({"tags": ["x" * 51]}, "tags"),
    ({"tags": [f"t{i}" for i in range(21)]}, "tags"),
    ({"metric_direction": "up"}, "metric_direction"),
    ({"metric_key": "val f1!"}, "metric_key"),
    ({"default_dataset_version_id": "not-a-uuid"}, "default_dataset_version_id"),
])
def test_create_refuses_bad_input_and_writes_nothing(fields, field):
    with pytest.raises(ValidationError) as raised:
        services.experiment_create(**{"name": "ok", **fields})
    assert field in raised.value.message_dict
    assert not Experiment.objects.exists()


def test_the_default_version_must_be_ready_and_names_are_unique():
    building = dataset_version(DatasetVersionStatus.BUILDING)
    with pytest.raises(ValidationError, match="is building, not ready"):
        services.experiment_create(name="a", default_dataset_version_id=building.pk)
    services.experiment_create(name="a")
    with pytest.raises(ValidationError, match="an experiment named 'a' already exists"):
        services.experiment_create(name="a")
    assert Experiment.objects.count() == 1


def test_update_changes_only_the_given_fields_and_refuses_unknown_ones():
    experiment = ExperimentFactory(tags=["mlp"])
    services.experiment_update(experiment.pk, description="new", metric_direction="min")
    experiment.refresh_from_db()
    assert (experiment.description, experiment.metric_direction, experiment.tags) == ("new", "min", ["mlp"])
    with pytest.raises(ValidationError) as raised:
        services.experiment_update(experiment.pk, owner_id=5)
    assert "owner_id" in raised.value.message_dict
    other = ExperimentFactory()
    with pytest.raises(ValidationError, match="already exists"):
        services.experiment_update(other.pk, name=experiment.name)


def test_soft_delete_is_refused_while_a_run_is_active_and_restore_brings_it_back():
    run = running_run()
    experiment = run.experiment
    with pytest.raises(ValidationError, match="1 queued or running run"):
        services.experiment_delete(experiment.pk)
    services.run_transition(run.pk, RunStatus.SUCCEEDED)
    services.experiment_delete(experiment.pk)
    experiment.refresh_from_db()
    assert experiment.is_deleted
    with pytest.raises(ValidationError, match="restore it first"):
        services.experiment_update(experiment.pk, description="x")
    services.experiment_restore(experiment.pk)
    experiment.refresh_from_db()
    assert not experiment.is_deleted
    assert Run.objects.filter(experiment=experiment).count() == 1


@pytest.fixture
def artifacts_dir(settings, tmp_path):
    settings.CVSA_ARTIFACTS_DIR = tmp_path / "artifacts"
    return settings.CVSA_ARTIFACTS_DIR


def finished_run_with_data(**fields) -> Run:
    run = running_run(**fields)
    services.run_params_log(run.pk, {"lr": 0.1})
    services.run_metrics_log(run.pk, [("loss", 0, 1.0)])
    folder = services.run_artifact_dir(run.pk)
    folder.mkdir(parents=True)
    (folder / "model.pt").write_bytes(b"w")
    services.run_artifact_record(run.pk, "model.pt")
    return services.run_transition(run.pk, RunStatus.SUCCEEDED)


def test_purge_deletes_what_was_deleted_long_enough_ago_with_its_rows_and_files(
    artifacts_dir, django_capture_on_commit_callbacks
):
    now = timezone.now()
    old_experiment_run = finished_run_with_data()
    old_run = finished_run_with_data()
    recent_run = finished_run_with_data()
    kept_run = finished_run_with_data()
    reproduction = RunFactory(experiment=kept_run.experiment, origin_run=old_run)
    services.experiment_delete(old_experiment_run.experiment_id, now=now - timedelta(days=31))
    services.run_delete(old_run.pk, now=now - timedelta(days=31))
    services.run_delete(recent_run.pk, now=now - timedelta(days=5))

    with django_capture_on_commit_callbacks(execute=True):
        purged = services.experiments_purge(30, now=now)

    assert purged == services.Purged(experiments=1, runs=2)
    assert set(Run.objects.values_list("pk", flat=True)) == {recent_run.pk, kept_run.pk, reproduction.pk}
    assert not Experiment.objects.filter(pk=old_experiment_run.experiment_id).exists()
    assert not Param.objects.filter(run_id__in=[old_run.pk, old_experiment_run.pk]).exists()
    assert not MetricPoint.objects.filter(run_id__in=[old_run.pk, old_experiment_run.pk]).exists()
    assert not RunMetricSummary.objects.filter(run_id__in=[old_run.pk, old_experiment_run.pk]).exists()
    assert not services.run_artifact_dir(old_run.pk).exists()
    assert services.run_artifact_dir(recent_run.pk).exists()
    reproduction.refresh_from_db()
    assert reproduction.origin_run_id is None


def test_purge_command(artifacts_dir):
    run = finished_run_with_data()
    services.run_delete(run.pk, now=timezone.now() - timedelta(days=3))
    out = call_command_output("purge_experiments", "--older-than-days", "7")
    assert "Purged 0 experiment(s) and 0 run(s)" in out
    out = call_command_output("purge_experiments", "--older-than-days", "2")
    assert "Purged 0 experiment(s) and 1 run(s) deleted more than 2 day(s) ago." in out
    with pytest.raises(CommandError, match="older_than_days: must be a number from 0 to 36500"):
        call_command("purge_experiments", "--older-than-days", "-1")


def call_command_output(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()
