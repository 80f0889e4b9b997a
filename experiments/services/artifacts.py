"""Files a run produced: each lives under the run's artifact folder
(``<CVSA_ARTIFACTS_DIR>/runs/<run id>/``, by default ``<data dir>/artifacts``) and is
recorded with its size and SHA-256, computed from the file itself."""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection

from experiments.models import MAX_ARTIFACT_PATH_LENGTH, Artifact, Run, RunStatus
from experiments.services.runs import fence_failure
from experiments.services.validation import clean_id

HASH_CHUNK_BYTES = 1024 * 1024
#: The run's log, appended to while it runs (pages show its tail) and recorded as an
#: artifact when it ends.
RUN_LOG_PATH = "run.log"


def artifacts_root() -> Path:
    return Path(settings.CVSA_ARTIFACTS_DIR)


def run_artifact_dir(run_id: int) -> Path:
    """Where run ``run_id`` writes its files (not created here)."""
    return artifacts_root() / "runs" / str(clean_id(run_id, "run_id"))


def clean_artifact_path(path: object) -> str:
    """A relative POSIX path inside the run's folder: no ``..``, no absolute path."""
    if not isinstance(path, str) or not path:
        raise ValidationError({"path": f"must be a non-empty relative path (got {path!r})"})
    if len(path) > MAX_ARTIFACT_PATH_LENGTH:
        raise ValidationError({"path": f"at most {MAX_ARTIFACT_PATH_LENGTH} characters (got {len(path)})"})
    parts = PurePosixPath(path).parts
    if path.startswith("/") or "\\" in path or "\x00" in path or ".." in path or any(
        part in ("", ".") for part in parts
    ):
        raise ValidationError({"path": f"must be a relative path inside the run's folder, without '..' (got {path!r})"})
    return str(PurePosixPath(*parts))


def artifact_file(run_id: int, path: str) -> Path:
    """The file of artifact ``path`` of run ``run_id``; ``ValidationError`` when it would
    lie outside the run's folder (a symbolic link) or is not a regular file."""
    folder = run_artifact_dir(run_id)
    file = folder / clean_artifact_path(path)
    resolved = file.resolve()
    if not resolved.is_relative_to(folder.resolve()):
        raise ValidationError({"path": f"{path!r} points outside the run's folder"})
    if not resolved.is_file():
        raise ValidationError({"path": f"{path!r}: no such file in {folder}"})
    return resolved


def file_sha256(file: Path) -> tuple[int, str]:
    """(size, SHA-256 hex) of a file, streamed."""
    digest = hashlib.sha256()
    size = 0
    with file.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def run_artifact_record(run_id: int, path: str, *, expected_attempt: int | None = None) -> Artifact:
    """Record (or re-record: the row describes the file as it is now) the file ``path``
    of the run's folder, while the run is running (fenced by ``expected_attempt``).

    The hash is computed first (a large file takes a while); the fence and the upsert
    are then one statement."""
    run_id = clean_id(run_id, "run_id")
    path = clean_artifact_path(path)
    size, sha256 = file_sha256(artifact_file(run_id, path))
    table, run_table = Artifact._meta.db_table, Run._meta.db_table
    sql = f"""
        WITH fence AS (
            SELECT id FROM {run_table}
            WHERE id = %(run)s AND status = %(running)s AND deleted_at IS NULL
              AND (%(attempt)s::integer IS NULL OR attempts = %(attempt)s::integer)
            FOR SHARE
        )
        INSERT INTO {table} AS a (run_id, path, size, sha256, created_at, updated_at)
        SELECT fence.id, %(path)s, %(size)s, %(sha256)s, now(), now() FROM fence
        ON CONFLICT (run_id, path) DO UPDATE SET size = EXCLUDED.size, sha256 = EXCLUDED.sha256,
            updated_at = EXCLUDED.updated_at
        RETURNING a.id
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, {"run": run_id, "running": RunStatus.RUNNING, "attempt": expected_attempt,
                             "path": path, "size": size, "sha256": sha256})
        row = cursor.fetchone()
    if row is None:
        raise fence_failure(run_id, expected_attempt, (RunStatus.RUNNING,), "record an artifact")
    return Artifact.objects.get(pk=row[0])
