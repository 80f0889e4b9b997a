import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from cvsa_ml.bootstrap import groups_bootstrap


@pytest.fixture
def groups(db):
    return groups_bootstrap()


@pytest.fixture
def make_user(db, groups):
    def make(username: str = "alice", *, group: str | None = "labelers", **extra):
        user = get_user_model().objects.create_user(username=username, password="pw-for-tests-1", **extra)
        if group:
            user.groups.add(groups[group])
        return user

    return make


@pytest.fixture
def user(make_user):
    return make_user("alice", group="labelers")


@pytest.fixture
def logged_in_client(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def api_client(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker):
    """One real worker for the whole session (started lazily by the tests that need it)."""
    from tests.support.celery_worker import running_worker

    with django_db_blocker.unblock(), running_worker() as process:
        yield process
