"""Embeddings of a build: lookup of stored vectors, generation by the provider chunk by
chunk, and storage through a session staging table (binary COPY + one upsert).
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from django.db import connection

from core import pgcopy
from datasets.embedding_providers import EmbeddingProvider, provider_for
from datasets.embedding_registry import EmbeddingModelSpec
from datasets.models import DatasetVersionItem, Embedding
from datasets.services.build_state import BuildState
from datasets.services.job_lifecycle import PROGRESS_MIN_INTERVAL_SECONDS, BuildFailed, BuildProgress
from datasets.vector_rows import checksum_vector_rows


# --- tuning (module constants so tests and benchmarks can state / patch them) ----

#: Distinct missing texts per provider call and per stored chunk (one COPY + one upsert).
EMBED_CHUNK_TEXTS = 1024
#: The local CPU model embeds ~30-150 texts/s: smaller chunks keep progress moving and
#: make a failure lose seconds, not a minute; its round trips are cheap next to the maths.
LOCAL_EMBED_CHUNK_TEXTS = 128
#: Longest the build's thread sleeps while a chunk is embedded. A completed batch wakes
#: it at once; this bound only lets it write progress the throttle held back, and the
#: heartbeat, while a batch takes long. Waking costs no round trip unless a write is due.
PROGRESS_WAKE_SECONDS = PROGRESS_MIN_INTERVAL_SECONDS
#: Distinct checksums per existence lookup query.
LOOKUP_CHUNK_CHECKSUMS = 20_000

_STAGE_TABLE = "datasets_embedding_stage"


def existing_embeddings(model_id: int, dimensions: int, checksums: list[str]) -> dict[str, int]:
    """checksum -> Embedding.id for stored vectors: one query per LOOKUP_CHUNK_CHECKSUMS."""
    found: dict[str, int] = {}
    table = Embedding._meta.db_table
    with connection.cursor() as cursor:
        for start in range(0, len(checksums), LOOKUP_CHUNK_CHECKSUMS):
            cursor.execute(
                f"SELECT checksum, id FROM {table} WHERE model_id = %s AND dimensions = %s AND checksum = ANY(%s)",
                [model_id, dimensions, checksums[start : start + LOOKUP_CHUNK_CHECKSUMS]],
            )
            found.update(cursor.fetchall())
    return found


def generate_embeddings(
    spec: EmbeddingModelSpec,
    model_id: int,
    missing: list[str],
    state: BuildState,
    progress: BuildProgress,
    *,
    overwrite: bool,
) -> None:
    """Embed ``missing`` chunk by chunk; chunk k+1 is embedded while chunk k is stored.

    Progress moves per provider batch, not per chunk: while a chunk is embedded, the
    build's thread wakes whenever a batch completes and advances ``progress`` (which
    throttles its writes by the build's clock and estimates the time left), so a build
    of a single chunk shows its texts counting up and an ETA from the first batch on.
    """
    size = LOCAL_EMBED_CHUNK_TEXTS if spec.type == "local" else EMBED_CHUNK_TEXTS
    chunks = [missing[start : start + size] for start in range(0, len(missing), size)]
    _stage_prepare()
    provider = provider_for(spec)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"embed-{spec.key}")
    try:
        future, embedded = _embed_chunk_submit(pool, provider, [state.texts[c] for c in chunks[0]])
        stored = 0
        for index, chunk in enumerate(chunks):
            vectors = _wait_for(future, embedded, progress, stored=stored, total=len(missing))
            if index + 1 < len(chunks):
                future, embedded = _embed_chunk_submit(pool, provider, [state.texts[c] for c in chunks[index + 1]])
            outcome = _embeddings_store(model_id, chunk, vectors, overwrite=overwrite)
            state.embedding_ids.update(outcome.ids)
            state.new_embeddings += outcome.written
            state.frozen_vectors_kept += outcome.frozen_kept
            stored += len(chunk)
            progress.advance(stored, message=_generated_message(stored, len(missing)))
    finally:
        # On the way out after an error: the chunk being embedded stops sending requests
        # (queued batches and retries are cancelled), and its client is closed only once
        # that call has returned.
        provider.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        provider.close()


class _EmbeddedTexts:
    """Texts of one chunk embedded so far, counted from the provider's threads
    (``on_batch``): they only bump the count, so every database write stays on the
    build's thread, which sleeps in ``wait_for_news`` until a batch completes or the
    chunk's call ends."""

    def __init__(self) -> None:
        self._news = threading.Condition()
        self._count = 0
        self._call_ended = False

    def add(self, texts: int) -> None:
        with self._news:
            self._count += texts
            self._news.notify_all()

    def end(self, _future: Future | None = None) -> None:
        with self._news:
            self._call_ended = True
            self._news.notify_all()

    def wait_for_news(self, count_seen: int, timeout: float) -> int:
        """The count, once it differs from ``count_seen``, the call has ended, or
        ``timeout`` seconds have passed."""
        with self._news:
            self._news.wait_for(lambda: self._call_ended or self._count != count_seen, timeout)
            return self._count


