"""An evaluation queued through the service and run by a real Celery worker (prefork
child, test database and broker). The run is trained in this process into the default
artifacts folder, which the worker (same environment) reads."""

from __future__ import annotations

import pytest

from tests.support.waiting import wait_until
from tests.training.registry_factories import registered_version
from training import services
from training.models import Evaluation, JobStatus

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_a_real_worker_runs_a_queued_evaluation_to_success(celery_worker_process, make_user):
    version = registered_version()
    admin = make_user("ada", group="admins")

    evaluation = services.evaluation_create(version_id=version.pk, dataset_version_id=version.run.dataset_version_id,
                                            split="test", user=admin)

    finished = wait_until(
        lambda: Evaluation.objects.filter(pk=evaluation.pk, status__in=[JobStatus.SUCCEEDED, JobStatus.FAILED])
        .first(),
        "the evaluation to finish", interval=0.2,
    )
    assert finished.status == JobStatus.SUCCEEDED, finished.error
    assert finished.rows == version.run.dataset_version.split_counts["test"]["total"]
    assert 0.5 < finished.metrics["roc_auc"] <= 1.0 and sum(map(sum, finished.confusion_matrix)) == finished.rows
    assert finished.worker and finished.worker_starts == 1
