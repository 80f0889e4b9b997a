"""The ML panel REST contract (docs/ml_panel_contract.md) at /v1/ and /api/v1/.

Field names and types are checked the way the client reads them; every refused
request is checked for a 4xx, a string ``detail`` and no rows written. Builds run
eagerly against the loopback OpenAI-protocol server (tests/datasets/conftest.py).
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timedelta

import numpy as np
import pytest
from django.db import connection
from django.middleware.csrf import get_token
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from datasets.models import (
    DatasetTask,
    DatasetTaskStatus,
    DatasetVersion,
    DatasetVersionItem,
    DatasetVersionStatus,
    Embedding,
)
from datasets.selectors import dataset_version_arrays, dataset_version_records
from tests.datasets.conftest import DIMENSIONS, EMBEDDING_API_KEY, MODEL_KEY
from tests.datasets.panel_fixtures import (  # noqa: F401 (fixtures)
    PREFIXES,
    build,
    corpus,
    counts,
    embedding_model,
    make_tasks,
    labeler_panel_client,
    make_versions,
    panel_admin,
    panel_client,
    ready_version,
)

pytestmark = pytest.mark.django_db

UUID_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$")
STATS_FIELDS = {"total_records": int, "new_embeddings": int, "reused_embeddings": int,
                "inconsistent_labels": int, "embedding_model": str}
TASK_KEYS = {"task_id", "status", "progress", "result", "error", "created_at", "started_at", "completed_at"}
PROGRESS_KEYS = {"current_step", "total_steps", "completed_steps", "percentage", "message"}


def post(client, url, body, **extra):
    return client.post(url, json.dumps(body) if not isinstance(body, str) else body,
                       content_type="application/json", **extra)


def assert_refused(response, status: int, *fragments: str) -> str:
    assert response.status_code == status, response.content
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    for fragment in fragments:
        assert fragment in body["detail"], body["detail"]
    return body["detail"]


def assert_timestamp(value) -> None:
    assert isinstance(value, str)
    datetime.fromisoformat(value.replace("Z", "+00:00"))


def aids(videos) -> list[int]:
    return [video.aid for video in videos]


# --- auth ----------------------------------------------------------------------


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("method,path", [
    ("get", "/models/embedding"), ("get", "/datasets"), ("get", f"/dataset/{uuid.uuid4()}"),
    ("delete", f"/dataset/{uuid.uuid4()}"), ("post", "/dataset/build"), ("post", "/dataset/sample"),
    ("post", "/dataset/create-with-sampling"), ("get", f"/tasks/{uuid.uuid4()}"), ("get", "/tasks"),
    ("post", "/tasks/cleanup"), ("get", "/datasets/stats"), ("post", "/datasets/cleanup"),
])
def test_anonymous_requests_are_refused_with_a_detail(client, prefix, method, path):
    if method == "get":
        response = client.get(prefix + path, content_type="application/json")
    else:
        response = getattr(client, method)(prefix + path, data="{}", content_type="application/json")

    assert_refused(response, 401, "credentials")
    assert response["WWW-Authenticate"] == "Token"


def test_anonymous_build_writes_nothing(client, corpus, registry_file):
    response = post(client, "/v1/dataset/build", {"aid_list": aids(corpus["labeled"]), "embedding_model": MODEL_KEY})

    assert_refused(response, 401)
    assert counts() == {"datasets": 0, "versions": 0, "tasks": 0}


def test_token_authentication_works(client, user):
    token = Token.objects.create(user=user)

    response = client.get("/v1/tasks?limit=50", HTTP_AUTHORIZATION=f"Token {token.key}",
                          content_type="application/json")

    assert response.status_code == 200
    assert response.json()["tasks"] == []


def test_bad_token_is_refused(client, user):
    assert_refused(client.get("/v1/tasks", HTTP_AUTHORIZATION="Token not-a-key"), 401, "Invalid token")


SAME_ORIGIN = "http://testserver"  # what a browser sends for a page served by this server


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8"])
def test_session_from_the_same_origin_needs_no_csrf_token(user, corpus, content_type):
    """What the unchanged panel sends when served by this server: a cookie and its Origin."""
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)

    response = browser.post("/v1/dataset/sample", json.dumps({"strategy": "all"}), content_type=content_type,
                            HTTP_ORIGIN=SAME_ORIGIN)

    assert response.status_code == 200, response.content
    assert response.json()["sampled_count"] == 10


def test_session_delete_from_the_same_origin_needs_no_csrf_token(panel_admin, embedding_model):
    """The panel's delete button: DELETE with the page's Origin and no token."""
    (version,) = make_versions(1, embedding_model)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(panel_admin)

    # Without Origin or Referer nothing says where the request comes from: normal CSRF applies.
    assert_refused(browser.delete(f"/v1/dataset/{version.pk}", CONTENT_TYPE="application/json"), 403, "CSRF")
    response = browser.delete(f"/v1/dataset/{version.pk}", CONTENT_TYPE="application/json", HTTP_ORIGIN=SAME_ORIGIN)

    assert response.status_code == 200, response.content
    assert not DatasetVersion.objects.filter(pk=version.pk).exists()


@pytest.mark.parametrize("headers", [
    {"HTTP_ORIGIN": "https://evil.example"}, {"HTTP_ORIGIN": "null"}, {"HTTP_REFERER": "https://evil.example/page"},
    {},
])
def test_session_from_another_origin_needs_a_csrf_token(panel_admin, headers):
    old = make_tasks(2, age=timedelta(days=3))
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(panel_admin)

    response = browser.post("/v1/tasks/cleanup", json.dumps({"max_age_hours": 1}), content_type="application/json",
                            **headers)

    assert_refused(response, 403, "CSRF")
    assert DatasetTask.objects.filter(pk__in=[task.pk for task in old]).count() == 2


def test_session_without_an_origin_but_with_a_csrf_token_is_accepted(panel_admin):
    """Normal CSRF: a script holding the session and the page's token (a foreign Origin stays refused)."""
    make_tasks(1, age=timedelta(days=3))
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(panel_admin)
    page = RequestFactory().get("/")
    token = get_token(page)  # what a page of this server would embed; its cookie holds the secret
    browser.cookies["csrftoken"] = page.META["CSRF_COOKIE"]

    response = browser.post("/v1/tasks/cleanup", json.dumps({"max_age_hours": 1}), content_type="application/json",
                            HTTP_X_CSRFTOKEN=token)

    assert response.status_code == 200, response.content
    assert response.json()["cleaned_count"] == 1


