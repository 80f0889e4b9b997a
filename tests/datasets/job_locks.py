"""A stand-in for a live worker: another database session holding a task's job lock,
as the worker running it does (``datasets.services.job_lifecycle``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection, connections

from datasets.services import job_lifecycle
from tests.support.waiting import wait_until


@contextmanager
def live_worker_holding_the_lock_of(task_id: uuid.UUID) -> Iterator[object]:
    """Yields the other session (a Django connection wrapper); closing it ends the
    "worker" the way a killed process does: the server drops its locks."""
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute(f"SELECT pg_advisory_lock({job_lifecycle.BUILD_JOB.lock_key_sql()})", [str(task_id)])
        yield other
    finally:
        other.close()


def wait_until_a_session_waits_for_a_lock(
    *, locktype: str | None = "advisory", sessions: int = 1, deadline_seconds: float = 60.0
) -> None:
    """Wait (on the condition, not on time) until ``sessions`` sessions of this database
    wait for a lock (``locktype``: the wait event, e.g. ``advisory``, ``transactionid``;
    None: any). The deadline only ends a real hang."""
    def sessions_waiting() -> bool:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND (%s::text IS NULL OR wait_event = %s)",
                [locktype, locktype],
            )
            return cursor.fetchone()[0] >= sessions

    wait_until(sessions_waiting, f"{sessions} session(s) to wait for a {locktype or 'any'} lock",
               deadline_seconds=deadline_seconds, interval=0.02)
