"""Building label files for the label-import tests (service, command, API, admin)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone as dt_timezone

from django.core.files.uploadedfile import SimpleUploadedFile

# A fixed past moment: imported times are compared exactly.
BASE_TIME = datetime(2024, 3, 1, 4, 0, tzinfo=dt_timezone.utc)


def at(minutes: int = 0) -> str:
    """ISO 8601 in the old system's +08:00 offset, ``minutes`` after ``BASE_TIME``."""
    moment = (BASE_TIME + timedelta(minutes=minutes)).astimezone(dt_timezone(timedelta(hours=8)))
    return moment.isoformat()


def row(aid: int, user: str = "alice", label=True, created_at: str | None = None, **extra) -> dict:
    return {"aid": aid, "user": user, "label": label, "created_at": at() if created_at is None else created_at, **extra}


def jsonl(*records) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in records).encode()


def csv_file(*rows: str, header: str = "aid,user,label,created_at") -> bytes:
    return "\n".join([header, *rows]).encode() + b"\n"


def upload(name: str, content: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/octet-stream")
