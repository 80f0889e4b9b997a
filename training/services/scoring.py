"""Scoring videos with a registered model version: one prediction (the predict API, the
``predict`` command), and batch scoring of all or filtered videos as a job whose
probabilities are stored as ``Prediction`` rows — never as ``labeling.Label`` rows: a
model does not vote, and no label, consensus or dataset reads predictions.

A version scores a video the way its training data was made: the video's text composed
with the template of its run's dataset version (``compose_video_text``), embedded by the
version's embedding model, looked up in the embedding store by (model, checksum). A
text with no stored vector is embedded once and stored there
(``datasets.services.text_embeddings``), so that the next call, build or job finds it.

Batch scoring reads, scores and writes a chunk of ``SCORING_CHUNK_VIDEOS`` videos at a
time in a fixed number of statements whatever its size: one query for the videos, one
binary COPY for their vectors, the forward pass, and one transaction that writes the
job's progress (fenced by its attempt, so a cancelled or taken-over job writes nothing
more) and the predictions (binary COPY into a session stage table, one upsert).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NamedTuple

import numpy as np
from celery.exceptions import SoftTimeLimitExceeded
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.models import Count, Exists, F, Max, OuterRef, QuerySet
from django.utils import timezone

from core import jobs, pgcopy
from core.roles import can_run_experiments
from core.validation import is_int, validation_error_message
from datasets.models import Embedding
from datasets.services.text_embeddings import texts_embed_and_store
from datasets.text_composition import compose_video_text, text_checksum
from labeling.models import Video
from training import registry_selectors
from training.models import ACTIVE_JOB_STATUSES, JobStatus, ModelVersion, Prediction, ScoringJob
from training.prediction_cache import ServedVersion, prediction_cache
from training.served_models import WeightsFileError
from training.services.execution import TRANSIENT_DATABASE_ERRORS

logger = logging.getLogger(__name__)

#: Videos per chunk of a scoring job: one read, one forward pass, one write each.
SCORING_CHUNK_VIDEOS = 20_000
#: Most aids or items one prediction call takes (the API's limit too).
MAX_PREDICT_ITEMS = 1000
#: Most aids a scoring job's filter may list, and longest search text.
MAX_FILTER_AIDS = 100_000
MAX_FILTER_SEARCH_LENGTH = 200
MAX_ITEM_FIELD_LENGTH = 100_000
MAX_ERROR_LENGTH = 10_000
MAX_MESSAGE_LENGTH = 500

FILTER_KEYS = ("search", "only_unscored", "aids")
_STAGE_TABLE = "training_prediction_stage"
_CHECKSUM_BYTES = 64

SCORING_JOB = jobs.JobKind(
    model=ScoringJob,
    lock_namespace="training.scoringjob",
    queued_status=JobStatus.QUEUED,
    running_status=JobStatus.RUNNING,
    # A job heartbeats after every chunk (about a second) and while it embeds new texts.
    stale_seconds_setting="CVSA_RUN_STALE_SECONDS",
    claim_assignments="done = 0, embedded = 0, message = '', error = '', finished_at = NULL, updated_at = now()",
)


class Scored(NamedTuple):
    """One prediction: the video's aid (None for a raw item), P(yes), and the decision."""

    aid: int | None
    probability: float
    label: bool


class ScoringJobStale(Exception):
    """The job is no longer at the attempt this worker started (cancelled, failed or
    taken over): the worker stops; the chunk it was writing was not written."""


# --- vectors of texts -----------------------------------------------------------------


@dataclass(frozen=True)
class TextVectors:
    """Vectors of distinct texts of one embedding model: row ``index[checksum]`` of ``X``
    is the text's vector and ``embedding_ids`` its ``Embedding.id``."""

    index: dict[str, int]
    X: np.ndarray  # float32 (n, d)
    embedding_ids: np.ndarray  # int64 (n,)
    embedded: int  # texts embedded by this call (none stored yet)


