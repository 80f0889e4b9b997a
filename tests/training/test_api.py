"""The runs and architectures REST API: queueing through the schema (per-field errors,
nothing written), list and detail, cancel, soft delete, metric series, artifact files,
roles and query counts."""

from __future__ import annotations

import hashlib
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from datasets.models import DatasetVersionStatus
from experiments import services as tracking
from experiments.models import Artifact, Param, Run, RunStatus
from tests.experiments.factories import (
    ExperimentFactory,
    RunFactory,
    dataset_version,
    make_runs,
    ready_dataset_version,
    running_run,
)
from tests.support.api_errors import assert_refused
from tests.training.factories import separable_dataset_version
from training import services
from training.architectures import architectures_as_json

pytestmark = pytest.mark.django_db

RUNS = "/api/v1/runs"


def rows() -> dict[str, int]:
    return {"runs": Run.objects.count(), "params": Param.objects.count()}


@pytest.fixture
def admin_client(make_user) -> APIClient:
    client = APIClient()
    client.force_authenticate(make_user("runs-admin", group="admins"))
    return client


@pytest.fixture
def labeler_client(make_user) -> APIClient:
    client = APIClient()
    client.force_authenticate(make_user("runs-labeler", group="labelers"))
    return client


@pytest.fixture
def artifacts_dir(settings, tmp_path):
    settings.CVSA_ARTIFACTS_DIR = tmp_path / "artifacts"
    return settings.CVSA_ARTIFACTS_DIR


def finished_run(**fields) -> Run:
    run = running_run(**fields)
    return tracking.run_transition(run.pk, RunStatus.SUCCEEDED)


def run_with_artifact(content: bytes, path: str = "model.pt") -> Run:
    run = running_run()
    folder = tracking.run_artifact_dir(run.pk)
    (folder / path).parent.mkdir(parents=True, exist_ok=True)
    (folder / path).write_bytes(content)
    tracking.run_artifact_record(run.pk, path)
    return run


# --- authentication and roles -----------------------------------------------------------


@pytest.mark.parametrize("method,path", [
    ("get", "/api/v1/architectures"), ("get", RUNS), ("post", RUNS), ("get", f"{RUNS}/1"),
    ("delete", f"{RUNS}/1"), ("post", f"{RUNS}/1/cancel"), ("post", f"{RUNS}/1/restore"),
    ("get", f"{RUNS}/1/metrics"), ("get", f"{RUNS}/1/artifacts/model.pt"),
])
def test_anonymous_requests_are_refused(client, method, path):
    if method == "get":
        response = client.get(path)
    else:
        response = getattr(client, method)(path, data="{}", content_type="application/json")

    assert_refused(response, 401, "credentials")


def test_a_labeler_reads_but_cannot_queue_cancel_delete_or_restore(labeler_client, artifacts_dir):
    queued = RunFactory()
    finished = finished_run()
    deleted = tracking.run_delete(finished_run().pk)
    before = rows()

    for url in ("/api/v1/architectures", RUNS, f"{RUNS}/{queued.pk}", f"{RUNS}/{queued.pk}/metrics"):
        assert labeler_client.get(url).status_code == 200, url
    for response in (
        labeler_client.post(RUNS, {"experiment": queued.experiment_id, "architecture": "mlp"}, format="json"),
        labeler_client.post(f"{RUNS}/{queued.pk}/cancel"),
        labeler_client.delete(f"{RUNS}/{finished.pk}"),
        labeler_client.post(f"{RUNS}/{deleted.pk}/restore"),
    ):
        assert_refused(response, 403, "Only admins")
    assert rows() == before
    assert Run.objects.get(pk=queued.pk).status == RunStatus.QUEUED
    assert Run.objects.get(pk=finished.pk).deleted_at is None
    assert Run.objects.get(pk=deleted.pk).deleted_at is not None


def test_a_user_without_a_team_role_may_not_read(make_user):
    client = APIClient()
    client.force_authenticate(make_user("outsider", group=None))

    assert_refused(client.get(RUNS), 403, "labelers, reviewers and admins")
    assert_refused(client.get("/api/v1/architectures"), 403)


# --- architectures --------------------------------------------------------------------


