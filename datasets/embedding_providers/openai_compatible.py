"""Embeddings from any OpenAI-compatible `/v1/embeddings` endpoint.

Batches of `max_batch_size` texts run on a thread pool of `concurrency` threads.
Threads rather than asyncio: the callers (Celery tasks, management commands,
benchmarks) are synchronous, the work is I/O bound so the GIL is released while
waiting, and the synchronous `openai` client is thread-safe when shared; asyncio
would need an event loop started inside every Celery task for no gain at the
handful of requests in flight a quota allows.

The client's own retries are off (`max_retries=0`): retries happen here, bounded
by `max_retries`, with exponential backoff and jitter, so they are observable,
testable and share the rate limiter with first attempts.
"""

from __future__ import annotations

import base64
import logging
import random
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import Any

import numpy as np
import openai

from datasets.embedding_registry import EmbeddingModelSpec

from .base import (
    BatchCallback,
    EmbeddingProvider,
    EmbeddingProviderError,
    split_into_batches,
    wrong_dimensions_message,
)
from .rate_limit import SYSTEM_CLOCK, Clock, RequestRateLimiter

logger = logging.getLogger(__name__)

DEFAULT_BACKOFF_BASE_SECONDS = 1.0
DEFAULT_BACKOFF_MAX_SECONDS = 60.0

# 408/429 and 5xx are the provider telling us to come back later; any other status
# (bad request, bad key, unknown model) fails the same way on every retry.
_RETRYABLE_STATUSES = frozenset({408, 429})
# Some endpoints answer without an Authorization header; the client insists on one.
_PLACEHOLDER_API_KEY = "no-key-configured"
_ERROR_DETAIL_LIMIT = 300


class _Cancelled(Exception):
    """Another batch failed; this one stops without adding noise to the error."""


class _RetryableFailure(Exception):
    def __init__(self, description: str, *, retry_after_seconds: float | None = None) -> None:
        super().__init__(description)
        self.retry_after_seconds = retry_after_seconds