def _vector_rows_dtype(dimensions: int) -> np.dtype:
    """Rows of ``COPY (SELECT checksum, id, vector) TO STDOUT (FORMAT BINARY)``."""
    return np.dtype([
        ("fields", ">i2"),
        ("checksum_length", ">i4"), ("checksum", f"S{_CHECKSUM_BYTES}"),
        ("id_length", ">i4"), ("id", ">i8"),
        *pgcopy.vector_fields(dimensions),
    ])


def stored_vectors(model_id: int, dimensions: int, checksums: Sequence[str]) -> np.ndarray:
    """The stored (checksum, id, vector) rows of these checksums of one model, in ONE
    binary COPY (no per-row Python): a structured array (``_vector_rows_dtype``)."""
    dtype = _vector_rows_dtype(dimensions)
    if not checksums:
        return np.empty(0, dtype=dtype)
    # Checksums are SHA-256 hex digests computed here (never user input): inlined as one
    # array literal, since COPY takes no bind parameters.
    literal = "{" + ",".join(checksums) + "}"
    if not all(len(checksum) == _CHECKSUM_BYTES for checksum in checksums) or not literal[1:-1].replace(",", "").isalnum():
        raise ValueError("checksums must be 64 hex characters")
    sql = (
        f"COPY (SELECT checksum, id, vector FROM {Embedding._meta.db_table} "
        f"WHERE model_id = {int(model_id)} AND dimensions = {int(dimensions)} "
        f"AND checksum = ANY('{literal}'::text[])) TO STDOUT (FORMAT BINARY)"
    )
    expected = {"fields": 3, "checksum_length": _CHECKSUM_BYTES, "id_length": 8,
                **pgcopy.vector_field_values(dimensions)}
    return pgcopy.parse_rows(pgcopy.copy_out(sql), dtype, expected, row_description="embedding rows")


def text_vectors(
    served: ServedVersion, texts: Mapping[str, str], *, on_embedded: Callable[[int, int], None] | None = None
) -> TextVectors:
    """The vectors of ``texts`` (``checksum: text``) in the version's embedding model:
    one COPY when all are stored; the missing ones are embedded and stored first (once:
    a second call finds them), then read with a second COPY. ``on_embedded(done,
    total)`` after each stored chunk of new texts (a job's heartbeat)."""
    model = served.embedding_model
    dimensions = served.input_dimensions
    checksums = list(texts)
    rows = stored_vectors(model.pk, dimensions, checksums)
    found = set(rows["checksum"].astype(str).tolist()) if len(rows) else set()
    missing = {checksum: texts[checksum] for checksum in checksums if checksum not in found}
    embedded = 0
    if missing:
        outcome = texts_embed_and_store(model, missing, on_chunk=on_embedded)
        embedded = outcome.embedded
        rows = np.concatenate([rows, stored_vectors(model.pk, dimensions, list(missing))])
    names = rows["checksum"].astype(str).tolist()
    index = {checksum: position for position, checksum in enumerate(names)}
    absent = [checksum for checksum in checksums if checksum not in index]
    if absent:  # stored with other dimensions before the model's identity was fixed
        raise ValidationError({"embedding_model": f"{len(absent)} text(s) have no {dimensions}-dimension vector of "
                                                  f"embedding model {model.key!r}"})
    return TextVectors(
        index=index,
        X=rows["values"].astype(np.float32),
        embedding_ids=rows["id"].astype(np.int64),
        embedded=embedded,
    )


# --- one prediction ---------------------------------------------------------------------


def _served(version: ServedVersion | ModelVersion | int) -> ServedVersion:
    if isinstance(version, ServedVersion):
        return version
    return prediction_cache.served(version.pk if isinstance(version, ModelVersion) else version)


