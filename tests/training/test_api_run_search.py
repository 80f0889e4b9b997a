"""``GET /api/v1/runs?filter=&sort=``: the run search language in the API (matches,
sorts, 400 naming the position, injection attempts as literals), its OpenAPI
parameters, and a query count that does not grow with the runs."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from experiments import services as tracking
from experiments.models import Experiment, Param, Run, RunStatus
from tests.experiments.factories import ExperimentFactory, make_runs, running_run

pytestmark = pytest.mark.django_db

RUNS = "/api/v1/runs"


@pytest.fixture
def client(make_user) -> APIClient:
    client = APIClient()
    client.force_authenticate(make_user("search-labeler", group="labelers"))
    return client


@pytest.fixture
def runs() -> dict[str, Run]:
    experiment = ExperimentFactory(metric_key="val_loss", metric_direction="min")
    made = {}
    for name, lr, curve, arch in (("a", "0.001", (0.9, 0.2, 0.4), "mlp"), ("b", "1e-2", (0.5, 0.3), "mlp"),
                                  ("c", "0.1", (0.8, 0.7), "logreg")):
        run = running_run(experiment=experiment, name=name)
        tracking.run_params_log(run.pk, {"lr": lr})
        tracking.run_metrics_log(run.pk, [("val_loss", step, value) for step, value in enumerate(curve)])
        tracking.run_tags_set(run.pk, {"arch": arch})
        made[name] = tracking.run_transition(run.pk, RunStatus.SUCCEEDED)
    return made


def names(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [run["name"] for run in response.json()["results"]]


def test_filter_and_sort(client, runs):
    assert names(client.get(RUNS, {"filter": 'params.lr <= 0.01 and tags.arch = "mlp"', "sort": "params.lr"})) == [
        "a", "b"]
    # best of the experiment's minimized metric is its lowest value: a 0.2, b 0.3, c 0.7
    assert names(client.get(RUNS, {"sort": "-metrics.val_loss.best"})) == ["c", "b", "a"]
    assert names(client.get(RUNS, {"sort": "metrics.val_loss"})) == ["b", "a", "c"]  # latest 0.3, 0.4, 0.7
    assert names(client.get(RUNS, {"filter": "metrics.val_loss.best < 0.25"})) == ["a"]
    assert names(client.get(RUNS, {"filter": "", "sort": ""})) == ["c", "b", "a"]  # newest first
    # with the list's other filters
    assert names(client.get(RUNS, {"filter": "params.lr >= 0.01", "status": "succeeded"})) == ["c", "b"]
    assert names(client.get(RUNS, {"filter": "params.lr >= 0.01", "status": "failed"})) == []
    assert names(client.get(RUNS, {"filter": 'status = "succeeded"', "limit": 1, "offset": 1,
                                   "sort": "name"})) == ["b"]


@pytest.mark.parametrize(("query", "detail"), [
    ({"filter": "params.lr ~ 1"}, "filter: at position 11: unexpected character '~'"),
    ({"filter": "metrics.val_loss.bset < 1"}, "filter: at position 18: expected an aggregate"),
    ({"filter": '(status = "failed"'}, "filter: at position 19: expected )"),
    ({"filter": "colour = 'red'"}, "filter: at position 1: unknown attribute 'colour'"),
    ({"filter": "  params.lr = 'x"}, "filter: at position 15: unclosed string"),  # positions count the spaces
    ({"sort": "metrics.val_loss.worst"}, "sort: at position 18: expected an aggregate"),
    ({"filter": "x" * 4001}, "filter:"),
])
def test_bad_filters_and_sorts_are_400s_naming_the_position(client, runs, query, detail):
    response = client.get(RUNS, query)
    assert response.status_code == 400, response.content
    assert response.json()["detail"].startswith(detail)


@pytest.mark.parametrize("text", [
    "params.lr = \"0.001'; drop table experiments_run; --\"",
    "name = 'a'' or ''1''=''1'",
    "tags.`arch` = \"mlp\\\" or 1=1\"",
    "params.`lr` in ('1); delete from experiments_param; --', 'é🙂')",
])
def test_injection_attempts_are_literals_or_400s(client, runs, text):
    response = client.get(RUNS, {"filter": text})
    assert response.status_code in (200, 400)
    if response.status_code == 200:
        assert response.json()["results"] == []
    assert Run.objects.count() == 3 and Param.objects.count() == 3


def test_filter_and_sort_are_in_the_openapi_schema(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    parameters = {parameter["name"]: parameter for parameter in schema["paths"][RUNS]["get"]["parameters"]}
    assert parameters["filter"]["schema"]["type"] == "string"
    assert "position" in parameters["filter"]["description"]
    assert parameters["sort"]["schema"]["maxLength"] == 300


def _list_queries(client: APIClient, count: int) -> int:
    Experiment.objects.all().delete()
    make_runs(ExperimentFactory(), count)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(RUNS, {"filter": "params.lr >= 0 and metrics.val_f1.best >= 0", "sort": "-params.lr",
                                     "limit": 100})
    assert response.status_code == 200
    assert response.json()["count"] == count
    return len(queries)


def test_query_count_does_not_grow_with_the_runs(client):
    assert _list_queries(client, 10) == _list_queries(client, 1000)