def test_architectures_are_the_schemas(admin_client):
    response = admin_client.get("/api/v1/architectures")

    assert response.status_code == 200
    body = response.json()
    assert body == json.loads(json.dumps(architectures_as_json()))
    assert {architecture["key"] for architecture in body} == {"mlp", "logreg"}
    learning_rate = next(p for p in body[0]["hyperparameters"] if p["name"] == "learning_rate")
    assert (learning_rate["type"], learning_rate["minimum"], learning_rate["maximum"]) == ("float", 1e-6, 1.0)


# --- queueing -------------------------------------------------------------------------


def test_an_admin_queues_a_run_through_the_schema(admin_client, django_capture_on_commit_callbacks):
    experiment = ExperimentFactory()

    with django_capture_on_commit_callbacks() as queued:
        response = admin_client.post(RUNS, {
            "experiment": experiment.pk, "architecture": "mlp", "name": "first try",
            "hyperparameters": {"lr": "0.01", "epochs": 3, "hidden_sizes": [32, 8], "seed": 7, "batch_norm": True},
        }, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    run = Run.objects.get()
    assert len(queued) == 1  # the training job, sent once the transaction commits
    assert (body["id"], body["status"], body["name"], body["architecture"]) == (run.pk, "queued", "first try", "mlp")
    assert (body["experiment"], body["seed"], run.seed) == (experiment.pk, 7, 7)
    assert body["dataset_version"] == str(experiment.default_dataset_version_id)
    assert body["params"]["learning_rate"] == "0.01"
    assert body["params"]["hidden_sizes"] == "32,8"
    assert body["params"]["batch_norm"] == "true"
    assert body["params"]["weight_decay"] == "0.0"  # defaults are recorded too
    assert body["artifacts"] == [] and body["metrics"] == {}


def test_a_run_on_another_ready_version_with_a_default_name(admin_client):
    experiment = ExperimentFactory()
    version = ready_dataset_version()

    response = admin_client.post(RUNS, {"experiment": experiment.pk, "architecture": "logreg",
                                        "dataset_version": str(version.pk)}, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["dataset_version"] == str(version.pk)
    assert response.json()["name"] == "logreg-1"


@pytest.mark.parametrize("hyperparameters,name,fragment", [
    ({"learning_rate": 5}, "learning_rate", "between"),
    ({"epochs": 0}, "epochs", "between 1 and 1000"),
    ({"epochs": "many"}, "epochs", "must be an integer"),
    ({"batch_norm": "perhaps"}, "batch_norm", "true or false"),
    ({"optimizer": "adagrad"}, "optimizer", "must be one of"),
    ({"hidden_sizes": [0]}, "hidden_sizes", "each item"),
    ({"learning_rat": 0.1}, "learning_rat", "did you mean 'learning_rate'"),
    ({"dropout_rate": 0.1}, "dropout_rate", "unknown hyperparameter"),
    ({"name": "x"}, "name", "unknown hyperparameter"),  # not the run's name
    ({"experiment_id": 1}, "experiment_id", "unknown hyperparameter"),
])
def test_a_bad_hyperparameter_is_named_and_nothing_is_written(admin_client, django_capture_on_commit_callbacks,
                                                              hyperparameters, name, fragment):
    experiment = ExperimentFactory()
    before = rows()

    with django_capture_on_commit_callbacks() as queued:
        response = admin_client.post(RUNS, {"experiment": experiment.pk, "architecture": "mlp",
                                            "hyperparameters": hyperparameters}, format="json")

    body = assert_refused(response, 400, f"hyperparameters.{name}", fragment)
    assert list(body["errors"]) == ["hyperparameters"]
    assert list(body["errors"]["hyperparameters"]) == [name]
    assert fragment in body["errors"]["hyperparameters"][name][0]
    assert rows() == before
    assert queued == []


def test_every_bad_hyperparameter_is_reported_at_once(admin_client):
    experiment = ExperimentFactory()

    body = assert_refused(admin_client.post(RUNS, {
        "experiment": experiment.pk, "architecture": "logreg",
        "hyperparameters": {"learning_rate": -1, "batch_size": 1.5, "hidden_sizes": "64"},
    }, format="json"), 400)

    # logreg has no hidden layers: hidden_sizes is unknown to its schema.
    assert set(body["errors"]["hyperparameters"]) == {"learning_rate", "batch_size", "hidden_sizes"}
    assert Run.objects.count() == 0


def test_bad_fields_are_named_and_nothing_is_written(admin_client):
    experiment = ExperimentFactory()
    deleted = ExperimentFactory(deleted_at=timezone.now())
    no_default = ExperimentFactory(default_dataset_version=None)
    building = dataset_version(DatasetVersionStatus.BUILDING)
    cases = [
        ({"architecture": "resnet"}, "architecture", "unknown architecture"),
        ({"architecture": None}, "architecture", "null"),
        ({"hyperparameters": "lr=1"}, "hyperparameters", "dictionary"),
        ({"experiment": experiment.pk + 1000}, "experiment", "does not exist"),
        ({"experiment": deleted.pk}, "experiment", "deleted"),
        ({"experiment": no_default.pk}, "dataset_version", "required"),
        ({"experiment": "one"}, "experiment", "valid integer"),
        ({"experiment": 0}, "experiment", "greater than or equal"),
        ({"dataset_version": str(building.pk)}, "dataset_version", "not ready"),
        ({"dataset_version": "nope"}, "dataset_version", "UUID"),
        ({"name": "x" * 201}, "name", "200"),
    ]
    for changes, field, fragment in cases:
        request = {"experiment": experiment.pk, "architecture": "mlp", **changes}

        body = assert_refused(admin_client.post(RUNS, request, format="json"), 400, field, fragment)

        assert field in body["errors"], (changes, body)
    assert_refused(admin_client.post(RUNS, {}, format="json"), 400, "experiment", "architecture")
    assert Run.objects.count() == 0 and Param.objects.count() == 0


# --- list and detail ----------------------------------------------------------------------


def test_list_with_params_summaries_filters_and_pages(admin_client):
    version = ready_dataset_version()
    first, second = ExperimentFactory(), ExperimentFactory(default_dataset_version=version)
    succeeded = make_runs(first, 3, metric_keys=("val_f1",), param_keys=("learning_rate",))
    failed = make_runs(second, 2, status=RunStatus.FAILED, architecture_key="logreg")
    queued = RunFactory(experiment=first)
    gone = finished_run(experiment=first)
    tracking.run_delete(gone.pk)

    def ids(**params) -> list[int]:
        response = admin_client.get(RUNS, params)
        assert response.status_code == 200, response.content
        return sorted(row["id"] for row in response.json()["results"])

    assert ids() == sorted(run.pk for run in [*succeeded, *failed, queued])
    assert ids(experiment=first.pk) == sorted(run.pk for run in [*succeeded, queued])
    assert ids(status="failed") == sorted(run.pk for run in failed)
    assert ids(architecture="logreg") == sorted(run.pk for run in failed)
    assert ids(dataset_version=str(version.pk)) == sorted(run.pk for run in failed)
    assert ids(deleted="true") == [gone.pk]
    page = admin_client.get(RUNS, {"experiment": first.pk, "status": "succeeded", "limit": 2}).json()
    assert page["count"] == 3 and len(page["results"]) == 2 and page["next"]
    row = next(row for row in page["results"] if row["id"] == succeeded[2].pk)
    assert row["params"] == {"learning_rate": "2"}
    assert row["metrics"]["val_f1"] == {"latest": pytest.approx(2 / 3), "latest_step": 0, "min": pytest.approx(2 / 3),
                                        "min_step": 0, "max": pytest.approx(2 / 3), "max_step": 0, "count": 1}
    assert row["experiment_name"] == first.name


@pytest.mark.parametrize("params", [{"limit": 1001}, {"status": "done"}, {"experiment": 0}, {"experiment": "x"},
                                    {"dataset_version": "x"}, {"architecture": "a" * 65}, {"deleted": "maybe"}])
def test_bad_list_parameters_are_400s(admin_client, params):
    assert_refused(admin_client.get(RUNS, params), 400, next(iter(params)))


def test_detail_has_the_reproducibility_record_and_artifacts(admin_client, artifacts_dir):
    run = run_with_artifact(b"weights", "model.pt")
    tracking.run_reproducibility_update(run.pk, {"seed": 0, "torch": "2.x"})

    response = admin_client.get(f"{RUNS}/{run.pk}")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "running" and body["reproducibility"] == {"seed": 0, "torch": "2.x"}
    assert body["artifacts"] == [{
        "path": "model.pt", "size": 7, "sha256": hashlib.sha256(b"weights").hexdigest(),
        "created_at": body["artifacts"][0]["created_at"],
        "download_url": f"http://testserver/api/v1/runs/{run.pk}/artifacts/model.pt",
    }]
    assert_refused(admin_client.get(f"{RUNS}/{run.pk + 1000}"), 404, "Run not found")


# --- cancel, delete, restore ------------------------------------------------------------


def test_cancel_a_queued_and_a_running_run(admin_client):
    queued, running = RunFactory(), running_run()

    for run in (queued, running):
        response = admin_client.post(f"{RUNS}/{run.pk}/cancel")

        assert response.status_code == 200, response.content
        assert response.json()["status"] == "cancelled"
        assert Run.objects.get(pk=run.pk).status == RunStatus.CANCELLED
    assert Run.objects.get(pk=running.pk).attempts == 2  # the worker's next fenced write is refused


def test_cancelling_a_finished_run_is_refused(admin_client):
    run = finished_run()

    assert_refused(admin_client.post(f"{RUNS}/{run.pk}/cancel"), 400, "cannot go from succeeded to cancelled")
    assert Run.objects.get(pk=run.pk).status == RunStatus.SUCCEEDED
    assert_refused(admin_client.post(f"{RUNS}/{run.pk + 1000}/cancel"), 404, "Run not found")


def test_soft_delete_and_restore(admin_client):
    run = finished_run()

    deleted = admin_client.delete(f"{RUNS}/{run.pk}")

    assert deleted.status_code == 200, deleted.content
    assert deleted.json()["deleted_at"] is not None
    assert admin_client.get(RUNS).json()["count"] == 0
    assert admin_client.get(f"{RUNS}/{run.pk}").json()["deleted_at"] is not None

    restored = admin_client.post(f"{RUNS}/{run.pk}/restore")

    assert restored.status_code == 200, restored.content
    assert restored.json()["deleted_at"] is None
    assert [row["id"] for row in admin_client.get(RUNS).json()["results"]] == [run.pk]
    assert_refused(admin_client.post(f"{RUNS}/{run.pk + 1000}/restore"), 404)
    assert_refused(admin_client.delete(f"{RUNS}/{run.pk + 1000}"), 404)


def test_an_active_run_cannot_be_deleted(admin_client):
    run = running_run()

    assert_refused(admin_client.delete(f"{RUNS}/{run.pk}"), 400, "running", "cancel it first")
    assert Run.objects.get(pk=run.pk).deleted_at is None


# --- metric series ----------------------------------------------------------------------


def log_epochs(run: Run, epochs: int) -> None:
    tracking.run_metrics_log(run.pk, [
        point for epoch in range(1, epochs + 1)
        for point in (("val_f1", epoch, epoch / epochs), ("val_loss", epoch, 1 / epoch), ("train_loss", epoch, 2.0))
    ])


def test_metric_series_by_key(admin_client):
    run = running_run()
    log_epochs(run, 3)

    body = admin_client.get(f"{RUNS}/{run.pk}/metrics", {"keys": "val_f1,val_loss,never_logged"}).json()

    assert (body["run"], body["status"]) == (run.pk, "running")
    assert [point["step"] for point in body["series"]["val_f1"]] == [1, 2, 3]
    assert [point["value"] for point in body["series"]["val_loss"]] == pytest.approx([1, 0.5, 1 / 3])
    assert body["series"]["never_logged"] == []
    assert set(body["series"]) == {"val_f1", "val_loss", "never_logged"}
    assert all(point["wall_time"] for point in body["series"]["val_f1"])


def test_metric_series_without_keys_has_every_key_the_run_logged(admin_client):
    run = running_run()
    log_epochs(run, 2)

    body = admin_client.get(f"{RUNS}/{run.pk}/metrics").json()

    assert set(body["series"]) == {"val_f1", "val_loss", "train_loss"}
    assert len(body["series"]["train_loss"]) == 2


def test_metric_series_refuses_bad_keys_and_unknown_runs(admin_client):
    run = running_run()

    assert_refused(admin_client.get(f"{RUNS}/{run.pk}/metrics", {"keys": "val_f1,"}), 400, "keys")
    assert_refused(admin_client.get(f"{RUNS}/{run.pk}/metrics", {"keys": "bad!key"}), 400, "keys")
    assert_refused(admin_client.get(f"{RUNS}/{run.pk}/metrics", {"keys": ",".join(f"k{i}" for i in range(51))}),
                   400, "keys", "at most 50")
    assert_refused(admin_client.get(f"{RUNS}/{run.pk + 1000}/metrics"), 404, "Run not found")


# --- artifact files -------------------------------------------------------------------


def test_artifact_download_bytes_match_the_recorded_sha256(admin_client, artifacts_dir):
    content = bytes(range(256)) * 1000
    run = run_with_artifact(content, "checkpoints/model.pt")
    listed = admin_client.get(f"{RUNS}/{run.pk}").json()["artifacts"][0]

    response = admin_client.get(listed["download_url"])

    assert response.status_code == 200
    downloaded = b"".join(response.streaming_content)
    assert downloaded == content
    assert hashlib.sha256(downloaded).hexdigest() == listed["sha256"] == Artifact.objects.get().sha256
    assert response["Content-Type"] == "application/octet-stream"
    assert 'filename="model.pt"' in response["Content-Disposition"]
    assert response["ETag"] == f'"{listed["sha256"]}"'


def test_unknown_or_escaping_artifact_paths_are_404s(admin_client, artifacts_dir):
    run = run_with_artifact(b"w", "model.pt")
    folder = tracking.run_artifact_dir(run.pk)
    (folder / "unrecorded.txt").write_bytes(b"not an artifact")
    (artifacts_dir / "secret.txt").write_bytes(b"outside")

    for path in ("unrecorded.txt", "nope.pt", "../secret.txt", "..%2Fsecret.txt", "model.pt/..", "%2e%2e/secret.txt"):
        assert_refused(admin_client.get(f"{RUNS}/{run.pk}/artifacts/{path}"), 404)
    assert_refused(admin_client.get(f"{RUNS}/{run.pk + 1000}/artifacts/model.pt"), 404, "Run not found")
    (folder / "model.pt").unlink()
    assert_refused(admin_client.get(f"{RUNS}/{run.pk}/artifacts/model.pt"), 404, "gone")


def test_a_trained_run_downloads_its_weights(admin_client, artifacts_dir, django_capture_on_commit_callbacks):
    """End to end: queued through the API, trained in this process, read back through the API."""
    experiment = ExperimentFactory(default_dataset_version=separable_dataset_version(rows=40))
    with django_capture_on_commit_callbacks():
        created = admin_client.post(RUNS, {"experiment": experiment.pk, "architecture": "logreg",
                                           "hyperparameters": {"epochs": 2, "batch_size": 8}}, format="json")
    assert created.status_code == 201, created.content

    services.run_train(created.json()["id"], device="cpu")
    body = admin_client.get(f"{RUNS}/{created.json()['id']}").json()

    assert body["status"] == "succeeded", body["error"]
    assert body["reproducibility"]["seed"] == 0
    artifacts = {artifact["path"]: artifact for artifact in body["artifacts"]}
    assert set(artifacts) == {"model.pt", "predictions.npz", "run.log"}
    weights = admin_client.get(artifacts["model.pt"]["download_url"])
    assert hashlib.sha256(b"".join(weights.streaming_content)).hexdigest() == artifacts["model.pt"]["sha256"]
    series = admin_client.get(f"{RUNS}/{body['id']}/metrics", {"keys": "val_loss"}).json()["series"]
    assert [point["step"] for point in series["val_loss"]] == [1, 2]
    assert 0 <= body["metrics"]["test_f1"]["latest"] <= 1


# --- query counts ---------------------------------------------------------------------------


def _run_list_queries(client, count: int) -> int:
    experiment = ExperimentFactory()
    make_runs(experiment, count - Run.objects.count(), metric_keys=("val_f1", "val_loss", "test_f1"))
    with CaptureQueriesContext(connection) as queries:
        response = client.get(RUNS, {"limit": 1000})
    assert response.status_code == 200
    assert len(response.json()["results"]) == count
    return len(queries)


def test_the_run_list_costs_the_same_queries_for_10_and_200_runs(admin_client):
    assert _run_list_queries(admin_client, 10) == _run_list_queries(admin_client, 200)


def _series_queries(client, epochs: int) -> int:
    run = running_run()
    log_epochs(run, epochs)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"{RUNS}/{run.pk}/metrics")
    assert response.status_code == 200
    assert len(response.json()["series"]["val_f1"]) == epochs
    return len(queries)


def test_the_metric_series_costs_the_same_queries_for_10_and_500_epochs(admin_client):
    assert _series_queries(admin_client, 10) == _series_queries(admin_client, 500)