def _clean_aids(aids: object, field: str = "aids", *, limit: int = MAX_PREDICT_ITEMS) -> list[int]:
    if not isinstance(aids, (list, tuple)) or not aids:
        raise ValidationError({field: "must be a non-empty list of video aids"})
    bad = [aid for aid in aids if not is_int(aid) or not 1 <= aid <= 2**63 - 1]
    if bad:
        raise ValidationError({field: f"not video aids: {', '.join(repr(aid) for aid in bad[:10])}"})
    unique = list(dict.fromkeys(aids))
    if len(unique) > limit:
        raise ValidationError({field: f"at most {limit} aids at a time (got {len(unique)})"})
    return unique


def _score_texts(served: ServedVersion, checksums: Sequence[str], texts: Mapping[str, str]) -> np.ndarray:
    """P(yes) for each of ``checksums`` (texts may repeat)."""
    vectors = text_vectors(served, texts)
    probabilities = served.classifier.probabilities(vectors.X)
    return probabilities[[vectors.index[checksum] for checksum in checksums]]


def predict_aids(version: ServedVersion | ModelVersion | int, aids: Sequence[int]) -> list[Scored]:
    """The version's prediction for each video (``aids``, in their order, repeats
    dropped). Raises ``ValidationError`` (``aids``) naming unknown aids and videos with
    no text; texts with no stored vector are embedded and stored (once)."""
    served = _served(version)
    wanted = _clean_aids(aids)
    rows = {aid: (title, description, tags) for aid, title, description, tags in
            Video.objects.filter(aid__in=wanted).values_list("aid", "title", "description", "tags")}
    unknown = [aid for aid in wanted if aid not in rows]
    if unknown:
        shown = ", ".join(str(aid) for aid in unknown[:20]) + (" …" if len(unknown) > 20 else "")
        raise ValidationError({"aids": f"no video with aid {shown}"})
    checksums, texts, empty = [], {}, []
    for aid in wanted:
        title, description, tags = rows[aid]
        text = compose_video_text(title=title, description=description, tags=tags)
        if not text:
            empty.append(aid)
            continue
        checksum = text_checksum(text)
        checksums.append(checksum)
        texts[checksum] = text
    if empty:
        raise ValidationError({"aids": f"videos with no text to score: {', '.join(str(aid) for aid in empty[:20])}"})
    probabilities = _score_texts(served, checksums, texts)
    decisions = probabilities >= served.threshold
    return [Scored(aid, float(p), bool(d)) for aid, p, d in zip(wanted, probabilities, decisions)]


def _clean_item(index: int, item: object) -> str:
    if not isinstance(item, Mapping):
        raise ValidationError({"items": f"item {index}: must be an object with title, description and tags"})
    unknown = sorted(set(item) - {"title", "description", "tags"})
    if unknown:
        raise ValidationError({"items": f"item {index}: unknown field(s) {', '.join(map(str, unknown))}"})
    values = {}
    for field in ("title", "description"):
        value = item.get(field) or ""
        if not isinstance(value, str):
            raise ValidationError({"items": f"item {index}: {field} must be text"})
        values[field] = value
    tags = item.get("tags") or ""
    if not isinstance(tags, str) and not (isinstance(tags, list) and all(isinstance(tag, str) for tag in tags)):
        raise ValidationError({"items": f"item {index}: tags must be text (comma separated) or a list of texts"})
    if sum(len(value) for value in (*values.values(), *([tags] if isinstance(tags, str) else tags))) > \
            MAX_ITEM_FIELD_LENGTH:
        raise ValidationError({"items": f"item {index}: longer than {MAX_ITEM_FIELD_LENGTH} characters"})
    text = compose_video_text(title=values["title"], description=values["description"], tags=tags)
    if not text:
        raise ValidationError({"items": f"item {index}: no text to score (title, description and tags are empty)"})
    return text


