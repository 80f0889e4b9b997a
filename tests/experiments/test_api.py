"""The experiments REST API: CRUD with soft delete and restore, filters, roles, query counts."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from datasets.models import DatasetVersionStatus
from experiments.models import Experiment, RunStatus
from tests.experiments.factories import (
    ExperimentFactory,
    RunFactory,
    dataset_version,
    make_runs,
    ready_dataset_version,
    running_run,
)
from tests.support.api_errors import assert_refused

pytestmark = pytest.mark.django_db

URL = "/api/v1/experiments"


@pytest.fixture
def admin_client(make_user) -> APIClient:
    client = APIClient()
    client.force_authenticate(make_user("experiments-admin", group="admins"))
    return client


@pytest.fixture
def labeler_client(make_user) -> APIClient:
    client = APIClient()
    client.force_authenticate(make_user("experiments-labeler", group="labelers"))
    return client


# --- authentication and roles -----------------------------------------------------------


@pytest.mark.parametrize("method,path", [
    ("get", ""), ("post", ""), ("get", "/1"), ("patch", "/1"), ("delete", "/1"), ("post", "/1/restore"),
])
def test_anonymous_requests_are_refused(client, method, path):
    if method == "get":
        response = client.get(URL + path)
    else:
        response = getattr(client, method)(URL + path, data="{}", content_type="application/json")

    assert_refused(response, 401, "credentials")


def test_a_token_authenticates(client, make_user):
    ExperimentFactory(name="seen")
    token = Token.objects.create(user=make_user("token-reader", group="reviewers"))

    response = client.get(URL, HTTP_AUTHORIZATION=f"Token {token.key}")

    assert response.status_code == 200
    assert [row["name"] for row in response.json()["results"]] == ["seen"]


def test_a_labeler_reads_but_every_write_is_refused_and_nothing_changes(labeler_client):
    experiment = ExperimentFactory(name="kept", tags=["a"])
    deleted = ExperimentFactory(name="gone", deleted_at="2026-01-01T00:00:00Z")

    assert labeler_client.get(URL).status_code == 200
    assert labeler_client.get(f"{URL}/{experiment.pk}").status_code == 200
    for response in (
        labeler_client.post(URL, {"name": "new"}, format="json"),
        labeler_client.patch(f"{URL}/{experiment.pk}", {"name": "renamed"}, format="json"),
        labeler_client.delete(f"{URL}/{experiment.pk}"),
        labeler_client.post(f"{URL}/{deleted.pk}/restore"),
    ):
        assert_refused(response, 403, "Only admins")
    experiment.refresh_from_db()
    deleted.refresh_from_db()
    assert (experiment.name, experiment.deleted_at, deleted.is_deleted) == ("kept", None, True)
    assert Experiment.objects.count() == 2


def test_a_user_without_a_team_role_may_not_read(make_user):
    client = APIClient()
    client.force_authenticate(make_user("outsider", group=None))

    assert_refused(client.get(URL), 403, "labelers, reviewers and admins")


# --- create ---------------------------------------------------------------------------


def test_an_admin_creates_an_experiment(admin_client):
    version = ready_dataset_version()

    response = admin_client.post(URL, {
        "name": "  wider   mlp ", "description": "does width help?", "tags": ["MLP", "width", "mlp"],
        "default_dataset_version": str(version.pk), "metric_key": "val_roc_auc", "metric_direction": "max",
    }, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    experiment = Experiment.objects.get()
    assert body["id"] == experiment.pk
    assert body["name"] == experiment.name == "wider mlp"
    assert body["tags"] == ["mlp", "width"]
    assert body["owner"] == "experiments-admin"
    assert body["default_dataset_version"] == str(version.pk)
    assert (body["metric_key"], body["metric_direction"], body["deleted_at"]) == ("val_roc_auc", "max", None)


@pytest.mark.parametrize("body,field,fragment", [
    ({}, "name", "required"),
    ({"name": ""}, "name", "blank"),
    ({"name": "x" * 201}, "name", "200"),
    ({"name": "a", "tags": "mlp"}, "tags", "list"),
    ({"name": "a", "tags": ["x" * 51]}, "tags", "50"),
    ({"name": "a", "metric_direction": "up"}, "metric_direction", "valid choice"),
    ({"name": "a", "metric_key": "val f1!"}, "metric_key", "only letters"),
    ({"name": "a", "default_dataset_version": "not-a-uuid"}, "default_dataset_version", "UUID"),
])
def test_bad_input_names_the_field_and_writes_nothing(admin_client, body, field, fragment):
    body = assert_refused(admin_client.post(URL, body, format="json"), 400, field, fragment)

    assert field in body["errors"]
    assert Experiment.objects.count() == 0


def test_a_dataset_version_that_is_not_ready_is_refused_under_its_field(admin_client):
    building = dataset_version(DatasetVersionStatus.BUILDING)

    body = assert_refused(admin_client.post(URL, {"name": "a", "default_dataset_version": str(building.pk)},
                                            format="json"), 400, "default_dataset_version", "not ready")

    assert list(body["errors"]) == ["default_dataset_version"]
    assert Experiment.objects.count() == 0


def test_a_taken_name_is_refused(admin_client):
    ExperimentFactory(name="taken", deleted_at="2026-01-01T00:00:00Z")

    assert_refused(admin_client.post(URL, {"name": "taken"}, format="json"), 400, "name", "already exists")
    assert Experiment.objects.count() == 1


# --- read -----------------------------------------------------------------------------


def test_list_is_paginated_newest_first_with_run_counts(admin_client):
    older, newer = ExperimentFactory(name="older"), ExperimentFactory(name="newer")
    make_runs(older, 3)
    make_runs(older, 1, status=RunStatus.FAILED)
    RunFactory(experiment=older)

    page = admin_client.get(URL, {"limit": 1}).json()
    rest = admin_client.get(URL, {"limit": 1, "offset": 1}).json()

    assert page["count"] == 2
    assert [row["name"] for row in page["results"] + rest["results"]] == ["newer", "older"]
    counted = rest["results"][0]
    assert counted["run_count"] == 5
    assert counted["runs_by_status"] == {"queued": 1, "running": 0, "succeeded": 3, "failed": 1, "cancelled": 0}
    assert older.pk == counted["id"] and newer.pk == page["results"][0]["id"]


@pytest.mark.parametrize("params", [{"limit": 1001}, {"limit": 0}, {"offset": -1}, {"status": "done"},
                                    {"dataset_version": "nope"}, {"deleted": "maybe"}, {"search": "x" * 201}])
def test_bad_query_parameters_are_400s(admin_client, params):
    assert_refused(admin_client.get(URL, params), 400, next(iter(params)))


def test_filters(admin_client):
    version = ready_dataset_version()
    by_search = ExperimentFactory(name="search me", tags=["alpha"])
    by_tag = ExperimentFactory(name="tagged", tags=["beta"])
    by_status = ExperimentFactory(name="running one", tags=[])
    running_run(experiment=by_status)
    by_version = ExperimentFactory(name="on version", tags=[], default_dataset_version=version)
    deleted = ExperimentFactory(name="deleted", deleted_at="2026-01-01T00:00:00Z")

    def names(**params) -> list[str]:
        response = admin_client.get(URL, params)
        assert response.status_code == 200, response.content
        return sorted(row["name"] for row in response.json()["results"])

    assert names(search="search") == [by_search.name]
    assert names(tag="BETA") == [by_tag.name]
    assert names(status="running") == [by_status.name]
    assert names(dataset_version=str(version.pk)) == [by_version.name]
    assert names(deleted="true") == [deleted.name]
    assert deleted.name not in names()


def test_detail_and_404(admin_client):
    experiment = ExperimentFactory(name="one")

    assert admin_client.get(f"{URL}/{experiment.pk}").json()["name"] == "one"
    assert_refused(admin_client.get(f"{URL}/{experiment.pk + 1000}"), 404, "Experiment not found")
    assert_refused(admin_client.get(f"{URL}/99999999999999999999"), 404)


# --- update, delete, restore ------------------------------------------------------------


def test_patch_changes_only_the_fields_sent(admin_client):
    experiment = ExperimentFactory(name="before", description="kept", tags=["a"])

    response = admin_client.patch(f"{URL}/{experiment.pk}", {"name": "after", "tags": ["b"],
                                                             "default_dataset_version": None}, format="json")

    assert response.status_code == 200, response.content
    experiment.refresh_from_db()
    assert (experiment.name, experiment.description, experiment.tags) == ("after", "kept", ["b"])
    assert experiment.default_dataset_version_id is None
    assert response.json()["default_dataset_version"] is None


def test_patch_with_bad_input_writes_nothing(admin_client):
    experiment = ExperimentFactory(name="before")
    ExperimentFactory(name="other")

    assert_refused(admin_client.patch(f"{URL}/{experiment.pk}", {"name": "other"}, format="json"), 400, "name")
    assert_refused(admin_client.patch(f"{URL}/{experiment.pk}", {"metric_direction": "sideways"}, format="json"),
                   400, "metric_direction")
    experiment.refresh_from_db()
    assert (experiment.name, experiment.metric_direction) == ("before", "max")
    assert_refused(admin_client.patch(f"{URL}/{experiment.pk + 1000}", {"name": "x"}, format="json"), 404)


def test_soft_delete_and_restore(admin_client):
    experiment = ExperimentFactory(name="to delete")
    make_runs(experiment, 2)

    deleted = admin_client.delete(f"{URL}/{experiment.pk}")

    assert deleted.status_code == 200, deleted.content
    assert deleted.json()["deleted_at"] is not None
    assert admin_client.get(URL).json()["count"] == 0
    assert admin_client.get(f"{URL}/{experiment.pk}").json()["deleted_at"] is not None
    assert_refused(admin_client.patch(f"{URL}/{experiment.pk}", {"name": "x"}, format="json"), 400, "restore it")

    restored = admin_client.post(f"{URL}/{experiment.pk}/restore")

    assert restored.status_code == 200, restored.content
    assert restored.json()["deleted_at"] is None
    assert admin_client.get(URL).json()["results"][0]["run_count"] == 2
    assert_refused(admin_client.post(f"{URL}/{experiment.pk + 1000}/restore"), 404)


def test_delete_is_refused_while_a_run_is_active(admin_client):
    run = running_run()

    assert_refused(admin_client.delete(f"{URL}/{run.experiment_id}"), 400, "queued or running", "cancel them first")
    run.experiment.refresh_from_db()
    assert run.experiment.deleted_at is None


# --- query counts ---------------------------------------------------------------------------


def _list_queries(client, count: int) -> int:
    experiments = ExperimentFactory.create_batch(count - Experiment.objects.count())
    for experiment in experiments[:5]:
        make_runs(experiment, 2)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(URL, {"limit": 1000})
    assert response.status_code == 200
    assert len(response.json()["results"]) == count
    return len(queries)


def test_the_list_costs_the_same_queries_for_10_and_200_experiments(admin_client):
    assert _list_queries(admin_client, 10) == _list_queries(admin_client, 200)
