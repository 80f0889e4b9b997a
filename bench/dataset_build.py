"""Benchmark: build a 20k-video dataset version against a remote-like database.

    .venv/bin/python bench/dataset_build.py [--videos 20000] [--dimensions 1024] ...

What it sets up (none of it touches the development database):

- the embedded PostgreSQL of ``CVSA_DATA_DIR`` (started if needed), with its OWN
  database ``cvsa_bench``, dropped and re-created, migrated and seeded with N videos
  (one labeler each, 3% conflicts) over the direct Unix socket;
- a loopback TCP proxy in front of that socket that delays every client→server burst
  by ``--db-latency`` seconds (100 ms: a database across a continent); the Django
  connection of this process goes through it, so every round trip costs 100 ms;
- the loopback OpenAI-protocol embedding server (tests/support) answering after
  ``--api-latency`` seconds (200 ms) per request;
- a temporary ``embedding_models.toml`` with one openai-compatible model pointing at it.

Then it requests and runs (in process, as the Celery task would) a cold build (every
text new) and a warm build (the same aids again: every vector reused), and prints for
each: seconds, queries (Django ``execute_wrapper``, COPY included), round trips seen by
the proxy, embedding requests and texts/s. Targets: cold < 60 s, warm < 5 s.
It is a benchmark, not a test: it prints numbers and exits 0 unless a build fails.
"""

from __future__ import annotations

import argparse
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

BENCH_DATABASE = "cvsa_bench"
MODEL_KEY = "bench-remote"


# --- a latency-adding TCP → Unix socket proxy -------------------------------------------


class LatencyProxy:
    """127.0.0.1:PORT → Unix socket; client→server data is delivered ``delay`` seconds
    after it was read (pure latency: bursts overlap, bandwidth is not throttled).

    ``round_trips`` counts client→server bursts that follow server→client traffic, i.e.
    how many times the client had to wait for the server.
    """

    def __init__(self, unix_path: str, delay: float) -> None:
        self.unix_path = unix_path
        self.delay = delay
        self.round_trips = 0
        self._lock = threading.Lock()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept_loop, daemon=True, name="proxy-accept").start()

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.unix_path)
            state = {"server_spoke": True}
            pending: queue.Queue = queue.Queue()
            threading.Thread(target=self._client_reader, args=(client, pending, state), daemon=True).start()
            threading.Thread(target=self._delayed_writer, args=(pending, upstream), daemon=True).start()
            threading.Thread(target=self._server_to_client, args=(upstream, client, state), daemon=True).start()

    def _client_reader(self, client: socket.socket, pending: queue.Queue, state: dict) -> None:
        while True:
            try:
                data = client.recv(1 << 16)
            except OSError:
                data = b""
            if state["server_spoke"] and data:
                with self._lock:
                    self.round_trips += 1
                state["server_spoke"] = False
            pending.put((time.monotonic() + self.delay, data))
            if not data:
                return

    @staticmethod
    def _delayed_writer(pending: queue.Queue, upstream: socket.socket) -> None:
        while True:
            deadline, data = pending.get()
            wait = deadline - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if not data:
                try:
                    upstream.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            try:
                upstream.sendall(data)
            except OSError:
                return

    @staticmethod
    def _server_to_client(upstream: socket.socket, client: socket.socket, state: dict) -> None:
        while True:
            try:
                data = upstream.recv(1 << 16)
            except OSError:
                data = b""
            if not data:
                try:
                    client.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            state["server_spoke"] = True
            try:
                client.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self._listener.close()


# --- set-up (runs in a subprocess on the direct socket) ------------------------------------


