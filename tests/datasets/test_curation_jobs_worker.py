"""A cleaning task queued as a job is run by a real Celery worker (its own process,
the test database and broker): queued on commit, claimed, excluded, completed."""

from __future__ import annotations

import pytest

from datasets import services
from datasets.models import DatasetTask, DatasetTaskStatus, Exclusion
from tests.datasets.cleaning_factories import video
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_a_real_worker_runs_a_queued_cleaning_task(celery_worker_process):
    video(1, "a proper title")
    video(2, "x")
    task = services.curation_task_queue(
        task_type="cleaning", params={"rule": "short_title", "params": {"min_length": 3}}
    )
    finished = wait_until(
        lambda: DatasetTask.objects.filter(
            pk=task.pk, status__in=[DatasetTaskStatus.COMPLETED, DatasetTaskStatus.FAILED]
        ).first(),
        "the worker finishing the cleaning task",
    )
    assert finished.status == DatasetTaskStatus.COMPLETED, finished.error
    assert finished.worker and finished.worker_starts == 1
    assert finished.result["excluded"] == 1
    assert list(Exclusion.objects.filter(task=finished).values_list("video__aid", flat=True)) == [2]
