import pytest
from django.db import connection

from cvsa_ml.celery import app as celery_app

pytestmark = pytest.mark.django_db


def test_vector_extension_is_installed():
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        assert cursor.fetchone() is not None
        cursor.execute("SELECT '[1,2,3]'::vector <-> '[1,2,4]'::vector")
        assert cursor.fetchone()[0] == pytest.approx(1.0)


@pytest.mark.worker
def test_health_reports_every_component_ok_with_a_worker(client, celery_worker_process):
    response = client.get("/api/v1/health")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert {name for name, component in body["components"].items() if component["ok"]} == {
        "database", "vector", "broker", "worker"
    }


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
