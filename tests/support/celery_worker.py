"""A real Celery worker process for tests, pointed at the test database and the test broker
(its own db and key prefix: ``cvsa_ml.test_settings``)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from django.db import connection

from cvsa_ml.celery import app as celery_app

REPO_ROOT = Path(__file__).resolve().parents[2]


def _test_database_url() -> str:
    params = connection.settings_dict
    host = params["HOST"]
    host_part = quote(host, safe="") if host.startswith("/") else host
    port = f":{params['PORT']}" if params.get("PORT") else ""
    password = f":{quote(params['PASSWORD'], safe='')}" if params.get("PASSWORD") else ""
    return f"postgres://{quote(params['USER'], safe='')}{password}@{host_part}{port}/{params['NAME']}"


@contextmanager
def running_worker(
    *,
    queues: str = "default,embeddings,training",
    name: str = "session",
    concurrency: int = 1,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
):
    """A prefork worker (``concurrency`` children: a task runs in a child process, as in
    production, so a test can kill that child) that answers a ping before this yields.

    Yields the ``subprocess.Popen`` of the worker's parent process; its node name is
    ``process.hostname`` (each worker of a test session gets its own ``name``).
    """
    hostname = f"test-{os.getpid()}-{name}@{socket.gethostname()}"
    worker_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "cvsa_ml.test_settings",
        "DATABASE_URL": _test_database_url(),
        "CELERY_BROKER_URL": celery_app.conf.broker_url,
        "CELERY_RESULT_BACKEND": celery_app.conf.result_backend,
        **(env or {}),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "cvsa_ml", "worker", "--pool=prefork", f"--concurrency={concurrency}",
         "--loglevel=WARNING", "-Q", queues, f"--hostname={hostname}", "--without-gossip", "--without-mingle"],
        cwd=REPO_ROOT,
        env=worker_env,
    )
    process.hostname = hostname
    try:
        deadline = time.monotonic() + timeout
        while not celery_app.control.ping(destination=[hostname], timeout=0.5):
            if process.poll() is not None:
                raise RuntimeError(f"Celery worker exited with {process.returncode} before answering a ping")
            if time.monotonic() > deadline:
                raise RuntimeError("Celery worker did not answer a ping in time")
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