def test_a_form_post_is_415_the_api_reads_json(panel_client):
    make_tasks(1, age=timedelta(days=3))

    response = panel_client.post("/v1/tasks/cleanup", {"max_age_hours": "1"}, format="multipart")

    assert_refused(response, 415, "multipart/form-data")
    assert DatasetTask.objects.count() == 1


# --- health ----------------------------------------------------------------------


@pytest.mark.parametrize("prefix", PREFIXES)
def test_health_serves_the_panel_fields_and_the_components(client, prefix, registry_file):
    response = client.get(f"{prefix}/health", content_type="application/json")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] in ("ok", "degraded")
    assert body["components"]["database"]["ok"] is True
    assert isinstance(body["service"], str) and body["service"]
    assert body["database"] == "connected"
    assert body["available_models"] == [MODEL_KEY]
    assert body["embedding_service"]["status"] == "healthy"
    assert body["embedding_service"]["model"] == MODEL_KEY
    assert body["embedding_service"]["dimensions"] == DIMENSIONS


def test_health_reports_an_invalid_registry_without_failing(logged_in_client, settings, tmp_path):
    client = logged_in_client
    broken = tmp_path / "broken.toml"
    broken.write_text("model = 3\n", encoding="utf-8")
    settings.CVSA_EMBEDDING_MODELS_FILE = broken

    body = client.get("/v1/health").json()

    assert body["embedding_service"]["status"] == "unhealthy"
    assert "model" in body["embedding_service"]["error"]
    assert body["available_models"] == []


def test_health_with_the_database_down_answers_503_with_the_panel_fields(logged_in_client, monkeypatch, registry_file):
    client = logged_in_client
    from cvsa_ml import health
    from cvsa_ml.health import ComponentHealth

    monkeypatch.setattr(health, "database_health", lambda: ComponentHealth(False, "OperationalError: down"))

    response = client.get("/v1/health")

    assert response.status_code == 503
    assert response.json()["database"] == "error: OperationalError: down"


# --- models ----------------------------------------------------------------------


@pytest.mark.parametrize("prefix", PREFIXES)
def test_embedding_models_are_keyed_by_model_key_with_all_six_fields(panel_client, prefix, registry_file):
    response = panel_client.get(f"{prefix}/models/embedding")

    assert response.status_code == 200
    models = response.json()["models"]
    assert list(models) == [MODEL_KEY]
    model = models[MODEL_KEY]
    assert model["name"] == "fake-embedding-model"
    assert model["dimensions"] == DIMENSIONS
    assert model["type"] == "openai-compatible"
    assert model["api_endpoint"].startswith("http://127.0.0.1:")
    assert model["max_tokens"] == 512 and model["max_batch_size"] == 16
    assert model["api_key_set"] is True
    assert EMBEDDING_API_KEY not in response.content.decode()  # the key itself is never sent


def test_embedding_models_of_the_repository_registry(panel_client):
    body = panel_client.get("/v1/models/embedding").json()

    assert body["default"] == "local-default"
    assert body["models"]["local-default"]["api_endpoint"] is None
    assert body["models"]["qwen3-embedding"]["name"] == "text-embedding-v4"


def test_an_invalid_registry_is_a_503_with_detail(panel_client, settings, tmp_path):
    settings.CVSA_EMBEDDING_MODELS_FILE = tmp_path / "missing.toml"

    assert_refused(panel_client.get("/v1/models/embedding"), 503, "registry")


# --- datasets ---------------------------------------------------------------------


def test_dataset_list_is_empty_at_first(panel_client):
    response = panel_client.get("/v1/datasets")

    assert response.status_code == 200
    assert response.json() == {"datasets": []}


@pytest.mark.parametrize("prefix", PREFIXES)
def test_dataset_list_has_the_panel_fields(panel_client, prefix, ready_version):
    datasets = panel_client.get(f"{prefix}/datasets").json()["datasets"]

    assert len(datasets) == 1
    item = datasets[0]
    assert item["dataset_id"] == str(ready_version.pk) and UUID_PATTERN.match(item["dataset_id"])
    assert item["description"] == "ten labeled videos"
    assert_timestamp(item["created_at"])
    for name, kind in STATS_FIELDS.items():
        assert isinstance(item["stats"][name], kind), name
    assert item["stats"]["total_records"] == 10
    assert item["stats"]["new_embeddings"] == 10
    assert item["stats"]["reused_embeddings"] == 0
    assert item["stats"]["inconsistent_labels"] == 2
    assert item["stats"]["embedding_model"] == MODEL_KEY


