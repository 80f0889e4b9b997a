"""The life of a job on its database row, shared by every kind of job (dataset builds,
training runs): the lock a running attempt holds, the claim, and the sweep of jobs
whose worker died. The apps above say what their rows look like (``JobKind``) and what
a failed or re-queued job means to them; the mechanism is here, once.

Who runs a job (DESIGN §6). A worker that claims a job holds a PostgreSQL session
advisory lock on it for as long as it runs it; the server releases that lock when the
worker's connection ends, so a free lock on a running job proves its worker is dead. A
redelivered message (Celery redelivers one at once when the worker child is killed,
e.g. by the OOM killer) therefore takes the job over when it gets the lock, or when the
heartbeat is older than the kind's stale threshold; the sweeper re-queues running jobs
whose heartbeat stopped. Each start counts in ``worker_starts``; once
``CVSA_JOB_MAX_ATTEMPTS`` workers have started a run of a job, the next takeover fails
it instead (a job that kills its worker every time must stop). Every write of an
attempt is fenced by ``attempts`` (bumped on each claim, cancel and re-queue): a zombie
attempt can never write after a takeover.

A job row has ``status``, ``attempts``, ``worker_starts``, ``worker``, ``started_at``,
``heartbeat_at``, ``celery_task_id`` and ``created_at`` columns.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

from django.conf import settings
from django.db import DatabaseError, OperationalError, connection, transaction
from django.db.models import F, Model, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

logger = logging.getLogger(__name__)

#: A redelivered message waits this long for the lock of the attempt it replaces: the
#: database notices a killed worker's closed connection within milliseconds, but the
#: broker can redeliver faster still.
REDELIVERY_LOCK_WAIT_SECONDS = 10.0

#: A queued job whose message never reached a worker: failed after the broker's
#: visibility timeout (it would have been redelivered by then) plus this margin.
PENDING_NEVER_STARTED_MARGIN = timedelta(minutes=10)

#: One sweep at a time across all workers and all kinds of job.
_SWEEP_LOCK_KEY_SQL = "hashtextextended('datasets.sweeper', 0)"

JobId = uuid.UUID | int


@dataclass(frozen=True)
class JobKind:
    """What the mechanism needs to know about one kind of job row.

    ``scope_sql`` narrows the table to this kind's rows (columns prefixed ``t.``; a
    constant, never user input). ``claim_assignments`` are extra ``SET`` clauses of the
    claim (e.g. resetting progress columns), with their parameters in
    ``claim_parameters`` (named ``%(name)s``; prefix them to avoid clashes).
    """

    model: type[Model]
    lock_namespace: str
    queued_status: str
    running_status: str
    stale_seconds_setting: str
    scope_sql: str = "true"
    scope: Q = field(default_factory=Q)
    claim_assignments: str = ""
    claim_parameters: Mapping[str, Any] = field(default_factory=dict)

    @property
    def table(self) -> str:
        return self.model._meta.db_table

    def stale_after(self) -> timedelta:
        return timedelta(seconds=getattr(settings, self.stale_seconds_setting))

    def lock_key_sql(self, param: str = "%s") -> str:
        return f"hashtextextended('{self.lock_namespace}:' || {param}, 0)"


def job_max_attempts() -> int:
    """How many workers may start one run of a job (``CVSA_JOB_MAX_ATTEMPTS``)."""
    return settings.CVSA_JOB_MAX_ATTEMPTS


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def pending_stale_after() -> timedelta:
    """How long a queued job may wait for a worker before its message counts as lost."""
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", None) or {}
    return timedelta(seconds=float(options.get("visibility_timeout", 3600))) + PENDING_NEVER_STARTED_MARGIN


# --- the lock a running attempt holds -------------------------------------------------


def job_lock_try(kind: JobKind, job_id: JobId) -> bool:
    """Take the job's session advisory lock if it is free (one round trip)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT pg_try_advisory_lock({kind.lock_key_sql()})", [str(job_id)])
        return cursor.fetchone()[0]


