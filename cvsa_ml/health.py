"""Health of the components the product needs: database, pgvector, broker, workers."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from django.conf import settings
from django.db import connection

from cvsa_ml.celery import app as celery_app
from cvsa_ml.supervisor import STATUS_FILE_NAME, exit_description, read_serve_status


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
    """Every worker that answers within ``timeout``, with the queues it consumes.

    One broadcast, so health waits one ``timeout`` however many workers there are (a
    whole second, so that a worker on a busy machine is not reported missing). When
    `manage.py serve` supervises a worker here, its restarts and last exit are added.
    """
    try:
        replies = celery_app.control.inspect(timeout=timeout).active_queues() or {}
    except Exception as exc:
        return ComponentHealth(False, f"{type(exc).__name__}: {exc}")
    supervised = _supervised_worker_detail()
    if not replies:
        return ComponentHealth(False, "; ".join(["no worker answered a ping", *supervised]))
    workers = [
        f"{name} ({', '.join(sorted(queue['name'] for queue in queues or []))})"
        for name, queues in sorted(replies.items())
    ]
    count = f"{len(workers)} worker{'s' if len(workers) != 1 else ''} answered"
    return ComponentHealth(True, "; ".join([f"{count}: {', '.join(workers)}", *supervised]))


def _supervised_worker_detail() -> list[str]:
    status = read_serve_status(Path(settings.DATA_DIR) / STATUS_FILE_NAME)
    if status is None or status.state == "stopped":
        return []
    if status.state == "restarting":
        return [
            f"serve's worker died (exit code {exit_description(status.last_exit_code)} at {status.last_exit_at}); "
            f"restarting it at {status.next_restart_at}"
        ]
    if status.restarts:
        return [
            f"serve restarted its worker {status.restarts} time{'s' if status.restarts != 1 else ''}, "
            f"last exit code {exit_description(status.last_exit_code)} at {status.last_exit_at}"
        ]
    return []


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
