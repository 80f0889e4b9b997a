"""Reads: filters, and round trips that do not grow with runs or epochs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from experiments import selectors, services
from experiments.models import RunStatus
from tests.experiments.factories import ExperimentFactory, RunFactory, make_runs, ready_dataset_version, running_run

pytestmark = pytest.mark.django_db


def names(experiments) -> list[str]:
    return [experiment.name for experiment in experiments]


def test_experiment_list_filters_and_counts():
    version = ready_dataset_version()
    mlp = ExperimentFactory(name="Wider MLP", tags=["mlp", "wide"], description="hidden 512")
    baseline = ExperimentFactory(name="Logistic baseline", tags=["baseline"])
    other = ExperimentFactory(name="Other", tags=[], default_dataset_version=version)
    make_runs(mlp, 3)
    make_runs(mlp, 2, status=RunStatus.FAILED)
    running_run(experiment=baseline)
    deleted = make_runs(baseline, 1)[0]
    services.run_delete(deleted.pk)
    gone = ExperimentFactory(name="Gone")
    services.experiment_delete(gone.pk)

    listed = {experiment.name: experiment for experiment in selectors.experiment_list()}
    assert set(listed) == {"Wider MLP", "Logistic baseline", "Other"}
    wider = listed["Wider MLP"]
    assert (wider.run_count, wider.succeeded_count, wider.failed_count) == (5, 3, 2)
    assert (listed["Logistic baseline"].run_count, listed["Logistic baseline"].running_count) == (1, 1)
    assert names(selectors.experiment_list(search="wider 512")) == ["Wider MLP"]
    assert names(selectors.experiment_list(tag="MLP")) == ["Wider MLP"]
    assert names(selectors.experiment_list(status=RunStatus.RUNNING)) == ["Logistic baseline"]
    assert names(selectors.experiment_list(dataset_version_id=version.pk)) == ["Other"]
    assert names(selectors.experiment_list(dataset_version_id=baseline.default_dataset_version_id)) == [
        "Logistic baseline"
    ]
    assert names(selectors.experiment_list(deleted=True)) == ["Gone"]
    assert other.pk  # listed though it has no runs
    with pytest.raises(ValidationError, match="must be one of"):
        selectors.experiment_list(status="paused")


def test_the_tag_filter_uses_the_array_containment_the_gin_index_serves():
    sql = str(selectors.experiment_list(tag="mlp").query)
    assert "@>" in sql


@pytest.mark.parametrize("runs_per_experiment", [10, 200])
def test_experiment_list_is_one_query_whatever_the_number_of_runs(runs_per_experiment, django_assert_num_queries):
    for _ in range(3):
        make_runs(ExperimentFactory(), runs_per_experiment)
    with django_assert_num_queries(1):
        experiments = list(selectors.experiment_list())
        assert [experiment.run_count for experiment in experiments] == [runs_per_experiment] * 3
        assert all(experiment.default_dataset_version.dataset.name for experiment in experiments)


@pytest.mark.parametrize("run_count", [10, 200])
def test_runs_table_is_three_queries_whatever_the_number_of_runs(run_count, django_assert_num_queries):
    experiment = ExperimentFactory()
    make_runs(experiment, run_count)
    with django_assert_num_queries(3):
        rows = selectors.run_table(experiment)
        assert len(rows) == run_count
        assert all(set(row.params) == {"lr", "epochs"} and set(row.metrics) == {"val_f1", "val_loss"} for row in rows)
        assert all(row.run.dataset_version.dataset.name for row in rows)


@pytest.mark.parametrize("epochs", [10, 500])
def test_runs_table_does_not_read_metric_points(epochs, django_assert_num_queries):
    experiment = ExperimentFactory()
    for seed in range(3):
        run = running_run(experiment=experiment, seed=seed)
        services.run_metrics_log(run.pk, [(key, step, (step + seed) / epochs) for step in range(epochs)
                                          for key in ("val_f1", "train_loss")])
        services.run_transition(run.pk, RunStatus.SUCCEEDED)
    with django_assert_num_queries(3):
        rows = selectors.run_table(experiment)
    best = {row.run.seed: row.metrics["val_f1"].best(experiment.metric_direction) for row in rows}
    assert best == {seed: ((epochs - 1 + seed) / epochs, epochs - 1) for seed in range(3)}
    assert all(row.metrics["val_f1"].point_count == epochs for row in rows)


def test_runs_table_filters_by_status_and_hides_deleted_runs():
    experiment = ExperimentFactory()
    kept = make_runs(experiment, 2)
    failed = make_runs(experiment, 1, status=RunStatus.FAILED)
    services.run_delete(kept[0].pk)
    assert [row.run.pk for row in selectors.run_table(experiment)] == sorted(
        [kept[1].pk, failed[0].pk], reverse=True)
    assert [row.run.pk for row in selectors.run_table(experiment, status=RunStatus.FAILED)] == [failed[0].pk]
    assert [row.run.pk for row in selectors.run_table(experiment, deleted=True)] == [kept[0].pk]


@pytest.mark.parametrize("epochs", [10, 500])
def test_metric_series_is_one_query_ordered_by_step(epochs, django_assert_num_queries):
    run = running_run()
    # logged newest step first: the series must come back in step order anyway
    services.run_metrics_log(run.pk, [(key, step, float(step)) for step in reversed(range(epochs))
                                      for key in ("val_f1", "train_loss", "lr")])
    with django_assert_num_queries(1):
        series = selectors.run_metric_series(run.pk, ["val_f1", "train_loss", "missing"])
    assert [point.step for point in series["val_f1"]] == list(range(epochs))
    assert [point.value for point in series["train_loss"]] == [float(step) for step in range(epochs)]
    assert series["missing"] == [] and "lr" not in series


def test_metric_series_refuses_bad_keys():
    run = RunFactory()
    with pytest.raises(ValidationError):
        selectors.run_metric_series(run.pk, "val_f1")
    with pytest.raises(ValidationError):
        selectors.run_metric_series(run.pk, ["bad key!"])


def test_run_detail_is_four_queries_and_hides_deleted_runs(django_assert_num_queries, settings, tmp_path):
    settings.CVSA_ARTIFACTS_DIR = tmp_path
    origin = make_runs(ExperimentFactory(), 1)[0]
    run = running_run(origin_run=origin, experiment=origin.experiment)
    services.run_params_log(run.pk, {"lr": 0.1})
    services.run_metrics_log(run.pk, [("loss", 0, 1.0)])
    services.run_artifact_dir(run.pk).mkdir(parents=True)
    (services.run_artifact_dir(run.pk) / "model.pt").write_bytes(b"w")
    services.run_artifact_record(run.pk, "model.pt")
    services.run_transition(run.pk, RunStatus.SUCCEEDED, now=timezone.now() + timedelta(seconds=1))
    with django_assert_num_queries(4):
        detail = selectors.run_detail(run.pk)
        assert (detail.experiment.name, detail.origin_run.pk, detail.dataset_version.embedding_model.key) == (
            origin.experiment.name, origin.pk, "experiments-test-model")
        assert [param.key for param in detail.param_list] == ["lr"]
        assert [summary.key for summary in detail.summary_list] == ["loss"]
        assert [artifact.path for artifact in detail.artifact_list] == ["model.pt"]
    assert selectors.run_metric_keys(run.pk) == ["loss"]
    services.run_delete(run.pk)
    with pytest.raises(type(detail).DoesNotExist):
        selectors.run_detail(run.pk)
    assert selectors.run_detail(run.pk, include_deleted=True).pk == run.pk