def job_lock_wait(kind: JobKind, job_id: JobId, seconds: float) -> bool:
    """Wait up to ``seconds`` for the job's lock; whether it was taken."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT current_setting('lock_timeout'), set_config('lock_timeout', %s, true)",
                [f"{int(seconds * 1000)}ms"],
            )
            previous = cursor.fetchone()[0]
            cursor.execute(f"SELECT pg_advisory_lock({kind.lock_key_sql()})", [str(job_id)])
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [previous])  # for a caller's transaction
    except OperationalError as error:
        if getattr(error.__cause__, "sqlstate", None) == "55P03":  # lock_not_available: still held
            return False
        raise
    return True


def job_lock_release(kind: JobKind, job_id: JobId) -> None:
    """Best effort: a session whose lock could not be released is closed (that releases it)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT pg_advisory_unlock({kind.lock_key_sql()})", [str(job_id)])
    except DatabaseError:
        logger.warning("%s %s: could not release its lock; closing the connection", kind.lock_namespace, job_id)
        if not connection.in_atomic_block:
            connection.close()


# --- claim ------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobClaim:
    attempt: int  # the fencing token this attempt writes with
    worker_starts: int  # workers that have started this run, this one included
    holds_lock: bool


@dataclass(frozen=True)
class ClaimRefused:
    """Why a claim took nothing: the row as it was."""

    status: str
    attempts: int
    worker_starts: int
    #: The job is running, its worker is dead, and every attempt is used up: the caller
    #: fails it (while it still holds the lock, released after).
    attempts_exhausted: bool