def predict_items(version: ServedVersion | ModelVersion | int, items: Sequence[object]) -> list[Scored]:
    """The version's prediction for raw ``{title, description, tags}`` items (videos
    that need not be in the archive), in their order. Raises ``ValidationError``
    (``items``) naming the first bad item; nothing is embedded then."""
    served = _served(version)
    if not isinstance(items, (list, tuple)) or not items:
        raise ValidationError({"items": "must be a non-empty list of {title, description, tags} objects"})
    if len(items) > MAX_PREDICT_ITEMS:
        raise ValidationError({"items": f"at most {MAX_PREDICT_ITEMS} items at a time (got {len(items)})"})
    composed = [_clean_item(index, item) for index, item in enumerate(items)]
    checksums = [text_checksum(text) for text in composed]
    probabilities = _score_texts(served, checksums, dict(zip(checksums, composed)))
    decisions = probabilities >= served.threshold
    return [Scored(None, float(p), bool(d)) for p, d in zip(probabilities, decisions)]


# --- stored predictions -------------------------------------------------------------------


def _prediction_rows_payload(video_ids: np.ndarray, probabilities: np.ndarray, embedding_ids: np.ndarray) -> bytes:
    dtype = np.dtype([
        ("fields", ">i2"),
        ("video_length", ">i4"), ("video_id", ">i8"),
        ("probability_length", ">i4"), ("probability", ">f8"),
        ("embedding_length", ">i4"), ("embedding_id", ">i8"),
    ])
    rows = np.empty(len(video_ids), dtype=dtype)
    rows["fields"] = 3
    rows["video_length"], rows["video_id"] = 8, video_ids
    rows["probability_length"], rows["probability"] = 8, probabilities
    rows["embedding_length"], rows["embedding_id"] = 8, embedding_ids
    return pgcopy.rows_payload(rows)


def predictions_store(
    version: ServedVersion | ModelVersion, video_ids: Sequence[int] | np.ndarray,
    probabilities: Sequence[float] | np.ndarray, embedding_ids: Sequence[int] | np.ndarray,
) -> int:
    """Write the version's predictions of these videos (one per video: a video scored
    again gets its new probability) with ``margin = |p − threshold|``: one binary COPY
    into the session's stage table and one upsert that empties it, rows in video order
    (two jobs of one version lock rows in the same order: no deadlock). Returns the
    rows written. Raises ``ValueError`` for mismatched lengths, repeated videos or a
    probability outside [0, 1]."""
    video_ids = np.asarray(video_ids, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    embedding_ids = np.asarray(embedding_ids, dtype=np.int64)
    if not len(video_ids) == len(probabilities) == len(embedding_ids):
        raise ValueError(f"{len(video_ids)} videos, {len(probabilities)} probabilities, "
                         f"{len(embedding_ids)} embeddings")
    if not len(video_ids):
        return 0
    if len(np.unique(video_ids)) != len(video_ids):
        raise ValueError("a video appears twice among the predictions to store")
    if not np.all((probabilities >= 0) & (probabilities <= 1)):  # NaN fails too
        raise ValueError("probabilities must lie in [0, 1]")
    version_id = version.version_id if isinstance(version, ServedVersion) else version.pk
    threshold = float(version.threshold)
    table = Prediction._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE_TABLE} "
            "(video_id int8 NOT NULL, probability float8 NOT NULL, embedding_id int8 NOT NULL); "
            f"TRUNCATE {_STAGE_TABLE}"
        )
    pgcopy.copy_in(f"COPY {_STAGE_TABLE} (video_id, probability, embedding_id) FROM STDIN (FORMAT BINARY)",
                   _prediction_rows_payload(video_ids, probabilities, embedding_ids))
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH staged AS (DELETE FROM {_STAGE_TABLE} RETURNING video_id, probability, embedding_id)
            INSERT INTO {table} AS p (model_version_id, video_id, probability, margin, embedding_id, created_at)
            SELECT %s, video_id, probability, LEAST(abs(probability - %s::float8), 1), embedding_id, now()
            FROM staged ORDER BY video_id
            ON CONFLICT (model_version_id, video_id) DO UPDATE
            SET probability = EXCLUDED.probability, margin = EXCLUDED.margin,
                embedding_id = EXCLUDED.embedding_id, created_at = EXCLUDED.created_at
            """,
            [version_id, threshold],
        )
        return cursor.rowcount


# --- batch scoring jobs -------------------------------------------------------------------


def clean_video_filter(raw: object) -> dict[str, Any]:
    """``{"search": str (title contains, any case), "only_unscored": bool, "aids": [int]}``,
    every key optional; ``ValidationError`` (``video_filter``) naming what is wrong."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ValidationError({"video_filter": "must be an object with search, only_unscored and/or aids"})
    unknown = sorted(str(key) for key in raw if key not in FILTER_KEYS)
    if unknown:
        raise ValidationError({"video_filter": f"unknown key(s) {', '.join(unknown)} (known: {', '.join(FILTER_KEYS)})"})
    cleaned: dict[str, Any] = {}
    search = raw.get("search")
    if search not in (None, ""):
        if not isinstance(search, str) or len(search.strip()) > MAX_FILTER_SEARCH_LENGTH:
            raise ValidationError({"video_filter": f"search must be text of at most {MAX_FILTER_SEARCH_LENGTH} "
                                                   "characters"})
        if search.strip():
            cleaned["search"] = search.strip()
    only_unscored = raw.get("only_unscored", False)
    if not isinstance(only_unscored, bool):
        raise ValidationError({"video_filter": f"only_unscored must be true or false (got {only_unscored!r})"})
    if only_unscored:
        cleaned["only_unscored"] = True
    if raw.get("aids") is not None:
        cleaned["aids"] = _clean_aids(raw["aids"], "video_filter", limit=MAX_FILTER_AIDS)
    return cleaned


