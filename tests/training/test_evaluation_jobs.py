"""Evaluations as jobs: queued with the inputs checked (bad input names the field and
writes nothing; admins only), run through the shared job mechanism (claim → score →
metrics, confusion matrix and rows in one fenced write), failed with the reason, fenced
by attempts (a cancelled or taken-over attempt writes nothing), swept when their worker
dies. The real worker's test is ``test_evaluation_worker.py``."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from core import jobs
from experiments.models import MetricPoint
from tests.training.factories import separable_dataset_version
from tests.training.registry_factories import registered_version
from training import services
from training.models import Evaluation, JobStatus
from training.services import evaluation_jobs

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def artifacts(tmp_path, settings):
    settings.CVSA_ARTIFACTS_DIR = tmp_path


@pytest.fixture
def enqueued(monkeypatch):
    sent: list[tuple[int, str, int | None]] = []
    monkeypatch.setattr(
        evaluation_jobs, "evaluation_enqueue",
        lambda evaluation_id, celery_task_id, claim_attempt=None: sent.append(
            (evaluation_id, celery_task_id, claim_attempt)),
    )
    return sent


def fresh_version(**options):
    return registered_version(**options)


def queue(version, admin, dataset_version=None, split="test"):
    return services.evaluation_create(
        version_id=version.pk, dataset_version_id=(dataset_version or version.run.dataset_version).pk, split=split,
        user=admin, enqueue=False,
    )


def final_test_metrics(run) -> dict[str, float]:
    points = MetricPoint.objects.filter(run=run, key__startswith="test_").values_list("key", "value")
    return {key.removeprefix("test_"): value for key, value in points}


def test_an_evaluation_on_the_runs_test_split_reproduces_the_runs_test_metrics(admin):
    version = fresh_version()
    evaluation = queue(version, admin)
    assert evaluation.status == JobStatus.QUEUED and evaluation.created_by == admin

    finished = services.evaluation_run(evaluation.pk)

    assert finished.status == JobStatus.SUCCEEDED, finished.error
    logged = final_test_metrics(version.run)
    assert finished.rows == version.run.dataset_version.split_counts["test"]["total"]
    assert finished.positives == version.run.dataset_version.split_counts["test"]["positives"]
    for name in ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "loss"):
        assert finished.metrics[name] == pytest.approx(logged[name], abs=1e-6), name
    (tn, fp), (fn, tp) = finished.confusion_matrix
    assert [tn, fp, fn, tp] == [logged["tn"], logged["fp"], logged["fn"], logged["tp"]]
    assert finished.attempts == 1 and finished.worker_starts == 1 and finished.finished_at is not None
    assert finished.message.startswith(f"{finished.rows} rows")


def test_a_newer_dataset_version_and_other_splits_can_be_evaluated(admin):
    version = fresh_version()
    newer = separable_dataset_version(rows=40, dimensions=8, seed=5)

    on_newer = services.evaluation_run(queue(version, admin, newer, "all").pk)
    on_train = services.evaluation_run(queue(version, admin, split="train").pk)

    assert on_newer.status == JobStatus.SUCCEEDED and on_newer.rows == 40
    assert on_train.status == JobStatus.SUCCEEDED
    assert on_train.rows == version.run.dataset_version.split_counts["train"]["total"]


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"dataset_version_id": "not-a-uuid"}, "dataset_version_id", "not a dataset version id"),
    ({"dataset_version_id": "00000000-0000-0000-0000-000000000000"}, "dataset_version_id", "does not exist"),
    ({"split": "holdout"}, "split", "must be one of"),
    ({"version_id": 987654321}, "version_id", "does not exist"),
    ({"other_dimensions": True}, "dataset_version_id", "another embedding model"),
])
def test_bad_input_names_the_field_and_writes_nothing(admin, change, field, message):
    version = fresh_version()
    arguments = {"version_id": version.pk, "dataset_version_id": version.run.dataset_version_id, "split": "test",
                 "user": admin, "enqueue": False}
    if change.pop("other_dimensions", False):
        change["dataset_version_id"] = separable_dataset_version(rows=20, dimensions=4).pk
    arguments.update(change)

    with pytest.raises(ValidationError) as raised:
        services.evaluation_create(**arguments)

    assert field in raised.value.message_dict and message in raised.value.message_dict[field][0]
    assert not Evaluation.objects.exists()


def test_only_admins_queue_evaluations(make_user):
    version = fresh_version()
    with pytest.raises(PermissionDenied):
        queue(version, make_user("rita", group="reviewers"))
    assert not Evaluation.objects.exists()


def test_create_queues_the_task_once_committed(admin, enqueued, django_capture_on_commit_callbacks):
    version = fresh_version()
    with django_capture_on_commit_callbacks(execute=True):
        evaluation = services.evaluation_create(version_id=version.pk,
                                                dataset_version_id=version.run.dataset_version_id, user=admin)
    assert enqueued == [(evaluation.pk, evaluation.celery_task_id, None)]


def test_missing_weights_fail_the_evaluation_with_the_reason(admin):
    version = fresh_version()
    evaluation = queue(version, admin)
    from training.registry_selectors import version_weights_path

    version_weights_path(version).write_bytes(b"tampered")

    failed = services.evaluation_run(evaluation.pk)

    assert failed.status == JobStatus.FAILED
    assert failed.error.startswith("weights:") and "changed since its run recorded it" in failed.error
    assert failed.metrics == {} and failed.rows is None


def test_a_cancelled_queued_evaluation_never_runs_and_a_finished_one_cannot_be_cancelled(admin):
    version = fresh_version()
    evaluation = queue(version, admin)

    cancelled = services.evaluation_cancel(evaluation.pk)
    after = services.evaluation_run(evaluation.pk)

    assert cancelled.status == JobStatus.CANCELLED and after.status == JobStatus.CANCELLED and after.rows is None
    with pytest.raises(ValidationError, match="only a queued or running evaluation can be cancelled"):
        services.evaluation_cancel(evaluation.pk)


def test_an_attempt_cancelled_while_it_scores_writes_nothing(admin, monkeypatch):
    version = fresh_version()
    evaluation = queue(version, admin)
    compute = evaluation_jobs.evaluation_compute

    def cancelled_meanwhile(*args, **kwargs):
        outcome = compute(*args, **kwargs)
        services.evaluation_cancel(evaluation.pk)
        return outcome

    monkeypatch.setattr(evaluation_jobs, "evaluation_compute", cancelled_meanwhile)

    ended = services.evaluation_run(evaluation.pk)

    assert ended.status == JobStatus.CANCELLED and ended.metrics == {} and ended.rows is None


def test_the_celery_task_runs_the_evaluation_and_a_second_delivery_leaves_it(admin):
    from training.tasks import evaluation_run

    evaluation = queue(fresh_version(), admin)

    result = evaluation_run.apply(args=[evaluation.pk]).get()
    again = evaluation_run.apply(args=[evaluation.pk]).get()

    assert result == {"evaluation_id": evaluation.pk, "status": "succeeded", "error": None}
    assert again["status"] == "succeeded"
    assert Evaluation.objects.get(pk=evaluation.pk).attempts == 1


# --- the sweeper --------------------------------------------------------------------------


def running_with_dead_worker(evaluation: Evaluation, *, minutes_silent: int) -> Evaluation:
    claim = jobs.job_claim(services.EVALUATION_JOB, evaluation.pk)
    jobs.job_lock_release(services.EVALUATION_JOB, evaluation.pk)
    Evaluation.objects.filter(pk=evaluation.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=minutes_silent))
    assert claim.worker_starts == 1
    return Evaluation.objects.get(pk=evaluation.pk)


def test_an_evaluation_whose_worker_died_is_requeued_and_the_next_worker_finishes_it(
    admin, enqueued, django_capture_on_commit_callbacks
):
    evaluation = queue(fresh_version(), admin)
    stale = running_with_dead_worker(evaluation, minutes_silent=10)

    with django_capture_on_commit_callbacks(execute=True):
        assert services.evaluations_mark_stale(older_than=timedelta(minutes=5)) == 1

    evaluation.refresh_from_db()
    assert evaluation.status == JobStatus.RUNNING and evaluation.worker_starts == 2
    assert evaluation.attempts == stale.attempts + 1 and evaluation.message.startswith("re-queued")
    assert enqueued == [(evaluation.pk, evaluation.celery_task_id, evaluation.attempts)]
    # The dead attempt, should it come back, can no longer write.
    with pytest.raises(evaluation_jobs.EvaluationStale):
        evaluation_jobs._progress(evaluation.pk, stale.attempts, "zombie")
    finished = services.evaluation_run(evaluation.pk, celery_task_id=evaluation.celery_task_id,
                                       claim_attempt=evaluation.attempts)
    assert finished.status == JobStatus.SUCCEEDED and finished.worker_starts == 2 and finished.rows


def test_an_evaluation_that_used_up_its_attempts_is_failed(admin, enqueued, settings):
    settings.CVSA_JOB_MAX_ATTEMPTS = 1
    evaluation = queue(fresh_version(), admin)
    running_with_dead_worker(evaluation, minutes_silent=10)

    assert services.evaluations_mark_stale(older_than=timedelta(minutes=5)) == 1

    evaluation.refresh_from_db()
    assert evaluation.status == JobStatus.FAILED and enqueued == []
    assert evaluation.error.startswith("worker lost (no heartbeat since ") and "1 of 1 attempts" in evaluation.error


def test_a_queued_evaluation_whose_message_was_lost_is_failed_and_live_ones_are_left(admin, enqueued):
    version = fresh_version()
    lost, live, running = queue(version, admin), queue(version, admin), queue(version, admin)
    Evaluation.objects.filter(pk=lost.pk).update(created_at=timezone.now() - timedelta(days=2))
    jobs.job_claim(services.EVALUATION_JOB, running.pk)

    assert services.evaluations_mark_stale(older_than=timedelta(minutes=5), pending_older_than=timedelta(hours=1)) == 1

    statuses = dict(Evaluation.objects.values_list("pk", "status"))
    assert statuses == {lost.pk: JobStatus.FAILED, live.pk: JobStatus.QUEUED, running.pk: JobStatus.RUNNING}
    assert Evaluation.objects.get(pk=lost.pk).error.startswith("never started")
    jobs.job_lock_release(services.EVALUATION_JOB, running.pk)


def test_the_worker_sweep_includes_evaluations(monkeypatch):
    from cvsa_ml import celery

    called = []
    monkeypatch.setattr(services, "evaluations_mark_stale", lambda wait: called.append(wait) or 0)
    celery.sweep_stale_jobs()
    assert called == [False]
