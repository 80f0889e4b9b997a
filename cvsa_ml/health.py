"""Health of the components the product needs: database, pgvector, broker, a worker."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from django.db import connection

from cvsa_ml.celery import app as celery_app


@dataclass(frozen=True)
class ComponentHealth:
    ok: bool
    detail: str


def database_health() -> ComponentHealth:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT version()")
            (version,) = cursor.fetchone()
        return ComponentHealth(True, version.split(" on ")[0])
    except Exception as exc:  # any driver error means "down"; the message says why
        return ComponentHealth(False, f"{type(exc).__name__}: {exc}")


def vector_extension_health() -> ComponentHealth:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            row = cursor.fetchone()
    except Exception as exc:
        return ComponentHealth(False, f"{type(exc).__name__}: {exc}")
    if row is None:
        return ComponentHealth(False, "extension 'vector' is not installed (run migrate)")
    return ComponentHealth(True, f"pgvector {row[0]}")


def broker_health(timeout: float = 2.0) -> ComponentHealth:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout, interval_start=0, interval_step=0)
            return ComponentHealth(True, conn.as_uri())
    except Exception as exc:
        return ComponentHealth(False, f"{type(exc).__name__}: {exc}")


def worker_health(timeout: float = 1.0) -> ComponentHealth:
    try:
        # limit=1: return on the first reply instead of always waiting out the timeout.
        replies = celery_app.control.ping(timeout=timeout, limit=1)
    except Exception as exc:
        return ComponentHealth(False, f"{type(exc).__name__}: {exc}")
    if not replies:
        return ComponentHealth(False, "no worker answered a ping")
    names = sorted(name for reply in replies for name in reply)
    return ComponentHealth(True, f"worker {', '.join(names)} answered")


def system_health() -> dict:
    database = database_health()
    broker = broker_health()
    components = {
        "database": database,
        "vector": vector_extension_health() if database.ok else ComponentHealth(False, "database down"),
        "broker": broker,
        "worker": worker_health() if broker.ok else ComponentHealth(False, "broker down"),
    }
    healthy = all(component.ok for component in components.values())
    return {
        "status": "ok" if healthy else "degraded",
        "components": {name: asdict(component) for name, component in components.items()},
    }
