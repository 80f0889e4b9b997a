"""Bulk import of Bilibili video metadata (JSONL, CSV or a JSON array) into ``Video``.

Used by ``manage.py import_videos``, the REST endpoint and the admin upload form; the
rules live here only (reading files and parsing values is ``labeling.import_files``,
shared with the label import).

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

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.db.models import Q

from labeling import import_files
from labeling.import_files import (
    ImportFileError,
    InvalidJsonLine,
    RowError,
    Source,
    format_errors,
    has_surrogates,
    parse_datetime,
    parse_integer,
    parse_text,
    show,
    type_name,
    unstorable,
)
from labeling.models import Video

# ImportFileError, RowError and format_errors are re-exported: callers name them from here.
__all__ = [
    "FORMATS", "ImportFileError", "ImportResult", "RowError", "format_errors", "import_video_records",
    "import_videos", "parse_video_record", "resolve_format",
]

FORMATS: Final = ("jsonl", "csv", "json")
DEFAULT_CHUNK_SIZE: Final = 1000
# Errors kept (and shown) per import; further rejected rows are only counted.
MAX_STORED_ERRORS: Final = 1000

BIGINT_MAX: Final = 2**63 - 1
POSITIVE_INT_MAX: Final = 2**31 - 1  # PositiveIntegerField
UPLOADER_NAME_MAX: Final = Video._meta.get_field("uploader_name").max_length
COVER_URL_MAX: Final = Video._meta.get_field("cover_url").max_length
BVID_PATTERN: Final = re.compile(r"^BV[0-9A-Za-z]{10}$")
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


# --- public entry points --------------------------------------------------------------


def resolve_format(*, format: str | None = None, filename: str | None = None) -> str:
    """The explicit ``format`` if given, else the one named by the file extension."""
    return import_files.resolve_format(formats=FORMATS, format=format, filename=filename)


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
        filename = import_files.source_filename(source)
    resolved = resolve_format(format=format, filename=filename)
    lines = import_files.text_lines(source)
    if resolved == "jsonl":
        records = import_files.jsonl_records(lines)
    elif resolved == "csv":
        records = import_files.csv_records(lines, required=("aid", "title"), known=_ALL_ALIASES)
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
        raise RowError(f"record: must be a JSON object (got {type_name(record)})")
    problem = unstorable(record)
    if problem:
        raise RowError(problem)

    aid = parse_integer(_pick(record, "aid"), "aid", minimum=1, maximum=BIGINT_MAX, required=True)
    title = parse_text(_pick(record, "title"), "title")
    if not title.strip():
        raise RowError("title: is required and must not be empty")
    bvid = parse_text(_pick(record, "bvid"), "bvid").strip()
    if bvid and not BVID_PATTERN.match(bvid):
        raise RowError(f'bvid: must look like "BV" followed by 10 letters or digits (got {show(bvid)})')

    uploader_mid_value = _pick(record, "uploader_mid")
    uploader_name_value = _pick(record, "uploader_name")
    uploader = record.get("uploader")
    if isinstance(uploader, Mapping):  # {"uploader": {"mid": 1, "name": "x"}}
        uploader_mid_value = uploader.get("mid") if uploader_mid_value is None else uploader_mid_value
        uploader_name_value = uploader.get("name") if uploader_name_value is None else uploader_name_value
    uploader_name = parse_text(uploader_name_value, "uploader_name").strip()
    if len(uploader_name) > UPLOADER_NAME_MAX:
        raise RowError(f"uploader_name: must be at most {UPLOADER_NAME_MAX} characters (got {len(uploader_name)})")

    return {
        "aid": aid,
        "bvid": bvid,
        "title": title.strip(),
        "description": parse_text(_pick(record, "description"), "description").strip(),
        "tags": _tags(_pick(record, "tags")),
        "uploader_mid": parse_integer(uploader_mid_value, "uploader_mid", minimum=0, maximum=BIGINT_MAX),
        "uploader_name": uploader_name,
        "published_at": parse_datetime(_pick(record, "published_at"), "published_at"),
        "duration": _duration(_pick(record, "duration")),
        "cover_url": _url(_pick(record, "cover_url"), "cover_url"),
        "raw": dict(record),
    }


# --- reading ---------------------------------------------------------------------------


def _json_document_records(lines: Iterable[str]) -> Iterator[tuple[int, Any]]:
    text = "".join(lines)
    if has_surrogates(text):
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
            invalid_json_lines += isinstance(record, InvalidJsonLine)
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
                raise RowError(f"tags: item {position} must be text (got {type_name(item)})")
            if item.strip():
                tags.append(item.strip())
        return ",".join(tags)
    raise RowError(f"tags: must be comma separated text or a list of strings (got {type_name(value)})")


def _duration(value: Any) -> int | None:
    if isinstance(value, str):
        clock = _CLOCK_PATTERN.match(value.strip())
        if clock:
            has_hours = clock.group(1) is not None
            hours, minutes, seconds = (int(part) if part else 0 for part in clock.groups())
            if seconds >= 60 or (has_hours and minutes >= 60):
                raise RowError(f"duration: not a valid M:SS or H:MM:SS time (got {show(value)})")
            return hours * 3600 + minutes * 60 + seconds
    try:
        return parse_integer(value, "duration", minimum=0, maximum=POSITIVE_INT_MAX)
    except RowError:
        raise RowError(f"duration: must be a whole number of seconds ≥ 0 or M:SS (got {show(value)})") from None


def _url(value: Any, name: str) -> str:
    url = parse_text(value, name).strip()
    if not url:
        return ""
    if url.startswith("//"):
        url = "https:" + url
    if len(url) > COVER_URL_MAX:
        raise RowError(f"{name}: must be at most {COVER_URL_MAX} characters (got {len(url)})")
    try:
        _url_validator(url)
    except ValidationError:
        raise RowError(f"{name}: must be an http(s) URL (got {show(url)})") from None
    return url