def describe_video_filter(video_filter: Mapping[str, Any]) -> str:
    """``all videos`` / ``videos whose title contains "x", not yet scored, 3 aids``."""
    parts = []
    if video_filter.get("search"):
        parts.append(f"title contains “{video_filter['search']}”")
    if video_filter.get("only_unscored"):
        parts.append("not yet scored by this version")
    if video_filter.get("aids"):
        count = len(video_filter["aids"])
        parts.append(f"{count} listed aid{'s' if count != 1 else ''}")
    return "videos: " + ", ".join(parts) if parts else "all videos"


def filtered_videos(version_id: int, video_filter: Mapping[str, Any]) -> QuerySet[Video]:
    """The videos a job with ``video_filter`` scores."""
    videos = Video.objects.all()
    if video_filter.get("search"):
        videos = videos.filter(title__icontains=video_filter["search"])
    if video_filter.get("aids"):
        videos = videos.filter(aid__in=video_filter["aids"])
    if video_filter.get("only_unscored"):
        videos = videos.filter(
            ~Exists(Prediction.objects.filter(model_version_id=version_id, video_id=OuterRef("pk")))
        )
    return videos


def scoring_job_create(
    *, version_id: int, video_filter: Mapping[str, Any] | None = None, user=None, enqueue: bool = True
) -> ScoringJob:
    """A queued scoring job of version ``version_id``, sent to the ``training`` queue
    once the transaction commits. ``user`` None is a trusted caller (a management
    command); otherwise admins only (``PermissionDenied``). Raises ``ValidationError``
    (``version_id``, ``video_filter``) for an unknown version, one whose weights file is
    missing, or a bad filter; nothing is written then."""
    if user is not None and not can_run_experiments(user):
        raise PermissionDenied("only admins can start scoring jobs")
    if not is_int(version_id):
        raise ValidationError({"version_id": f"not a model version id: {version_id!r}"})
    version = ModelVersion.objects.filter(pk=version_id).first()
    if version is None:
        raise ValidationError({"version_id": f"model version {version_id} does not exist"})
    cleaned = clean_video_filter(video_filter)
    if not registry_selectors.version_weights_path(version).is_file():
        raise ValidationError({"version_id": f"the weights file of model version {version_id} is missing"})
    celery_task_id = str(uuid.uuid4())
    with transaction.atomic():
        job = ScoringJob.objects.create(
            model_version=version, video_filter=cleaned, created_by=user, celery_task_id=celery_task_id,
            message="queued",
        )
        if enqueue:
            job_id = job.pk
            transaction.on_commit(lambda: scoring_job_enqueue(job_id, celery_task_id))
    return job


