"""A real loopback HTTP server speaking the OpenAI embeddings protocol.

Used by the provider tests (so they exercise the real `openai` client, its HTTP
stack, base64 decoding and error mapping, not a mock) and by the benchmarks; it has
no pytest dependency.

    with OpenAIEmbeddingServer(dimensions=8, latency_seconds=0.05) as server:
        server.fail_next(429, 500)          # the next two requests fail, then OK
        ... OpenAI(base_url=server.base_url, api_key=server.api_key) ...
        server.requests                      # what the client sent
        server.max_in_flight                 # peak concurrent requests

Tests observe concurrency instead of timing it: `rendezvous(n)` holds each request
until n are in flight together, `hold_requests()` / `release_requests()` keep
requests in flight until the test lets them go (`hold_requests(after=n)` answers n
first), and `wait_for_in_flight(n)` waits
for that condition (every wait has a deadline that only a real hang reaches).

Protocol: `POST /v1/embeddings` with `{model, input: str | [str], dimensions?,
encoding_format?}` returns `{object: "list", data: [{object: "embedding", index,
embedding}], model, usage}`. `embedding` is a list of floats, or with
`encoding_format="base64"` the base64 of little-endian float32 bytes — which the
openai client (3.x) asks for by default. Vectors are unit length and a pure function
of (text, dimensions): the same text always gets the same vector.

Besides an HTTP status, a scripted fault can be "timeout" (hold the request until
`release_hung_requests()`, at most `hang_seconds`, longer than a client timeout) or
"disconnect" (close the socket without a response).
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal

import numpy as np

Fault = int | Literal["timeout", "disconnect"]

EMBEDDINGS_PATH = "/v1/embeddings"
# Deadline of every wait on the test's say-so: reached only when a test or client hangs.
HANG_GUARD_SECONDS = 60.0


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    model: str | None
    inputs: list[str]
    dimensions: int | None
    encoding_format: str | None
    authorization: str | None
    status: int  # what the server answered (0 for "disconnect")
    started_at: float  # time.monotonic()

    @property
    def batch_size(self) -> int:
        return len(self.inputs)


def deterministic_embedding(text: str, dimensions: int) -> np.ndarray:
    """Unit-length float32 vector seeded by sha256(text)."""
    seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(dimensions).astype(np.float32)
    return vector / np.float32(np.linalg.norm(vector))


class OpenAIEmbeddingServer:
    def __init__(
        self,
        *,
        dimensions: int = 16,
        latency_seconds: float = 0.0,
        api_key: str | None = "test-key",
        max_batch_size: int | None = None,
        hang_seconds: float = 5.0,
        port: int = 0,
    ) -> None:
        """`api_key=None` accepts any (or no) Authorization header; `port=0` picks a
        free port.

        `max_batch_size`, when set, answers 400 to larger batches, like real
        providers do.
        """
        self.default_dimensions = dimensions
        self.latency_seconds = latency_seconds
        self.api_key = api_key
        self.max_batch_size = max_batch_size
        self.hang_seconds = hang_seconds
        self.always_fail_with: int | None = None
        self.wrong_dimensions: int | None = None

        self._lock = threading.Lock()
        self._in_flight_changed = threading.Condition(self._lock)
        self._scripted_faults: deque[Fault] = deque()
        self._requests: list[RecordedRequest] = []
        self._in_flight = 0
        self._max_in_flight = 0
        self._rendezvous: threading.Barrier | None = None
        self._released = threading.Event()
        self._released.set()
        self._answered_before_hold = 0
        self._hung_released = threading.Event()

        self._http_server = ThreadingHTTPServer(("127.0.0.1", port), _make_handler(self))
        self._http_server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------

    @property
    def port(self) -> int:
        return self._http_server.server_address[1]

    @property
    def base_url(self) -> str:
        """What to pass as the client's `base_url` (the client appends /embeddings)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> OpenAIEmbeddingServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._http_server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"openai-embedding-server:{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        # Let held requests finish so their handler threads end.
        self._released.set()
        self._hung_released.set()
        if self._rendezvous is not None:
            self._rendezvous.abort()
        if self._thread is not None:
            self._http_server.shutdown()
            self._thread.join()
            self._thread = None
        self._http_server.server_close()

    def __enter__(self) -> OpenAIEmbeddingServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # --- scripting ---------------------------------------------------------

    def fail_next(self, *faults: Fault) -> None:
        """Answer the next requests with these faults, in order, then normally."""
        with self._lock:
            self._scripted_faults.extend(faults)

    def rendezvous(self, parties: int, timeout_seconds: float = HANG_GUARD_SECONDS) -> None:
        """Hold each request until `parties` requests are in flight together (a cyclic
        barrier): a client that never sends that many at once gets 500s instead of
        passing by luck."""
        self._rendezvous = threading.Barrier(parties, timeout=timeout_seconds)

    def hold_requests(self, *, after: int = 0) -> None:
        """Keep the requests that arrive from now on in flight until `release_requests()`;
        with `after=n`, the next n requests are answered first (e.g. answer the first
        batch, hold the second)."""
        with self._lock:
            self._answered_before_hold = after
        self._released.clear()

    def release_requests(self) -> None:
        with self._lock:
            self._answered_before_hold = 0
        self._released.set()

    def release_hung_requests(self) -> None:
        """End the "timeout" faults' requests now (the client has given up on them)."""
        self._hung_released.set()

    def reset(self) -> None:
        """Forget recorded requests, scripted faults and the in-flight peak."""
        with self._lock:
            self._scripted_faults.clear()
            self._requests.clear()
            self._max_in_flight = 0
        self.always_fail_with = None
        self.wrong_dimensions = None

    # --- observations ------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def batch_sizes(self) -> list[int]:
        return [request.batch_size for request in self.requests]

    @property
    def max_in_flight(self) -> int:
        with self._lock:
            return self._max_in_flight

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    def wait_for_in_flight(self, count: int, timeout_seconds: float = HANG_GUARD_SECONDS) -> bool:
        """Wait until at least `count` requests are being served; False on the deadline."""
        with self._in_flight_changed:
            return self._in_flight_changed.wait_for(lambda: self._in_flight >= count, timeout_seconds)

    def wait_until_idle(self, timeout_seconds: float = HANG_GUARD_SECONDS) -> bool:
        """Wait for requests still being served (e.g. one the client timed out on)."""
        with self._in_flight_changed:
            return self._in_flight_changed.wait_for(lambda: self._in_flight == 0, timeout_seconds)

    def expected_embedding(self, text: str, dimensions: int | None = None) -> np.ndarray:
        return deterministic_embedding(text, dimensions or self.default_dimensions)

    # --- request handling (called from handler threads) --------------------

    def _enter(self) -> None:
        with self._in_flight_changed:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            self._in_flight_changed.notify_all()

    def _leave(self) -> None:
        with self._in_flight_changed:
            self._in_flight -= 1
            self._in_flight_changed.notify_all()

    def _wait_for_the_test(self) -> str | None:
        """Block where the test asked to (rendezvous, hold); why it broke off, if it did."""
        if self._rendezvous is not None:
            try:
                self._rendezvous.wait()
            except threading.BrokenBarrierError:
                return f"rendezvous broken: {self._rendezvous.parties} requests were never in flight together"
        with self._lock:
            if self._answered_before_hold:
                self._answered_before_hold -= 1
                return None
        if not self._released.wait(HANG_GUARD_SECONDS):
            return "held for longer than the hang guard"
        return None

    def _next_fault(self) -> Fault | None:
        with self._lock:
            if self._scripted_faults:
                return self._scripted_faults.popleft()
        return self.always_fail_with

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)


