import pytest

from cvsa_ml.tasks import worker_self_check

pytestmark = [pytest.mark.django_db, pytest.mark.worker]


def test_real_worker_runs_a_task_and_returns_its_result(celery_worker_process):
    result = worker_self_check.delay()

    assert result.get(timeout=30) == {"database": True, "vector": True}
    assert result.successful()