def scoring_job_enqueue(job_id: int, celery_task_id: str, *, claim_attempt: int | None = None) -> bool:
    """Send the job's message to the ``training`` queue; when the broker cannot be
    reached the job is failed with that reason and this returns False."""
    from training.tasks import scoring_job_run as task  # tasks import services

    kwargs = {} if claim_attempt is None else {"claim_attempt": claim_attempt}
    try:
        task.apply_async(args=[job_id], kwargs=kwargs, task_id=celery_task_id)
    except Exception as error:  # broker unreachable: say so on the job instead of losing it
        if task.app.conf.task_always_eager:
            raise
        logger.exception("could not queue scoring job %s", job_id)
        scoring_job_fail(job_id, f"could not queue the job (broker unavailable: {error}); start it again")
        return False
    return True


def scoring_job_cancel(job_id: int) -> ScoringJob:
    """Cancel a queued or running job: a queued one never starts, a running one is
    fenced off (its current chunk is not written). ``ValidationError`` once it has
    finished; ``ScoringJob.DoesNotExist`` for an unknown id."""
    now = timezone.now()
    updated = ScoringJob.objects.filter(pk=job_id, status__in=ACTIVE_JOB_STATUSES).update(
        status=JobStatus.CANCELLED, attempts=F("attempts") + 1, finished_at=now, updated_at=now,
        message="cancelled",
    )
    job = ScoringJob.objects.get(pk=job_id)
    if not updated:
        raise ValidationError({"job_id": f"scoring job {job_id} is {job.status}: only a queued or running job "
                                         "can be cancelled"})
    return job


def scoring_job_fail(job_id: int, reason: str, *, expected_attempt: int | None = None) -> bool:
    """Mark the job failed with ``reason`` while it is queued or running (and, with
    ``expected_attempt``, still at it); whether it was marked."""
    selected = ScoringJob.objects.filter(pk=job_id, status__in=ACTIVE_JOB_STATUSES)
    if expected_attempt is not None:
        selected = selected.filter(attempts=expected_attempt)
    now = timezone.now()
    updated = selected.update(status=JobStatus.FAILED, error=(reason or "failed")[:MAX_ERROR_LENGTH],
                              finished_at=now, updated_at=now)
    if updated:
        logger.warning("scoring job %s failed: %s", job_id, reason)
    return bool(updated)


def _progress(job_id: int, attempt: int, **fields) -> None:
    """One fenced UPDATE: the heartbeat and the given progress columns."""
    if "message" in fields:
        fields["message"] = fields["message"][:MAX_MESSAGE_LENGTH]
    now = timezone.now()
    updated = ScoringJob.objects.filter(pk=job_id, status=JobStatus.RUNNING, attempts=attempt).update(
        heartbeat_at=now, updated_at=now, **fields
    )
    if not updated:
        raise ScoringJobStale(f"scoring job {job_id} is no longer at attempt {attempt} "
                              "(cancelled, failed or taken over)")


def _fail_exhausted(job_id: int, refused: jobs.ClaimRefused) -> None:
    scoring_job_fail(
        job_id,
        f"its worker died (killed, e.g. out of memory?) and {refused.worker_starts} of "
        f"{jobs.job_max_attempts()} attempts are used up; start a new job to try again",
        expected_attempt=refused.attempts,
    )