def _setup(videos: int) -> None:
    """Migrate ``cvsa_bench`` and seed it (called with DATABASE_URL on the socket)."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from labeling.models import Label, Video

    call_command("migrate", verbosity=0)
    User = get_user_model()
    first = User.objects.create_user(username="bench-a", password="bench-password-1")
    second = User.objects.create_user(username="bench-b", password="bench-password-1")
    batch = 5000
    for start in range(0, videos, batch):
        rows = Video.objects.bulk_create(
            Video(
                aid=index + 1,
                title=f"【初音ミク】ベンチマーク曲 No.{index + 1} / bench song {index + 1}",
                description=f"作詞作曲: P{index % 997}. A synthetic description for benchmark video {index + 1}.",
                tags=f"VOCALOID,初音ミク,bench{index % 50}",
                duration=120 + index % 300,
            )
            for index in range(start, min(videos, start + batch))
        )
        labels = [Label(video=video, user=first, value=video.aid % 3 != 0) for video in rows]
        # 3% conflicts: the second labeler disagrees (excluded unless include_inconsistent).
        labels += [Label(video=video, user=second, value=video.aid % 3 == 0) for video in rows if video.aid % 33 == 0]
        Label.objects.bulk_create(labels)


def _psql(pg_dir: Path, sql: str) -> None:
    import psycopg

    with psycopg.connect(host=str(pg_dir), user="postgres", dbname="postgres", autocommit=True) as conn:
        conn.execute(sql)


def _socket_url(pg_dir: Path) -> str:
    from urllib.parse import quote

    return f"postgres://postgres@{quote(str(pg_dir), safe='')}/{BENCH_DATABASE}"


# --- the measured builds -----------------------------------------------------------------


def _measure(label: str, aids: list[int], proxy: LatencyProxy, server, args) -> dict:
    from django.db import connection

    from datasets import services

    queries = {"count": 0}

    def count(execute, sql, params, many, context):
        queries["count"] += 1
        return execute(sql, params, many, context)

    steps: dict[str, float] = {}
    started = time.perf_counter()

    def on_progress(snapshot: dict) -> None:
        steps.setdefault(snapshot["current_step"], time.perf_counter() - started)

    requests_before = len(server.requests)
    trips_before = proxy.round_trips
    with connection.execute_wrapper(count):
        request = services.BuildRequest(aid_list=aids, embedding_model_key=MODEL_KEY, description=f"bench {label}")
        task = services.dataset_build_request(request, enqueue=False).task
        request_seconds = time.perf_counter() - started
        task = services.dataset_version_build(task_id=task.pk, on_progress=on_progress)
    seconds = time.perf_counter() - started
    if task.status != "completed":
        raise SystemExit(f"{label} build {task.status}: {task.error}")
    version = task.dataset_version
    requests = len(server.requests) - requests_before
    embedded = version.new_embeddings
    result = {
        "label": label,
        "seconds": seconds,
        "request_seconds": request_seconds,
        "queries": queries["count"],
        "round_trips": proxy.round_trips - trips_before,
        "embedding_requests": requests,
        "records": version.total_records,
        "new": embedded,
        "reused": version.reused_embeddings,
        "records_per_second": version.total_records / seconds,
        "embedded_per_second": embedded / seconds,
        "steps": steps,
        "version_id": str(version.pk),
    }
    return result


def _print(result: dict, args) -> None:
    target = args.cold_target if result["label"] == "cold" else args.warm_target
    verdict = "OK" if result["seconds"] < target else "OVER TARGET"
    print(
        f"{result['label']:5} build: {result['seconds']:6.2f} s (target < {target:g} s: {verdict}); "
        f"{result['records']} records, {result['new']} new / {result['reused']} reused embeddings"
    )
    print(
        f"       DB queries {result['queries']}, proxy round trips {result['round_trips']}, "
        f"embedding requests {result['embedding_requests']}, {result['records_per_second']:.0f} records/s, "
        f"{result['embedded_per_second']:.0f} new texts embedded/s (request {result['request_seconds']:.2f} s)"
    )
    marks = sorted(result["steps"].items(), key=lambda item: item[1])
    timeline = ", ".join(f"{name} @{offset:.1f}s" for name, offset in marks)
    print(f"       steps: {timeline}")


def main() -> None:
    parser = argparse.ArgumentParser(description="Dataset build benchmark (cold and warm) over a 100 ms database.")
    parser.add_argument("--videos", type=int, default=20_000)
    parser.add_argument("--dimensions", type=int, default=1024)
    parser.add_argument("--db-latency", type=float, default=0.1, help="seconds added to each client→server burst")
    parser.add_argument("--api-latency", type=float, default=0.2, help="seconds per embedding request")
    parser.add_argument("--batch-size", type=int, default=64, help="model max_batch_size (texts per request)")
    parser.add_argument("--concurrency", type=int, default=8, help="embedding requests in flight")
    parser.add_argument("--cold-target", type=float, default=60.0)
    parser.add_argument("--warm-target", type=float, default=5.0)
    parser.add_argument("--setup", type=int, help=argparse.SUPPRESS)  # internal: seed N videos and exit
    args = parser.parse_args()

    if args.setup is not None:
        _setup(args.setup)
        return

    from cvsa_ml import embedded_services

    embedded_services.postgres_start()
    pg_dir = embedded_services.postgres_dir()
    print(f"PostgreSQL: {pg_dir} (database {BENCH_DATABASE}, dropped and re-created)")
    _psql(pg_dir, f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)')
    _psql(pg_dir, f'CREATE DATABASE "{BENCH_DATABASE}"')
    seeded = time.perf_counter()
    subprocess.run(
        [sys.executable, __file__, "--setup", str(args.videos)],
        check=True,
        cwd=REPO_ROOT,
        env={**os.environ, "DATABASE_URL": _socket_url(pg_dir), "DJANGO_SETTINGS_MODULE": "cvsa_ml.settings"},
    )
    print(f"Migrated and seeded {args.videos} videos in {time.perf_counter() - seeded:.1f} s (direct socket)")

    proxy = LatencyProxy(str(pg_dir / ".s.PGSQL.5432"), args.db_latency)
    from tests.support.openai_embedding_server import OpenAIEmbeddingServer

    server = OpenAIEmbeddingServer(dimensions=args.dimensions, latency_seconds=args.api_latency, api_key=None).start()
    workdir = Path(tempfile.mkdtemp(prefix="cvsa-bench-"))
    registry = workdir / "embedding_models.toml"
    registry.write_text(
        f'model = "{MODEL_KEY}"\n\n[models.{MODEL_KEY}]\nname = "bench-embedding"\n'
        f"dimensions = {args.dimensions}\ntype = \"openai-compatible\"\napi_endpoint = \"{server.base_url}\"\n"
        f"max_tokens = 8192\nmax_batch_size = {args.batch_size}\nconcurrency = {args.concurrency}\n"
        f"max_retries = 2\ntimeout_seconds = 30\n",
        encoding="utf-8",
    )
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:{proxy.port}/{BENCH_DATABASE}"
    os.environ["CVSA_EMBEDDING_MODELS_FILE"] = str(registry)
    os.environ["DJANGO_SETTINGS_MODULE"] = "cvsa_ml.settings"
    os.environ.setdefault("LOG_LEVEL", "WARNING")

    import django

    django.setup()
    import logging

    logging.getLogger("httpx2").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    from django.db import connection

    from datasets import services
    from labeling.models import Video

    aids = list(Video.objects.order_by("aid").values_list("aid", flat=True))
    started = time.perf_counter()
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    ping = (time.perf_counter() - started)
    print(
        f"Database via proxy 127.0.0.1:{proxy.port} (+{args.db_latency * 1000:.0f} ms per round trip; "
        f"connect + SELECT 1 took {ping:.2f} s); embedding server +{args.api_latency * 1000:.0f} ms per request, "
        f"{args.dimensions} dims, batch {args.batch_size}, {args.concurrency} in flight; "
        f"chunk {services.EMBED_CHUNK_TEXTS} texts"
    )

    cold = _measure("cold", aids, proxy, server, args)
    _print(cold, args)
    warm = _measure("warm", aids, proxy, server, args)
    _print(warm, args)

    from datasets.selectors import dataset_version_arrays

    trips = proxy.round_trips
    started = time.perf_counter()
    arrays = dataset_version_arrays(warm["version_id"])
    print(
        f"read  arrays: {time.perf_counter() - started:6.2f} s for X {arrays.X.shape} float32 "
        f"({arrays.X.nbytes / 2**20:.0f} MiB), proxy round trips {proxy.round_trips - trips}"
    )
    server.stop()
    proxy.close()
    connection.close()


if __name__ == "__main__":
    main()
