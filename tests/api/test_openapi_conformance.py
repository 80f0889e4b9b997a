"""Schemathesis against the whole published API: the schema describes the server.

Every operation of ``/api/schema/`` is called through the WSGI application inside this
test's database transaction (rolled back afterwards, so destructive operations are safe)
as an admin with a token. Deterministic: a fixed seed, derandomized generation, no example
database, a bounded number of examples per operation. Checks: no 5xx, every status code
is documented, every response body matches its documented schema and media type.
"""

from __future__ import annotations

import json
import re
import uuid

import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from rest_framework.authtoken.models import Token

from datasets.models import DatasetTask, DatasetTaskStatus, DatasetVersionStatus
from experiments import services as tracking
from tests.experiments.factories import ExperimentFactory, running_run
from training.predictions import PREDICTIONS_PATH, Predictions, predictions_write
from tests.datasets.conftest import celery_eager, embedding_server, registry_file  # noqa: F401 (fixtures)
from tests.datasets.panel_fixtures import (  # noqa: F401 (fixtures)
    build,
    corpus,
    make_tasks,
    make_versions,
    ready_version,
)

EXAMPLES_PER_OPERATION = 20
SEED = 20261128
CONFIG = {
    "seed": SEED,
    "generation": {"max-examples": EXAMPLES_PER_OPERATION, "deterministic": True, "database": "none"},
    "checks": {
        "enabled": False,
        "not_a_server_error": {"enabled": True},
        "status_code_conformance": {"enabled": True},
        "content_type_conformance": {"enabled": True},
        "response_schema_conformance": {"enabled": True},
    },
    "phases": {"stateful": {"enabled": False}},
}


def _published_schema() -> dict:
    """The schema ``/api/schema/`` serves (same generator and renderer), built without a request."""
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    return json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))


def _wsgi_application():
    from cvsa_ml.wsgi import application

    return application


schema = schemathesis.openapi.from_dict(_published_schema(), config=schemathesis.Config.from_dict(CONFIG))
schema.app = _wsgi_application()


@pytest.fixture(autouse=True)
def requests_stay_in_the_test_transaction(db):
    """Django closes "old" connections around each request; inside a test transaction that
    would end it (and the rollback that throws the written rows away). Django's own test
    client disconnects the same handlers."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def _run_with_metrics_and_an_artifact(experiment) -> int:
    run = running_run(experiment=experiment)
    tracking.run_metrics_log(run.pk, [(key, epoch, epoch / 10) for key in ("val_f1", "val_loss") for epoch in (1, 2)])
    folder = tracking.run_artifact_dir(run.pk)
    folder.mkdir(parents=True)
    (folder / ARTIFACT_PATH).write_bytes(b"weights")
    tracking.run_artifact_record(run.pk, ARTIFACT_PATH)
    # A test-split mistake, so that GET runs/{run_id}/errors answers 200 with a row.
    predictions_write(folder / PREDICTIONS_PATH, Predictions(
        aid=np.array([1], dtype=np.int64), split=np.array(["test"]), label=np.array([1], dtype=np.int8),
        probability=np.array([0.2], dtype=np.float32), predicted=np.array([False]), threshold=0.5,
    ))
    tracking.run_artifact_record(run.pk, PREDICTIONS_PATH)
    return run.pk


def _sweep(experiment) -> int:
    """A running sweep (its study in the test database; its trial's run never sent)."""
    from training import services as training_services

    return training_services.sweep_create(
        experiment_id=experiment.pk, architecture_key="logreg", trial_count=2, parallelism=1, pruning=False,
        search_space={"learning_rate": {"low": 1e-3, "high": 1e-1, "log": True}},
    ).pk


def _label_issue_scan(version) -> int:
    """A succeeded label-issue scan of ``version`` with one issue (its first member)."""
    from training.models import JobStatus, LabelIssue, LabelIssueScan

    scan = LabelIssueScan.objects.create(dataset_version=version, architecture_key="logreg", folds=2,
                                         status=JobStatus.SUCCEEDED, folds_done=2, issue_count=1)
    item = version.items.order_by("video_id").first()
    LabelIssue.objects.create(scan=scan, video_id=item.video_id, given_label=item.label, probability=0.5,
                              label_quality=0.5, rank=1)
    return scan.pk


ARTIFACT_PATH = "model.pt"
# A generated artifact path this plain is swapped for the real one; the others must be 404s.
PLAIN_FILE_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")


@pytest.fixture
def existing(make_user, corpus, ready_version, settings, tmp_path) -> dict:
    """An admin's token and real ids, so success responses are checked too, not only 404s."""
    admin = make_user("conformance-admin", group="admins")
    failed_build = ready_version.tasks.get()
    (failed_version,) = make_versions(1, ready_version.embedding_model, status=DatasetVersionStatus.FAILED)
    DatasetTask.objects.filter(pk=failed_build.pk).update(dataset_version=failed_version,
                                                          status=DatasetTaskStatus.FAILED)
    make_tasks(3)
    settings.CVSA_ARTIFACTS_DIR = tmp_path / "artifacts"
    experiment = ExperimentFactory(default_dataset_version=ready_version)
    return {
        "headers": {"Authorization": f"Token {Token.objects.create(user=admin).key}"},
        "aid": corpus["positive"][0].aid,
        "dataset_id": str(ready_version.pk),
        "task_id": str(failed_build.pk),
        "experiment_id": experiment.pk,
        "run_id": _run_with_metrics_and_an_artifact(experiment),
        "sweep_id": _sweep(experiment),
        "scan_id": _label_issue_scan(ready_version),
    }


def _is_uuid(value) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


@schema.parametrize()
# The rows may change across one operation's examples (a delete, a resume): each example must cope.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_every_operation_conforms_to_the_schema(case, existing):
    # A well-formed id is swapped for a real one; malformed ones stay, and must be 404s.
    for name in ("dataset_id", "task_id"):
        if _is_uuid((case.path_parameters or {}).get(name, "x")):
            case.path_parameters[name] = existing[name]
    for name in ("aid", "experiment_id", "run_id", "sweep_id", "scan_id"):
        if isinstance((case.path_parameters or {}).get(name), int):
            case.path_parameters[name] = existing[name]
    if PLAIN_FILE_NAME.match(str((case.path_parameters or {}).get("artifact_path", ""))):
        case.path_parameters["artifact_path"] = ARTIFACT_PATH
    # A run needs a live experiment: without one every generated run would be a 400.
    if case.path == "/api/v1/runs" and isinstance(case.body, dict) and isinstance(case.body.get("experiment"), int):
        case.body["experiment"] = existing["experiment_id"]
    case.call_and_validate(headers=existing["headers"])