def scoring_job_run(
    job_id: int,
    *,
    celery_task_id: str | None = None,
    claim_attempt: int | None = None,
    lock_wait_seconds: float = 0.0,
    chunk_videos: int | None = None,
) -> ScoringJob:
    """Run the queued job ``job_id`` in this process (what the Celery task does) and
    return it as it ends up; one that is not claimable (finished, cancelled, another
    live worker's) is returned untouched. Transient database errors are raised with the
    attempt as ``claim_attempt`` (the task's retry takes that very attempt over);
    anything else ends the job: failed with the reason, or as its canceller left it.
    A job taken over starts again from the first video (predictions are upserts)."""
    claim = jobs.job_claim(
        SCORING_JOB, job_id, celery_task_id=celery_task_id, claim_attempt=claim_attempt,
        lock_wait_seconds=lock_wait_seconds, on_attempts_exhausted=lambda refused: _fail_exhausted(job_id, refused),
    )
    if not isinstance(claim, jobs.JobClaim):
        job = ScoringJob.objects.get(pk=job_id)
        logger.info("scoring job %s not claimed (status %s): nothing to do", job_id, job.status)
        return job
    holds_lock = claim.holds_lock
    try:
        _execute(job_id, claim, chunk_videos=chunk_videos or SCORING_CHUNK_VIDEOS)
    except TRANSIENT_DATABASE_ERRORS as error:
        error.claim_attempt = claim.attempt
        raise
    except ScoringJobStale as stale:
        logger.warning("scoring job %s stopped: %s", job_id, stale)
    except SoftTimeLimitExceeded:
        scoring_job_fail(job_id, "the time limit was reached (CVSA_TRAINING_TIME_LIMIT_SECONDS)",
                         expected_attempt=claim.attempt)
    except ValidationError as error:
        scoring_job_fail(job_id, validation_error_message(error, with_fields=True), expected_attempt=claim.attempt)
    except (WeightsFileError, ValueError) as error:
        scoring_job_fail(job_id, str(error), expected_attempt=claim.attempt)
    except Exception as error:  # a bug or an unexpected database error: fail visibly
        logger.exception("scoring job %s failed", job_id)
        scoring_job_fail(job_id, f"{type(error).__name__}: {error}", expected_attempt=claim.attempt)
    finally:
        if holds_lock:
            jobs.job_lock_release(SCORING_JOB, job_id)
    return ScoringJob.objects.get(pk=job_id)


@dataclass
class _Tally:
    done: int = 0
    scored: int = 0
    without_text: int = 0
    embedded: int = 0

    def message(self, total: int) -> str:
        parts = [f"scored {self.scored} of {total} videos"]
        if self.without_text:
            parts.append(f"{self.without_text} without text skipped")
        if self.embedded:
            parts.append(f"{self.embedded} new texts embedded")
        return ", ".join(parts)


def _execute(job_id: int, claim: jobs.JobClaim, *, chunk_videos: int) -> None:
    attempt = claim.attempt
    job = ScoringJob.objects.get(pk=job_id)
    taken_over = " (taken over after its worker died)" if claim.worker_starts > 1 else ""
    _progress(job_id, attempt, message=f"loading model version {job.model_version_id}{taken_over}")
    served = prediction_cache.served(job.model_version_id)
    videos = filtered_videos(served.version_id, job.video_filter)
    bounds = videos.aggregate(total=Count("pk"), last=Max("pk"))
    total, last_id = bounds["total"], bounds["last"] or 0
    _progress(job_id, attempt, total=total, message=f"scoring {total} videos ({describe_video_filter(job.video_filter)})")
    tally = _Tally()
    after = 0
    started = time.monotonic()
    while tally.done < total:
        chunk = list(
            videos.filter(pk__gt=after, pk__lte=last_id).order_by("pk")
            .values_list("pk", "title", "description", "tags")[:chunk_videos]
        )
        if not chunk:  # videos deleted (or scored by another job) since they were counted
            break
        after = chunk[-1][0]
        _score_chunk(job_id, attempt, served, chunk, tally, total)
    elapsed = time.monotonic() - started
    now = timezone.now()
    with transaction.atomic():
        finished = ScoringJob.objects.filter(pk=job_id, status=JobStatus.RUNNING, attempts=attempt).update(
            status=JobStatus.SUCCEEDED, total=tally.done, done=tally.done, embedded=tally.embedded,
            finished_at=now, heartbeat_at=now, updated_at=now,
            message=f"{tally.message(tally.done)} in {elapsed:.1f} s"[:MAX_MESSAGE_LENGTH],
        )
        if not finished:
            raise ScoringJobStale(f"scoring job {job_id} is no longer at attempt {attempt}")
    logger.info("scoring job %s: %s", job_id, tally.message(tally.done))