class OpenAICompatibleProvider(EmbeddingProvider):
    def __init__(
        self,
        spec: EmbeddingModelSpec,
        *,
        backoff_base_seconds: float = DEFAULT_BACKOFF_BASE_SECONDS,
        backoff_max_seconds: float = DEFAULT_BACKOFF_MAX_SECONDS,
        random_fraction: Callable[[], float] = random.random,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if not spec.is_remote or spec.api_endpoint is None:
            raise ValueError(f"model {spec.key!r} is not an openai-compatible model")
        super().__init__(spec)
        self._backoff_base_seconds = backoff_base_seconds
        self._backoff_max_seconds = backoff_max_seconds
        self._random_fraction = random_fraction
        self._clock = clock
        self._rate_limiter = RequestRateLimiter(spec.requests_per_minute, clock=clock)
        self._client: openai.OpenAI | None = None
        self._client_lock = threading.Lock()
        self._api_key: str | None = None
        # Each call's cancel event, so cancel() can stop calls running in other threads.
        self._call_events: set[threading.Event] = set()
        self._cancel_requested = False

    # --- public ------------------------------------------------------------

    def cancel(self) -> None:
        with self._client_lock:
            self._cancel_requested = True
            for event in self._call_events:
                event.set()

    def close(self) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # --- batching and concurrency ------------------------------------------

    def _embed(self, texts: list[str], on_batch: BatchCallback) -> np.ndarray:
        client = self._get_client()
        batches = split_into_batches(texts, self.spec.max_batch_size)
        result = np.empty((len(texts), self.spec.dimensions), dtype=np.float32)
        cancelled = threading.Event()
        with self._client_lock:
            if self._cancel_requested:
                raise self._error("cancelled before it started", attempts=0)
            self._call_events.add(cancelled)
        try:
            return self._embed_batches(client, batches, result, cancelled, on_batch)
        except _Cancelled:
            raise self._error("cancelled", attempts=0) from None
        finally:
            with self._client_lock:
                self._call_events.discard(cancelled)

    def _embed_batches(
        self,
        client: openai.OpenAI,
        batches: list[tuple[int, list[str]]],
        result: np.ndarray,
        cancelled: threading.Event,
        on_batch: BatchCallback,
    ) -> np.ndarray:
        def run_batch(start: int, batch: list[str]) -> None:
            try:
                # Each batch owns a disjoint slice of `result`: no locking needed.
                result[start : start + len(batch)] = self._embed_batch_with_retries(
                    client, batch, cancelled=cancelled
                )
                on_batch(len(batch))
            except BaseException:
                # At once, from this thread: a pool thread picks its next batch
                # before the caller's thread wakes up to cancel the rest.
                cancelled.set()
                raise

        if len(batches) == 1:
            run_batch(*batches[0])
            return result

        workers = min(self.spec.concurrency, len(batches))
        executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"embed-{self.spec.key}")
        futures: list[Future[None]] = []
        try:
            futures = [executor.submit(run_batch, start, batch) for start, batch in batches]
            wait(futures, return_when=FIRST_EXCEPTION)
        finally:
            # Stop queued batches and wake the ones sleeping in backoff, whether we
            # are here because of an error or an interrupt (e.g. a task time limit).
            cancelled.set()
            for future in futures:
                future.cancel()
            executor.shutdown(wait=True)
        errors = [future.exception() for future in futures if not future.cancelled() and future.exception()]
        # The batches that stopped because another failed may finish first: report the cause.
        causes = [error for error in errors if not isinstance(error, _Cancelled)]
        if causes or errors:
            raise (causes or errors)[0]
        return result

    # --- one batch ---------------------------------------------------------

    def _embed_batch_with_retries(
        self, client: openai.OpenAI, batch: list[str], *, cancelled: threading.Event
    ) -> np.ndarray:
        max_attempts = self.spec.max_retries + 1
        for attempt in range(1, max_attempts + 1):
            if not self._rate_limiter.wait_for_slot(cancelled):
                raise _Cancelled()
            try:
                return self._embed_batch_once(client, batch, attempt=attempt)
            except _RetryableFailure as failure:
                if attempt == max_attempts:
                    raise self._error(
                        f"a batch of {len(batch)} texts failed after {attempt} attempt(s); "
                        f"last error: {failure}",
                        attempts=attempt,
                    ) from None
                delay = self._backoff_seconds(attempt, failure.retry_after_seconds)
                logger.warning(
                    "embedding model %r: attempt %d/%d failed (%s); retrying in %.2fs",
                    self.spec.key,
                    attempt,
                    max_attempts,
                    failure,
                    delay,
                )
                if self._clock.wait(delay, cancelled):
                    raise _Cancelled() from None
        raise AssertionError("unreachable")

    def _embed_batch_once(self, client: openai.OpenAI, batch: list[str], *, attempt: int) -> np.ndarray:
        options: dict[str, Any] = {}
        if self.spec.send_dimensions:
            options["dimensions"] = self.spec.dimensions
        try:
            # base64 halves the response size and decodes straight into float32.
            response = client.embeddings.create(
                model=self.spec.name, input=batch, encoding_format="base64", **options
            )
        except openai.APITimeoutError:
            raise _RetryableFailure(f"timed out after {self.spec.timeout_seconds:g}s") from None
        except openai.APIConnectionError as error:
            raise _RetryableFailure(f"connection error: {self._redact(_cause_text(error))}") from None
        except openai.APIStatusError as error:
            description = self._describe_status_error(error)
            if error.status_code in _RETRYABLE_STATUSES or error.status_code >= 500:
                raise _RetryableFailure(
                    description, retry_after_seconds=_retry_after_seconds(error)
                ) from None
            raise self._error(
                f"request rejected with {description} (not retried)", attempts=attempt
            ) from None
        except openai.APIError as error:
            raise self._error(
                f"unusable response: {self._redact(str(error))[:_ERROR_DETAIL_LIMIT]}", attempts=attempt
            ) from None
        return self._vectors_from_response(response, expected_rows=len(batch), attempt=attempt)

    def _vectors_from_response(self, response: Any, *, expected_rows: int, attempt: int) -> np.ndarray:
        items = list(getattr(response, "data", None) or [])
        indexes = sorted(item.index for item in items if isinstance(getattr(item, "index", None), int))
        if len(items) != expected_rows or indexes != list(range(expected_rows)):
            raise self._error(
                f"response has {len(items)} embeddings with indexes {indexes[:10]} for a batch "
                f"of {expected_rows} texts",
                attempts=attempt,
            )
        vectors = np.empty((expected_rows, self.spec.dimensions), dtype=np.float32)
        for item in items:
            try:
                vector = _decode_embedding(item.embedding)
            except (ValueError, TypeError) as error:
                raise self._error(f"undecodable embedding in response: {error}", attempts=attempt) from None
            if vector.shape != (self.spec.dimensions,):
                raise EmbeddingProviderError(
                    wrong_dimensions_message(self.spec, vector.size) + " (not retried)",
                    model_key=self.spec.key,
                    attempts=attempt,
                )
            # The index, not the position in `data`, says which input it belongs to.
            vectors[item.index] = vector
        return vectors

    def _backoff_seconds(self, attempt: int, retry_after_seconds: float | None) -> float:
        exponential = min(self._backoff_max_seconds, self._backoff_base_seconds * 2 ** (attempt - 1))
        # "Equal jitter": at least half the exponential delay, so retries of batches
        # that failed together spread out without ever retrying immediately.
        delay = exponential / 2 + self._random_fraction() * exponential / 2
        if retry_after_seconds is not None:
            delay = max(delay, min(retry_after_seconds, self._backoff_max_seconds))
        return delay

    # --- helpers -----------------------------------------------------------

    def _get_client(self) -> openai.OpenAI:
        with self._client_lock:
            if self._client is None:
                # Resolved here, at first use: a missing key fails the job that
                # needs it, with the variable's name, not the registry load.
                self._api_key = self.spec.api_key()
                self._client = openai.OpenAI(
                    base_url=self.spec.api_endpoint,
                    api_key=self._api_key or _PLACEHOLDER_API_KEY,
                    max_retries=0,
                    timeout=self.spec.timeout_seconds,
                )
            return self._client

    def _error(self, what: str, *, attempts: int) -> EmbeddingProviderError:
        return EmbeddingProviderError(
            f"embedding model {self.spec.key!r} ({self.spec.name} at {self.spec.api_endpoint}): "
            f"{self._redact(what)}",
            model_key=self.spec.key,
            attempts=attempts,
        )

    def _describe_status_error(self, error: openai.APIStatusError) -> str:
        detail = _error_body_message(error.body) or error.message
        return f"HTTP {error.status_code}: {self._redact(detail)[:_ERROR_DETAIL_LIMIT]}"

    def _redact(self, text: str) -> str:
        # Some gateways echo the Authorization header back in error bodies.
        if self._api_key:
            text = text.replace(self._api_key, "***")
        return text


def _decode_embedding(raw: object) -> np.ndarray:
    if isinstance(raw, str):
        # Little-endian float32, as the OpenAI API documents for base64.
        return np.frombuffer(base64.b64decode(raw), dtype="<f4").astype(np.float32)
    # Endpoints that ignore encoding_format send a list of floats.
    return np.asarray(raw, dtype=np.float32).reshape(-1)


def _error_body_message(body: object) -> str | None:
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"]
        if isinstance(body.get("message"), str):
            return body["message"]
    return None


def _retry_after_seconds(error: openai.APIStatusError) -> float | None:
    try:
        value = error.response.headers.get("retry-after")
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None  # an HTTP date; the exponential backoff will do


def _cause_text(error: BaseException) -> str:
    cause = error.__cause__ or error.__context__
    return f"{error} ({type(cause).__name__}: {cause})" if cause else str(error)
