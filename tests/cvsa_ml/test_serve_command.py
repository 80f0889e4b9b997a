"""`manage.py serve` (what `make run` runs) as a real process against the test database.

It runs the production settings (nothing configured) with gunicorn and a Celery worker,
and is checked with HTTP requests as curl would make them.
"""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from cvsa_ml.celery import app as celery_app
from cvsa_ml.serving import collect_static_files, masked_url, used_services, worker_command
from cvsa_ml.supervisor import STATUS_FILE_NAME
from tests.cvsa_ml.test_production_settings import CONFIGURING
from tests.support.celery_worker import _test_database_url
from tests.support.waiting import wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_PASSWORD = "demo-pw-for-serve-test"
# Generous: only a hang fails it, never a slow machine.
DEADLINE_SECONDS = 180


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for(condition, what: str, process: subprocess.Popen):
    def condition_while_serve_runs():
        value = condition()
        if not value and process.poll() is not None:
            raise AssertionError(f"serve exited with {process.returncode} while waiting for {what}")
        return value

    return wait_until(condition_while_serve_runs, what, deadline_seconds=DEADLINE_SECONDS, interval=0.2)


class Http:
    """curl-like requests that keep cookies."""

    def __init__(self, port: int):
        self.port = port
        self.cookies = SimpleCookie()

    def request(self, method, path, *, host=None, body=None, headers=None):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        all_headers = {"Host": host or f"127.0.0.1:{self.port}", **(headers or {})}
        if self.cookies:
            all_headers["Cookie"] = "; ".join(f"{name}={morsel.value}" for name, morsel in self.cookies.items())
        connection.request(method, path, body=body, headers=all_headers)
        response = connection.getresponse()
        content = response.read()
        for header in response.headers.get_all("Set-Cookie") or []:
            self.cookies.load(header)
        connection.close()
        return response, content

    def get(self, path, **options):
        return self.request("GET", path, **options)


def _status(data_dir: Path) -> dict:
    try:
        return json.loads((data_dir / STATUS_FILE_NAME).read_text())
    except (OSError, ValueError):
        return {}