def _embed_chunk_submit(
    pool: ThreadPoolExecutor, provider: EmbeddingProvider, texts: list[str]
) -> tuple[Future[np.ndarray], _EmbeddedTexts]:
    embedded = _EmbeddedTexts()
    future = pool.submit(provider.embed, texts, embedded.add)
    future.add_done_callback(embedded.end)
    return future, embedded


def _wait_for(
    future: Future[np.ndarray], embedded: _EmbeddedTexts, progress: BuildProgress, *, stored: int, total: int
) -> np.ndarray:
    """The chunk's vectors. Meanwhile each completed batch advances ``progress`` past
    ``stored`` (the texts of earlier chunks), an advance the throttle held back is
    written once due, and the heartbeat goes on while a batch takes long."""
    count_seen = 0
    while not future.done():
        count = embedded.wait_for_news(count_seen, PROGRESS_WAKE_SECONDS)
        if future.done():
            break
        if count != count_seen:
            count_seen = count
            progress.advance(stored + count, message=_generated_message(stored + count, total))
        else:
            progress.flush()
        progress.heartbeat()
    return future.result()


def _generated_message(done: int, total: int) -> str:
    return f"Generated {done}/{total} embeddings"


def _stage_prepare() -> None:
    """A session temp table for staged vectors (emptied: a failed chunk may have left rows)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE_TABLE} (checksum text NOT NULL, vector vector NOT NULL); "
            f"TRUNCATE {_STAGE_TABLE}"
        )


@dataclass
class _StoreOutcome:
    ids: dict[str, int]  # checksum -> Embedding.id, for every checksum of the chunk
    inserted: int  # rows this statement inserted
    written: int  # rows it inserted or (overwrite) replaced
    frozen_kept: int  # overwrite: rows left as they were because a ready version uses them


def _embeddings_store(model_id: int, checksums: list[str], vectors: np.ndarray, *, overwrite: bool) -> _StoreOutcome:
    """Store one chunk: binary COPY into the stage + one upsert that empties it.

    Without ``overwrite`` an existing (model, checksum) row is kept (a concurrent build
    stored it first). With ``overwrite`` (force_regenerate) it is replaced, unless an
    item of a ready version refers to it: a frozen version's vectors never change, so
    that row is kept and counted in ``frozen_kept``. Vectors of one key always have
    the key's dimensions (``embedding_models_upsert`` refuses to change them once
    vectors exist). Autocommit: the chunk is durable when this returns.

    Rows are written in checksum order: two builds of one model storing overlapping
    texts at once then take the rows' locks in the same order, so they wait for each
    other instead of deadlocking.
    """
    table = Embedding._meta.db_table
    item_table = DatasetVersionItem._meta.db_table
    pgcopy.copy_in(
        f"COPY {_STAGE_TABLE} (checksum, vector) FROM STDIN (FORMAT BINARY)",
        checksum_vector_rows(checksums, vectors),
    )
    if overwrite:
        # Items exist only for ready versions (written by the freezing transaction).
        on_conflict = f"""DO UPDATE
                SET dimensions = EXCLUDED.dimensions, vector = EXCLUDED.vector, created_at = EXCLUDED.created_at
                WHERE NOT EXISTS (SELECT 1 FROM {item_table} i WHERE i.embedding_id = e.id)"""
    else:
        on_conflict = "DO NOTHING"
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH staged AS (DELETE FROM {_STAGE_TABLE} RETURNING checksum, vector)
            INSERT INTO {table} AS e (model_id, checksum, dimensions, vector, created_at)
            SELECT %s, checksum, vector_dims(vector), vector, now() FROM staged ORDER BY checksum
            ON CONFLICT (model_id, checksum) {on_conflict}
            RETURNING e.checksum, e.id, (e.xmax = 0) AS inserted
            """,
            [model_id],
        )
        rows = cursor.fetchall()
    ids = {checksum: embedding_id for checksum, embedding_id, _ in rows}
    inserted = sum(1 for *_, was_inserted in rows if was_inserted)
    absent = [checksum for checksum in checksums if checksum not in ids]
    if absent:  # stored meanwhile by another build, or (overwrite) used by a ready version
        ids.update(existing_embeddings(model_id, vectors.shape[1], absent))
        lost = [checksum for checksum in absent if checksum not in ids]
        if lost:
            raise BuildFailed(
                f"{len(lost)} stored vector(s) of this model have other dimensions than {vectors.shape[1]} "
                "(stored before the model's identity was fixed); add the model under a new key"
            )
    return _StoreOutcome(ids=ids, inserted=inserted, written=len(rows), frozen_kept=len(absent) if overwrite else 0)
