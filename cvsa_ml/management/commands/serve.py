import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import django
from django.apps import apps
from django.conf import settings
from django.contrib.staticfiles.finders import get_finders
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from cvsa_ml import embedded_services
from cvsa_ml.bootstrap import demo_admin_bootstrap, groups_bootstrap
from cvsa_ml.env import WILDCARD_HOSTS, split_addrport
from cvsa_ml.supervisor import STATUS_FILE_NAME, Supervisor, WebServerExited

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


class Command(BaseCommand):
    help = (
        "Run the whole product: embedded services, migrations, bootstrap, demo data on first start, "
        "static files, then the production web server (gunicorn) and one Celery worker until Ctrl-C. "
        "A worker that dies is restarted; --dev runs Django's autoreloading development server with DEBUG on."
    )
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--addrport", default=os.environ.get("CVSA_ADDRPORT", "127.0.0.1:8000"))
        parser.add_argument("--no-demo", action="store_true", help="do not load demo data on first start")
        parser.add_argument("--dev", action="store_true",
                            help="Django's development server (autoreload, DEBUG on) instead of gunicorn")
        parser.add_argument("--worker-concurrency", type=int, default=2, help="worker processes (default 2)")

    def handle(self, *args, addrport, no_demo, dev, worker_concurrency, **options):
        try:
            host, port = split_addrport(addrport)
        except ImproperlyConfigured as error:
            raise CommandError(str(error)) from None
        if port_in_use(host, port):
            raise CommandError(
                f"{addrport} is already in use (another `make run`?): stop it, or choose another address "
                "with --addrport or CVSA_ADDRPORT."
            )
        for service in embedded_services.start_all():
            self.stdout.write(f"{service.name}: {service.detail}")
        for line in used_services():
            self.stdout.write(line)
        call_command("migrate", interactive=False, verbosity=0)
        groups_bootstrap()
        credentials = demo_admin_bootstrap(password=os.environ.get("CVSA_DEMO_PASSWORD"))
        if not no_demo:
            call_command("load_demo", if_empty=True, no_progress=True)
        if not dev:  # the development server serves the source files
            collect_static_files()

        # The children read CVSA_ADDRPORT so that ALLOWED_HOSTS admits the host they serve.
        child_env = {**os.environ, "CVSA_ADDRPORT": addrport}
        if dev:
            child_env["DEBUG"] = "1"

        def start_web():
            return subprocess.Popen(web_command(addrport, dev=dev), cwd=settings.BASE_DIR, env=child_env)

        def start_worker():
            return subprocess.Popen(worker_command(worker_concurrency), cwd=settings.BASE_DIR, env=child_env)

        supervisor = Supervisor(start_web=start_web, start_worker=start_worker,
                                status_file=settings.DATA_DIR / STATUS_FILE_NAME)
        # `kill`/systemd send SIGTERM: stop the children as cleanly as on Ctrl-C.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        failure = None
        try:
            supervisor.start()
            if not wait_until_listening(host, port, supervisor, READY_TIMEOUT_SECONDS):
                self.stderr.write(f"The web server does not answer on {host}:{port} after "
                                  f"{READY_TIMEOUT_SECONDS} s; still waiting for it.")
            self._banner(host, port, credentials, dev=dev)
            supervisor.run()
        except KeyboardInterrupt:
            pass
        except WebServerExited as exited:
            failure = exited
        finally:
            # A second Ctrl-C must not abandon the children half-stopped: finish the shutdown.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            if failure is None:
                self.stdout.write("Stopping the web server and the worker (the worker finishes its current task)...")
            else:
                self.stderr.write(f"ERROR: {failure}. Stopping the worker; nothing is served any more.")
            supervisor.stop()
        if failure is not None:
            raise CommandError(f"{failure} (its own messages are above); serve stopped.", returncode=1)
        self.stdout.write("Stopped web server and worker.")

    def _banner(self, host, port, credentials, *, dev):
        shown_host = f"[{host}]" if ":" in host else host
        url = f"http://{shown_host}:{port}/"
        lines = [f"CVSA ML is running at {url}"]
        if host in WILDCARD_HOSTS:
            lines.append(f"  (listening on every interface: list the names clients use in ALLOWED_HOSTS; "
                         f"allowed now: {', '.join(settings.ALLOWED_HOSTS)})")
        mode = "development server, DEBUG on, autoreload" if dev else "gunicorn, DEBUG " + (
            "ON (unset DEBUG for production)" if settings.DEBUG else "off")
        lines.append(f"Mode: {mode}")
        password = credentials.password or "(unchanged; set CVSA_DEMO_PASSWORD to reset)"
        lines.append(f"Log in as {credentials.username} / {password}")
        if embedded_services.wanted_services(os.environ):
            lines.append("Ctrl-C stops the web server and the worker (the embedded databases keep running; "
                         "`make stop` ends them).")
        else:
            lines.append("Ctrl-C stops the web server and the worker.")
        self.stdout.write(self.style.SUCCESS("\n  " + "\n  ".join(lines) + "\n"))
