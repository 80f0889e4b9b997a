"""Import of labels from the old system's label table (aid, user name, label, created_at).

Used by ``manage.py import_labels``, ``POST /api/v1/labels/import`` and the admin's
"Import labels" page; the rules live here only (reading files is ``labeling.import_files``,
shared with the video import).

Formats
    ``jsonl``: one JSON object per line, e.g.
    ``{"aid": 170001, "user": "alice", "label": true, "created_at": "2024-03-01T12:00:00+08:00"}``;
    blank lines are skipped. ``csv``: a header row naming ``aid,user,label,created_at``
    (any order, case-insensitive, extra columns ignored), then one row per label. The
    format comes from the ``format`` argument, else from the file name's extension.
    Input is UTF-8 (a BOM is ignored).

Fields
    aid: a positive integer naming a video already in the corpus. user: the user name
    (surrounding spaces stripped; letters, digits and ``@.+-_``, at most 150 characters).
    label: ``true``/``false``, ``1``/``0`` or ``yes``/``no`` (any case; JSON booleans too).
    created_at: ISO 8601 (a time without offset is read in ``TIME_ZONE``) or unix
    seconds; not in the future.

Users
    A user name is matched exactly to an existing account. A name not found creates an
    account with an unusable password (nobody can log in as it until an admin sets one)
    in the ``labelers`` group; matched accounts keep their groups.

Labels and idempotency
    Every good row becomes a ``Label`` with ``source=import`` and the file's
    ``created_at`` (not the time of the import), so it is a vote like a human label and
    a later answer by the same user replaces it. The partial unique index
    ``label_import_once`` (video, user, created_at) WHERE source = 'import' makes a
    re-import idempotent: a row already imported is counted as ``already_present`` and
    never makes a second label (an imported label that was undone stays undone). A row
    that matches an imported label but carries the opposite answer is rejected: labels
    are append only and an import never changes one.

Bad rows
    Rejected with their line number and a reason naming the field: not a JSON object,
    unknown aid, empty or invalid user name, bad label, missing/bad/future created_at, the
    same (aid, user, created_at) twice in the file. Line numbers are physical lines (the
    CSV header is line 1); for an API ``labels`` list they are 1-based item numbers.
    By default every good row is written (chunk by chunk, each chunk committed). With
    ``atomic=True`` the whole import is one transaction that is rolled back when any row
    is rejected: nothing is written unless every row is good. ``dry_run=True`` runs the
    same way and always rolls back (the counts say what a real import would do).
    A file that cannot be read at all (unknown format, a CSV header without the four
    columns, a "JSONL" file none of whose lines is JSON) raises ``ImportFileError``
    with nothing written.

Memory and round trips
    Records stream from the file; rows are written in chunks of ``chunk_size`` (default
    1,000). Per chunk, whatever its size: one SELECT of the chunk's videos, one of its
    users, then (only when names are new) one INSERT of users, one SELECT of their ids
    and one INSERT of their group memberships, one ``INSERT ... SELECT FROM unnest(...)
    ON CONFLICT DO NOTHING RETURNING`` of the labels and (only when some were already
    there) one SELECT of those. Finding duplicates in the file keeps one 64-bit
    fingerprint and a line number per accepted row (about 100 bytes; a 1M-row file
    about 100 MB), never the rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from core.roles import LABELERS
from labeling import import_files
from labeling.import_files import (
    ImportFileError,
    InvalidJsonLine,
    RowError,
    Source,
    parse_datetime,
    parse_integer,
    parse_text,
    show,
    type_name,
    unstorable,
)
from labeling.models import Label, LabelSource, Video

__all__ = [
    "COLUMNS", "FORMATS", "ImportFileError", "LabelImportResult", "import_label_records", "import_labels",
    "parse_label_record", "resolve_format",
]

FORMATS: Final = ("jsonl", "csv")
COLUMNS: Final = ("aid", "user", "label", "created_at")
DEFAULT_CHUNK_SIZE: Final = 1000
# Errors kept per import; further rejected rows are only counted.
MAX_STORED_ERRORS: Final = 1000
BIGINT_MAX: Final = 2**63 - 1
TRUE_WORDS: Final = frozenset({"true", "1", "yes"})
FALSE_WORDS: Final = frozenset({"false", "0", "no"})

ProgressCallback = Callable[[int], None]


@dataclass
class LabelImportResult:
    rows: int = 0  # records read (blank lines are not records)
    written: int = 0  # labels inserted (dry run or rolled back: that would have been)
    already_present: int = 0  # rows imported before: no second label
    users_created: int = 0
    rejected: int = 0
    # (line, message), sorted by line; at most ``max_errors`` of them.
    errors: list[tuple[int, str]] = field(default_factory=list)
    dry_run: bool = False
    atomic: bool = False
    # Nothing was written: a dry run, or an atomic import with rejected rows.
    rolled_back: bool = False

    @property
    def errors_omitted(self) -> int:
        """Rejected rows whose message was not kept (beyond ``max_errors``)."""
        return self.rejected - len(self.errors)

    def summary(self) -> str:
        would = "would be " if self.rolled_back else ""
        counts = (
            f"Read {self.rows} rows: {self.written} labels {would}written, {self.already_present} already present, "
            f"{self.users_created} users {would}created, {self.rejected} rejected"
        )
        if self.dry_run:
            return f"{counts} (dry run: nothing written)"
        if self.rolled_back:
            return f"{counts} (all or nothing: a row was rejected, so nothing was written)"
        return counts


@dataclass(slots=True)
class _Row:
    line: int
    aid: int
    username: str
    value: bool
    created_at: datetime


# --- public entry points --------------------------------------------------------------


def resolve_format(*, format: str | None = None, filename: str | None = None) -> str:
    """The explicit ``format`` if given, else the one named by the file extension."""
    return import_files.resolve_format(formats=FORMATS, format=format, filename=filename)


def import_labels(
    *,
    source: Source,
    format: str | None = None,
    filename: str | None = None,
    atomic: bool = False,
    dry_run: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: ProgressCallback | None = None,
    max_errors: int = MAX_STORED_ERRORS,
    now: datetime | None = None,
) -> LabelImportResult:
    """Import a JSONL/CSV label file given as bytes, a binary or text stream (an open file,
    a Django ``UploadedFile``) or an iterable of lines. ``now`` bounds ``created_at``
    (default: the time of the call).

    Raises ``ImportFileError`` — with nothing written — when the format is unknown or the
    file cannot be read at all; every other problem is a row error in the result.
    """
    if filename is None:
        filename = import_files.source_filename(source)
    resolved = resolve_format(format=format, filename=filename)
    lines = import_files.text_lines(source)
    if resolved == "jsonl":
        records = import_files.jsonl_records(lines)
    else:
        records = import_files.csv_records(lines, required=COLUMNS)
    importer = _LabelImporter(
        atomic=atomic, dry_run=dry_run, chunk_size=chunk_size, progress=progress, max_errors=max_errors, now=now
    )
    result = importer.run(records)
    if resolved == "jsonl" and result.rows and importer.invalid_json_lines == result.rows:
        # Every line was rejected, so nothing was written: the file is not JSONL at all.
        raise ImportFileError("no line of the file is valid JSON: is it really JSONL?")
    return result


def import_label_records(
    *,
    records: Iterable[Any],
    atomic: bool = False,
    dry_run: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    max_errors: int = MAX_STORED_ERRORS,
    now: datetime | None = None,
) -> LabelImportResult:
    """Import already-decoded records (an API body's ``labels`` list); line = 1-based item number."""
    importer = _LabelImporter(
        atomic=atomic, dry_run=dry_run, chunk_size=chunk_size, progress=None, max_errors=max_errors, now=now
    )
    return importer.run(enumerate(records, start=1))


def parse_label_record(record: Any, *, now: datetime) -> tuple[int, str, bool, datetime]:
    """Validate one record: (aid, user name, label, created_at); raises ``RowError``.
    Whether the video exists is the importer's question (one query per chunk)."""
    if not isinstance(record, Mapping):
        raise RowError(f"record: must be a JSON object (got {type_name(record)})")
    aid = parse_integer(record.get("aid"), "aid", minimum=1, maximum=BIGINT_MAX, required=True)
    username = _username(record.get("user"))
    value = _label_value(record.get("label"))
    created_at = parse_datetime(record.get("created_at"), "created_at")
    if created_at is None:
        raise RowError("created_at: is required")
    if created_at > now:
        raise RowError(f"created_at: is in the future (got {show(record.get('created_at'))})")
    return aid, username, value, created_at


# --- field parsing ---------------------------------------------------------------------


def _username(value: Any) -> str:
    username = parse_text(value, "user").strip()
    if not username:
        raise RowError("user: is required and must not be empty")
    problem = unstorable(username, "user")
    if problem:
        raise RowError(problem)
    user_model = get_user_model()
    username_field = user_model._meta.get_field(user_model.USERNAME_FIELD)
    try:
        for validator in username_field.validators:  # what the account form would demand
            validator(username)
    except ValidationError:
        raise RowError(
            f"user: not a valid user name (letters, digits and @ . + - _ only, at most "
            f"{username_field.max_length} characters; got {show(username)})"
        ) from None
    return username


def _label_value(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        if not word:
            raise RowError("label: is required")
    if value is None:
        raise RowError("label: is required")
    raise RowError(f"label: must be true/false, 1/0 or yes/no (got {show(value)})")


# --- writing ---------------------------------------------------------------------------


def _labels_table() -> str:
    return connection.ops.quote_name(Label._meta.db_table)


class _LabelImporter:
    """One import: reads records, validates them, writes chunk by chunk."""

    def __init__(
        self,
        *,
        atomic: bool,
        dry_run: bool,
        chunk_size: int,
        progress: ProgressCallback | None,
        max_errors: int,
        now: datetime | None,
    ) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        self.result = LabelImportResult(atomic=atomic, dry_run=dry_run)
        self.chunk_size = chunk_size
        self.progress = progress
        self.max_errors = max_errors
        self.now = now or timezone.now()
        self.invalid_json_lines = 0
        # hash((aid, user, created_at)) -> line of the accepted row: duplicates in the file.
        self._seen: dict[int, int] = {}
        self._labelers_group_id: int | None = None
        self._user_model = get_user_model()

    def run(self, records: Iterable[tuple[int, Any]]) -> LabelImportResult:
        result = self.result
        if result.atomic or result.dry_run:
            with transaction.atomic():
                self._read_and_write(records)
                if result.dry_run or result.rejected:
                    transaction.set_rollback(True)
                    result.rolled_back = True
        else:
            self._read_and_write(records)
        result.errors.sort(key=lambda error: error[0])
        return result

    def _reject(self, line: int, message: str) -> None:
        self.result.rejected += 1
        if len(self.result.errors) < self.max_errors:
            self.result.errors.append((line, message))

    def _read_and_write(self, records: Iterable[tuple[int, Any]]) -> None:
        pending: list[_Row] = []
        for row in self._parsed(records):
            pending.append(row)
            if len(pending) >= self.chunk_size:
                self._write_chunk(pending)
                pending = []
                if self.progress:
                    self.progress(self.result.rows)
        if pending:
            self._write_chunk(pending)
        if self.progress:
            self.progress(self.result.rows)

    def _parsed(self, records: Iterable[tuple[int, Any]]) -> Iterator[_Row]:
        for line, record in records:
            self.result.rows += 1
            if isinstance(record, RowError):
                self.invalid_json_lines += isinstance(record, InvalidJsonLine)
                self._reject(line, str(record))
                continue
            try:
                aid, username, value, created_at = parse_label_record(record, now=self.now)
            except RowError as error:
                self._reject(line, str(error))
                continue
            yield _Row(line, aid, username, value, created_at)

    def _write_chunk(self, rows: list[_Row]) -> None:
        with transaction.atomic():
            video_ids = dict(
                Video.objects.filter(aid__in={row.aid for row in rows}).values_list("aid", "id")
            )
            accepted: list[_Row] = []
            for row in rows:
                if row.aid not in video_ids:
                    self._reject(row.line, f"aid: no video with aid {row.aid} (import the video first)")
                    continue
                fingerprint = hash((row.aid, row.username, row.created_at))
                first_line = self._seen.setdefault(fingerprint, row.line)
                if first_line != row.line:
                    self._reject(row.line, f"duplicate of line {first_line} (same aid, user and created_at)")
                    continue
                accepted.append(row)
            if not accepted:
                return
            user_ids = self._user_ids({row.username for row in accepted})
            keys = [(video_ids[row.aid], user_ids[row.username], row.created_at) for row in accepted]
            inserted = self._insert_labels(keys, [row.value for row in accepted])
            if len(inserted) == len(keys):
                self.result.written += len(keys)
                return
            present = self._imported_values([key for key in keys if key not in inserted])
            for row, key in zip(accepted, keys):
                if key in inserted:
                    self.result.written += 1
                elif present.get(key, row.value) == row.value:
                    self.result.already_present += 1
                else:
                    stored = "yes" if present[key] else "no"
                    self._reject(
                        row.line,
                        f"label: av{row.aid} by {row.username} at this created_at was imported before as "
                        f"{stored}; labels are append only, an import never changes one",
                    )

    def _user_ids(self, names: set[str]) -> dict[str, int]:
        """Ids by user name; names not found become users (unusable password, ``labelers``)."""
        manager = self._user_model._default_manager
        username_field = self._user_model.USERNAME_FIELD
        found = dict(manager.filter(**{f"{username_field}__in": names}).values_list(username_field, "pk"))
        missing = names - found.keys()
        if not missing:
            return found
        # ignore_conflicts: a name created meanwhile by another import is simply matched.
        manager.bulk_create(
            [self._user_model(**{username_field: name, "password": make_password(None)}) for name in sorted(missing)],
            ignore_conflicts=True,
        )
        created = dict(manager.filter(**{f"{username_field}__in": missing}).values_list(username_field, "pk"))
        memberships = self._user_model.groups.through
        memberships.objects.bulk_create(
            [memberships(user_id=pk, group_id=self._labelers_group()) for pk in created.values()],
            ignore_conflicts=True,
        )
        self.result.users_created += len(created)
        return {**found, **created}

    def _labelers_group(self) -> int:
        if self._labelers_group_id is None:
            self._labelers_group_id = Group.objects.get_or_create(name=LABELERS)[0].pk
        return self._labelers_group_id

    def _insert_labels(self, keys: list[tuple[int, int, datetime]], values: list[bool]) -> set[tuple]:
        """One INSERT of the chunk with explicit ``created_at`` (the ORM would set
        ``auto_now_add``); the keys of the rows actually inserted."""
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {_labels_table()} (video_id, user_id, value, source, created_at) "
                "SELECT video_id, user_id, value, %s, created_at "
                "FROM unnest(%s::bigint[], %s::bigint[], %s::boolean[], %s::timestamptz[]) "
                "AS row(video_id, user_id, value, created_at) "
                "ON CONFLICT (video_id, user_id, created_at) WHERE source = 'import' DO NOTHING "
                "RETURNING video_id, user_id, created_at",
                [
                    LabelSource.IMPORT.value,
                    [key[0] for key in keys],
                    [key[1] for key in keys],
                    values,
                    [key[2] for key in keys],
                ],
            )
            return set(cursor.fetchall())

    def _imported_values(self, keys: list[tuple[int, int, datetime]]) -> dict[tuple, bool]:
        """The answers of imported labels already stored under these keys (one SELECT)."""
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT label.video_id, label.user_id, label.created_at, label.value FROM {_labels_table()} AS label "
                "JOIN unnest(%s::bigint[], %s::bigint[], %s::timestamptz[]) AS key(video_id, user_id, created_at) "
                "ON label.video_id = key.video_id AND label.user_id = key.user_id "
                "AND label.created_at = key.created_at "
                "WHERE label.source = 'import'",
                [[key[0] for key in keys], [key[1] for key in keys], [key[2] for key in keys]],
            )
            return {(video_id, user_id, at): value for video_id, user_id, at, value in cursor.fetchall()}
