"""Curation tasks on the job lifecycle: queue → claim → runner → completed/failed, with
progress written through an injected clock, cancel, resume, takeover after a dead
worker, the sweeper re-queueing to the right Celery task, and the cleaning runner."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from datasets import services
from datasets.models import DatasetTask, DatasetTaskStatus, DatasetTaskType, Exclusion
from datasets.services import curation_jobs, job_lifecycle
from datasets.services.cleaning import cleaning_preview
from tests.datasets.cleaning_factories import video

pytestmark = pytest.mark.django_db

FAKE = "tests.datasets.test_curation_jobs"
SEEN: list[dict] = []


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


CLOCK = FakeClock()


def fake_params_clean(params: dict) -> dict:
    if "count" not in params:
        raise ValidationError({"count": "required"})
    if not isinstance(params["count"], int) or params["count"] < 0:
        raise ValidationError({"count": "a non-negative integer"})
    return {"count": params["count"], "fail": params.get("fail", "")}


def fake_runner(task: DatasetTask, progress) -> dict:
    """Counts to ``count`` in one step, recording what the row says after each write."""
    count = task.params["count"]
    progress.step("counting", total=count, message=f"counting to {count}")
    SEEN.append(_row(task))
    for done in range(1, count + 1):
        CLOCK.now += 1.0  # every advance is due for a write
        if task.params["fail"] == "cancel" and done == 2:
            curation_jobs.curation_task_cancel(task.pk)
        progress.advance(done)
        SEEN.append(_row(task))
        if task.params["fail"] == "user" and done == 1:
            raise ValueError("the corpus has no such thing")
        if task.params["fail"] == "bug" and done == 1:
            {}["missing"]
    return {"counted": count, "message": f"counted to {count}"}


def _row(task: DatasetTask) -> dict:
    return DatasetTask.objects.filter(pk=task.pk).values(
        "status", "current_step", "done", "total", "percentage", "completed_steps"
    ).get()


@pytest.fixture
def fake_type(monkeypatch):
    """The deduplication type, run by the fake runner above."""
    SEEN.clear()
    CLOCK.now = 0.0
    monkeypatch.setitem(curation_jobs.CURATION_RUNNERS, DatasetTaskType.DEDUPLICATION, f"{FAKE}.fake_runner")
    monkeypatch.setitem(
        curation_jobs.CURATION_PARAMS_CLEANERS, DatasetTaskType.DEDUPLICATION, f"{FAKE}.fake_params_clean"
    )
    return DatasetTaskType.DEDUPLICATION


def queue(task_type, **params) -> DatasetTask:
    return services.curation_task_queue(task_type=task_type, params=params, enqueue=False)


def test_a_queued_task_runs_and_writes_its_progress(fake_type):
    task = queue(fake_type, count=3)
    assert task.status == DatasetTaskStatus.PENDING and task.params == {"count": 3, "fail": ""}

    task = services.curation_task_run(task.pk, clock=CLOCK)

    assert task.status == DatasetTaskStatus.COMPLETED, task.error
    assert task.result == {"counted": 3, "message": "counted to 3"}
    assert task.message == "counted to 3" and task.percentage == 100.0 and task.completed_at
    assert SEEN[0] == {"status": "running", "current_step": "counting", "done": 0, "total": 3, "percentage": 0.0,
                       "completed_steps": 0}
    assert [row["done"] for row in SEEN[1:]] == [1, 2, 3]
    assert [row["percentage"] for row in SEEN[1:]] == [33.33, 66.67, 100.0]


def test_a_second_delivery_of_a_finished_task_does_nothing(fake_type):
    task = services.curation_task_run(queue(fake_type, count=1).pk, clock=CLOCK)
    again = services.curation_task_run(task.pk, clock=CLOCK)
    assert again.status == DatasetTaskStatus.COMPLETED and again.attempts == task.attempts


@pytest.mark.parametrize(("fail", "error"), [
    ("user", "counting: the corpus has no such thing"),
    ("bug", "counting: KeyError: 'missing'"),
])
def test_failures_end_failed_with_their_message(fake_type, fail, error):
    task = services.curation_task_run(queue(fake_type, count=3, fail=fail).pk, clock=CLOCK)
    assert task.status == DatasetTaskStatus.FAILED
    assert task.error == error
    assert task.result is None


def test_a_cancel_stops_the_runner_at_its_next_progress_write(fake_type):
    task = services.curation_task_run(queue(fake_type, count=5, fail="cancel").pk, clock=CLOCK)
    assert task.status == DatasetTaskStatus.CANCELLED
    assert task.result is None
    assert [row["done"] for row in SEEN[1:]] == [1]  # the write at 2 was refused: it stopped there


def test_a_failed_task_resumes_and_runs_again(fake_type):
    task = services.curation_task_run(queue(fake_type, count=2, fail="user").pk, clock=CLOCK)
    DatasetTask.objects.filter(pk=task.pk).update(params={"count": 2, "fail": ""})
    resumed = services.curation_task_resume(task.pk, enqueue=False)
    assert resumed.status == DatasetTaskStatus.PENDING and resumed.error == ""
    assert services.curation_task_run(task.pk, clock=CLOCK).status == DatasetTaskStatus.COMPLETED
    with pytest.raises(ValidationError):
        services.curation_task_resume(task.pk, enqueue=False)


@pytest.mark.parametrize(("task_type", "params"), [
    ("nonsense", {"count": 1}),
    ("deduplication", {}),
    ("deduplication", {"count": -1}),
    ("cleaning", {"rule": "no-such-rule"}),
    ("cleaning", {"rule": "short_title", "params": {"min_length": "many"}}),
])
def test_bad_input_writes_no_row(fake_type, task_type, params):
    with pytest.raises(ValidationError):
        services.curation_task_queue(task_type=task_type, params=params, enqueue=False)
    assert not DatasetTask.objects.exists()


def test_a_task_whose_worker_died_is_taken_over(fake_type):
    task = queue(fake_type, count=2)
    stale = timezone.now() - timedelta(hours=1)
    DatasetTask.objects.filter(pk=task.pk).update(
        status=DatasetTaskStatus.RUNNING, attempts=1, worker_starts=1, heartbeat_at=stale, started_at=stale,
        worker="gone:1",
    )
    task = services.curation_task_run(task.pk, clock=CLOCK)
    assert task.status == DatasetTaskStatus.COMPLETED
    assert task.worker_starts == 2


def test_the_sweeper_requeues_a_dead_curation_task_to_the_curation_celery_task(
    fake_type, monkeypatch, django_capture_on_commit_callbacks
):
    queued: list[tuple] = []
    monkeypatch.setattr(job_lifecycle, "curation_enqueue", lambda *args, **kwargs: queued.append((args, kwargs)))
    monkeypatch.setattr(job_lifecycle, "build_enqueue", lambda *args, **kwargs: pytest.fail("not a build"))
    task = queue(fake_type, count=1)
    stale = timezone.now() - timedelta(hours=1)
    DatasetTask.objects.filter(pk=task.pk).update(
        status=DatasetTaskStatus.RUNNING, attempts=1, worker_starts=1, heartbeat_at=stale, started_at=stale
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert services.dataset_task_mark_stale() == 1
    task.refresh_from_db()
    (args, kwargs), = queued
    assert args == (task.pk, task.celery_task_id) and kwargs == {"claim_attempt": 2}
    # The re-queued message takes over exactly that attempt.
    task = services.curation_task_run(task.pk, celery_task_id=task.celery_task_id, claim_attempt=2, clock=CLOCK)
    assert task.status == DatasetTaskStatus.COMPLETED


def test_a_missing_runner_module_fails_the_task_visibly(monkeypatch):
    monkeypatch.setitem(curation_jobs.CURATION_RUNNERS, DatasetTaskType.CLEANING, "datasets.services.nowhere.run")
    task = services.curation_task_queue(task_type="cleaning", params={"rule": "short_title"}, enqueue=False)
    task = services.curation_task_run(task.pk)
    assert task.status == DatasetTaskStatus.FAILED and "ModuleNotFoundError" in task.error


def test_the_cleaning_runner_excludes_what_the_preview_counted():
    video(1, "ok title here")
    video(2, "x")
    video(3, "短")
    params = {"min_length": 3}
    preview = cleaning_preview("short_title", params)
    task = services.curation_task_queue(task_type="cleaning", params={"rule": "short_title", "params": params},
                                        enqueue=False)
    task = services.curation_task_run(task.pk)

    assert task.status == DatasetTaskStatus.COMPLETED, task.error
    assert task.result["excluded"] == preview.would_exclude == 2
    assert set(Exclusion.objects.filter(task=task).values_list("video__aid", flat=True)) == {2, 3}
    assert task.current_step == "completed" and task.percentage == 100.0
    # Run again (a re-delivery after resume): nothing new, the same exclusions.
    DatasetTask.objects.filter(pk=task.pk).update(status=DatasetTaskStatus.FAILED)
    services.curation_task_resume(task.pk, enqueue=False)
    task = services.curation_task_run(task.pk)
    assert task.result["excluded"] == 0 and task.result["already_excluded"] == 2
    assert Exclusion.objects.count() == 2
