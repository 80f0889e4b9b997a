"""The database refuses rows the services would never write."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from experiments.models import Artifact, MetricPoint, Param, Run, RunMetricSummary, RunStatus
from tests.experiments.factories import ExperimentFactory, RunFactory

pytestmark = pytest.mark.django_db


def refused(constraint: str, write) -> None:
    with pytest.raises(IntegrityError, match=constraint), transaction.atomic():
        write()


@pytest.mark.parametrize("fields, constraint", [
    ({"status": RunStatus.RUNNING}, "run_timestamps_match_status"),  # running, never started
    ({"status": RunStatus.SUCCEEDED, "started_at": "now"}, "run_timestamps_match_status"),  # not finished
    ({"started_at": "now"}, "run_timestamps_match_status"),  # queued, but started
    ({"status": RunStatus.FAILED, "finished_at": "now"}, "run_failed_has_error"),
    ({"status": "paused"}, "run_status_valid"),
    ({"seed": -1}, "run_seed_non_negative"),
    ({"name": ""}, "run_name_not_empty"),
])
def test_run_rows_that_break_the_state_machine_are_refused(fields, constraint):
    now = timezone.now()
    fields = {key: now if value == "now" else value for key, value in fields.items()}
    refused(constraint, lambda: RunFactory(**fields))


def test_a_run_finishing_before_it_started_or_reproducing_itself_is_refused():
    run = RunFactory()
    now = timezone.now()
    refused("run_finished_after_started", lambda: Run.objects.filter(pk=run.pk).update(
        status=RunStatus.SUCCEEDED, started_at=now, finished_at=now - timedelta(seconds=1)))
    refused("run_origin_not_itself", lambda: Run.objects.filter(pk=run.pk).update(origin_run=run.pk))


def test_param_metric_artifact_and_summary_constraints():
    run = RunFactory()
    now = timezone.now()
    Param.objects.create(run=run, key="lr", value="0.1")
    refused("param_run_key_unique", lambda: Param.objects.create(run=run, key="lr", value="0.2"))
    MetricPoint.objects.create(run=run, key="loss", step=0, value=1.0, wall_time=now)
    refused("metricpoint_run_key_step_unique",
            lambda: MetricPoint.objects.create(run=run, key="loss", step=0, value=2.0, wall_time=now))
    for value in (float("nan"), float("inf"), float("-inf")):
        refused("metricpoint_value_finite",
                lambda: MetricPoint.objects.create(run=run, key="loss", step=1, value=value, wall_time=now))
    refused("metricpoint_step_non_negative",
            lambda: MetricPoint.objects.create(run=run, key="loss", step=-1, value=1.0, wall_time=now))
    refused("artifact_sha256_hex", lambda: Artifact.objects.create(run=run, path="a", size=1, sha256="xyz"))
    refused("artifact_path_relative",
            lambda: Artifact.objects.create(run=run, path="../a", size=1, sha256="0" * 64))
    refused("runmetricsummary_min_le_max", lambda: RunMetricSummary.objects.create(
        run=run, key="loss", point_count=1, latest_step=0, latest_value=1, min_value=2, min_step=0, max_value=1,
        max_step=0, updated_at=now))


def test_experiment_direction_and_name_constraints():
    refused("experiment_metric_direction_valid", lambda: ExperimentFactory(metric_direction="up"))
    refused("experiment_name_not_empty", lambda: ExperimentFactory(name=""))
