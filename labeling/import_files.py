"""Reading import files, shared by the video import (``labeling.video_import``) and the
label import (``labeling.label_import``): the format from the file name, UTF-8 lines
from any kind of upload, JSONL and CSV records numbered by their line in the file, and
the field parsers whose messages name the field (``aid: must be a positive integer``).

Records come out as ``(line, record)`` pairs, lazily, so an importer can write chunk by
chunk without holding the file. A line that cannot be a record at all comes out as
``(line, RowError)``: the importer reports it and goes on.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
import os
import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from datetime import datetime, timezone as dt_timezone
from typing import IO, Any, Final

from django.utils import timezone

EXTENSION_FORMATS: Final = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".json": "json"}

_INTEGER_PATTERN: Final = re.compile(r"^[+-]?\d+$")
_NUMBER_PATTERN: Final = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")

Source = bytes | bytearray | memoryview | IO[str] | IO[bytes] | Iterable[str] | Iterable[bytes]


class ImportFileError(ValueError):
    """The input as a whole cannot be imported (unknown format, unreadable, no header)."""


class RowError(ValueError):
    """One record is invalid; the message names the field."""


class InvalidJsonLine(RowError):
    """A JSONL line that is not JSON at all (a file made only of these is not JSONL)."""


# --- the format ------------------------------------------------------------------------


def _spoken_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


def resolve_format(*, formats: tuple[str, ...], format: str | None = None, filename: str | None = None) -> str:
    """The explicit ``format`` if given (one of ``formats``), else the one named by the
    file's extension."""
    if format:
        normalized = format.strip().lower().lstrip(".")
        normalized = "jsonl" if normalized == "ndjson" else normalized
        if normalized not in formats:
            raise ImportFileError(f"format: unsupported format {format!r} (use one of: {', '.join(formats)})")
        return normalized
    if filename:
        extension = os.path.splitext(filename)[1].lower()
        if EXTENSION_FORMATS.get(extension) in formats:
            return EXTENSION_FORMATS[extension]
        shown = extension or "(no extension)"
        raise ImportFileError(
            f"format: cannot tell the format of {os.path.basename(filename)!r} from its extension {shown}; "
            f"name it {_spoken_list([f'.{name}' for name in formats])}, or pass a format ({', '.join(formats)})"
        )
    raise ImportFileError(
        f"format: no format given and no file name to guess it from (use one of: {', '.join(formats)})"
    )


def source_filename(source: Any) -> str | None:
    """The name of an open file or a Django ``UploadedFile``, if it has one."""
    name = getattr(source, "name", None)
    return name if isinstance(name, str) else None


# --- reading ---------------------------------------------------------------------------


def text_lines(source: Source) -> Iterator[str]:
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


def jsonl_records(lines: Iterable[str]) -> Iterator[tuple[int, Any]]:
    """One record per non-blank line; a line that is not JSON is an ``InvalidJsonLine``."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            message = str(error) if not has_surrogates(line) else "not valid UTF-8 text"
            yield number, InvalidJsonLine(f"invalid JSON: {message}")
            continue
        yield number, record


def csv_records(
    lines: Iterable[str], *, required: tuple[str, ...], known: Collection[str] = ()
) -> Iterator[tuple[int, Any]]:
    """A dict per row, keyed by the header's column names (those in ``known`` or
    ``required`` matched case-insensitively and lowercased). The line of a record is the
    one it starts on (quoted fields may span lines). A header without every ``required``
    column raises ``ImportFileError`` before the first record."""
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
    missing = [name for name in required if name not in lowered]
    if missing:
        found = ", ".join(columns) or "(none)"
        found = found if len(found) <= 200 else found[:199] + "…"
        raise ImportFileError(f"CSV header: required column(s) {', '.join(missing)} missing (found: {found})")
    recognised = {*known, *required}
    columns = [name.lower() if name.lower() in recognised else name for name in columns]
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


def count_lines(path: str) -> int:
    """Lines of a file (a last line without a newline counts), for a progress bar's total."""
    count = 0
    last = b"\n"
    with open(path, "rb") as stream:
        while block := stream.read(1 << 20):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


def format_errors(errors: Iterable[tuple[int, str]]) -> list[str]:
    return [f"line {line}: {message}" for line, message in errors]


# --- field parsing ---------------------------------------------------------------------


def show(value: Any, limit: int = 40) -> str:
    """A value as quoted text for a message, shortened."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return json.dumps(text, ensure_ascii=False)


def type_name(value: Any) -> str:
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


def parse_integer(value: Any, name: str, *, minimum: int, maximum: int, required: bool = False) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise RowError(f"{name}: is required")
        return None
    adjective = "positive" if minimum == 1 else "non-negative"
    problem = RowError(f"{name}: must be a {adjective} integer (got {show(value)})")
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


def parse_text(value: Any, name: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise RowError(f"{name}: must be text (got {type_name(value)})")


def parse_datetime(value: Any, name: str) -> datetime | None:
    """ISO 8601 (a naive time is read in ``TIME_ZONE``) or unix seconds; None when empty."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise RowError(f"{name}: must be an ISO 8601 date-time or unix seconds (got {show(value)})")
    if isinstance(value, str) and _NUMBER_PATTERN.match(value.strip()):
        value = float(value.strip())
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise RowError(f"{name}: unix seconds must be a non-negative number (got {show(value)})")
        try:
            return datetime.fromtimestamp(value, tz=dt_timezone.utc)
        except (OverflowError, OSError, ValueError):
            raise RowError(f"{name}: unix seconds out of range (got {show(value)})") from None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise RowError(f"{name}: must be an ISO 8601 date-time or unix seconds (got {show(value)})") from None
        if timezone.is_naive(parsed):
            parsed = timezone.make_aware(parsed)
        return parsed
    raise RowError(f"{name}: must be an ISO 8601 date-time or unix seconds (got {type_name(value)})")


def has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def unstorable(value: Any, path: str = "") -> str | None:
    """What PostgreSQL would refuse (NUL characters, lone surrogates, NaN/Infinity), by field."""
    if isinstance(value, str):
        if "\x00" in value:
            return f"{path or 'record'}: contains a NUL character"
        if has_surrogates(value):
            return f"{path or 'record'}: not valid UTF-8 text"
    elif isinstance(value, float):
        if not math.isfinite(value):
            return f"{path or 'record'}: must be a finite number (got {value})"
    elif isinstance(value, Mapping):
        for key, item in value.items():
            key_text = str(key)
            key_problem = unstorable(key_text, f"{path}.{key_text}" if path else key_text)
            if key_problem:
                return key_problem
            problem = unstorable(item, f"{path}.{key_text}" if path else key_text)
            if problem:
                return problem
    elif isinstance(value, (list, tuple)):
        for position, item in enumerate(value):
            problem = unstorable(item, f"{path}[{position}]")
            if problem:
                return problem
    return None
