"""Typed readers for the environment variables that configure the project."""

from __future__ import annotations

import fcntl
import os
import secrets
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_bool(name: str, default: bool, environ: Mapping[str, str] = os.environ) -> bool:
    raw = environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be one of 1/0, true/false, yes/no, on/off (got {raw!r})")


def env_list(name: str, default: list[str], environ: Mapping[str, str] = os.environ) -> list[str]:
    raw = environ.get(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_int(name: str, default: int, environ: Mapping[str, str] = os.environ) -> int:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer (got {raw!r})") from None


def secret_key(environ: Mapping[str, str], *, data_dir: Path) -> str:
    """SECRET_KEY from the environment, else a random key generated once into the data dir.

    Persisting the generated key keeps sessions valid across restarts without ever
    putting a key in the code; production (DEBUG off) needs nothing set either, which is
    what `make run` is. A key in the environment always wins.
    """
    key = environ.get("SECRET_KEY")
    if key:
        return key
    return read_or_create_private_file(data_dir / "secret_key", lambda: secrets.token_urlsafe(50))


def split_addrport(addrport: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` or a bare port, as runserver accepts) as (host, port)."""
    value = addrport.strip()
    if value.isdigit():
        return "127.0.0.1", int(value)
    host, separator, port = value.rpartition(":")
    if not separator or not port.isdigit() or not host:
        raise ImproperlyConfigured(f"CVSA_ADDRPORT must be HOST:PORT, e.g. 127.0.0.1:8000 (got {addrport!r})")
    return host.removeprefix("[").removesuffix("]"), int(port)


LOCAL_HOSTS = ["127.0.0.1", "localhost"]
WILDCARD_HOSTS = {"0.0.0.0", "::"}


def allowed_hosts(environ: Mapping[str, str] = os.environ) -> list[str]:
    """ALLOWED_HOSTS from the environment, else the loopback names plus the host serve binds.

    A wildcard bind (0.0.0.0) says nothing about the names clients use: those must be
    listed in ALLOWED_HOSTS, as ``manage.py serve`` says when it starts.
    """
    if "ALLOWED_HOSTS" in environ:
        return env_list("ALLOWED_HOSTS", [], environ)
    hosts = list(LOCAL_HOSTS)
    if environ.get("CVSA_ADDRPORT"):
        host, _ = split_addrport(environ["CVSA_ADDRPORT"])
        name = f"[{host}]" if ":" in host else host
        if host not in WILDCARD_HOSTS and name not in hosts:
            hosts.append(name)
    return hosts


def _private_temp_file(path: Path, content: str) -> str:
    """``content`` fully written (and mode 0600) to a temp file beside ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mkstemp: mode 0600
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        os.unlink(temp)
        raise
    return temp


def write_private_file(path: Path, content: str) -> None:
    """Replace ``path`` atomically: readers see the old or the new content, never a partial one."""
    temp = _private_temp_file(path, content)
    try:
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise


def read_or_create_private_file(path: Path, generate: Callable[[], str]) -> str:
    """The content of ``path``, creating it (mode 0600) with ``generate()`` if absent.

    Safe when several processes start at once: the value is written to a temp file that
    is then hard-linked into place, so ``path`` appears complete or not at all and the
    first process to link it wins; the others read the winner's value. An empty file
    (left by a crash of an older touch-then-write version) is regenerated, under a lock
    so that two processes replacing it agree on one value.
    """
    for _ in range(10):
        try:
            content = path.read_text().strip()
        except FileNotFoundError:
            content = None
        if content:
            return content
        value = generate()
        temp = _private_temp_file(path, value)
        try:
            if content is None:
                try:
                    os.link(temp, path)
                    return value
                except FileExistsError:
                    continue  # another process won: read its value
            if _replace_if_still_empty(path, temp):
                return value
        finally:
            Path(temp).unlink(missing_ok=True)  # linked or renamed into place, or unused
    raise ImproperlyConfigured(f"could not create {path}: it keeps changing or stays empty")


def _replace_if_still_empty(path: Path, temp: str) -> bool:
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return False
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            same_file = os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            return False
        # Someone may have replaced it while we waited for the lock: then read theirs.
        if not same_file or handle.read().strip():
            return False
        os.replace(temp, path)
        return True
