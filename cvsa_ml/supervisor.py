"""Keeps `manage.py serve`'s two processes running: the web server and the Celery worker.

A dead worker is restarted with a growing back-off, so a worker that dies at start
(broker down, bad code) does not spin; the web server stays up meanwhile. A dead web
server ends the whole run: nothing useful is left without it. Every change of the
worker is written to a small JSON status file that the health page reads.

The clock and the sleep are parameters, so the restart policy is tested without
waiting.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from cvsa_ml.env import write_private_file

logger = logging.getLogger(__name__)

STATUS_FILE_NAME = "serve-status.json"


class ChildProcess(Protocol):
    """What the supervisor needs of a child: `subprocess.Popen` is one."""

    pid: int
    returncode: int | None

    def poll(self) -> int | None: ...

    def send_signal(self, sig: int) -> None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def kill(self) -> None: ...


@dataclass(frozen=True)
class RestartBackoff:
    """Delay before restarting a worker that died ``failures`` times in a row.

    Doubles from ``first_delay`` up to ``max_delay``. A worker that stayed up for
    ``stable_after`` seconds was healthy: its death counts as the first again.
    """

    first_delay: float = 1.0
    max_delay: float = 60.0
    stable_after: float = 120.0

    def delay(self, failures: int) -> float:
        return min(self.first_delay * 2 ** max(failures - 1, 0), self.max_delay)


@dataclass(frozen=True)
class ServeStatus:
    """The worker as serve sees it; written as JSON for the health page."""

    supervisor_pid: int
    state: str  # "running", "restarting" (dead, waiting out the back-off) or "stopped"
    web_pid: int | None
    worker_pid: int | None
    restarts: int
    last_exit_code: int | None
    last_exit_at: str | None
    next_restart_at: str | None


def exit_description(code: int | None) -> str:
    """``1``, or ``-9 (SIGKILL)`` for a child killed by a signal."""
    if code is not None and code < 0:
        try:
            return f"{code} ({signal.Signals(-code).name})"
        except ValueError:
            pass
    return str(code)


def read_serve_status(path: Path) -> ServeStatus | None:
    """The status a running serve wrote, or None when no live serve wrote one.

    A file left by a serve that was killed (its pid is gone) describes nothing now.
    """
    try:
        status = ServeStatus(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    if status.state != "stopped" and not _pid_alive(status.supervisor_pid):
        return None
    return status


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class WebServerExited(Exception):
    def __init__(self, returncode: int | None):
        super().__init__(f"the web server exited with code {exit_description(returncode)}")
        self.returncode = returncode


class Supervisor:
    """Starts the web server and the worker, restarts the worker, stops both.

    ``run()`` returns only by raising `WebServerExited` (or KeyboardInterrupt from the
    caller's signal handling); ``stop()`` ends both children either way.
    """

    def __init__(
        self,
        *,
        start_web: Callable[[], ChildProcess],
        start_worker: Callable[[], ChildProcess],
        status_file: Path,
        backoff: RestartBackoff = RestartBackoff(),
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
        poll_interval: float = 0.5,
        stop_timeout: float = 30.0,
    ):
        self._start_web = start_web
        self._start_worker = start_worker
        self._status_file = status_file
        self._backoff = backoff
        self._clock = clock
        self._now = now
        self._sleep = sleep
        self._poll_interval = poll_interval
        self._stop_timeout = stop_timeout
        self.web: ChildProcess | None = None
        self.worker: ChildProcess | None = None
        self._worker_started_at = 0.0
        self._failures = 0  # deaths in a row, each within `stable_after` of its start
        self._restart_due: float | None = None
        self._restarts = 0
        self._last_exit_code: int | None = None
        self._last_exit_at: str | None = None
        self._next_restart_at: str | None = None

    @property
    def restarts(self) -> int:
        return self._restarts

    def start(self) -> None:
        self.worker = self._spawn_worker()
        self.web = self._start_web()
        self._write_status("running")

    def run(self) -> None:
        """Watch both children until the web server exits (raises `WebServerExited`)."""
        if self.web is None:
            self.start()
        while True:
            self.check()
            self._sleep(self._poll_interval)

    def check(self) -> None:
        """One round of watching: what `run` does every ``poll_interval``."""
        assert self.web is not None
        if self.web.poll() is not None:
            raise WebServerExited(self.web.returncode)
        if self.worker is not None and self.worker.poll() is not None:
            self._worker_died(self.worker.returncode)
        if self.worker is None and self._restart_due is not None and self._clock() >= self._restart_due:
            self._restarts += 1
            self._restart_due = None
            self._next_restart_at = None
            self.worker = self._spawn_worker()
            logger.warning("Worker restarted (restart %d, pid %d)", self._restarts, self.worker.pid)
            self._write_status("running")

    def stop(self) -> None:
        """SIGTERM both children (the worker finishes its current task), SIGKILL stragglers."""
        children = [child for child in (self.web, self.worker) if child is not None]
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=self._stop_timeout)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self._restart_due = None
        self._next_restart_at = None
        self._write_status("stopped")

    def _spawn_worker(self) -> ChildProcess:
        worker = self._start_worker()
        self._worker_started_at = self._clock()
        return worker

    def _worker_died(self, code: int | None) -> None:
        uptime = self._clock() - self._worker_started_at
        if uptime >= self._backoff.stable_after:
            self._failures = 0
        self._failures += 1
        delay = self._backoff.delay(self._failures)
        self.worker = None
        self._restart_due = self._clock() + delay
        now = self._now()
        self._last_exit_code = code
        self._last_exit_at = now.isoformat(timespec="seconds")
        self._next_restart_at = (now + timedelta(seconds=delay)).isoformat(timespec="seconds")
        logger.error(
            "The worker exited with code %s after %.0f s; restarting it in %.0f s (the web server keeps serving)",
            exit_description(code), uptime, delay,
        )
        self._write_status("restarting")

    def _write_status(self, state: str) -> None:
        status = ServeStatus(
            supervisor_pid=os.getpid(),
            state=state,
            web_pid=self.web.pid if self.web is not None else None,
            worker_pid=self.worker.pid if self.worker is not None else None,
            restarts=self._restarts,
            last_exit_code=self._last_exit_code,
            last_exit_at=self._last_exit_at,
            next_restart_at=self._next_restart_at,
        )
        try:
            write_private_file(self._status_file, json.dumps(asdict(status)))
        except OSError as error:  # health loses a detail; serving must go on
            logger.warning("Could not write %s: %s", self._status_file, error)