def test_dataset_list_is_newest_first_without_failed_or_building_versions(panel_client, embedding_model):
    (older,) = make_versions(1, embedding_model, age=timedelta(hours=1))
    (newer,) = make_versions(1, embedding_model)
    make_versions(1, embedding_model, status=DatasetVersionStatus.FAILED, name="failed")
    make_versions(1, embedding_model, status=DatasetVersionStatus.BUILDING, name="building")

    datasets = panel_client.get("/v1/datasets").json()["datasets"]

    assert [item["dataset_id"] for item in datasets] == [str(newer.pk), str(older.pk)]
    assert datasets[0]["description"] is None  # null when absent, as the reference server sends


def test_dataset_list_costs_the_same_queries_for_10_and_200_versions(panel_client, embedding_model):
    make_versions(10, embedding_model)
    with CaptureQueriesContext(connection) as few:
        assert len(panel_client.get("/v1/datasets").json()["datasets"]) == 10
    make_versions(190, embedding_model)
    with CaptureQueriesContext(connection) as many:
        assert len(panel_client.get("/v1/datasets").json()["datasets"]) == 200

    assert len(many) == len(few) <= 3


@pytest.mark.parametrize("prefix", PREFIXES)
def test_dataset_detail_has_every_record_with_its_vector(panel_client, prefix, ready_version, corpus):
    response = panel_client.get(f"{prefix}/dataset/{ready_version.pk}")

    assert response.status_code == 200
    body = response.json()
    assert body["dataset_id"] == str(ready_version.pk)
    assert body["stats"]["total_records"] == 10
    assert_timestamp(body["created_at"])
    records = body["dataset"]
    assert [record["aid"] for record in records] == sorted(aids(corpus["labeled"]))
    arrays = dataset_version_arrays(ready_version.pk)
    np.testing.assert_allclose(np.array([record["embedding"] for record in records]), arrays.X, rtol=1e-6)
    positives = set(aids(corpus["positive"]))
    for record in records:
        assert record["label"] is (record["aid"] in positives)
        assert record["split"] in ("train", "val", "test")
        assert record["inconsistent"] is False
        assert re.fullmatch(r"[0-9a-f]{64}", record["text_checksum"])
        assert set(record["metadata"]) == {"aid", "title", "description", "tags"}
        assert record["metadata"]["aid"] == record["aid"]
        assert len(record["embedding"]) == DIMENSIONS
        assert all(isinstance(value, float) for value in record["embedding"])
        assert record["user_labels"] and all(
            isinstance(entry["user"], str) and entry["label"] is record["label"] for entry in record["user_labels"]
        )
        assert_timestamp(record["user_labels"][0]["created_at"])


def test_dataset_detail_query_count_does_not_grow_with_records(panel_client, ready_version):
    with CaptureQueriesContext(connection) as queries:
        assert len(panel_client.get(f"/v1/dataset/{ready_version.pk}").json()["dataset"]) == 10

    assert len(queries) <= 6


def test_a_versions_records_are_one_selector_read_whose_dates_the_api_formats(
    panel_client, ready_version, django_assert_num_queries
):
    with django_assert_num_queries(4):  # the version, the COPY of vectors, the items, the labels
        records = dataset_version_records(ready_version)
    assert [record["aid"] for record in records] == sorted(record["aid"] for record in records)
    created = records[0]["user_labels"][0]["created_at"]
    assert isinstance(created, datetime) and created.tzinfo is not None

    served = panel_client.get(f"/v1/dataset/{ready_version.pk}").json()["dataset"][0]
    assert served["aid"] == records[0]["aid"]
    assert served["user_labels"][0]["created_at"] == timezone.localtime(created).isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize("dataset_id", [str(uuid.uuid4()), "not-a-uuid", "123"])
def test_unknown_dataset_is_404(panel_client, dataset_id):
    assert_refused(panel_client.get(f"/v1/dataset/{dataset_id}"), 404, "Dataset not found")
    assert_refused(panel_client.delete(f"/v1/dataset/{dataset_id}"), 404, "Dataset not found")


@pytest.mark.parametrize("status,fragment", [
    (DatasetVersionStatus.BUILDING, "still building"), (DatasetVersionStatus.FAILED, "embedding API down"),
])
def test_unfinished_dataset_detail_is_a_409_with_detail(panel_client, embedding_model, status, fragment):
    (version,) = make_versions(1, embedding_model, status=status)

    assert_refused(panel_client.get(f"/v1/dataset/{version.pk}"), 409, fragment)


@pytest.mark.parametrize("prefix", PREFIXES)
def test_delete_dataset_removes_the_version_and_its_items_keeps_vectors(panel_client, prefix, ready_version):
    task = ready_version.tasks.get()

    response = panel_client.delete(f"{prefix}/dataset/{ready_version.pk}")

    assert response.status_code == 200
    assert response.json() == {"message": f"Dataset {ready_version.pk} deleted successfully"}
    assert not DatasetVersion.objects.filter(pk=ready_version.pk).exists()
    assert not DatasetVersionItem.objects.exists()
    assert Embedding.objects.count() == 10
    task.refresh_from_db()
    assert task.dataset_version_id is None
    assert_refused(panel_client.delete(f"{prefix}/dataset/{ready_version.pk}"), 404, "Dataset not found")


def test_delete_refuses_a_version_being_built(panel_client, embedding_model):
    (version,) = make_versions(1, embedding_model, status=DatasetVersionStatus.BUILDING)
    make_tasks(1, status=DatasetTaskStatus.PENDING, version=version)

    assert_refused(panel_client.delete(f"/v1/dataset/{version.pk}"), 400, "dataset_id", "being built")
    assert DatasetVersion.objects.filter(pk=version.pk).exists()


