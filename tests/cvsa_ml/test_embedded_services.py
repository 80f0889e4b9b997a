"""The embedded servers' life cycle: concurrent starts, stale pid files, root handling, errors.

The tests that start real servers use their own short data dir under /tmp (Unix socket
paths are limited to ~100 bytes) and always stop what they started.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis

from cvsa_ml import embedded_services as es

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def short_data_dir():
    """A fresh data dir with a short path; its servers are stopped and it is removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="cvsa-t", dir="/tmp"))
    try:
        yield base
    finally:
        errors = []
        for stop in (es.postgres_stop, es.redis_stop):
            try:
                stop(base)
            except es.EmbeddedServiceError as exc:  # still try the other one, then report
                errors.append(exc)
        shutil.rmtree(base, ignore_errors=True)
        assert not errors, errors


def _embedded_env(base: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env["CVSA_DATA_DIR"] = str(base)
    return env


def _fake_bin(directory: Path, name: str, script: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)
    return path


# --- cross-process lock -----------------------------------------------------------


def test_two_processes_starting_at_once_on_a_fresh_data_dir_both_succeed(short_data_dir):
    code = "from cvsa_ml import embedded_services as e; print([s.running for s in e.start_all()])"
    env = _embedded_env(short_data_dir)
    processes = [
        subprocess.Popen([sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [process.communicate(timeout=120) for process in processes]

    for process, (stdout, stderr) in zip(processes, results):
        assert process.returncode == 0, stderr
        assert stdout.strip() == "[True, True]"
    assert es.postgres_status(short_data_dir).running
    assert es.redis_status(short_data_dir).running
    assert (short_data_dir / es.LOCK_FILE_NAME).exists()


def test_the_lock_excludes_another_process_until_released(tmp_path):
    probe = (
        "import sys; from pathlib import Path; from cvsa_ml import embedded_services as e\n"
        "try:\n"
        "    with e.services_lock(Path(sys.argv[1]), timeout=0.2): print('acquired')\n"
        "except e.EmbeddedServiceError as exc: print('refused:', exc)\n"
    )

    def other_process() -> str:
        return subprocess.run(
            [sys.executable, "-c", probe, str(tmp_path)], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
        ).stdout

    with es.services_lock(tmp_path):
        assert other_process().startswith("refused: another process holds")
    assert other_process().strip() == "acquired"


# --- PostgreSQL -------------------------------------------------------------------


def test_postgres_status_ignores_a_stale_pid_file_and_start_recovers(short_data_dir):
    """After a crash the pid in postmaster.pid may belong to an unrelated live process."""
    pgdata = es.postgres_dir(short_data_dir)
    es.postgres_start(short_data_dir)
    pid_file_content = (pgdata / "postmaster.pid").read_text()
    es.postgres_stop(short_data_dir)
    # Same uid as the server: PostgreSQL itself treats another uid's pid (EPERM) as stale.
    user = es._postgres_run_as()
    identity = {"user": user, "group": es.pwd.getpwnam(user).pw_gid, "extra_groups": []} if user else {}
    impostor = subprocess.Popen(["sleep", "60"], **identity)
    try:
        stale = "\n".join([str(impostor.pid), *pid_file_content.splitlines()[1:]]) + "\n"
        (pgdata / "postmaster.pid").write_text(stale)
        (pgdata / ".s.PGSQL.5432.lock").write_text(f"{impostor.pid}\n")

        status = es.postgres_status(short_data_dir)
        assert not status.running and status.detail.startswith("stopped")
        assert es.postgres_stop(short_data_dir).running is False  # must not signal the impostor
        assert impostor.poll() is None

        assert es.postgres_start(short_data_dir).running
        assert impostor.poll() is None
    finally:
        impostor.kill()
        impostor.wait()


def _pretend_root_without_system_user(monkeypatch):
    def no_such_user(name):
        raise KeyError(name)

    monkeypatch.setattr(es, "_running_as_root", lambda: True)
    monkeypatch.setattr(es.pwd, "getpwnam", no_such_user)


def test_status_and_stop_never_create_the_system_user(tmp_path, monkeypatch):
    _pretend_root_without_system_user(monkeypatch)
    monkeypatch.setattr(es, "_pg_isready", lambda pgdata: 2)
    calls = []
    monkeypatch.setattr(es.subprocess, "run", lambda *args, **kwargs: calls.append(args) or pytest.fail(f"ran {args}"))

    assert es.postgres_status(tmp_path).detail.startswith("not initialised")
    es.postgres_dir(tmp_path).mkdir()
    (es.postgres_dir(tmp_path) / "PG_VERSION").write_text("16\n")
    assert es.postgres_status(tmp_path).detail.startswith("stopped")
    assert es.postgres_stop(tmp_path).running is False
    assert calls == []


def test_stopping_a_running_server_without_the_system_user_is_a_clear_error(tmp_path, monkeypatch):
    _pretend_root_without_system_user(monkeypatch)
    monkeypatch.setattr(es, "_pg_isready", lambda pgdata: 0)
    es.postgres_dir(tmp_path).mkdir()
    (es.postgres_dir(tmp_path) / "PG_VERSION").write_text("16\n")

    with pytest.raises(es.EmbeddedServiceError, match="system user cvsa-pg .* does not exist"):
        es.postgres_stop(tmp_path)


def test_start_creates_the_system_user_as_root(monkeypatch):
    _pretend_root_without_system_user(monkeypatch)
    commands = []
    monkeypatch.setattr(es, "_run", lambda command, **kwargs: commands.append(command))

    assert es._ensure_system_user() == es.POSTGRES_SYSTEM_USER
    assert commands == [["useradd", "--system", "--no-create-home", es.POSTGRES_SYSTEM_USER]]


def test_data_dir_owned_by_another_uid_is_a_clear_error(tmp_path, monkeypatch):
    pgdata = es.postgres_dir(tmp_path)
    pgdata.mkdir()
    (pgdata / "PG_VERSION").write_text("16\n")
    owner = pgdata.stat().st_uid
    monkeypatch.setattr(es.os, "geteuid", lambda: owner + 1)  # we now "run as" another, non-root uid

    with pytest.raises(es.EmbeddedServiceError, match=rf"owned by uid {owner}, expected {owner + 1}: remove it or run as"):
        es.postgres_start(tmp_path)


def test_data_dir_not_owned_by_the_system_user_is_a_clear_error_as_root(tmp_path, monkeypatch):
    pgdata = es.postgres_dir(tmp_path)
    pgdata.mkdir()
    (pgdata / "PG_VERSION").write_text("16\n")
    owner = pgdata.stat().st_uid
    monkeypatch.setattr(es.pwd, "getpwnam", lambda name: SimpleNamespace(pw_uid=owner + 7, pw_gid=owner + 7))

    with pytest.raises(es.EmbeddedServiceError, match=rf"owned by uid {owner}, expected {owner + 7}: remove it or chown -R cvsa-pg"):
        es._check_owner(pgdata, es.POSTGRES_SYSTEM_USER)


def test_failing_initdb_becomes_an_error_with_its_stderr(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    _fake_bin(bin_dir, "initdb", 'echo "initdb: error: no space left on device" >&2; exit 1')
    monkeypatch.setattr(es, "_pg_bin", lambda name: bin_dir / name)
    monkeypatch.setattr(es, "_running_as_root", lambda: False)

    with pytest.raises(es.EmbeddedServiceError, match="initdb failed .*no space left on device"):
        es.postgres_start(tmp_path / "data")


def test_hanging_pg_ctl_becomes_an_error(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    _fake_bin(bin_dir, "pg_isready", "exit 0")
    _fake_bin(bin_dir, "pg_ctl", 'echo "waiting for server to shut down..." >&2; exec sleep 30')
    monkeypatch.setattr(es, "_pg_bin", lambda name: bin_dir / name)
    monkeypatch.setattr(es, "_running_as_root", lambda: False)
    monkeypatch.setattr(es, "PG_STOP_TIMEOUT", 0.5)
    pgdata = es.postgres_dir(tmp_path)
    pgdata.mkdir()
    (pgdata / "PG_VERSION").write_text("16\n")

    # The message is raised only by the timeout: a hang would leave pg_ctl's 30 s sleep running.
    with pytest.raises(es.EmbeddedServiceError, match="pg_ctl stop did not finish within 0.5 s"):
        es.postgres_stop(tmp_path)


def test_run_turns_every_subprocess_failure_into_an_embedded_service_error(tmp_path):
    with pytest.raises(es.EmbeddedServiceError, match=r"psql failed \(exit status 3\): relation missing"):
        es._run(["sh", "-c", "echo 'relation missing' >&2; exit 3"], what="psql")
    with pytest.raises(es.EmbeddedServiceError, match="useradd could not be run"):
        es._run([str(tmp_path / "no-such-binary")], what="useradd")


def test_failing_useradd_becomes_an_error_with_its_stderr(tmp_path, monkeypatch):
    _pretend_root_without_system_user(monkeypatch)
    _fake_bin(tmp_path, "useradd", 'echo "useradd: cannot lock /etc/passwd" >&2; exit 10')
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")

    with pytest.raises(es.EmbeddedServiceError, match="creating the system user cvsa-pg failed .*cannot lock /etc/passwd"):
        es._ensure_system_user()


# --- Redis ------------------------------------------------------------------------


def test_redis_loading_its_append_only_file_counts_as_running(tmp_path, monkeypatch):
    socket_path = es.redis_socket(tmp_path)
    socket_path.parent.mkdir(parents=True)
    socket_path.touch()

    def loading(self):
        raise redis.BusyLoadingError("Redis is loading the dataset in memory")

    monkeypatch.setattr(redis.Redis, "ping", loading)

    status = es.redis_status(tmp_path)
    assert status.running and "loading" in status.detail


def test_redis_start_waits_for_a_loading_server_instead_of_launching_another(tmp_path, monkeypatch):
    states = iter([es.LOADING, es.LOADING, es.LOADING, es.READY, es.READY])
    monkeypatch.setattr(es, "_redis_probe", lambda socket_path, timeout=1.0: next(states))
    monkeypatch.setattr(es, "_run", lambda *args, **kwargs: pytest.fail("launched a second redis-server"))

    assert es.redis_start(tmp_path).running


def test_redis_start_never_launches_a_second_server_next_to_a_live_one(short_data_dir, monkeypatch):
    """A live redis-server named in redis.pid that does not answer: refuse, and stop ends it."""
    assert es.redis_start(short_data_dir).running
    pid = int((es.redis_dir(short_data_dir) / "redis.pid").read_text())
    es.redis_socket(short_data_dir).unlink()  # alive, but unreachable
    monkeypatch.setattr(es, "REDIS_START_TIMEOUT", 0.3)

    with pytest.raises(es.EmbeddedServiceError, match=rf"redis-server \(pid {pid}\) runs in .* does not answer"):
        es.redis_start(short_data_dir)
    assert es._redis_daemon_pid(short_data_dir) == pid

    assert es.redis_stop(short_data_dir).running is False
    assert es._redis_daemon_pid(short_data_dir) is None
    assert es.redis_start(short_data_dir).running


def test_redis_pid_file_naming_another_process_is_ignored(short_data_dir):
    directory = es.redis_dir(short_data_dir)
    directory.mkdir(parents=True)
    (directory / "redis.pid").write_text(f"{os.getpid()}\n")  # a live pid, but not a redis-server

    assert es._redis_daemon_pid(short_data_dir) is None
    assert es.redis_start(short_data_dir).running
    assert es._redis_daemon_pid(short_data_dir) not in (None, os.getpid())


def test_remove_data_is_gone():
    assert not hasattr(es, "remove_data")


def test_a_server_orphaned_by_deleting_its_data_dir_is_stopped_before_a_fresh_start(short_data_dir):
    es.postgres_start(short_data_dir)
    orphan = int((es.postgres_dir(short_data_dir) / "postmaster.pid").read_text().split()[0])
    shutil.rmtree(es.postgres_dir(short_data_dir))

    assert es.postgres_start(short_data_dir).running

    def exited(pid: int) -> bool:  # gone, or a zombie nobody has reaped yet
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
        except FileNotFoundError:
            return True

    # SIGQUIT was sent during the start; its exit is waited for, up to a deadline only a hang reaches.
    deadline = time.monotonic() + 60
    while not exited(orphan) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert exited(orphan)
    assert (es.postgres_dir(short_data_dir) / ".s.PGSQL.5432").is_socket()
