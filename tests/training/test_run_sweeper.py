"""The sweeper of training runs (``services.training_runs_mark_stale``): a running run
whose heartbeat stopped is re-queued for another worker or, its attempts used up,
failed with the reason; a queued run whose message was lost is failed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from core import jobs
from experiments.models import Run, RunStatus
from tests.experiments.factories import ExperimentFactory
from tests.training.factories import separable_dataset_version
from training import services
from training.services import queueing

pytestmark = pytest.mark.django_db


@pytest.fixture
def enqueued(monkeypatch):
    sent: list[tuple[int, str, int | None]] = []
    monkeypatch.setattr(
        queueing, "run_enqueue",
        lambda run_id, celery_task_id, claim_attempt=None: sent.append((run_id, celery_task_id, claim_attempt)) or True,
    )
    return sent


@pytest.fixture
def run(enqueued, django_capture_on_commit_callbacks):
    experiment = ExperimentFactory(default_dataset_version=separable_dataset_version(rows=20))
    with django_capture_on_commit_callbacks(execute=True):
        queued = services.run_queue(experiment_id=experiment.pk, architecture_key="logreg")
    enqueued.clear()
    return queued


def running_with_dead_worker(run: Run, *, minutes_silent: int) -> Run:
    claim = jobs.job_claim(services.RUN_JOB, run.pk)
    jobs.job_lock_release(services.RUN_JOB, run.pk)
    Run.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=minutes_silent))
    assert claim.worker_starts == 1
    return Run.objects.get(pk=run.pk)


def test_a_run_whose_heartbeat_stopped_is_requeued_for_the_next_attempt(
    run, enqueued, django_capture_on_commit_callbacks
):
    stale = running_with_dead_worker(run, minutes_silent=10)

    with django_capture_on_commit_callbacks(execute=True):
        assert services.training_runs_mark_stale(older_than=timedelta(minutes=5)) == 1

    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.worker_starts == 2 and run.attempts == stale.attempts + 1
    assert enqueued == [(run.pk, run.celery_task_id, run.attempts)]
    # The handed-over message takes over exactly that attempt.
    claim = jobs.job_claim(services.RUN_JOB, run.pk, celery_task_id=run.celery_task_id, claim_attempt=run.attempts)
    assert isinstance(claim, jobs.JobClaim) and claim.worker_starts == 2


def test_a_run_that_used_up_its_attempts_is_failed_with_the_reason(run, enqueued, settings):
    settings.CVSA_JOB_MAX_ATTEMPTS = 1
    running_with_dead_worker(run, minutes_silent=10)

    assert services.training_runs_mark_stale(older_than=timedelta(minutes=5)) == 1

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and enqueued == []
    assert run.error.startswith("worker lost (no heartbeat since ") and "1 of 1 attempts" in run.error


def test_a_live_run_and_a_recent_queued_run_are_left_alone(run, enqueued):
    claim = jobs.job_claim(services.RUN_JOB, run.pk)
    assert services.training_runs_mark_stale(older_than=timedelta(minutes=5)) == 0
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.attempts == claim.attempt
    jobs.job_lock_release(services.RUN_JOB, run.pk)


def test_a_queued_run_whose_message_was_lost_is_failed(run):
    Run.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(hours=3))

    assert services.training_runs_mark_stale(pending_older_than=timedelta(hours=2)) == 1

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and "never started" in run.error