# --- build ------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", PREFIXES)
def test_build_starts_a_task_and_freezes_a_version(panel_client, prefix, corpus, registry_file, embedding_server,
                                                   celery_eager, django_capture_on_commit_callbacks):
    requested = aids(corpus["labeled"] + corpus["unlabeled"])
    with django_capture_on_commit_callbacks(execute=True):
        response = post(panel_client, f"{prefix}/dataset/build",
                        {"aid_list": requested, "embedding_model": MODEL_KEY, "force_regenerate": False,
                         "description": "from the panel"})

    assert response.status_code == 200, response.content
    body = response.json()
    assert UUID_PATTERN.match(body["dataset_id"]) and UUID_PATTERN.match(body["task_id"])
    assert body["status"] == "started"
    assert body["total_records"] == len(requested)
    assert body["message"] == f"Dataset building started with task ID: {body['task_id']}"
    assert body["description"] == "from the panel"
    task = DatasetTask.objects.get(pk=body["task_id"])
    assert task.status == DatasetTaskStatus.COMPLETED, task.error
    assert str(task.dataset_version_id) == body["dataset_id"]
    version = task.dataset_version
    assert version.status == DatasetVersionStatus.READY
    assert version.total_records == 10 and version.unlabeled_excluded == 2
    assert len(embedding_server.requests) >= 1