def _error_body(status: int, message: str) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": "invalid_request_error" if status < 500 else "server_error",
            "param": None,
            "code": str(status),
        }
    }


def _as_inputs(raw_input: object) -> list[str] | None:
    if isinstance(raw_input, str):
        return [raw_input]
    if isinstance(raw_input, list) and all(isinstance(item, str) for item in raw_input):
        return list(raw_input)
    return None


def _make_handler(server: OpenAIEmbeddingServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.1 so the client keeps connections alive, as with real providers.
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # keep test and benchmark output clean

        def do_POST(self) -> None:  # noqa: N802 (http.server naming)
            server._enter()
            try:
                self._handle_post()
            finally:
                server._leave()

        def _handle_post(self) -> None:
            started_at = time.monotonic()
            length = int(self.headers.get("Content-Length") or 0)
            raw_body = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw_body or b"{}")
            except json.JSONDecodeError:
                body = None
            payload: dict[str, Any] = body if isinstance(body, dict) else {}
            inputs = _as_inputs(payload.get("input"))
            requested_dimensions = payload.get("dimensions")
            encoding_format = payload.get("encoding_format")
            authorization = self.headers.get("Authorization")

            status, response = self._respond_to(
                body, inputs, requested_dimensions, encoding_format, authorization
            )
            server._record(
                RecordedRequest(
                    path=self.path,
                    model=payload.get("model"),
                    inputs=inputs or [],
                    dimensions=requested_dimensions if isinstance(requested_dimensions, int) else None,
                    encoding_format=encoding_format,
                    authorization=authorization,
                    status=status,
                    started_at=started_at,
                )
            )
            if status == 0:
                # Abort the connection without a response: the client sees a
                # connection error.
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self._send_json(status, response)

        def _respond_to(
            self,
            body: object,
            inputs: list[str] | None,
            requested_dimensions: object,
            encoding_format: object,
            authorization: str | None,
        ) -> tuple[int, dict[str, Any]]:
            if server.latency_seconds:
                time.sleep(server.latency_seconds)
            broken_off = server._wait_for_the_test()
            if broken_off is not None:
                return 500, _error_body(500, broken_off)
            if self.path != EMBEDDINGS_PATH:
                return 404, _error_body(404, f"no route for {self.path}")
            if server.api_key is not None and authorization != f"Bearer {server.api_key}":
                return 401, _error_body(401, "Incorrect API key provided.")

            fault = server._next_fault()
            if fault == "disconnect":
                return 0, {}
            if fault == "timeout":
                server._hung_released.wait(server.hang_seconds)
            elif isinstance(fault, int):
                return fault, _error_body(fault, f"scripted failure {fault}")

            if not isinstance(body, dict):
                return 400, _error_body(400, "request body must be a JSON object")
            if inputs is None:
                return 400, _error_body(400, "input must be a string or a list of strings")
            if not inputs or any(text == "" for text in inputs):
                return 400, _error_body(400, "input cannot be empty or contain empty strings")
            if server.max_batch_size is not None and len(inputs) > server.max_batch_size:
                return 400, _error_body(
                    400, f"batch size {len(inputs)} exceeds the limit of {server.max_batch_size}"
                )
            if requested_dimensions is not None and (
                not isinstance(requested_dimensions, int) or requested_dimensions <= 0
            ):
                return 400, _error_body(400, "dimensions must be a positive integer")
            if encoding_format not in (None, "float", "base64"):
                return 400, _error_body(400, "encoding_format must be 'float' or 'base64'")

            dimensions = server.wrong_dimensions or requested_dimensions or server.default_dimensions
            data = []
            for index, text in enumerate(inputs):
                vector = deterministic_embedding(text, dimensions)
                if encoding_format == "base64":
                    embedding: Any = base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
                else:
                    embedding = [float(value) for value in vector]
                data.append({"object": "embedding", "index": index, "embedding": embedding})
            # Real providers do not promise order; `index` is the contract.
            data.reverse()
            prompt_tokens = sum(len(text.split()) or 1 for text in inputs)
            return 200, {
                "object": "list",
                "data": data,
                "model": body.get("model"),
                "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
            }

        def _send_json(self, status: int, payload: dict[str, Any]) -> None:
            encoded = json.dumps(payload).encode("utf-8")
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(encoded)))
                self.end_headers()
                self.wfile.write(encoded)
            except (BrokenPipeError, ConnectionResetError):
                # The client gave up first (its timeout); nothing left to tell it.
                self.close_connection = True

    return Handler


def serve_forever(
    *,
    dimensions: int = 1024,
    latency_seconds: float = 0.0,
    api_key: str | None = None,
    port: int = 0,
) -> None:
    """Run a server until interrupted (handy for manual checks and benchmarks)."""
    with OpenAIEmbeddingServer(
        dimensions=dimensions, latency_seconds=latency_seconds, api_key=api_key, port=port
    ) as server:
        print(f"OpenAI-compatible embeddings at {server.base_url}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


def _main(argv: Iterable[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dimensions", type=int, default=1024)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    parser.add_argument("--api-key", default=None, help="require this bearer token")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(list(argv) if argv is not None else None)
    serve_forever(
        dimensions=args.dimensions,
        latency_seconds=args.latency,
        api_key=args.api_key,
        port=args.port,
    )


if __name__ == "__main__":
    _main()
