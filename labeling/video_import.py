"""Bulk import of Bilibili video metadata (JSONL, CSV or a JSON array) into ``Video``.

Used by ``manage.py import_videos``, the REST endpoint and the admin upload form; the
rules live here only.

Formats
    ``jsonl`` (also ``.ndjson``): one JSON object per line; blank lines are skipped.
    ``csv``: a header row, then one record per row (quoted fields may span lines).
    ``json``: one JSON array of objects, or ``{"videos": [...]}``.
    The format comes from the ``format`` argument, else from the file name's extension.
    Input is UTF-8 (a BOM is ignored); text streams are read as they are.

Fields (Bilibili's own names are accepted as aliases; the first one present wins)
    aid (required, positive integer) · bvid · title (required, non-empty) ·
    description | desc · tags (comma separated text, or a JSON list of strings or of
    ``{"tag_name": ...}`` objects; stored comma joined) · uploader_mid | mid | owner.mid ·
    uploader_name | owner.name | uploader · published_at | pubdate (ISO 8601, naive
    times read in ``TIME_ZONE``, or unix seconds) · duration (seconds, or ``M:SS`` /
    ``H:MM:SS``) · cover_url | pic (http(s) URL; ``//host/...`` becomes https).
    Dotted names work both as a flat key/CSV column (``owner.mid``) and as a nested
    object (``{"owner": {"mid": 1}}``). The whole original record is kept in ``raw``.

Row errors
    A bad row is rejected with its line number and a reason naming the field
    (``line 7: aid: must be a positive integer (got "abc")``); every other row is still
    imported. Line numbers are physical lines of the file (the header is line 1 in CSV;
    a CSV record spanning lines reports the line it starts on); for a JSON array or an
    API ``videos`` list they are 1-based item numbers.

Upsert and duplicates
    Rows are upserted by ``aid``: the record replaces every imported field of an existing
    video (``created_at``, labels and reviews are kept). Re-importing a file is
    therefore idempotent: the same rows, now counted as ``updated``. When an aid occurs
    more than once in a file the **later row wins**; each row counts as ``created`` when
    its aid was neither in the database nor earlier in the file, else as ``updated``, so
    ``created + updated + rejected == rows`` always. A ``bvid`` that already belongs to
    another aid (in the database or earlier in the file) rejects the row.

Round trips
    Valid rows are written in chunks of ``chunk_size`` (default 1,000), each in its own
    transaction: one ``SELECT`` of the chunk's existing aids/bvids and one
    ``INSERT ... ON CONFLICT (aid) DO UPDATE`` — never a query per row.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone as dt_timezone
from typing import IO, Any, Final

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from labeling.models import Video

FORMATS: Final = ("jsonl", "csv", "json")
EXTENSION_FORMATS: Final = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".json": "json"}
DEFAULT_CHUNK_SIZE: Final = 1000
# Errors kept (and shown) per import; further rejected rows are only counted.
MAX_STORED_ERRORS: Final = 1000

BIGINT_MAX: Final = 2**63 - 1
POSITIVE_INT_MAX: Final = 2**31 - 1  # PositiveIntegerField
UPLOADER_NAME_MAX: Final = Video._meta.get_field("uploader_name").max_length
COVER_URL_MAX: Final = Video._meta.get_field("cover_url").max_length
BVID_PATTERN: Final = re.compile(r"^BV[0-9A-Za-z]{10}$")
_INTEGER_PATTERN: Final = re.compile(r"^[+-]?\d+$")
_NUMBER_PATTERN: Final = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_CLOCK_PATTERN: Final = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2})$")
_url_validator: Final = URLValidator(schemes=["http", "https"])

# Model field -> accepted record keys, in priority order.
FIELD_ALIASES: Final[dict[str, tuple[str, ...]]] = {
    "aid": ("aid",),
    "bvid": ("bvid",),
    "title": ("title",),
    "description": ("description", "desc"),
    "tags": ("tags",),
    "uploader_mid": ("uploader_mid", "mid", "owner.mid"),
    "uploader_name": ("uploader_name", "owner.name", "uploader"),
    "published_at": ("published_at", "pubdate"),
    "duration": ("duration",),
    "cover_url": ("cover_url", "pic"),
}
_ALL_ALIASES: Final = frozenset(alias for aliases in FIELD_ALIASES.values() for alias in aliases)

# Written on conflict; created_at is left alone, updated_at is refreshed.
UPDATE_FIELDS: Final = (
    "bvid", "title", "description", "tags", "uploader_mid", "uploader_name",
    "published_at", "duration", "cover_url", "raw", "updated_at",
)


class ImportFileError(ValueError):
    """The input as a whole cannot be imported (unknown format, unreadable, no header)."""


class RowError(ValueError):
    """One record is invalid; the message names the field."""


class _InvalidJson(RowError):
    """A JSONL line that is not JSON at all."""


@dataclass
class ImportResult:
    rows: int = 0  # records read (blank lines are not records)
    created: int = 0
    updated: int = 0
    rejected: int = 0
    # (line, message), sorted by line; at most ``max_errors`` of them.
    errors: list[tuple[int, str]] = field(default_factory=list)

    @property
    def errors_omitted(self) -> int:
        """Rejected rows whose message was not kept (beyond ``max_errors``)."""
        return self.rejected - len(self.errors)

    def summary(self) -> str:
        return f"Imported {self.rows} rows: {self.created} created, {self.updated} updated, {self.rejected} rejected"


ProgressCallback = Callable[[int], None]
Source = bytes | bytearray | memoryview | IO[str] | IO[bytes] | Iterable[str] | Iterable[bytes]


# --- public entry points --------------------------------------------------------------


def resolve_format(*, format: str | None = None, filename: str | None = None) -> str:
    """The explicit ``format`` if given, else the one named by the file extension."""
    if format:
        normalized = format.strip().lower().lstrip(".")
        normalized = "jsonl" if normalized == "ndjson" else normalized
        if normalized not in FORMATS:
            raise ImportFileError(f"format: unsupported format {format!r} (use one of: {', '.join(FORMATS)})")
        return normalized
    if filename:
        extension = os.path.splitext(filename)[1].lower()
        if extension in EXTENSION_FORMATS:
            return EXTENSION_FORMATS[extension]
        shown = extension or "(no extension)"
        raise ImportFileError(
            f"format: cannot tell the format of {os.path.basename(filename)!r} from its extension {shown}; "
            f"name it .jsonl, .csv or .json, or pass a format ({', '.join(FORMATS)})"
        )
    raise ImportFileError(
        f"format: no format given and no file name to guess it from (use one of: {', '.join(FORMATS)})"
    )


def import_videos(
    *,
    source: Source,
    format: str | None = None,
    filename: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: ProgressCallback | None = None,
    max_errors: int = MAX_STORED_ERRORS,
) -> ImportResult:
    """Import a JSONL/CSV/JSON file given as bytes, a binary or text stream (an open file,
    a Django ``UploadedFile``) or an iterable of lines.

    Raises ``ImportFileError`` — before anything is written — when the format is unknown
    or the file cannot be parsed at all (CSV without ``aid``/``title`` columns, invalid
    JSON document, a "JSONL" file none of whose lines is JSON). Every other problem is a
    row error in the result; rows are written chunk by chunk as they are read.
    """
    if filename is None:
        filename = getattr(source, "name", None)
        filename = filename if isinstance(filename, str) else None
    resolved = resolve_format(format=format, filename=filename)
    lines = _text_lines(source)
    if resolved == "jsonl":
        records = _jsonl_records(lines)
    elif resolved == "csv":
        records = _csv_records(lines)
    else:
        records = _json_document_records(lines)
    result, invalid_json_rows = _import_records(
        records, chunk_size=chunk_size, progress=progress, max_errors=max_errors
    )
    if resolved == "jsonl" and result.rows and invalid_json_rows == result.rows:
        # Every line was rejected, so nothing was written: the file is not JSONL at all.
        raise ImportFileError("no line of the file is valid JSON: is it really JSONL?")
    return result


def import_video_records(
    *,
    records: Iterable[Any],
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: ProgressCallback | None = None,
    max_errors: int = MAX_STORED_ERRORS,
) -> ImportResult:
    """Import already-decoded records (e.g. an API body's ``videos`` list); line = 1-based item number."""
    result, _ = _import_records(
        enumerate(records, start=1), chunk_size=chunk_size, progress=progress, max_errors=max_errors
    )
    return result


def parse_video_record(record: Any) -> dict[str, Any]:
    """Validate one record and return the ``Video`` field values; raises ``RowError``."""
    if not isinstance(record, Mapping):
        raise RowError(f"record: must be a JSON object (got {_type_name(record)})")
    problem = _unstorable(record)
    if problem:
        raise RowError(problem)

    aid = _integer(_pick(record, "aid"), "aid", minimum=1, maximum=BIGINT_MAX, required=True)
    title = _text(_pick(record, "title"), "title")
    if not title.strip():
        raise RowError("title: is required and must not be empty")
    bvid = _text(_pick(record, "bvid"), "bvid").strip()
    if bvid and not BVID_PATTERN.match(bvid):
        raise RowError(f'bvid: must look like "BV" followed by 10 letters or digits (got {_show(bvid)})')

    uploader_mid_value = _pick(record, "uploader_mid")
    uploader_name_value = _pick(record, "uploader_name")
    uploader = record.get("uploader")
    if isinstance(uploader, Mapping):  # {"uploader": {"mid": 1, "name": "x"}}
        uploader_mid_value = uploader.get("mid") if uploader_mid_value is None else uploader_mid_value
        uploader_name_value = uploader.get("name") if uploader_name_value is None else uploader_name_value
    uploader_name = _text(uploader_name_value, "uploader_name").strip()
    if len(uploader_name) > UPLOADER_NAME_MAX:
        raise RowError(f"uploader_name: must be at most {UPLOADER_NAME_MAX} characters (got {len(uploader_name)})")

    return {
        "aid": aid,
        "bvid": bvid,
        "title": title.strip(),
        "description": _text(_pick(record, "description"), "description").strip(),
        "tags": _tags(_pick(record, "tags")),
        "uploader_mid": _integer(uploader_mid_value, "uploader_mid", minimum=0, maximum=BIGINT_MAX),
        "uploader_name": uploader_name,
        "published_at": _datetime(_pick(record, "published_at"), "published_at"),
        "duration": _duration(_pick(record, "duration")),
        "cover_url": _url(_pick(record, "cover_url"), "cover_url"),
        "raw": dict(record),
    }


def format_errors(errors: Iterable[tuple[int, str]]) -> list[str]:
    return [f"line {line}: {message}" for line, message in errors]


# --- reading ---------------------------------------------------------------------------


def _text_lines(source: Source) -> Iterator[str]:
    """Lines with their endings. Bytes are decoded as UTF-8; undecodable bytes survive as
    surrogates so the row they are in is rejected (not the whole file)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(source))
    elif isinstance(source, str):
        raise TypeError("source: pass bytes or a stream, not a str (a path? open it first)")
    first = True
    for line in source:
        if isinstance(line, (bytes, bytearray)):
            if first:
                line = line.removeprefix(codecs.BOM_UTF8)
            line = bytes(line).decode("utf-8", "surrogateescape")
        elif first:
            line = line.removeprefix("\ufeff")
        first = False
        yield line


def _jsonl_records(lines: Iterable[str]) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            message = str(error) if not _has_surrogates(line) else "not valid UTF-8 text"
            yield number, _InvalidJson(f"invalid JSON: {message}")
            continue
        yield number, record


def _csv_records(lines: Iterable[str]) -> Iterator[tuple[int, Any]]:
    reader = csv.reader(lines)
    try:
        header = next(reader)
        while not header:  # leading blank lines
            header = next(reader)
    except StopIteration:
        return
    except csv.Error as error:
        raise ImportFileError(f"CSV header: {error}") from error
    columns = [name.strip() for name in header]
    lowered = [name.lower() for name in columns]
    missing = [name for name in ("aid", "title") if name not in lowered]
    if missing:
        found = ", ".join(columns) or "(none)"
        found = found if len(found) <= 200 else found[:199] + "…"
        raise ImportFileError(f"CSV header: required column(s) {', '.join(missing)} missing (found: {found})")
    columns = [name.lower() if name.lower() in _ALL_ALIASES else name for name in columns]
    previous_end = reader.line_num
    while True:
        start = previous_end + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            previous_end = reader.line_num
            yield start, RowError(f"invalid CSV: {error}")
            continue
        previous_end = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) > len(columns):
            yield start, RowError(f"record: has {len(row)} fields but the header has {len(columns)} columns")
            continue
        yield start, {name: value for name, value in zip(columns, row)}


def _json_document_records(lines: Iterable[str]) -> Iterator[tuple[int, Any]]:
    text = "".join(lines)
    if _has_surrogates(text):
        raise ImportFileError("the file is not valid UTF-8 text")
    if not text.strip():
        return iter(())
    try:
        document = json.loads(text)
    except ValueError as error:
        raise ImportFileError(f"invalid JSON: {error}") from error
    if isinstance(document, Mapping) and isinstance(document.get("videos"), list):
        document = document["videos"]
    if not isinstance(document, list):
        raise ImportFileError('a JSON file must hold an array of video objects or {"videos": [...]}')
    return iter(list(enumerate(document, start=1)))


# --- writing ---------------------------------------------------------------------------


def _import_records(
    records: Iterable[tuple[int, Any]],
    *,
    chunk_size: int,
    progress: ProgressCallback | None,
    max_errors: int,
) -> tuple[ImportResult, int]:
    """The result, and how many rows were lines that are not JSON at all."""
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    result = ImportResult()
    invalid_json_lines = 0
    bvid_owners: dict[str, tuple[int, int]] = {}  # bvid -> (aid, line) of accepted rows, whole file
    pending: list[tuple[int, dict[str, Any]]] = []

    def reject(line: int, message: str) -> None:
        result.rejected += 1
        if len(result.errors) < max_errors:
            result.errors.append((line, message))

    for line, record in records:
        result.rows += 1
        if isinstance(record, RowError):
            invalid_json_lines += isinstance(record, _InvalidJson)
            reject(line, str(record))
            continue
        try:
            values = parse_video_record(record)
        except RowError as error:
            reject(line, str(error))
            continue
        pending.append((line, values))
        if len(pending) >= chunk_size:
            _write_chunk(pending, result, reject, bvid_owners)
            pending = []
            if progress:
                progress(result.rows)
    if pending:
        _write_chunk(pending, result, reject, bvid_owners)
    if progress:
        progress(result.rows)
    result.errors.sort(key=lambda error: error[0])
    return result, invalid_json_lines


def _write_chunk(
    pending: list[tuple[int, dict[str, Any]]],
    result: ImportResult,
    reject: Callable[[int, str], None],
    bvid_owners: dict[str, tuple[int, int]],
) -> None:
    """One SELECT + one INSERT ... ON CONFLICT DO UPDATE, in one transaction.

    A bvid must not belong to another aid, neither in the database nor in an accepted
    earlier row of the file (the partial unique index would fail the whole chunk).
    """
    aids = {values["aid"] for _, values in pending}
    bvids = {values["bvid"] for _, values in pending if values["bvid"]}
    with transaction.atomic():
        query = Q(aid__in=aids) | Q(bvid__in=bvids) if bvids else Q(aid__in=aids)
        existing = dict(Video.objects.filter(query).values_list("aid", "bvid"))
        stored_owner = {bvid: aid for aid, bvid in existing.items() if bvid}
        accepted: dict[int, dict[str, Any]] = {}
        created = updated = 0
        for line, values in pending:
            aid, bvid = values["aid"], values["bvid"]
            if bvid:
                file_owner = bvid_owners.get(bvid)
                if file_owner is not None and file_owner[0] != aid:
                    reject(line, f"bvid: {bvid} is already used by aid {file_owner[0]} on line {file_owner[1]}")
                    continue
                if stored_owner.get(bvid, aid) != aid:
                    reject(line, f"bvid: {bvid} already belongs to the video with aid {stored_owner[bvid]}")
                    continue
                bvid_owners[bvid] = (aid, line)
            if aid in existing or aid in accepted:
                updated += 1
            else:
                created += 1
            accepted.pop(aid, None)  # the later row wins and takes the later position
            accepted[aid] = values
        if accepted:
            Video.objects.bulk_create(
                [Video(**values) for values in accepted.values()],
                update_conflicts=True,
                unique_fields=["aid"],
                update_fields=list(UPDATE_FIELDS),
            )
    result.created += created
    result.updated += updated


# --- field parsing ---------------------------------------------------------------------


def _nested(record: Mapping[str, Any], dotted: str) -> Any:
    value: Any = record
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _pick(record: Mapping[str, Any], model_field: str) -> Any:
    """The first alias present with a non-empty value (flat key first, then nested path)."""
    for alias in FIELD_ALIASES[model_field]:
        value = record.get(alias)
        if value is None and "." in alias:
            value = _nested(record, alias)
        if alias == "uploader" and isinstance(value, Mapping):
            continue  # handled by the caller
        if value is not None and value != "":
            return value
    return None


def _show(value: Any, limit: int = 40) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return json.dumps(text, ensure_ascii=False)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _integer(value: Any, name: str, *, minimum: int, maximum: int, required: bool = False) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise RowError(f"{name}: is required")
        return None
    adjective = "positive" if minimum == 1 else "non-negative"
    problem = RowError(f"{name}: must be a {adjective} integer (got {_show(value)})")
    if isinstance(value, bool):
        raise problem
    if isinstance(value, float):
        if not value.is_integer():
            raise problem
        value = int(value)
    elif isinstance(value, str):
        if not _INTEGER_PATTERN.match(value.strip()):
            raise problem
        value = int(value.strip())
    elif not isinstance(value, int):
        raise problem
    if value < minimum:
        raise problem
    if value > maximum:
        raise RowError(f"{name}: must be at most {maximum} (got {value})")
    return value


def _text(value: Any, name: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise RowError(f"{name}: must be text (got {_type_name(value)})")


def _tags(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("["):
            try:
                value = json.loads(stripped)
            except ValueError:
                return stripped
        else:
            return stripped
    if isinstance(value, list):
        tags = []
        for position, item in enumerate(value, start=1):
            if isinstance(item, Mapping):
                item = item.get("tag_name", item.get("name"))
            if not isinstance(item, str):
                raise RowError(f"tags: item {position} must be text (got {_type_name(item)})")
            if item.strip():
                tags.append(item.strip())
        return ",".join(tags)
    raise RowError(f"tags: must be comma separated text or a list of strings (got {_type_name(value)})")


def _datetime(value: Any, name: str) -> datetime | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise RowError(f"{name}: must be an ISO 8601 date-time or unix seconds (got {_show(value)})")
    if isinstance(value, str) and _NUMBER_PATTERN.match(value.strip()):
        value = float(value.strip())
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise RowError(f"{name}: unix seconds must be a non-negative number (got {_show(value)})")
        try:
            return datetime.fromtimestamp(value, tz=dt_timezone.utc)
        except (OverflowError, OSError, ValueError):
            raise RowError(f"{name}: unix seconds out of range (got {_show(value)})") from None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise RowError(f"{name}: must be an ISO 8601 date-time or unix seconds (got {_show(value)})") from None
        if timezone.is_naive(parsed):
            parsed = timezone.make_aware(parsed)
        return parsed
    raise RowError(f"{name}: must be an ISO 8601 date-time or unix seconds (got {_type_name(value)})")


def _duration(value: Any) -> int | None:
    if isinstance(value, str):
        clock = _CLOCK_PATTERN.match(value.strip())
        if clock:
            has_hours = clock.group(1) is not None
            hours, minutes, seconds = (int(part) if part else 0 for part in clock.groups())
            if seconds >= 60 or (has_hours and minutes >= 60):
                raise RowError(f"duration: not a valid M:SS or H:MM:SS time (got {_show(value)})")
            return hours * 3600 + minutes * 60 + seconds
    try:
        return _integer(value, "duration", minimum=0, maximum=POSITIVE_INT_MAX)
    except RowError:
        raise RowError(f"duration: must be a whole number of seconds ≥ 0 or M:SS (got {_show(value)})") from None


def _url(value: Any, name: str) -> str:
    url = _text(value, name).strip()
    if not url:
        return ""
    if url.startswith("//"):
        url = "https:" + url
    if len(url) > COVER_URL_MAX:
        raise RowError(f"{name}: must be at most {COVER_URL_MAX} characters (got {len(url)})")
    try:
        _url_validator(url)
    except ValidationError:
        raise RowError(f"{name}: must be an http(s) URL (got {_show(url)})") from None
    return url


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _unstorable(value: Any, path: str = "") -> str | None:
    """What PostgreSQL would refuse (NUL characters, lone surrogates, NaN/Infinity), by field."""
    if isinstance(value, str):
        if "\x00" in value:
            return f"{path or 'record'}: contains a NUL character"
        if _has_surrogates(value):
            return f"{path or 'record'}: not valid UTF-8 text"
    elif isinstance(value, float):
        if not math.isfinite(value):
            return f"{path or 'record'}: must be a finite number (got {value})"
    elif isinstance(value, Mapping):
        for key, item in value.items():
            key_text = str(key)
            key_problem = _unstorable(key_text, f"{path}.{key_text}" if path else key_text)
            if key_problem:
                return key_problem
            problem = _unstorable(item, f"{path}.{key_text}" if path else key_text)
            if problem:
                return problem
    elif isinstance(value, (list, tuple)):
        for position, item in enumerate(value):
            problem = _unstorable(item, f"{path}[{position}]")
            if problem:
                return problem
    return None