def test_build_with_only_the_required_fields(panel_client, corpus, registry_file, embedding_server, celery_eager,
                                             django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(panel_client, "/v1/dataset/build",
                        {"aid_list": aids(corpus["positive"]), "embedding_model": MODEL_KEY, "id": "ignored"})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["description"] is None
    version = DatasetVersion.objects.get(pk=body["dataset_id"])
    assert version.force_regenerate is False
    assert version.dataset.name == "default"


def test_build_accepts_our_extra_options(panel_client, corpus, registry_file, embedding_server, celery_eager,
                                         django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(panel_client, "/v1/dataset/build", {
            "aid_list": aids(corpus["labeled"] + corpus["ties"]), "embedding_model": MODEL_KEY, "name": "panel",
            "split_ratios": [0.5, 0.25, 0.25], "seed": 9, "include_inconsistent": True,
        })

    assert response.status_code == 200, response.content
    version = DatasetVersion.objects.get(pk=response.json()["dataset_id"])
    assert (version.dataset.name, version.seed, version.split_ratios) == ("panel", 9, (0.5, 0.25, 0.25))
    assert version.include_inconsistent is True


@pytest.mark.parametrize("body,fragments", [
    ({"embedding_model": MODEL_KEY}, ("aid_list", "required")),
    ({"aid_list": [], "embedding_model": MODEL_KEY}, ("aid_list",)),
    ({"aid_list": ["abc"], "embedding_model": MODEL_KEY}, ("aid_list",)),
    ({"aid_list": [-5], "embedding_model": MODEL_KEY}, ("aid_list",)),
    ({"aid_list": 10000, "embedding_model": MODEL_KEY}, ("aid_list",)),
    ({"aid_list": [10000]}, ("embedding_model", "required")),
    ({"aid_list": [10000], "embedding_model": "no-such-model"}, ("embedding_model", "Invalid embedding model")),
    ({"aid_list": [10000, 99_999_999], "embedding_model": MODEL_KEY}, ("aid_list", "99999999")),
    ({"aid_list": [40000], "embedding_model": MODEL_KEY}, ("aid_list", "consensus")),
    ({"aid_list": [10000], "embedding_model": MODEL_KEY, "force_regenerate": "maybe"}, ("force_regenerate",)),
    ({"aid_list": [10000], "embedding_model": MODEL_KEY, "split_ratios": [0.5, 0.5, 0.5]}, ("split_ratios",)),
    ({"aid_list": [10000], "embedding_model": MODEL_KEY, "seed": "x"}, ("seed",)),
    ([1, 2, 3], ("dictionary",)),
])
def test_bad_build_requests_are_400_and_write_nothing(panel_client, corpus, registry_file, body, fragments):
    response = post(panel_client, "/v1/dataset/build", body)

    assert_refused(response, 400, *fragments)
    assert counts() == {"datasets": 0, "versions": 0, "tasks": 0}


def test_malformed_json_is_a_400(panel_client, registry_file):
    response = post(panel_client, "/v1/dataset/build", '{"aid_list": [1,')

    assert_refused(response, 400, "JSON parse error")
    assert counts() == {"datasets": 0, "versions": 0, "tasks": 0}


# --- sampling ---------------------------------------------------------------------


@pytest.mark.parametrize("prefix", PREFIXES)
def test_sample_all_returns_every_labeled_aid(panel_client, prefix, corpus):
    response = post(panel_client, f"{prefix}/dataset/sample", {"strategy": "all"})

    assert response.status_code == 200
    body = response.json()
    assert body["strategy"] == "all"
    assert body["aid_list"] == sorted(aids(corpus["labeled"]))
    assert body["total_available"] == 10 and body["sampled_count"] == 10
    assert body["filters_applied"] == {"limit": None}
    assert isinstance(body["sampling_info"]["strategy_description"], str)
    assert body["sampling_info"]["sample_ratio"] == 1.0
    assert counts() == {"datasets": 0, "versions": 0, "tasks": 0}


def test_sample_random_returns_exactly_min_limit_total(panel_client, corpus):
    body = post(panel_client, "/v1/dataset/sample", {"strategy": "random", "limit": 3}).json()

    assert body["sampled_count"] == 3 == len(set(body["aid_list"]))
    assert set(body["aid_list"]) <= set(aids(corpus["labeled"]))
    assert body["total_available"] == 10
    assert body["sampling_info"]["sample_ratio"] == pytest.approx(0.3)
    assert body["filters_applied"]["limit"] == 3

    default = post(panel_client, "/v1/dataset/sample", {"strategy": "random"}).json()
    assert default["sampled_count"] == 10 and default["filters_applied"]["limit"] == 1000


def test_sample_accepts_label_value_and_metadata_filter(panel_client, corpus):
    body = post(panel_client, "/v1/dataset/sample", {
        "strategy": "all", "label_value": False, "metadata_filter": {"title_contains": "2000"},
    }).json()

    assert body["aid_list"] == sorted(aids(corpus["negative"]))
    assert body["filters_applied"]["label_value"] is False
    assert body["filters_applied"]["metadata_filter"] == {"title_contains": "2000"}


@pytest.mark.parametrize("body,fragments", [
    ({}, ("strategy", "required")),
    ({"strategy": "stratified-by-moon"}, ("strategy",)),
    ({"strategy": "random", "limit": 0}, ("limit",)),
    ({"strategy": "random", "limit": "many"}, ("limit",)),
    ({"strategy": "all", "label_value": "perhaps"}, ("label_value",)),
    ({"strategy": "all", "metadata_filter": {"colour": "red"}}, ("metadata_filter.colour", "unknown filter")),
    ({"strategy": "all", "metadata_filter": {"min_duration": -1}}, ("metadata_filter.min_duration",)),
    ({"strategy": "all", "metadata_filter": "title"}, ("metadata_filter",)),
])
def test_bad_sample_requests_are_400(panel_client, corpus, body, fragments):
    assert_refused(post(panel_client, "/v1/dataset/sample", body), 400, *fragments)


@pytest.mark.parametrize("prefix", PREFIXES)
def test_create_with_sampling_samples_then_builds(panel_client, prefix, corpus, registry_file, embedding_server,
                                                  celery_eager, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(panel_client, f"{prefix}/dataset/create-with-sampling", {
            "sampling": {"strategy": "random", "limit": 4}, "embedding_model": MODEL_KEY,
            "force_regenerate": False, "description": "sampled",
        })

    assert response.status_code == 200, response.content
    body = response.json()
    assert UUID_PATTERN.match(body["dataset_id"]) and UUID_PATTERN.match(body["task_id"])
    assert body["status"] == "started" and body["total_records"] == 4
    assert body["message"] == f"Dataset building started with task ID: {body['task_id']}"
    assert body["description"] == "sampled"
    assert body["sampling_response"]["sampled_count"] == 4
    assert body["sampling_response"]["total_available"] == 10
    version = DatasetVersion.objects.get(pk=body["dataset_id"])
    assert version.status == DatasetVersionStatus.READY and version.total_records == 4
    assert version.selection["strategy"] == "random"
    assert sorted(version.requested_aids) == body["sampling_response"]["aid_list"]


@pytest.mark.parametrize("body,fragments", [
    ({"sampling": {"strategy": "all", "label_value": True, "metadata_filter": {"title_contains": "2000"}},
      "embedding_model": MODEL_KEY}, ("No AIDs found matching the sampling criteria",)),
    ({"sampling": {"strategy": "all"}, "embedding_model": "nope"}, ("Invalid embedding model",)),
    ({"embedding_model": MODEL_KEY}, ("sampling", "required")),
    ({"sampling": {"strategy": "every"}, "embedding_model": MODEL_KEY}, ("sampling.strategy",)),
    ({"sampling": {"strategy": "all"}}, ("embedding_model",)),
])
def test_bad_create_with_sampling_requests_are_400_and_write_nothing(panel_client, corpus, registry_file, body,
                                                                     fragments):
    assert_refused(post(panel_client, "/v1/dataset/create-with-sampling", body), 400, *fragments)
    assert counts() == {"datasets": 0, "versions": 0, "tasks": 0}


# --- tasks ------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", PREFIXES)
def test_task_detail_of_a_completed_build(panel_client, prefix, ready_version):
    task = ready_version.tasks.get()

    response = panel_client.get(f"{prefix}/tasks/{task.pk}")

    assert response.status_code == 200
    body = response.json()
    assert TASK_KEYS <= set(body)
    assert body["task_id"] == str(task.pk) and body["status"] == "completed"
    assert PROGRESS_KEYS <= set(body["progress"])
    assert isinstance(body["progress"]["percentage"], float) and body["progress"]["percentage"] == 100.0
    assert body["progress"]["completed_steps"] == body["progress"]["total_steps"]
    assert body["result"]["dataset_id"] == str(ready_version.pk)
    for name, kind in STATS_FIELDS.items():
        assert isinstance(body["result"]["stats"][name], kind)
    assert body["error"] is None
    for name in ("created_at", "started_at", "completed_at"):
        assert_timestamp(body[name])


def test_task_detail_of_a_pending_and_a_failed_task(panel_client):
    pending, = make_tasks(1, status=DatasetTaskStatus.PENDING)
    failed, = make_tasks(1, status=DatasetTaskStatus.FAILED)

    body = panel_client.get(f"/v1/tasks/{pending.pk}").json()
    assert (body["status"], body["started_at"], body["completed_at"], body["result"], body["error"]) == (
        "pending", None, None, None, None)
    assert isinstance(body["progress"]["percentage"], float)
    failed_body = panel_client.get(f"/v1/tasks/{failed.pk}").json()
    assert failed_body["status"] == "failed" and failed_body["error"] == "boom"


@pytest.mark.parametrize("task_id", [str(uuid.uuid4()), "nope"])
def test_unknown_task_is_404(panel_client, task_id):
    assert_refused(panel_client.get(f"/v1/tasks/{task_id}"), 404, "Task not found")


@pytest.mark.parametrize("prefix", PREFIXES)
def test_task_list_filters_limits_and_counts_globally(panel_client, prefix):
    make_tasks(3, status=DatasetTaskStatus.COMPLETED, age=timedelta(minutes=5))
    make_tasks(2, status=DatasetTaskStatus.FAILED, age=timedelta(minutes=4))
    make_tasks(1, status=DatasetTaskStatus.RUNNING, age=timedelta(minutes=3))
    newest, = make_tasks(1, status=DatasetTaskStatus.PENDING)
    make_tasks(1, status=DatasetTaskStatus.CANCELLED, age=timedelta(minutes=6))

    body = panel_client.get(f"{prefix}/tasks?limit=50").json()
    assert len(body["tasks"]) == 8 and body["tasks"][0]["task_id"] == str(newest.pk)
    created = [task["created_at"] for task in body["tasks"]]
    assert created == sorted(created, reverse=True)
    expected_counts = {"total_count": 8, "pending_count": 1, "running_count": 1, "completed_count": 3,
                       "failed_count": 2}
    assert {name: body[name] for name in expected_counts} == expected_counts

    failed = panel_client.get(f"{prefix}/tasks?status=failed&limit=50").json()
    assert [task["status"] for task in failed["tasks"]] == ["failed", "failed"]
    assert failed["total_count"] == 8  # counts stay global
    assert len(panel_client.get(f"{prefix}/tasks?limit=2").json()["tasks"]) == 2
    assert len(panel_client.get(f"{prefix}/tasks").json()["tasks"]) == 8  # default 50


@pytest.mark.parametrize("query,fragment", [
    ("status=done", "status"), ("limit=ten", "limit"), ("status=", "status"), ("limit=&status=", "limit"),
])
def test_task_list_bad_query_is_400(panel_client, query, fragment):
    assert_refused(panel_client.get(f"/v1/tasks?{query}"), 400, fragment)


def test_task_list_costs_the_same_queries_for_10_and_200_tasks(panel_client, embedding_model):
    (version,) = make_versions(1, embedding_model)
    make_tasks(10, version=version)
    with CaptureQueriesContext(connection) as few:
        assert len(panel_client.get("/v1/tasks?limit=1000").json()["tasks"]) == 10
    make_tasks(190, version=version)
    with CaptureQueriesContext(connection) as many:
        assert len(panel_client.get("/v1/tasks?limit=1000").json()["tasks"]) == 200

    assert len(many) == len(few) <= 3


@pytest.mark.parametrize("prefix", PREFIXES)
def test_task_cleanup_removes_old_finished_tasks_only(panel_client, prefix):
    old_finished = make_tasks(2, age=timedelta(hours=30)) + make_tasks(1, status=DatasetTaskStatus.FAILED,
                                                                       age=timedelta(hours=30))
    old_running = make_tasks(1, status=DatasetTaskStatus.RUNNING, age=timedelta(hours=30))
    recent = make_tasks(1, age=timedelta(hours=1))

    response = post(panel_client, f"{prefix}/tasks/cleanup", {"max_age_hours": 24})

    assert response.status_code == 200
    assert response.json() == {"message": "Cleaned up 3 tasks older than 24 hours", "cleaned_count": 3}
    remaining = set(DatasetTask.objects.values_list("pk", flat=True))
    assert remaining == {task.pk for task in old_running + recent}
    assert not remaining & {task.pk for task in old_finished}


def test_task_cleanup_reads_the_query_string_and_defaults_to_24_hours(panel_client):
    make_tasks(1, age=timedelta(hours=30))
    make_tasks(1, age=timedelta(hours=2))

    assert post(panel_client, "/v1/tasks/cleanup", {}).json()["cleaned_count"] == 1
    response = panel_client.post("/v1/tasks/cleanup?max_age_hours=1.5", content_type="application/json")
    assert response.json() == {"message": "Cleaned up 1 tasks older than 1.5 hours", "cleaned_count": 1}


@pytest.mark.parametrize("body", [{"max_age_hours": -1}, {"max_age_hours": "soon"}, ["max_age_hours"]])
def test_bad_task_cleanup_is_400_and_deletes_nothing(panel_client, body):
    make_tasks(2, age=timedelta(days=5))

    assert_refused(post(panel_client, "/v1/tasks/cleanup", body), 400)
    assert DatasetTask.objects.count() == 2


# --- statistics and dataset cleanup ---------------------------------------------


@pytest.mark.parametrize("prefix", PREFIXES)
def test_dataset_statistics(panel_client, prefix, embedding_model):
    make_versions(2, embedding_model)  # total_records 10 + 11, new 0 + 1, reused 1 + 1
    make_versions(1, embedding_model, status=DatasetVersionStatus.FAILED, name="failed")

    body = panel_client.get(f"{prefix}/datasets/stats").json()

    assert {name: body[name] for name in ("total_datasets", "valid_datasets", "error_datasets", "total_records",
                                          "total_new_embeddings", "total_reused_embeddings")} == {
        "total_datasets": 3, "valid_datasets": 2, "error_datasets": 1, "total_records": 21,
        "total_new_embeddings": 1, "total_reused_embeddings": 2}
    assert isinstance(body["storage_directory"], str) and body["storage_directory"]


def test_dataset_statistics_when_empty(panel_client):
    body = panel_client.get("/v1/datasets/stats").json()

    assert body["total_datasets"] == body["total_records"] == 0


@pytest.mark.parametrize("prefix", PREFIXES)
def test_dataset_cleanup_removes_old_failed_versions_and_keeps_ready_ones(panel_client, prefix, embedding_model):
    make_versions(2, embedding_model, status=DatasetVersionStatus.FAILED, name="failed", age=timedelta(days=40))
    old_ready = make_versions(1, embedding_model, age=timedelta(days=40))
    recent_failed = make_versions(1, embedding_model, status=DatasetVersionStatus.FAILED, name="recent")

    response = post(panel_client, f"{prefix}/datasets/cleanup", {"max_age_days": 30})

    assert response.status_code == 200
    body = response.json()
    assert body["message"] == "Cleanup completed for datasets older than 30 days"
    assert body["removed_count"] == 2
    assert set(DatasetVersion.objects.values_list("pk", flat=True)) == {old_ready[0].pk, recent_failed[0].pk}

    body = post(panel_client, f"{prefix}/datasets/cleanup?max_age_days=30", {"include_ready": True}).json()
    assert body["removed_count"] == 1
    assert list(DatasetVersion.objects.values_list("pk", flat=True)) == [recent_failed[0].pk]


@pytest.mark.parametrize("body", [{"max_age_days": -3}, {"max_age_days": "old"}, {"include_ready": "sure"}])
def test_bad_dataset_cleanup_is_400_and_deletes_nothing(panel_client, embedding_model, body):
    make_versions(1, embedding_model, status=DatasetVersionStatus.FAILED)
    DatasetVersion.objects.update(created_at=DatasetVersion.objects.get().created_at - timedelta(days=90))

    assert_refused(post(panel_client, "/v1/datasets/cleanup", body), 400)
    assert DatasetVersion.objects.count() == 1


# --- routing and schema -----------------------------------------------------------


@pytest.mark.parametrize("method,path", [
    ("get", "/v1/tasks/cleanup"), ("get", "/v1/dataset/build"), ("post", f"/v1/tasks/{uuid.uuid4()}"),
    ("put", "/v1/datasets"), ("get", "/v1/datasets/cleanup"),
])
def test_wrong_methods_are_405_with_detail(panel_client, method, path):
    assert_refused(getattr(panel_client, method)(path, format="json"), 405, "not allowed")


def test_every_success_has_a_json_body(panel_client, embedding_model):
    """The client calls response.json() on every success, DELETE and cleanups included."""
    (version,) = make_versions(1, embedding_model)
    for response in (
        panel_client.delete(f"/v1/dataset/{version.pk}"),
        post(panel_client, "/v1/tasks/cleanup", {"max_age_hours": 24}),
        post(panel_client, "/v1/datasets/cleanup", {"max_age_days": 30}),
    ):
        assert response.status_code == 200
        assert response["Content-Type"] == "application/json"
        assert isinstance(response.json()["message"], str)


def test_the_schema_publishes_the_panel_without_warnings(registry_file):
    from drf_spectacular.drainage import GENERATOR_STATS
    from drf_spectacular.generators import SchemaGenerator

    GENERATOR_STATS.reset()
    schema = SchemaGenerator().get_schema(request=None, public=True)
    problems = [message for message in [*GENERATOR_STATS._warn_cache, *GENERATOR_STATS._error_cache]
                if "datasets/api" in message or "core/api" in message or "cvsa_ml/api.py" in message or "cookieAuth" in message]
    GENERATOR_STATS.reset()

    assert problems == []
    paths = schema["paths"]
    for path in ("/api/v1/health", "/api/v1/models/embedding", "/api/v1/datasets", "/api/v1/dataset/{dataset_id}",
                 "/api/v1/dataset/build", "/api/v1/dataset/sample", "/api/v1/dataset/create-with-sampling",
                 "/api/v1/tasks/{task_id}", "/api/v1/tasks", "/api/v1/tasks/cleanup", "/api/v1/datasets/stats",
                 "/api/v1/datasets/cleanup"):
        assert path in paths, path
    assert set(paths["/api/v1/dataset/{dataset_id}"]) >= {"get", "delete"}
    build_schema = schema["components"]["schemas"]["PanelDatasetBuildRequest"]
    assert {"aid_list", "embedding_model"} <= set(build_schema["required"])
    assert "sessionAuth" in schema["components"]["securitySchemes"]


def test_schema_is_served_to_a_logged_in_client(panel_client):
    response = panel_client.get("/api/schema/?format=json")

    assert response.status_code == 200
    assert "/api/v1/dataset/create-with-sampling" in response.json()["paths"]


# --- roles ------------------------------------------------------------------------


def test_a_labeler_is_refused_every_destructive_endpoint_and_nothing_changes(labeler_panel_client, ready_version,
                                                                           corpus):
    old_task = make_tasks(1, age=timedelta(days=3))[0]
    old_failed = make_versions(1, ready_version.embedding_model, status=DatasetVersionStatus.FAILED, name="old",
                               age=timedelta(days=90))[0]
    before = counts()
    client = labeler_panel_client
    requests = [
        post(client, "/v1/dataset/build", {"aid_list": [corpus["labeled"][0].aid], "embedding_model": MODEL_KEY}),
        post(client, "/v1/dataset/create-with-sampling", {"sampling": {"strategy": "all"},
                                                          "embedding_model": MODEL_KEY}),
        client.delete(f"/v1/dataset/{ready_version.pk}", format="json"),
        post(client, "/v1/tasks/cleanup", {"max_age_hours": 0}),
        post(client, "/v1/datasets/cleanup", {"max_age_days": 0, "include_ready": True}),
    ]

    for response in requests:
        assert_refused(response, 403, "Only admins")
    assert counts() == before
    assert DatasetVersion.objects.filter(pk__in=[ready_version.pk, old_failed.pk]).count() == 2
    assert DatasetTask.objects.filter(pk=old_task.pk).exists()


def test_a_labeler_may_read(labeler_panel_client, ready_version, corpus, registry_file):
    client = labeler_panel_client
    for url in ("/v1/datasets", f"/v1/dataset/{ready_version.pk}", "/v1/tasks", "/v1/datasets/stats",
                "/v1/models/embedding"):
        assert client.get(url).status_code == 200, url
    assert post(client, "/v1/dataset/sample", {"strategy": "all"}).status_code == 200


def test_a_user_without_a_team_role_may_not_read(make_user, ready_version):
    client = APIClient()
    client.force_authenticate(make_user("outsider", group=None))

    assert_refused(client.get("/v1/datasets"), 403, "labelers, reviewers and admins")
    assert_refused(post(client, "/v1/dataset/sample", {"strategy": "all"}), 403)


def test_an_admin_may_clean_up_and_delete(panel_client, embedding_model):
    (version,) = make_versions(1, embedding_model)
    make_tasks(1, age=timedelta(days=3))

    assert post(panel_client, "/v1/tasks/cleanup", {"max_age_hours": 1}).json()["cleaned_count"] == 1
    assert panel_client.delete(f"/v1/dataset/{version.pk}", format="json").status_code == 200
    assert not DatasetVersion.objects.exists()


# --- bad input is a 400, never a 500 --------------------------------------------------


@pytest.mark.parametrize("url,body,field", [
    ("/v1/tasks/cleanup", {"max_age_hours": 1e12}, "max_age_hours"),
    ("/v1/datasets/cleanup", {"max_age_days": 1e12}, "max_age_days"),
    ("/v1/datasets/cleanup?max_age_days=1e300", {}, "max_age_days"),
])
def test_huge_cleanup_ages_are_400(panel_client, embedding_model, url, body, field):
    make_tasks(1, age=timedelta(days=3))
    make_versions(1, embedding_model, status=DatasetVersionStatus.FAILED, age=timedelta(days=90))
    before = counts()

    assert_refused(post(panel_client, url, body), 400, field)
    assert counts() == before


@pytest.mark.parametrize("limit", ["1001", "99999999999999999999999", "1.5", "1e3", "0", "-1", "", "null"])
def test_task_list_limit_out_of_range_or_not_an_integer_is_400(panel_client, limit):
    """The page size is bounded (at most 1000) and a negative or empty one is refused, not replaced."""
    assert_refused(panel_client.get(f"/v1/tasks?limit={limit}"), 400, "limit")


def test_task_list_limit_at_the_maximum_is_fine(panel_client):
    assert panel_client.get("/v1/tasks?limit=1000").status_code == 200


@pytest.mark.parametrize("name", ["title_contains", "tags_contains", "published_after"])
def test_nul_in_a_metadata_filter_is_400_naming_it(panel_client, corpus, name):
    response = post(panel_client, "/v1/dataset/sample",
                    {"strategy": "all", "metadata_filter": {name: "ab\u0000c"}})

    assert_refused(response, 400, f"metadata_filter.{name}", "NUL")


def test_sample_all_ignores_limit(panel_client, corpus):
    body = post(panel_client, "/v1/dataset/sample", {"strategy": "all", "limit": 3}).json()

    assert body["sampled_count"] == 10 and body["filters_applied"]["limit"] is None


def test_a_version_too_large_to_inline_is_refused_with_where_to_get_it(panel_client, ready_version, monkeypatch):
    monkeypatch.setattr("datasets.api.views.PANEL_MAX_INLINE_RECORDS", 5)

    response = panel_client.get(f"/v1/dataset/{ready_version.pk}")

    detail = assert_refused(response, 413, "too large to inline (10 records)",
                            f"/datasets/versions/{ready_version.pk}/", "Parquet/NPZ")
    assert "dataset" not in response.json() and detail


# --- resume over the API (issue 10, item 8) ----------------------------------------------


def failed_build(ready_version) -> DatasetTask:
    """The build task of a version put back to failed (as a crashed worker leaves it)."""
    task = ready_version.tasks.get()
    (failed,) = make_versions(1, ready_version.embedding_model, status=DatasetVersionStatus.FAILED, name="crashed")
    DatasetTask.objects.filter(pk=task.pk).update(dataset_version=failed, status=DatasetTaskStatus.FAILED,
                                                  error="worker lost")
    task.refresh_from_db()
    return task


@pytest.mark.parametrize("prefix", PREFIXES)
def test_an_admin_resumes_a_failed_build(panel_client, prefix, ready_version, django_capture_on_commit_callbacks):
    task = failed_build(ready_version)

    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = panel_client.post(f"{prefix}/tasks/{task.pk}/resume", format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["task_id"] == str(task.pk) and body["status"] == "pending" and body["error"] is None
    assert len(queued) == 1  # the build is queued when the request commits
    attempts_before = task.attempts
    task.refresh_from_db()
    assert task.status == DatasetTaskStatus.PENDING and task.attempts == attempts_before + 1
    assert task.dataset_version.status == DatasetVersionStatus.BUILDING


def test_a_labeler_may_not_resume(labeler_panel_client, ready_version):
    task = failed_build(ready_version)

    assert_refused(labeler_panel_client.post(f"/v1/tasks/{task.pk}/resume", format="json"), 403, "Only admins")
    task.refresh_from_db()
    assert task.status == DatasetTaskStatus.FAILED


@pytest.mark.parametrize("task_id", [str(uuid.uuid4()), "nope"])
def test_resuming_an_unknown_task_is_404(panel_client, task_id):
    assert_refused(panel_client.post(f"/api/v1/tasks/{task_id}/resume", format="json"), 404, "Task not found")


def test_resuming_a_completed_build_is_400_and_changes_nothing(panel_client, ready_version):
    task = ready_version.tasks.get()

    assert_refused(panel_client.post(f"/v1/tasks/{task.pk}/resume", format="json"), 400, "task_id", "completed")
    task.refresh_from_db()
    assert task.status == DatasetTaskStatus.COMPLETED
