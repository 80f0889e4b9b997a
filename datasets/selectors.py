"""Reads of the datasets app: sampling, versions, tasks, and vectors as numpy arrays.

Everything here is set-based: a fixed number of queries whatever the number of rows.
Bad input raises ``django.core.exceptions.ValidationError`` with a dict keyed by the
offending field (``core.api.errors`` turns it into ``{"detail": "field: message"}``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any, NamedTuple

import numpy as np
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Count, Prefetch, Q, QuerySet, Sum
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from core import pgcopy
from core.validation import is_int
from datasets.models import (
    DatasetTask,
    DatasetTaskStatus,
    DatasetVersion,
    DatasetVersionItem,
    DatasetVersionStatus,
    Embedding,
    Exclusion,
    SPLIT_CODES,
)
from datasets.vector_rows import MemberRowsReader
from labeling.models import Video, VideoConsensus
from labeling.selectors import effective_labels_by_video

# --- sampling -------------------------------------------------------------------

SAMPLING_STRATEGIES: dict[str, str] = {
    "all": "Every video with a consensus label",
    "labeled": "Every video with at least one effective label or a review (ties included)",
    "consistent": "Every video with a consensus label on which no labelers disagree (or a review settled it)",
    "random": "A random sample of videos with a consensus label",
    "stratified": "A random sample of videos with a consensus label, split across labels in proportion to their frequency",
    "balanced": "A random sample of videos with a consensus label, the same number per label where possible",
}
RANDOM_STRATEGIES = ("random", "stratified", "balanced")
DEFAULT_SAMPLE_LIMIT = 1000
MAX_SAMPLE_LIMIT = 1_000_000

METADATA_FILTERS: dict[str, str] = {
    "published_after": "ISO date/datetime; published at or after it",
    "published_before": "ISO date/datetime; published before it",
    "min_duration": "seconds (inclusive)",
    "max_duration": "seconds (inclusive)",
    "uploader_mid": "uploader's numeric id",
    "title_contains": "case-insensitive substring of the title",
    "tags_contains": "case-insensitive substring of the tags",
}


@dataclass(frozen=True)
class SamplingResult:
    """What ``POST /dataset/sample`` returns (plus ``sampled_count``)."""

    strategy: str
    aid_list: list[int]
    total_available: int
    filters_applied: dict[str, Any] = field(default_factory=dict)
    sampling_info: dict[str, Any] = field(default_factory=dict)

    @property
    def sampled_count(self) -> int:
        return len(self.aid_list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "total_available": self.total_available,
            "sampled_count": self.sampled_count,
            "aid_list": self.aid_list,
            "filters_applied": self.filters_applied,
            "sampling_info": self.sampling_info,
        }

    def selection(self) -> dict[str, Any]:
        """How the members were chosen, for ``DatasetVersion.selection``."""
        return {
            "strategy": self.strategy,
            **self.filters_applied,
            "seed": self.sampling_info.get("seed"),
            "total_available": self.total_available,
        }


def _parse_moment(name: str, value: object) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value, time.min)
    elif isinstance(value, str):
        try:
            moment = parse_datetime(value) or (
                datetime.combine(parse_date(value), time.min) if parse_date(value) else None
            )
        except ValueError:
            moment = None
        if moment is None:
            raise ValidationError({f"metadata_filter.{name}": f"not an ISO date or datetime: {value!r}"})
    else:
        raise ValidationError({f"metadata_filter.{name}": f"must be an ISO date or datetime string (got {value!r})"})
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


def _like_pattern(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _metadata_conditions(metadata_filter: dict[str, Any] | None) -> tuple[list[str], list[Any], dict[str, Any]]:
    """SQL conditions on ``v`` (labeling_video), their params, and the normalised filter."""
    if metadata_filter is None:
        return [], [], {}
    if not isinstance(metadata_filter, dict):
        raise ValidationError({"metadata_filter": f"must be an object (got {type(metadata_filter).__name__})"})
    unknown = sorted(set(metadata_filter) - set(METADATA_FILTERS))
    if unknown:
        raise ValidationError(
            {
                f"metadata_filter.{unknown[0]}": (
                    f"unknown filter (known filters: {', '.join(METADATA_FILTERS)})"
                    + (f"; also unknown: {', '.join(unknown[1:])}" if unknown[1:] else "")
                )
            }
        )
    conditions: list[str] = []
    params: list[Any] = []
    applied: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, value in metadata_filter.items():
        if value is None:
            continue
        try:
            if isinstance(value, str) and "\x00" in value:
                # PostgreSQL text cannot hold NUL: refuse it here rather than fail in the driver.
                raise ValidationError({f"metadata_filter.{name}": "must not contain NUL (\\u0000) characters"})
            if name in ("published_after", "published_before"):
                moment = _parse_moment(name, value)
                conditions.append("v.published_at >= %s" if name == "published_after" else "v.published_at < %s")
                params.append(moment)
                applied[name] = moment.isoformat()
            elif name in ("min_duration", "max_duration", "uploader_mid"):
                if not is_int(value) or value < 0:
                    raise ValidationError({f"metadata_filter.{name}": f"must be a non-negative integer (got {value!r})"})
                column, operator = {
                    "min_duration": ("v.duration", ">="),
                    "max_duration": ("v.duration", "<="),
                    "uploader_mid": ("v.uploader_mid", "="),
                }[name]
                conditions.append(f"{column} {operator} %s")
                params.append(value)
                applied[name] = value
            else:  # title_contains, tags_contains
                if not isinstance(value, str) or not value.strip():
                    raise ValidationError({f"metadata_filter.{name}": f"must be a non-empty string (got {value!r})"})
                column = "v.title" if name == "title_contains" else "v.tags"
                conditions.append(f"{column} ILIKE %s")
                params.append(_like_pattern(value.strip()))
                applied[name] = value.strip()
        except ValidationError as error:
            errors.update({key: messages for key, messages in error.message_dict.items()})
    if errors:
        raise ValidationError(errors)
    return conditions, params, applied


def _validate_sampling(strategy: object, limit: object, label_value: object, seed: object) -> None:
    errors: dict[str, str] = {}
    if not isinstance(strategy, str) or strategy not in SAMPLING_STRATEGIES:
        errors["strategy"] = f"unknown strategy {strategy!r} (choose one of: {', '.join(SAMPLING_STRATEGIES)})"
    if limit is not None and (not is_int(limit) or not 1 <= limit <= MAX_SAMPLE_LIMIT):
        errors["limit"] = f"must be an integer between 1 and {MAX_SAMPLE_LIMIT} (got {limit!r})"
    if label_value is not None and not isinstance(label_value, bool):
        errors["label_value"] = f"must be true or false (got {label_value!r})"
    if seed is not None and not is_int(seed):
        errors["seed"] = f"must be an integer (got {seed!r})"
    if errors:
        raise ValidationError(errors)


def _largest_remainder(total: int, weights: dict[Any, float], capacity: dict[Any, int]) -> dict[Any, int]:
    """Split ``total`` across keys in proportion to ``weights``, never above ``capacity``."""
    quotas = {key: 0 for key in weights}
    remaining = min(total, sum(capacity.values()))
    # Repeat: capping one key frees room that is shared among the others.
    while remaining > 0:
        open_keys = [key for key in weights if quotas[key] < capacity[key]]
        weight_sum = sum(weights[key] for key in open_keys) or len(open_keys)
        shares = {key: remaining * ((weights[key] or 0) if weight_sum else 1) / weight_sum for key in open_keys}
        floors = {key: min(int(shares[key]), capacity[key] - quotas[key]) for key in open_keys}
        given = sum(floors.values())
        for key in open_keys:
            quotas[key] += floors[key]
        remaining -= given
        if remaining <= 0:
            break
        by_fraction = sorted(open_keys, key=lambda key: (-(shares[key] - int(shares[key])), str(key)))
        progressed = given > 0
        for key in by_fraction:
            if remaining == 0:
                break
            if quotas[key] < capacity[key]:
                quotas[key] += 1
                remaining -= 1
                progressed = True
        if not progressed:
            break
    return quotas


#: The FROM clause every read of "videos with their consensus" shares (aliases v and c).
VIDEO_CONSENSUS_FROM = (
    f"{Video._meta.db_table} v JOIN {VideoConsensus._meta.db_table} c ON c.video_id = v.id"
)


def build_eligibility_condition(include_inconsistent: bool) -> str:
    """SQL on ``c`` (the consensus): the videos a build keeps. A build needs a consensus
    label, and drops videos whose labelers disagree unless ``include_inconsistent``
    (a tie has no label, so it never qualifies)."""
    return "c.value IS NOT NULL" if include_inconsistent else "c.value IS NOT NULL AND NOT c.is_inconsistent"


def _strategy_condition(strategy: str) -> str:
    if strategy == "labeled":
        return "(c.positive_votes + c.negative_votes > 0 OR c.review_id IS NOT NULL)"
    if strategy == "consistent":
        return "c.value IS NOT NULL AND NOT c.is_inconsistent"
    return "c.value IS NOT NULL"


def _not_excluded_condition() -> str:
    """SQL on ``v``: the video has no active exclusion (a cleaning rule's)."""
    return (f"NOT EXISTS (SELECT 1 FROM {Exclusion._meta.db_table} x "
            "WHERE x.video_id = v.id AND x.reverted_at IS NULL)")


def _sampling_where(
    strategy: str,
    label_value: bool | None,
    metadata_filter: dict[str, Any] | None,
    include_inconsistent: bool | None,
    include_excluded: bool | None = None,
) -> tuple[str, list[Any], dict[str, Any]]:
    """``FROM ... WHERE ...`` of a sampling, its params, and the normalised metadata filter."""
    conditions, params, applied_metadata = _metadata_conditions(metadata_filter)
    conditions.insert(0, _strategy_condition(strategy))
    if include_inconsistent is not None:
        conditions.insert(1, build_eligibility_condition(include_inconsistent))
    if include_excluded is False:
        conditions.append(_not_excluded_condition())
    if label_value is not None:
        conditions.append("c.value = %s")
        params.append(label_value)
    return f"FROM {VIDEO_CONSENSUS_FROM} WHERE " + " AND ".join(conditions), params, applied_metadata


def _effective_limit(strategy: str, limit: int | None) -> int | None:
    return (limit or DEFAULT_SAMPLE_LIMIT) if strategy in RANDOM_STRATEGIES else limit


def _class_quotas(strategy: str, limit: int, class_counts: dict[Any, int]) -> dict[Any, int]:
    if strategy == "stratified":
        weights = {value: float(count) for value, count in class_counts.items()}
    else:
        weights = {value: 1.0 for value in class_counts}
    return _largest_remainder(limit, weights, class_counts)


@dataclass(frozen=True)
class SamplingCount:
    """How many videos a sampling would choose, without choosing them."""

    total_available: int  # videos matching the criteria
    sampled_count: int  # of which the sampling would take (``limit`` and quotas applied)


def sampling_count(
    *,
    strategy: str,
    limit: int | None = None,
    label_value: bool | None = None,
    metadata_filter: dict[str, Any] | None = None,
    seed: int | None = None,
    include_inconsistent: bool | None = None,
    include_excluded: bool | None = None,
) -> SamplingCount:
    """``sampling_select``'s counts in ONE query (a count per consensus value): what the
    build form shows before anything is built. Same arguments and errors."""
    _validate_sampling(strategy, limit, label_value, seed)
    where_sql, params, _ = _sampling_where(strategy, label_value, metadata_filter, include_inconsistent,
                                           include_excluded)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT c.value, count(*) {where_sql} GROUP BY c.value", params)
        class_counts = {value: count for value, count in cursor.fetchall()}
    total = sum(class_counts.values())
    limit = _effective_limit(strategy, limit)
    if strategy in ("stratified", "balanced"):
        sampled = sum(_class_quotas(strategy, limit, class_counts).values())
    else:
        sampled = min(total, limit) if limit else total
    return SamplingCount(total_available=total, sampled_count=sampled)


def sampling_select(
    *,
    strategy: str,
    limit: int | None = None,
    label_value: bool | None = None,
    metadata_filter: dict[str, Any] | None = None,
    seed: int | None = None,
    include_inconsistent: bool | None = None,
    include_excluded: bool | None = None,
) -> SamplingResult:
    """Choose aids for a dataset build. One query (two for stratified/balanced).

    Strategies: see ``SAMPLING_STRATEGIES``. ``limit`` caps every strategy (default
    1000 for the random ones; the others return every match when it is None).
    ``label_value`` keeps videos whose consensus equals it. ``metadata_filter`` keys:
    see ``METADATA_FILTERS``. With a ``seed`` random strategies are reproducible
    (ordered by md5(seed:aid)); without one they use ``random()``. ``aid_list`` is
    sorted ascending.

    ``include_inconsistent`` (True/False) samples only among the videos a build with
    that option keeps (``build_eligibility_condition``), so ``limit`` N gives N and
    ``balanced`` gives equal classes whenever that many are eligible; None (the plain
    ``POST /dataset/sample``) applies only the strategy's own condition.
    ``include_excluded=False`` (a build that honours exclusions) leaves out videos with an
    active cleaning exclusion, so that the build keeps all ``limit`` it sampled.
    """
    _validate_sampling(strategy, limit, label_value, seed)
    where_sql, params, applied_metadata = _sampling_where(
        strategy, label_value, metadata_filter, include_inconsistent, include_excluded
    )
    limit = _effective_limit(strategy, limit)
    if strategy in RANDOM_STRATEGIES:
        if seed is None:
            order_sql, order_params = "random()", []
        else:
            order_sql, order_params = "md5(%s || ':' || v.aid::text)", [str(seed)]
    else:
        order_sql, order_params = "v.aid", []

    with connection.cursor() as cursor:
        if strategy in ("stratified", "balanced"):
            cursor.execute(f"SELECT c.value, count(*) {where_sql} GROUP BY c.value", params)
            class_counts = {value: count for value, count in cursor.fetchall()}
            total_available = sum(class_counts.values())
            quotas = _class_quotas(strategy, limit, class_counts)
            quota_true, quota_false = quotas.get(True, 0), quotas.get(False, 0)
            cursor.execute(
                f"SELECT aid, value FROM (SELECT v.aid, c.value, row_number() OVER "
                f"(PARTITION BY c.value ORDER BY {order_sql}) AS rank {where_sql}) ranked "
                f"WHERE rank <= CASE WHEN value THEN %s ELSE %s END",
                [*order_params, *params, quota_true, quota_false],
            )
            rows = cursor.fetchall()
        else:
            limit_sql = " LIMIT %s" if limit else ""
            cursor.execute(
                f"SELECT v.aid, c.value, count(*) OVER () {where_sql} ORDER BY {order_sql}{limit_sql}",
                [*params, *order_params, *([limit] if limit else [])],
            )
            fetched = cursor.fetchall()
            total_available = fetched[0][2] if fetched else 0
            rows = [(aid, value) for aid, value, _ in fetched]

    aid_list = sorted(aid for aid, _ in rows)
    positives = sum(1 for _, value in rows if value is True)
    negatives = sum(1 for _, value in rows if value is False)
    filters_applied: dict[str, Any] = {"limit": limit}
    if label_value is not None:
        filters_applied["label_value"] = label_value
    if applied_metadata:
        filters_applied["metadata_filter"] = applied_metadata
    if include_inconsistent is not None:
        filters_applied["include_inconsistent"] = include_inconsistent
    sampling_info = {
        "strategy_description": SAMPLING_STRATEGIES[strategy],
        "sample_ratio": (len(aid_list) / total_available) if total_available else 0.0,
        "seed": seed,
        "positives": positives,
        "negatives": negatives,
        "undecided": len(rows) - positives - negatives,
    }
    return SamplingResult(
        strategy=strategy,
        aid_list=aid_list,
        total_available=total_available,
        filters_applied=filters_applied,
        sampling_info=sampling_info,
    )


# --- versions and tasks ---------------------------------------------------------


def as_uuid(value: object, field_name: str) -> uuid.UUID:
    """``value`` as a UUID; ``ValidationError`` keyed by ``field_name`` when it is not one."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ValidationError({field_name: f"not a valid id: {value!r}"}) from None


def dataset_version_get(version_id: uuid.UUID | str) -> DatasetVersion:
    """One version with its dataset and embedding model; raises ``DatasetVersion.DoesNotExist``.

    ``requested_aids`` (possibly large) is deferred: loaded only if read.
    """
    return (
        DatasetVersion.objects.select_related("dataset", "embedding_model")
        .defer("requested_aids")
        .get(pk=as_uuid(version_id, "dataset_id"))
    )


def dataset_version_with_tasks(version_id: uuid.UUID | str) -> DatasetVersion:
    """The version (dataset, model and creator joined, ``requested_aids`` deferred) with
    its tasks prefetched newest first: two queries. Raises ``DatasetVersion.DoesNotExist``."""
    return (
        DatasetVersion.objects.select_related("dataset", "embedding_model", "created_by")
        .prefetch_related(Prefetch("tasks", queryset=DatasetTask.objects.order_by("-created_at")))
        .defer("requested_aids")
        .get(pk=as_uuid(version_id, "dataset_id"))
    )


def dataset_task_recent(limit: int = 20) -> list[DatasetTask]:
    """The newest ``limit`` tasks with their version and dataset joined (one query)."""
    return list(DatasetTask.objects.select_related("dataset_version__dataset").order_by("-created_at")[:limit])


def dataset_version_list(*, status: str | None = None, limit: int | None = None) -> QuerySet[DatasetVersion]:
    """Newest first, without the (possibly large) ``requested_aids``."""
    queryset = DatasetVersion.objects.select_related("dataset", "embedding_model").defer("requested_aids")
    if status is not None:
        queryset = queryset.filter(status=status)
    queryset = queryset.order_by("-created_at")
    return queryset[:limit] if limit else queryset


def dataset_version_stats(version: DatasetVersion) -> dict[str, Any]:
    """The ML panel's ``DatasetStats`` (plus our extra counts)."""
    return {
        "total_records": version.total_records,
        "new_embeddings": version.new_embeddings,
        "reused_embeddings": version.reused_embeddings,
        "inconsistent_labels": version.inconsistent_excluded + version.inconsistent_included,
        "inconsistent_excluded": version.inconsistent_excluded,
        "inconsistent_included": version.inconsistent_included,
        "unlabeled_excluded": version.unlabeled_excluded,
        "empty_text_excluded": version.empty_text_excluded,
        "missing_excluded": version.missing_excluded,
        "cleaning_excluded": version.cleaning_excluded,
        "positives": version.positives,
        "negatives": version.negatives,
        "splits": version.split_counts,
        "embedding_model": version.embedding_model.key,
        "embedding_dimensions": version.embedding_dimensions,
        "content_hash": version.content_hash,
    }


def dataset_statistics() -> dict[str, Any]:
    """Totals over all versions (``GET /datasets/stats``), one query."""
    totals = DatasetVersion.objects.aggregate(
        total_datasets=Count("id"),
        valid_datasets=Count("id", filter=Q(status=DatasetVersionStatus.READY)),
        error_datasets=Count("id", filter=Q(status=DatasetVersionStatus.FAILED)),
        building_datasets=Count("id", filter=Q(status=DatasetVersionStatus.BUILDING)),
        total_records=Sum("total_records", filter=Q(status=DatasetVersionStatus.READY)),
        total_new_embeddings=Sum("new_embeddings", filter=Q(status=DatasetVersionStatus.READY)),
        total_reused_embeddings=Sum("reused_embeddings", filter=Q(status=DatasetVersionStatus.READY)),
    )
    return {key: value or 0 for key, value in totals.items()}


def dataset_task_get(task_id: uuid.UUID | str) -> DatasetTask:
    """Raises ``DatasetTask.DoesNotExist``."""
    return DatasetTask.objects.get(pk=as_uuid(task_id, "task_id"))


def dataset_task_list(*, status: str | None = None, limit: int | None = 50) -> list[DatasetTask]:
    """Newest first; ``limit`` None or <= 0 means all."""
    if status is not None and status not in DatasetTaskStatus.values:
        raise ValidationError(
            {"status": f"unknown task status {status!r} (one of: {', '.join(DatasetTaskStatus.values)})"}
        )
    queryset = DatasetTask.objects.order_by("-created_at")
    if status is not None:
        queryset = queryset.filter(status=status)
    if limit and limit > 0:
        queryset = queryset[:limit]
    return list(queryset)


def dataset_task_counts() -> dict[str, int]:
    """Global counts for ``GET /tasks``: total_count, pending_count, ... (one query)."""
    counts = DatasetTask.objects.aggregate(
        total_count=Count("id"),
        **{f"{status}_count": Count("id", filter=Q(status=status)) for status in DatasetTaskStatus.values},
    )
    return counts


def embedding_counts_by_model() -> dict[str, int]:
    """Stored vectors per model key (one query)."""
    return dict(Embedding.objects.values_list("model__key").annotate(count=Count("id")).values_list("model__key", "count"))


# --- vectors as arrays ----------------------------------------------------------


class DatasetArrays(NamedTuple):
    """A frozen version as numpy arrays, rows ordered by aid; with ``augmented=True``
    the version's augmented rows (``AugmentedItem``, train only) follow the members,
    marked in ``augmented``."""

    X: np.ndarray  # float32 (n, dimensions)
    y: np.ndarray  # int8 (n,) 0/1
    aids: np.ndarray  # int64 (n,)
    splits: np.ndarray  # '<U5' (n,): train / val / test
    augmented: np.ndarray | None = None  # bool (n,): an augmented copy, not a member (always train)

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        mask = self.splits == name
        return self.X[mask], self.y[mask]


# Splits travel as their ``SPLIT_CODES`` (int2) in the COPY and are named back here.
_SPLIT_NAMES = np.array([split.value for split in sorted(SPLIT_CODES, key=SPLIT_CODES.get)], dtype="<U5")
_SPLIT_CODE_SQL = "CASE i.split " + " ".join(f"WHEN '{split.value}' THEN {code}" for split, code in SPLIT_CODES.items()) + " END"


def dataset_version_arrays(
    version_id: uuid.UUID | str, *, allow_unready: bool = False, augmented: bool = False
) -> DatasetArrays:
    """The version's (X, y, aids, splits) in two queries: the version row, then one
    binary ``COPY ... TO STDOUT`` parsed straight into numpy (no per-row Python).

    Raises ``DatasetVersion.DoesNotExist``, or ``ValidationError`` when the version is
    not ready (its items are only complete once it is frozen). ``augmented``: see
    ``version_arrays`` (one more COPY).
    """
    version = DatasetVersion.objects.only("id", "status", "embedding_dimensions", "total_records").get(
        pk=as_uuid(version_id, "dataset_id")
    )
    return version_arrays(version, allow_unready=allow_unready, augmented=augmented)


def version_arrays(version: DatasetVersion, *, allow_unready: bool = False, augmented: bool = False) -> DatasetArrays:
    """``dataset_version_arrays`` for an already loaded version: one COPY, converted
    block by block while it streams in (raises ``core.pgcopy.CopyFormatError`` when the
    stream does not hold the expected rows).

    ``augmented``: the version's augmented rows are appended after the members (ordered
    by aid, kind, variant) with split ``train`` and ``augmented`` True, read by a second
    COPY of the same row layout. They are written for train members only, and the split
    is forced to train here too, so val/test metrics never see one."""
    if not allow_unready and version.status != DatasetVersionStatus.READY:
        raise ValidationError({"dataset_id": f"dataset version {version.pk} is {version.status}, not ready"})
    item_table = DatasetVersionItem._meta.db_table
    sql = (
        "COPY (SELECT v.aid::int8, i.label, "
        f"({_SPLIT_CODE_SQL})::int2, e.vector "
        f"FROM {item_table} i "
        f"JOIN {Video._meta.db_table} v ON v.id = i.video_id "
        f"JOIN {Embedding._meta.db_table} e ON e.id = i.embedding_id "
        f"WHERE i.version_id = '{version.pk}'::uuid ORDER BY v.aid) TO STDOUT (FORMAT BINARY)"
    )
    # A ready version's count is exact (frozen with its items); the reader grows otherwise.
    X, y, aids, split_codes = _member_rows_read(sql, version.embedding_dimensions, version.total_records)
    marks = np.zeros(len(y), dtype=bool)
    if augmented:
        from datasets.models import AugmentedItem, Split  # only this branch reads them

        augmented_sql = (
            f"COPY (SELECT v.aid::int8, a.label, {SPLIT_CODES[Split.TRAIN]}::int2, e.vector "
            f"FROM {AugmentedItem._meta.db_table} a "
            f"JOIN {Video._meta.db_table} v ON v.id = a.video_id "
            f"JOIN {Embedding._meta.db_table} e ON e.id = a.embedding_id "
            f"WHERE a.version_id = '{version.pk}'::uuid ORDER BY v.aid, a.kind, a.variant) TO STDOUT (FORMAT BINARY)"
        )
        extra = _member_rows_read(augmented_sql, version.embedding_dimensions, 0)
        X, y, aids, split_codes = (np.concatenate([ours, theirs]) for ours, theirs in zip((X, y, aids, split_codes),
                                                                                         extra))
        marks = np.concatenate([marks, np.ones(len(extra[1]), dtype=bool)])
    return DatasetArrays(X=X, y=y, aids=aids, splits=_SPLIT_NAMES[split_codes.astype(np.intp)], augmented=marks)


def _member_rows_read(sql: str, dimensions: int, capacity: int) -> tuple[np.ndarray, ...]:
    reader = MemberRowsReader(dimensions, capacity=capacity)

    def read(raw_cursor) -> None:
        with raw_cursor.copy(sql) as copy:
            for data in copy:
                reader.feed(data)
        reader.finish()

    pgcopy.copy_statement(sql, read)
    return reader.columns()


def dataset_version_records(version: DatasetVersion) -> list[dict[str, Any]]:
    """Every member of a ready version with its vector, ordered by aid, as the records
    ``GET /dataset/{id}`` inlines (``user_labels[].created_at`` an aware datetime: the
    API formats it). Four queries whatever the version's size: vectors from the binary
    COPY of ``dataset_version_arrays``, metadata and labels from one query each, ordered
    the same way. Raises ``ValidationError`` when the version is not ready."""
    arrays = dataset_version_arrays(version.pk)
    rows = list(
        DatasetVersionItem.objects.filter(version_id=version.pk)
        .order_by("video__aid")
        .values_list("video_id", "video__aid", "video__title", "video__description", "video__tags",
                     "label", "split", "is_inconsistent", "embedding__checksum")
    )
    labels = effective_labels_by_video(row[0] for row in rows)
    vectors = arrays.X.tolist()
    records = []
    for index, (video_id, aid, title, description, tags, label, split, inconsistent, checksum) in enumerate(rows):
        records.append({
            "aid": aid,
            "embedding": vectors[index],
            "label": label,
            "split": split,
            "metadata": {"aid": aid, "title": title, "description": description, "tags": tags},
            "user_labels": [
                {"user": effective.username, "label": effective.value, "created_at": effective.created_at}
                for effective in labels.get(video_id, [])
            ],
            "inconsistent": inconsistent,
            "text_checksum": checksum,
        })
    return records


def dataset_version_member_texts(version_id: uuid.UUID | str) -> list[tuple[int, str, str]]:
    """(aid, title, checksum) per member, ordered by aid like ``dataset_version_arrays``."""
    return list(
        DatasetVersionItem.objects.filter(version_id=as_uuid(version_id, "dataset_id"))
        .order_by("video__aid")
        .values_list("video__aid", "video__title", "embedding__checksum")
    )


__all__ = [
    "DEFAULT_SAMPLE_LIMIT",
    "METADATA_FILTERS",
    "SAMPLING_STRATEGIES",
    "DatasetArrays",
    "SamplingCount",
    "SamplingResult",
    "VIDEO_CONSENSUS_FROM",
    "as_uuid",
    "build_eligibility_condition",
    "dataset_statistics",
    "dataset_task_counts",
    "dataset_task_get",
    "dataset_task_list",
    "dataset_task_recent",
    "dataset_version_arrays",
    "dataset_version_get",
    "dataset_version_list",
    "dataset_version_member_texts",
    "dataset_version_records",
    "dataset_version_stats",
    "dataset_version_with_tasks",
    "version_arrays",
    "embedding_counts_by_model",
    "sampling_count",
    "sampling_select",
]
