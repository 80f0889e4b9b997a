"""Params (write-once), metric batches with their summary, artifacts; all fenced."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
from django.core.exceptions import ValidationError
from django.db.models import F

from experiments import services
from experiments.models import Artifact, MetricPoint, Param, Run, RunMetricSummary, RunStatus
from tests.experiments.factories import RunFactory, running_run

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 1, 1, tzinfo=dt_timezone.utc)


def summary(run, key) -> dict:
    return RunMetricSummary.objects.filter(run=run, key=key).values(
        "point_count", "latest_step", "latest_value", "min_value", "min_step", "max_value", "max_step"
    ).get()


def points(run) -> list[tuple]:
    return list(MetricPoint.objects.filter(run=run).order_by("key", "step").values_list("key", "step", "value"))


# --- params -------------------------------------------------------------------------------


def test_params_are_stored_as_text_and_written_once():
    run = RunFactory()
    params = {"lr": 1e-3, "hidden": [64, 32], "batch_norm": True, "optimizer": "adam"}
    assert services.run_params_log(run.pk, params) == 4
    stored = dict(Param.objects.filter(run=run).values_list("key", "value"))
    assert stored == {"lr": "0.001", "hidden": "[64,32]", "batch_norm": "true", "optimizer": "adam"}
    # the same value again is a no-op; new keys are added
    assert services.run_params_log(run.pk, {"lr": 0.001, "seed": 3}) == 1


def test_a_different_value_for_a_logged_param_is_refused_and_nothing_of_the_batch_is_written():
    run = RunFactory()
    services.run_params_log(run.pk, {"lr": 0.001})
    with pytest.raises(ValidationError) as raised:
        services.run_params_log(run.pk, {"epochs": 5, "lr": 0.01})
    assert "params are written once" in raised.value.message_dict["params"][0]
    assert "lr='0.001' (not '0.01')" in raised.value.message_dict["params"][0]
    assert dict(Param.objects.filter(run=run).values_list("key", "value")) == {"lr": "0.001"}


def test_params_of_a_finished_run_or_a_stale_attempt_are_refused():
    run = running_run()
    with pytest.raises(services.RunAttemptStale):
        services.run_params_log(run.pk, {"lr": 1}, expected_attempt=run.attempts - 1)
    services.run_transition(run.pk, RunStatus.SUCCEEDED)
    with pytest.raises(ValidationError, match="is succeeded: cannot log params"):
        services.run_params_log(run.pk, {"lr": 1})
    assert not Param.objects.exists()


# --- metrics -----------------------------------------------------------------------------


def test_a_metric_batch_writes_points_and_the_summary_in_one_statement(django_assert_num_queries):
    run = running_run()
    with django_assert_num_queries(1):
        logged = services.run_metrics_log(
            run.pk, [("val_f1", 0, 0.5), ("val_f1", 1, 0.7), ("val_loss", 0, 0.9), ("val_loss", 1, 0.6)],
            expected_attempt=run.attempts, now=T0,
        )
    assert logged == services.MetricsLogged(inserted=4, unchanged=0)
    assert points(run) == [("val_f1", 0, 0.5), ("val_f1", 1, 0.7), ("val_loss", 0, 0.9), ("val_loss", 1, 0.6)]
    assert summary(run, "val_f1") == {"point_count": 2, "latest_step": 1, "latest_value": 0.7, "min_value": 0.5,
                                      "min_step": 0, "max_value": 0.7, "max_step": 1}
    assert MetricPoint.objects.filter(run=run).first().wall_time == T0
    run.refresh_from_db()
    assert run.heartbeat_at == T0  # the batch is a sign of life


def test_summary_merges_batches_latest_min_max_and_best_by_direction():
    run = running_run()
    epochs = [0.60, 0.80, 0.75, 0.80, 0.55]  # best (max) first reached at step 1; lowest at step 4
    for step, value in enumerate(epochs):
        services.run_metrics_log(run.pk, [("val_f1", step, value)], expected_attempt=run.attempts)
    stored = summary(run, "val_f1")
    assert stored == {"point_count": 5, "latest_step": 4, "latest_value": 0.55, "min_value": 0.55, "min_step": 4,
                      "max_value": 0.80, "max_step": 1}
    row = RunMetricSummary.objects.get(run=run, key="val_f1")
    assert row.best("max") == (0.80, 1)
    assert row.best("min") == (0.55, 4)


def test_a_late_batch_of_earlier_steps_does_not_move_latest():
    run = running_run()
    services.run_metrics_log(run.pk, [("loss", 10, 0.2)])
    services.run_metrics_log(run.pk, [("loss", 3, 0.1), ("loss", 4, 0.9)])
    assert summary(run, "loss") == {"point_count": 3, "latest_step": 10, "latest_value": 0.2, "min_value": 0.1,
                                    "min_step": 3, "max_value": 0.9, "max_step": 4}


def test_a_resent_batch_is_a_no_op_and_a_changed_value_is_refused_with_nothing_written():
    run = running_run()
    batch = [("val_f1", 0, 0.5), ("val_f1", 1, 0.7)]
    services.run_metrics_log(run.pk, batch)
    assert services.run_metrics_log(run.pk, batch) == services.MetricsLogged(inserted=0, unchanged=2)
    before = summary(run, "val_f1")
    with pytest.raises(ValidationError) as raised:
        services.run_metrics_log(run.pk, [("val_f1", 2, 0.9), ("val_f1", 1, 0.1)])
    assert "val_f1 at step 1 = 0.7 (not 0.1)" in raised.value.message_dict["metrics"][0]
    assert points(run) == [("val_f1", 0, 0.5), ("val_f1", 1, 0.7)]
    assert summary(run, "val_f1") == before


@pytest.mark.parametrize("bad, field", [
    (("val_f1", 0, float("nan")), "metrics[0].value"),
    (("val_f1", 0, float("inf")), "metrics[0].value"),
    (("val_f1", 0, True), "metrics[0].value"),
    (("val_f1", -1, 0.5), "metrics[0].step"),
    (("val f1!", 0, 0.5), "metrics[0].key"),
    (("val_f1", 0, 0.5, datetime(2026, 1, 1)), "metrics[0].wall_time"),
    (("val_f1", 0), "metrics[0]"),
])
def test_bad_points_are_refused_before_any_write(bad, field):
    run = running_run()
    with pytest.raises(ValidationError) as raised:
        services.run_metrics_log(run.pk, [bad])
    assert field in raised.value.message_dict
    assert not MetricPoint.objects.exists() and not RunMetricSummary.objects.exists()


def test_a_duplicate_point_within_a_batch_is_refused():
    run = running_run()
    with pytest.raises(ValidationError, match="in the batch twice"):
        services.run_metrics_log(run.pk, [("a", 0, 1.0), ("a", 0, 1.0)])


def test_a_zombie_attempt_writes_no_metrics_after_a_cancel():
    run = running_run()
    zombie_attempt = run.attempts
    services.run_metrics_log(run.pk, [("loss", 0, 1.0)], expected_attempt=zombie_attempt)
    services.run_transition(run.pk, RunStatus.CANCELLED)
    with pytest.raises(services.RunAttemptStale, match="cancelled or taken over"):
        services.run_metrics_log(run.pk, [("loss", 1, 0.5)], expected_attempt=zombie_attempt)
    assert points(run) == [("loss", 0, 1.0)]
    assert summary(run, "loss")["point_count"] == 1


def test_metrics_are_only_logged_while_running():
    queued = RunFactory()
    with pytest.raises(ValidationError, match=r"is queued: cannot log metrics \(only while running\)"):
        services.run_metrics_log(queued.pk, [("loss", 0, 1.0)])
    assert not MetricPoint.objects.exists()


def test_a_batch_of_many_points_is_still_one_statement(django_assert_num_queries):
    run = running_run()
    batch = [(key, step, step / 500) for step in range(500) for key in ("train_loss", "val_f1")]
    with django_assert_num_queries(1):
        services.run_metrics_log(run.pk, batch)
    assert MetricPoint.objects.filter(run=run).count() == 1000
    assert summary(run, "val_f1")["latest_step"] == 499


# --- artifacts ----------------------------------------------------------------------------


@pytest.fixture
def artifacts_dir(settings, tmp_path):
    settings.CVSA_ARTIFACTS_DIR = tmp_path / "artifacts"
    return settings.CVSA_ARTIFACTS_DIR


def test_an_artifact_is_recorded_with_the_size_and_hash_of_its_file(artifacts_dir):
    run = running_run()
    folder = services.run_artifact_dir(run.pk)
    folder.mkdir(parents=True)
    content = b"weights" * 1000
    (folder / "model.pt").write_bytes(content)
    artifact = services.run_artifact_record(run.pk, "model.pt", expected_attempt=run.attempts)
    expected = ("model.pt", len(content), hashlib.sha256(content).hexdigest())
    assert (artifact.path, artifact.size, artifact.sha256) == expected
    # re-recording describes the file as it is now (one row per path)
    (folder / "model.pt").write_bytes(b"v2")
    again = services.run_artifact_record(run.pk, "model.pt", expected_attempt=run.attempts)
    assert (again.pk, again.size, again.sha256) == (artifact.pk, 2, hashlib.sha256(b"v2").hexdigest())
    assert services.artifact_file(run.pk, "model.pt") == (folder / "model.pt").resolve()


@pytest.mark.parametrize("path", ["../other/model.pt", "/etc/passwd", "", "a/./b", "a\\b", "x/../y"])
def test_artifact_paths_outside_the_run_folder_are_refused(artifacts_dir, path):
    run = running_run()
    with pytest.raises(ValidationError):
        services.run_artifact_record(run.pk, path)
    assert not Artifact.objects.exists()


def test_an_artifact_symlink_out_of_the_folder_or_a_missing_file_is_refused(artifacts_dir, tmp_path):
    run = running_run()
    folder = services.run_artifact_dir(run.pk)
    folder.mkdir(parents=True)
    (tmp_path / "secret").write_text("x")
    (folder / "link").symlink_to(tmp_path / "secret")
    with pytest.raises(ValidationError, match="outside the run's folder"):
        services.run_artifact_record(run.pk, "link")
    with pytest.raises(ValidationError, match="no such file"):
        services.run_artifact_record(run.pk, "missing.pt")
    assert not Artifact.objects.exists()


def test_a_stale_attempt_records_no_artifact(artifacts_dir):
    run = running_run()
    folder = services.run_artifact_dir(run.pk)
    folder.mkdir(parents=True)
    (folder / "model.pt").write_bytes(b"w")
    services.run_transition(run.pk, RunStatus.CANCELLED)
    with pytest.raises(services.RunAttemptStale):
        services.run_artifact_record(run.pk, "model.pt", expected_attempt=1)
    assert not Artifact.objects.exists()


def test_wall_times_default_to_the_injected_clock():
    run = running_run()
    later = T0 + timedelta(hours=1)
    services.run_metrics_log(run.pk, [("a", 0, 1.0), ("a", 1, 2.0, later)], now=T0)
    assert list(MetricPoint.objects.filter(run=run).order_by("step").values_list("wall_time", flat=True)) == [T0, later]


def test_a_zombie_attempt_writes_nothing_after_a_takeover_while_the_run_keeps_running():
    """A takeover (the shared job lifecycle) bumps ``attempts`` and leaves the run running:
    only the new attempt's writes land."""
    run = running_run()
    zombie_attempt = run.attempts
    Run.objects.filter(pk=run.pk).update(attempts=F("attempts") + 1)  # what a takeover does
    for write in (
        lambda: services.run_metrics_log(run.pk, [("loss", 0, 1.0)], expected_attempt=zombie_attempt),
        lambda: services.run_params_log(run.pk, {"lr": 1}, expected_attempt=zombie_attempt),
        lambda: services.run_transition(run.pk, RunStatus.SUCCEEDED, expected_attempt=zombie_attempt),
    ):
        with pytest.raises(services.RunAttemptStale, match=f"at attempt {zombie_attempt + 1}"):
            write()
    assert not MetricPoint.objects.exists() and not Param.objects.exists()
    services.run_metrics_log(run.pk, [("loss", 0, 1.0)], expected_attempt=zombie_attempt + 1)
    assert points(run) == [("loss", 0, 1.0)]
    assert Run.objects.get(pk=run.pk).status == RunStatus.RUNNING


def test_clearing_metrics_is_fenced_by_the_attempt_and_removes_points_and_summaries():
    run = running_run()
    services.run_metrics_log(run.pk, [("val_f1", 1, 0.5), ("val_f1", 2, 0.7)], expected_attempt=run.attempts)

    with pytest.raises(services.RunAttemptStale):
        services.run_metrics_clear(run.pk, expected_attempt=run.attempts + 1)
    assert MetricPoint.objects.filter(run=run).count() == 2

    assert services.run_metrics_clear(run.pk, expected_attempt=run.attempts) == 2
    assert not MetricPoint.objects.filter(run=run).exists()
    assert not RunMetricSummary.objects.filter(run=run).exists()
