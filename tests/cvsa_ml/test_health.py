import json
import os
import re
import socket

import pytest
from django.db import connection

from cvsa_ml.celery import app as celery_app
from cvsa_ml.supervisor import STATUS_FILE_NAME

pytestmark = pytest.mark.django_db


def test_vector_extension_is_installed():
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        assert cursor.fetchone() is not None
        cursor.execute("SELECT '[1,2,3]'::vector <-> '[1,2,4]'::vector")
        assert cursor.fetchone()[0] == pytest.approx(1.0)


@pytest.mark.worker
def test_health_reports_every_component_ok_with_a_worker(logged_in_client, celery_worker_process):
    response = logged_in_client.get("/api/v1/health")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert {name for name, component in body["components"].items() if component["ok"]} == {
        "database", "vector", "broker", "worker"
    }
    # The test worker (tests/support/celery_worker.py) by name, with the queues it consumes.
    own_worker = rf"test-{os.getpid()}\S*@{re.escape(socket.gethostname())} \(default, embeddings, training\)"
    assert re.search(own_worker, body["components"]["worker"]["detail"])


class _FakeInspect:
    def __init__(self, replies):
        self._replies = replies

    def active_queues(self):
        return self._replies


def _answering_workers(monkeypatch, replies):
    monkeypatch.setattr(celery_app.control, "inspect", lambda timeout: _FakeInspect(replies))


def test_health_lists_every_worker_that_answers_and_its_queues(logged_in_client, monkeypatch):
    _answering_workers(monkeypatch, {
        "gpu@host-b": [{"name": "training"}],
        "cvsa@host-a": [{"name": "embeddings"}, {"name": "default"}],
    })

    worker = logged_in_client.get("/api/v1/health").json()["components"]["worker"]

    assert worker == {
        "ok": True, "detail": "2 workers answered: cvsa@host-a (default, embeddings), gpu@host-b (training)",
    }


def test_no_worker_answering_is_reported(logged_in_client, monkeypatch):
    _answering_workers(monkeypatch, None)  # what inspect returns when nobody replies

    body = logged_in_client.get("/api/v1/health").json()

    assert body["status"] == "degraded"
    assert body["components"]["worker"] == {"ok": False, "detail": "no worker answered a ping"}


def _serve_status(settings, tmp_path, **fields):
    settings.DATA_DIR = tmp_path
    status = {"supervisor_pid": os.getpid(), "state": "running", "web_pid": 1, "worker_pid": 2, "restarts": 0,
              "last_exit_code": None, "last_exit_at": None, "next_restart_at": None, **fields}
    (tmp_path / STATUS_FILE_NAME).write_text(json.dumps(status))


def test_health_shows_that_serve_restarted_its_worker(logged_in_client, monkeypatch, settings, tmp_path):
    _answering_workers(monkeypatch, {"cvsa@host-a": [{"name": "default"}]})
    _serve_status(settings, tmp_path, restarts=2, last_exit_code=-9, last_exit_at="2026-01-01T00:00:00+00:00")

    worker = logged_in_client.get("/api/v1/health").json()["components"]["worker"]

    assert worker["ok"] is True
    assert worker["detail"] == (
        "1 worker answered: cvsa@host-a (default); "
        "serve restarted its worker 2 times, last exit code -9 (SIGKILL) at 2026-01-01T00:00:00+00:00"
    )


def test_health_shows_a_worker_waiting_to_be_restarted(logged_in_client, monkeypatch, settings, tmp_path):
    _answering_workers(monkeypatch, {})
    _serve_status(settings, tmp_path, state="restarting", worker_pid=None, restarts=4, last_exit_code=1,
                  last_exit_at="2026-01-01T00:00:00+00:00", next_restart_at="2026-01-01T00:00:16+00:00")

    worker = logged_in_client.get("/api/v1/health").json()["components"]["worker"]

    assert worker == {"ok": False, "detail": (
        "no worker answered a ping; serve's worker died (exit code 1 at 2026-01-01T00:00:00+00:00); "
        "restarting it at 2026-01-01T00:00:16+00:00"
    )}


def test_anonymous_callers_see_no_worker_names_or_exit_codes(client, monkeypatch, settings, tmp_path):
    _answering_workers(monkeypatch, {"cvsa@secret-host": [{"name": "default"}]})
    _serve_status(settings, tmp_path, restarts=2, last_exit_code=-9, last_exit_at="2026-01-01T00:00:00+00:00")

    body = client.get("/api/v1/health").json()

    assert body["components"]["worker"] == {"ok": True}
    assert "secret-host" not in json.dumps(body) and "SIGKILL" not in json.dumps(body)


def test_health_needs_no_login(client):
    assert client.get("/api/v1/health").status_code in (200, 503)


def test_failing_broker_is_reported_not_a_500(logged_in_client, monkeypatch, tmp_path):
    client = logged_in_client
    monkeypatch.setattr(celery_app.conf, "broker_url", f"redis+socket://{tmp_path}/missing.sock")

    response = client.get("/api/v1/health")

    assert response.status_code == 200  # the database works: degraded, still serving
    body = response.json()
    assert body["status"] == "degraded"
    assert body["components"]["broker"]["ok"] is False
    # The transport's error names the socket it could not reach.
    assert "missing.sock" in body["components"]["broker"]["detail"]
    assert body["components"]["worker"] == {"ok": False, "detail": "broker down"}
    assert body["components"]["database"]["ok"] is True


def test_failing_database_answers_503_with_json(logged_in_client, monkeypatch):
    client = logged_in_client
    from cvsa_ml import health
    from cvsa_ml.health import ComponentHealth

    monkeypatch.setattr(health, "database_health", lambda: ComponentHealth(False, "OperationalError: down"))

    response = client.get("/api/v1/health")

    assert response.status_code == 503
    assert response.json()["components"]["database"] == {"ok": False, "detail": "OperationalError: down"}


def test_anonymous_callers_get_states_without_details(client, monkeypatch):
    from cvsa_ml import health
    from cvsa_ml.health import ComponentHealth

    monkeypatch.setattr(health, "database_health", lambda: ComponentHealth(False, "OperationalError: secret host"))

    body = client.get("/api/v1/health").json()

    assert body["components"]["database"] == {"ok": False}
    assert body["database"] == "error"
    assert "secret host" not in str(body)
