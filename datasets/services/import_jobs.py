"""Label import as a job (task type ``import``): an uploaded label file (the old system's
aid, user, label, created_at; JSONL/CSV) is saved under ``DATA_DIR/uploads/label-imports``
and ``labeling_import_run`` imports it on a worker with progress, through
``labeling.label_import`` (the same rules, users and idempotency as the synchronous
import: a re-run after a crash writes no second label).

Why here: labeling sits below datasets and must not import it, so the background entry
points (``POST /api/v1/curation/label-import``, the page ``/datasets/tasks/label-import/``)
and this runner live in datasets, which may call labeling. ``POST /api/v1/labels/import``
with ``?background=1``, and the admin's import page for an upload above
``labeling.admin_label_import.BACKGROUND_IMPORT_BYTES``, answer a 307 to the datasets
endpoint / page (a URL name, not an import), which receives the same upload.

All or nothing (``atomic``, the default) runs the whole file in one transaction, so
its progress writes would only show at the end and would hold the task row locked
(a cancel would wait): an atomic import reports its line count first and then writes
progress only when it ends; ``atomic=false`` reports every chunk.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile

from datasets.models import DatasetTask, DatasetTaskType
from labeling.label_import import FORMATS, ImportFileError, import_labels, resolve_format

#: Rejected rows kept in the task's result (the rest are counted).
MAX_RESULT_ERRORS = 100
_UPLOAD_NAME = re.compile(r"^[0-9a-f]{32}\.(jsonl|csv)$")
_OPTIONS = ("upload", "filename", "format", "atomic", "dry_run")


def label_upload_dir() -> Path:
    return Path(settings.DATA_DIR) / "uploads" / "label-imports"


def label_upload_save(upload: UploadedFile, *, format: str | None = None) -> dict[str, Any]:
    """Store the upload (streamed by chunks) and return the task params naming it.
    ``ValidationError`` when the format cannot be told (nothing stored)."""
    try:
        resolved = resolve_format(format=format or None, filename=upload.name)
    except ImportFileError as error:
        raise ValidationError({"format": str(error)}) from None
    directory = label_upload_dir()
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{uuid.uuid4().hex}.{resolved}"
    with open(directory / name, "wb") as stored:
        for chunk in upload.chunks():
            stored.write(chunk)
    return {"upload": name, "filename": upload.name or name, "format": resolved}


def labeling_import_params_clean(params: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(params) - set(_OPTIONS))
    if unknown:
        raise ValidationError({"params": f"unknown keys {unknown} (allowed: {', '.join(_OPTIONS)})"})
    upload = params.get("upload")
    if not isinstance(upload, str) or not _UPLOAD_NAME.match(upload):
        raise ValidationError({"upload": "name a stored upload (upload the file to /api/v1/curation/label-import)"})
    if not (label_upload_dir() / upload).is_file():
        raise ValidationError({"upload": f"no stored upload {upload}"})
    format = params.get("format") or upload.rsplit(".", 1)[1]
    if format not in FORMATS:
        raise ValidationError({"format": f"one of {', '.join(FORMATS)}"})
    flags = {}
    for name, default in (("atomic", True), ("dry_run", False)):
        value = params.get(name, default)
        if not isinstance(value, bool):
            raise ValidationError({name: "must be true or false"})
        flags[name] = value
    filename = params.get("filename") or upload
    if not isinstance(filename, str) or len(filename) > 255:
        raise ValidationError({"filename": "a file name of at most 255 characters"})
    return {"upload": upload, "filename": filename, "format": format, **flags}


def _count_lines(path: Path) -> int:
    lines = 0
    with open(path, "rb") as source:
        while block := source.read(1 << 20):
            lines += block.count(b"\n")
    return lines


def labeling_import_run(task: DatasetTask, progress) -> dict[str, Any]:
    """Import the task's stored upload (idempotent: the import itself is)."""
    if task.type != DatasetTaskType.IMPORT:
        raise ValueError(f"task {task.pk} is a {task.type} task, not an import")
    params = labeling_import_params_clean(task.params)
    path = label_upload_dir() / params["upload"]
    progress.step("counting_lines", message=f"Reading {params['filename']}")
    lines = _count_lines(path)
    in_one_transaction = params["atomic"] or params["dry_run"]
    progress.step("importing", total=lines, message=f"Importing {lines} line(s) of {params['filename']}")

    def on_rows(rows: int) -> None:
        if not in_one_transaction:  # see the module docstring
            progress.advance(min(rows, lines))

    with open(path, "rb") as source:
        try:
            result = import_labels(
                source=source, format=params["format"], filename=params["filename"],
                atomic=params["atomic"], dry_run=params["dry_run"], progress=on_rows, max_errors=MAX_RESULT_ERRORS,
            )
        except ImportFileError as error:
            raise ValueError(str(error)) from None
    progress.advance(lines)
    return {
        "filename": params["filename"],
        "rows": result.rows,
        "written": result.written,
        "already_present": result.already_present,
        "users_created": result.users_created,
        "rejected": result.rejected,
        "row_errors": [{"line": line, "message": message} for line, message in result.errors],
        "row_errors_omitted": result.errors_omitted,
        "dry_run": result.dry_run,
        "atomic": result.atomic,
        "rolled_back": result.rolled_back,
        "message": result.summary(),
    }