def _score_chunk(
    job_id: int, attempt: int, served: ServedVersion, chunk: list[tuple], tally: _Tally, total: int
) -> None:
    """Score one chunk of (video id, title, description, tags) and write its
    predictions and the job's progress in one transaction (fenced by the attempt)."""
    video_ids: list[int] = []
    checksums: list[str] = []
    texts: dict[str, str] = {}
    for video_id, title, description, tags in chunk:
        text = compose_video_text(title=title, description=description, tags=tags)
        if not text:
            tally.without_text += 1
            continue
        checksum = text_checksum(text)
        video_ids.append(video_id)
        checksums.append(checksum)
        texts.setdefault(checksum, text)

    def embedded_so_far(done: int, count: int) -> None:
        _progress(job_id, attempt, message=f"{tally.message(total)}; embedding new texts: {done} of {count}")

    vectors = text_vectors(served, texts, on_embedded=embedded_so_far)
    rows = np.fromiter((vectors.index[checksum] for checksum in checksums), dtype=np.intp, count=len(checksums))
    probabilities = served.classifier.probabilities(vectors.X)[rows]
    tally.done += len(chunk)
    tally.scored += len(video_ids)
    tally.embedded += vectors.embedded
    with transaction.atomic():
        _progress(job_id, attempt, done=min(tally.done, total), embedded=tally.embedded, message=tally.message(total))
        predictions_store(served, video_ids, probabilities, vectors.embedding_ids[rows])


# --- the sweeper -------------------------------------------------------------------------


def scoring_jobs_mark_stale(
    *, older_than: timedelta | None = None, pending_older_than: timedelta | None = None, wait: bool = True
) -> int:
    """The sweeper of scoring jobs; returns how many it re-queued or failed: a running
    job whose heartbeat stopped is re-queued while fewer than ``CVSA_JOB_MAX_ATTEMPTS``
    workers started it (the new worker starts from the first video), else failed; a
    queued one whose message was lost is failed "never started"."""
    max_attempts = jobs.job_max_attempts()
    handled = 0
    with transaction.atomic():
        if not jobs.sweep_lock(wait=wait):
            return 0
        stale = jobs.dead_jobs(SCORING_JOB, older_than=older_than, pending_older_than=pending_older_than)
        for job in stale:
            if job.status == JobStatus.QUEUED:
                handled += scoring_job_fail(job.pk, "never started (its queue message was lost?): start a new job",
                                            expected_attempt=job.attempts)
            elif job.worker_starts < max_attempts:
                updates, attempt, celery_task_id = jobs.requeue_assignments(job)
                updates["message"] = f"re-queued: its worker stopped (no heartbeat since {job.last_seen})"
                if ScoringJob.objects.filter(job.fence, pk=job.pk).update(**updates):
                    handled += 1
                    transaction.on_commit(
                        lambda job_id=job.pk, celery_task_id=celery_task_id, attempt=attempt: (
                            scoring_job_enqueue(job_id, celery_task_id, claim_attempt=attempt)
                        )
                    )
            else:
                handled += scoring_job_fail(
                    job.pk, f"worker lost (no heartbeat since {job.last_seen}) after {job.worker_starts} of "
                            f"{max_attempts} attempts; start a new job to try again",
                    expected_attempt=job.attempts,
                )
    for job in stale:
        logger.warning("scoring job %s (%s since %s) swept", job.pk, job.status, job.last_seen)
    return handled