def _claim_statement(
    kind: JobKind, job_id: JobId, *, celery_task_id: str | None, claim_attempt: int | None, lock_held: bool
) -> tuple[str, bool, int, int, int | None, int | None] | None:
    """ONE statement: take the job's lock (unless ``lock_held``) and claim the job.

    Claimable: queued (a fresh run: ``worker_starts`` = 1); running as the very attempt a
    Celery retry or a sweeper re-queue handed over (``celery_task_id`` and
    ``claim_attempt`` match; counted by whoever handed it over); running whose worker is
    dead: the lock was free, or the heartbeat is stale, and fewer than
    ``job_max_attempts()`` workers started this run.

    Returns the row as it was (status, lock taken, worker_starts, attempts) and, when
    claimed, the new (attempts, worker_starts); None when there is no such job.
    """
    now = timezone.now()
    handover = ("(%(claim_attempt)s::integer IS NOT NULL AND t.celery_task_id = %(celery_task_id)s "
                "AND t.attempts = %(claim_attempt)s::integer)")
    set_celery_id = ", celery_task_id = %(celery_task_id)s" if celery_task_id else ""
    extra = f", {kind.claim_assignments}" if kind.claim_assignments else ""
    sql = f"""
        WITH current AS (
            SELECT t.status, t.worker_starts, t.attempts FROM {kind.table} t WHERE t.id = %(id)s AND {kind.scope_sql}
        ),
        lock AS MATERIALIZED (
            SELECT CASE WHEN %(lock_held)s THEN true
                        WHEN status IN (%(queued)s, %(running)s)
                        THEN pg_try_advisory_lock({kind.lock_key_sql('%(id_text)s')})
                        ELSE false END AS held
            FROM current
        ),
        claimed AS (
            UPDATE {kind.table} AS t SET
                status = %(running)s,
                attempts = t.attempts + 1,
                worker_starts = CASE WHEN t.status = %(queued)s THEN 1
                                     WHEN {handover} THEN t.worker_starts
                                     ELSE t.worker_starts + 1 END,
                worker = %(worker)s,
                started_at = %(now)s, heartbeat_at = %(now)s{set_celery_id}{extra}
            FROM lock
            WHERE t.id = %(id)s AND {kind.scope_sql} AND (
                t.status = %(queued)s
                OR (t.status = %(running)s AND {handover})
                OR (t.status = %(running)s AND t.worker_starts < %(max_attempts)s
                    AND (lock.held OR t.heartbeat_at IS NULL OR t.heartbeat_at < %(stale_before)s))
            )
            RETURNING t.attempts, t.worker_starts
        )
        SELECT current.status, lock.held, current.worker_starts, current.attempts,
               claimed.attempts, claimed.worker_starts
        FROM current CROSS JOIN lock LEFT JOIN claimed ON true
    """
    params = {
        **kind.claim_parameters,
        "id": job_id,
        "id_text": str(job_id),
        "queued": kind.queued_status,
        "running": kind.running_status,
        "lock_held": lock_held,
        "celery_task_id": celery_task_id or "",
        "claim_attempt": claim_attempt,
        "worker": worker_name(),
        "now": now,
        "max_attempts": job_max_attempts(),
        "stale_before": now - kind.stale_after(),
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def job_claim(
    kind: JobKind,
    job_id: JobId,
    *,
    celery_task_id: str | None = None,
    claim_attempt: int | None = None,
    lock_wait_seconds: float = 0.0,
    on_attempts_exhausted: Callable[[ClaimRefused], None] | None = None,
) -> JobClaim | ClaimRefused | None:
    """Claim the job for this process (see ``_claim_statement``).

    Returns a ``JobClaim``, a ``ClaimRefused`` (the job is someone else's, finished, or
    its attempts are used up), or None when there is no such job. ``lock_wait_seconds``
    (a redelivered message): when the job runs with a fresh heartbeat and its lock is
    held, wait that long for the lock before concluding that its worker is alive.
    ``on_attempts_exhausted`` is called, under the job's lock, for a running job whose
    worker is dead and whose attempts are used up (the caller marks it failed).
    """
    row = _claim_statement(kind, job_id, celery_task_id=celery_task_id, claim_attempt=claim_attempt, lock_held=False)
    if row is None:
        return None
    status, held, worker_starts, attempts, claimed_attempt, claimed_starts = row
    if claimed_attempt is None and not held and status == kind.running_status and lock_wait_seconds > 0:
        if job_lock_wait(kind, job_id, lock_wait_seconds):
            row = _claim_statement(
                kind, job_id, celery_task_id=celery_task_id, claim_attempt=claim_attempt, lock_held=True
            )
            status, held, worker_starts, attempts, claimed_attempt, claimed_starts = row
    if claimed_attempt is not None:
        return JobClaim(attempt=claimed_attempt, worker_starts=claimed_starts, holds_lock=held)
    refused = ClaimRefused(
        status=status, attempts=attempts, worker_starts=worker_starts,
        attempts_exhausted=held and status == kind.running_status and worker_starts >= job_max_attempts(),
    )
    if held:
        if refused.attempts_exhausted and on_attempts_exhausted is not None:
            on_attempts_exhausted(refused)
        job_lock_release(kind, job_id)
    return refused


# --- while it runs ---------------------------------------------------------------------

#: How often, at most, a running attempt asks the database whether the job is still its
#: own (a cancel, a takeover); one fenced heartbeat UPDATE answers it. Between checks a
#: batch boundary costs nothing.
OWNERSHIP_CHECK_INTERVAL_SECONDS = 1.0


class OwnershipWatch:
    """``should_stop`` for long work (a trainer's batch loop): at most every
    ``OWNERSHIP_CHECK_INTERVAL_SECONDS`` (by ``clock``) it calls ``heartbeat`` — the
    job's fenced heartbeat write, returning False once the job is no longer this
    attempt's (cancelled, failed, taken over) — and then stops the work. It also takes
    the job's lock once it is free, when the claim had to go without it (the previous
    holder's session lingered)."""

    def __init__(
        self, kind: JobKind, job_id: JobId, heartbeat: Callable[[], bool], *, holds_lock: bool,
        clock: Callable[[], float],
    ) -> None:
        self.kind = kind
        self.job_id = job_id
        self.heartbeat = heartbeat
        self.holds_lock = holds_lock
        self.clock = clock
        self.last_check = clock()
        self.lost = False

    def should_stop(self) -> bool:
        if not self.lost and self.clock() - self.last_check >= OWNERSHIP_CHECK_INTERVAL_SECONDS:
            self.check()
        return self.lost

    def check(self) -> None:
        self.last_check = self.clock()
        if not self.heartbeat():
            self.lost = True
            return
        if not self.holds_lock:
            self.holds_lock = job_lock_try(self.kind, self.job_id)


# --- the sweeper -----------------------------------------------------------------------


@dataclass(frozen=True)
class DeadJob:
    """A job the sweeper found: running with a stopped heartbeat, or queued too long."""

    pk: JobId
    status: str
    attempts: int
    worker_starts: int
    heartbeat_at: datetime | None
    started_at: datetime | None
    #: The kind's extra columns the caller asked for (e.g. the step it was in).
    extra: Mapping[str, Any]

    @property
    def fence(self) -> Q:
        """Matches the row only while nobody else changed it since it was found."""
        return Q(status=self.status, attempts=self.attempts)

    @property
    def last_seen(self) -> str:
        moment = self.heartbeat_at or self.started_at
        return moment.astimezone(dt_timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else "never"


def sweep_lock(*, wait: bool) -> bool:
    """Take the sweepers' transaction-level lock (inside the caller's transaction);
    without ``wait``, False at once while another sweep runs."""
    with connection.cursor() as cursor:
        if wait:
            cursor.execute(f"SELECT pg_advisory_xact_lock({_SWEEP_LOCK_KEY_SQL})")
            return True
        cursor.execute(f"SELECT pg_try_advisory_xact_lock({_SWEEP_LOCK_KEY_SQL})")
        return cursor.fetchone()[0]


def dead_jobs(
    kind: JobKind,
    *,
    older_than: timedelta | None = None,
    pending_older_than: timedelta | None = None,
    extra_fields: tuple[str, ...] = (),
) -> list[DeadJob]:
    """Inside the caller's transaction (rows locked, others' locked rows skipped): the
    running jobs whose heartbeat is older than ``older_than`` (default the kind's stale
    threshold) and the queued ones waiting since before ``pending_older_than`` (default
    ``pending_stale_after()``; queued since ``heartbeat_at`` when set — a re-queue or a
    resume sets it — else ``created_at``)."""
    now = timezone.now()
    cutoff = now - (older_than or kind.stale_after())
    pending_cutoff = now - (pending_older_than or pending_stale_after())
    dead = Q(status=kind.running_status) & (
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
    )
    never_started = Q(status=kind.queued_status, queued_since__lt=pending_cutoff)
    columns = ("pk", "status", "attempts", "worker_starts", "heartbeat_at", "started_at")
    rows = (
        kind.model.objects.select_for_update(skip_locked=True)
        .annotate(queued_since=Coalesce("heartbeat_at", "created_at"))
        .filter(kind.scope)
        .filter(dead | never_started)
        .values(*columns, *extra_fields)
    )
    return [
        DeadJob(**{name: row[name] for name in columns}, extra={name: row[name] for name in extra_fields})
        for row in rows
    ]


def requeue_assignments(job: DeadJob) -> tuple[dict[str, Any], int, str]:
    """The column updates that hand a dead worker's running job to a new message:
    (updates, the attempt the new message may take over, its Celery task id)."""
    celery_task_id = str(uuid.uuid4())
    updates = {
        "attempts": F("attempts") + 1,  # the dead worker's writes, should it come back, no longer apply
        "worker_starts": F("worker_starts") + 1,
        "worker": "",
        "heartbeat_at": timezone.now(),  # "re-queued at": swept again if no worker takes it
        "celery_task_id": celery_task_id,
    }
    return updates, job.attempts + 1, celery_task_id
