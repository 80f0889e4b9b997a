"""How `manage.py serve` runs the product: which servers it uses, the web and worker
command lines, static files collected only when they changed, and the port checks.
The command itself only parses options, calls these and prints."""

import hashlib
import os
import socket
import sys
import time
from importlib.metadata import version
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import django
from django.apps import apps
from django.conf import settings
from django.contrib.staticfiles.finders import get_finders
from django.core.management import call_command

from cvsa_ml import embedded_services
from cvsa_ml.env import WILDCARD_HOSTS, split_addrport
from cvsa_ml.supervisor import Supervisor

WORKER_QUEUES = "default,embeddings,training"
READY_TIMEOUT_SECONDS = 60


def masked_url(url: str) -> str:
    """``url`` with its password replaced by ``***``: safe to print."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def used_services(environ=os.environ) -> list[str]:
    """One line per server the product uses: embedded ones and external ones (masked)."""
    embedded = set(embedded_services.wanted_services(environ))
    lines = []
    if "postgres" in embedded:
        lines.append(f"database: embedded PostgreSQL in {embedded_services.postgres_dir(settings.DATA_DIR)}")
    else:
        lines.append(f"database: external PostgreSQL {masked_url(environ['DATABASE_URL'])}")
    if "redis" in embedded:
        lines.append(f"broker: embedded Redis in {embedded_services.redis_dir(settings.DATA_DIR)}")
    else:
        lines.append(f"broker: external Redis {masked_url(environ['CELERY_BROKER_URL'])}")
    return lines


def web_command(addrport: str, *, dev: bool) -> list[str]:
    if dev:
        # Django's development server reloads on code changes.
        return [sys.executable, str(settings.BASE_DIR / "manage.py"), "runserver", addrport]
    host, port = split_addrport(addrport)
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return [sys.executable, "-m", "gunicorn", "--config", "python:cvsa_ml.gunicorn_conf", "--bind", bind]


def worker_command(concurrency: int) -> list[str]:
    # No --beat: every worker runs the stale-job sweeper itself (one at a time, under a
    # PostgreSQL advisory lock), so no process is special.
    return [sys.executable, "-m", "celery", "-A", "cvsa_ml", "worker", "--loglevel=INFO",
            "-Q", WORKER_QUEUES, f"--concurrency={concurrency}", "--hostname=cvsa@%h"]


def static_sources_fingerprint() -> str:
    """Changes whenever collectstatic would produce something else: the files, the storage, the versions."""
    ignore_patterns = apps.get_app_config("staticfiles").ignore_patterns
    entries = []
    for finder in get_finders():
        for path, storage in finder.list(ignore_patterns):
            stat = os.stat(storage.path(path))
            entries.append(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}")
    digest = hashlib.sha256()
    for line in [settings.STORAGES["staticfiles"]["BACKEND"], django.__version__, version("whitenoise"),
                 *sorted(entries)]:
        digest.update(line.encode() + b"\n")
    return digest.hexdigest()


def collect_static_files() -> bool:
    """collectstatic, skipped when nothing changed since the last run (hashing every file takes seconds)."""
    stamp = Path(settings.STATIC_ROOT) / ".cvsa-collected"
    fingerprint = static_sources_fingerprint()
    if stamp.is_file() and stamp.read_text() == fingerprint:
        return False
    call_command("collectstatic", interactive=False, verbosity=0)
    stamp.write_text(fingerprint)
    return True


def port_in_use(host: str, port: int) -> bool:
    """Whether another process listens on ``host:port`` (bound as gunicorn binds: SO_REUSEADDR)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def wait_until_listening(host: str, port: int, supervisor: Supervisor, timeout: float) -> bool:
    """True once ``host:port`` accepts connections, False after ``timeout``.

    Supervises meanwhile: raises `WebServerExited` if the web server dies while starting.
    """
    if host in WILDCARD_HOSTS:
        host = "::1" if host == "::" else "127.0.0.1"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        supervisor.check()
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.2)
    return False