@pytest.fixture
def serve(transactional_db):
    """`manage.py serve` with production settings, the test database and the test broker."""
    data_dir = Path(tempfile.mkdtemp(prefix="cvsa-serve-", dir="/tmp"))  # short: Unix socket paths
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if key not in CONFIGURING}
    env.update({
        "DJANGO_SETTINGS_MODULE": "cvsa_ml.settings",
        "CVSA_DATA_DIR": str(data_dir),
        "DATABASE_URL": _test_database_url(),
        "CELERY_BROKER_URL": celery_app.conf.broker_url,
        "CELERY_RESULT_BACKEND": celery_app.conf.result_backend,
        "CVSA_DEMO_PASSWORD": DEMO_PASSWORD,
        "WEB_CONCURRENCY": "1",
        "CVSA_WEB_THREADS": "2",
        "PYTHONUNBUFFERED": "1",
    })
    log = open(data_dir / "serve.log", "w+")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--no-demo", "--addrport", f"127.0.0.1:{port}",
         "--worker-concurrency", "1"],
        cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    process.data_dir = data_dir
    process.port = port
    process.log = lambda: Path(log.name).read_text()
    try:
        _wait_for(lambda: "CVSA ML is running at" in process.log(), "the banner", process)
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.mark.worker
def test_serve_runs_the_production_server_restarts_its_worker_and_stops_when_the_web_dies(serve):
    http = Http(serve.port)
    banner = serve.log().split("Ctrl-C stops")[0]
    assert "Mode: gunicorn, DEBUG off" in banner
    assert "Using worker: gthread" in banner
    # External servers (the test database and broker): no word of embedded ones.
    assert "database: external PostgreSQL" in banner and "embedded" not in banner

    # An unknown Host gets the 400 page: no settings, no debug page.
    response, body = http.get("/v1/health", host="evil.example")
    assert response.status == 400
    text = body.decode()
    for leak in ("Traceback", "CELERY", "DATABASE", "SECRET", "redis", "postgres", "evil.example"):
        assert leak not in text

    # An unknown URL does not list the URL configuration.
    response, body = http.get("/no-such-page/")
    assert response.status == 404
    assert "Using the URLconf" not in body.decode() and "admin/" not in body.decode()

    # The login page, its static files (hashed, compressed, cached for long) and the favicon.
    response, body = http.get("/accounts/login/")
    assert response.status == 200
    page = body.decode()
    stylesheet = re.search(r'href="(/static/css/app\.[0-9a-f]{12}\.css)"', page).group(1)
    response, _ = http.get(stylesheet, headers={"Accept-Encoding": "gzip"})
    assert response.status == 200
    assert response.headers["Content-Encoding"] == "gzip"
    assert "immutable" in response.headers["Cache-Control"]
    response, body = http.get("/favicon.ico")
    assert response.status == 200 and body.startswith(b"\x00\x00\x01\x00")

    # Logging in works over plain http with DEBUG off: the cookies are not Secure-only.
    csrf_token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    response, _ = http.request(
        "POST", "/accounts/login/",
        body=urlencode({"username": "admin", "password": DEMO_PASSWORD, "csrfmiddlewaretoken": csrf_token}),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status == 302, "login refused"
    assert "sessionid" in http.cookies and not http.cookies["sessionid"]["secure"]
    response, body = http.get("/")
    assert response.status == 200 and b"System health" in body

    # The worker is killed (as by the OOM killer): the web keeps serving, serve restarts it.
    first_worker = _wait_for(lambda: _status(serve.data_dir).get("worker_pid"), "the worker's pid", serve)
    os.kill(first_worker, signal.SIGKILL)
    restarted = _wait_for(
        lambda: (status := _status(serve.data_dir)).get("restarts") == 1 and status["state"] == "running" and status,
        "the worker's restart", serve,
    )
    assert restarted["worker_pid"] != first_worker and restarted["last_exit_code"] == -9
    assert "The worker exited with code -9 (SIGKILL)" in serve.log()
    response, body = http.get("/api/v1/health")
    assert response.status == 200
    assert "serve restarted its worker 1 time, last exit code -9 (SIGKILL)" in (
        json.loads(body)["components"]["worker"]["detail"]
    )

    # The web server dies: serve stops the worker and exits with an error that says so.
    os.kill(restarted["web_pid"], signal.SIGKILL)
    returncode = serve.wait(timeout=DEADLINE_SECONDS)
    assert returncode == 1
    log = serve.log()
    assert "the web server exited with code -9 (SIGKILL)" in log
    assert "Stopped web server and worker." not in log
    assert _status(serve.data_dir)["state"] == "stopped"
    with pytest.raises(ProcessLookupError):
        os.kill(restarted["worker_pid"], 0)


def test_worker_command_runs_no_beat():
    # Every worker sweeps stale jobs itself (h3jobs): no beat process to keep alive.
    assert not any("beat" in argument for argument in worker_command(2))


@pytest.mark.parametrize(("url", "shown"), [
    ("postgres://cvsa:s3cret@db.example:5432/cvsa", "postgres://cvsa:***@db.example:5432/cvsa"),
    ("redis://:s3cret@broker:6379/0", "redis://:***@broker:6379/0"),
    ("redis://broker:6379/0", "redis://broker:6379/0"),
    ("postgres://cvsa@%2Ftmp%2Fpg/cvsa", "postgres://cvsa@%2Ftmp%2Fpg/cvsa"),
])
def test_masked_url_hides_only_the_password(url, shown):
    assert masked_url(url) == shown


def test_banner_names_the_servers_actually_used(settings):
    external = {"DATABASE_URL": "postgres://cvsa:s3cret@db.example/cvsa", "CELERY_BROKER_URL": "redis://:pw@mq:6379/1"}
    assert used_services(external) == [
        "database: external PostgreSQL postgres://cvsa:***@db.example/cvsa",
        "broker: external Redis redis://:***@mq:6379/1",
    ]
    assert used_services({}) == [
        f"database: embedded PostgreSQL in {settings.DATA_DIR / 'pg'}",
        f"broker: embedded Redis in {settings.DATA_DIR / 'redis'}",
    ]


def test_serve_refuses_an_address_in_use_before_starting_anything():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(CommandError, match=rf"127\.0\.0\.1:{port} is already in use"):
            call_command("serve", "--addrport", f"127.0.0.1:{port}")


def test_static_files_are_collected_again_only_when_a_source_changed(settings, tmp_path):
    source = tmp_path / "source"
    (source / "css").mkdir(parents=True)
    stylesheet = source / "css" / "extra.css"
    stylesheet.write_text("body { color: red; }")
    settings.STATICFILES_DIRS = [*settings.STATICFILES_DIRS, source]
    settings.STATIC_ROOT = tmp_path / "collected"
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"}}

    assert collect_static_files() is True
    manifest = json.loads((tmp_path / "collected" / "staticfiles.json").read_text())
    assert manifest["paths"]["css/extra.css"].startswith("css/extra.")
    assert collect_static_files() is False  # nothing changed: no second hashing of every file

    stylesheet.write_text("body { color: blue; }")
    assert collect_static_files() is True
    assert json.loads((tmp_path / "collected" / "staticfiles.json").read_text())["paths"]["css/extra.css"] != (
        manifest["paths"]["css/extra.css"]
    )
