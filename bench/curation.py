"""Benchmark: near-duplicate search over the corpus (deduplication task, near kind).

Run: .venv/bin/python -m bench.curation [--videos 100000] [--dimensions 384] [--clusters 1000]

Uses its own database (cvsa_bench_curation) on the embedded server of ``CVSA_DATA_DIR``
(the dev data is untouched). It seeds ``--videos`` videos with distinct texts and, under
each composed text's checksum, a random unit vector (binary COPY), except that
``--clusters`` planted clusters of 2-4 videos share a centre plus small noise (cosine
distance about 0.005 between members; random 384-d vectors lie about 1.0 apart). Then
it runs the deduplication runner (``deduplication_run``, kinds near, threshold 0.05,
10 neighbours) in this process and prints:

- seconds to compose and hash the texts, to build the model's HNSW index (the
  partial expression index the app creates), to search (one LATERAL KNN statement per
  1,000 query vectors) and to write the groups;
- pairs found, planted pairs recovered (recall) and spurious pairs, groups;
- statements run, and whether the KNN statement's plan names the index (EXPLAIN);
- the load average before and after (the machine may be shared).

It is a benchmark, not a test: it prints numbers and exits 0.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_database import bench_embedding_model, embedding_rows_payload, setup_django, videos_copy  # noqa: E402

BENCH_DATABASE = "cvsa_bench_curation"
MODEL_KEY = "bench-curation"
THRESHOLD = 0.05
NEIGHBOURS = 10


def _video_text(n: int) -> tuple[str, str, str]:
    return (f"【初音ミク】bench song {n} 原创曲 PV",
            f"作词作曲：bench producer {n % 97}。这是第 {n} 个视频的简介。",
            "VOCALOID,初音ミク,原创,bench")


def _planted_vectors(videos: int, dimensions: int, clusters: int, seed: int):
    """Unit vectors, and the planted clusters as lists of row indexes (sizes 2, 3, 4, ...)."""
    import numpy as np

    generator = np.random.default_rng(seed)
    vectors = generator.standard_normal((videos, dimensions), dtype=np.float32)
    order = generator.permutation(videos)
    planted, position = [], 0
    for cluster in range(clusters):
        size = 2 + cluster % 3
        rows = order[position:position + size]
        position += size
        if position > videos:
            break
        centre = vectors[rows[0]]
        noise = generator.standard_normal((len(rows), dimensions), dtype=np.float32)
        # |noise| ~ 0.07 |centre|: about 0.0025 cosine distance to the centre.
        vectors[rows] = centre + 0.07 / np.sqrt(dimensions) * np.linalg.norm(centre) * noise
        planted.append(sorted(int(row) for row in rows))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors, planted


def _seed(videos: int, dimensions: int, clusters: int, seed: int):
    from django.db import connection, transaction

    from core import pgcopy
    from datasets.similarity_index import similarity_index_name
    from datasets.text_composition import compose_video_text, text_checksum

    vectors, planted = _planted_vectors(videos, dimensions, clusters, seed)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "TRUNCATE datasets_duplicategroupmember, datasets_duplicategroup, datasets_exclusion, "
                "datasets_datasettask, datasets_embedding, labeling_video RESTART IDENTITY CASCADE"
            )
        model = bench_embedding_model(MODEL_KEY, dimensions)
        texts = [_video_text(n) for n in range(1, videos + 1)]
        checksums = [text_checksum(compose_video_text(title=title, description=description, tags=tags))
                     for title, description, tags in texts]
        with connection.cursor() as cursor:
            cursor.execute(f"DROP INDEX IF EXISTS {similarity_index_name(model.pk)}")
            videos_copy(cursor, texts)
        pgcopy.copy_in(
            "COPY datasets_embedding (id, model_id, checksum, dimensions, vector, created_at) FROM STDIN (FORMAT BINARY)",
            embedding_rows_payload(model.pk, checksums, vectors),
        )
        with connection.cursor() as cursor:
            cursor.execute("SELECT setval('datasets_embedding_id_seq', %s)", [videos])
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE labeling_video, datasets_embedding")
    # Video ids are 1..n in the same order as the vectors' rows.
    return model, [[row + 1 for row in cluster] for cluster in planted]


class _TimedProgress:
    def __init__(self) -> None:
        self.last = time.perf_counter()

    def step(self, name: str, *, total: int = 0, message: str = "", **kwargs) -> None:
        print(f"  [{time.strftime('%H:%M:%S')}] {name}: {message}", flush=True)

    def advance(self, done: int, *, message: str | None = None) -> None:
        pass

    def heartbeat(self) -> None:
        pass


def _knn_plan_uses_index(model) -> bool:
    from django.db import connection, transaction

    from datasets.services.duplicates import _knn_sql
    from datasets.similarity_index import similarity_index_plan

    plan = similarity_index_plan(model)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + _knn_sql(plan, NEIGHBOURS), [list(range(1, 1001)), THRESHOLD])
        explained = "\n".join(row[0] for row in cursor.fetchall())
    return f"using {plan.index_name}" in explained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=100_000)
    parser.add_argument("--dimensions", type=int, default=384)
    parser.add_argument("--clusters", type=int, default=1000, help="planted near-duplicate clusters (2-4 videos)")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()

    setup_django(BENCH_DATABASE)
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    from datasets.models import DatasetTask, DatasetTaskType, DuplicateGroupMember
    from datasets.services.duplicates import deduplication_run

    load_before = os.getloadavg()
    print(f"seeding {args.videos:,} videos x {args.dimensions}-d, {args.clusters} planted clusters "
          f"(load average {load_before[0]:.2f}, {os.cpu_count()} CPUs)", flush=True)
    started = time.perf_counter()
    model, planted = _seed(args.videos, args.dimensions, args.clusters, args.seed)
    print(f"seeded in {time.perf_counter() - started:.1f}s", flush=True)

    task = DatasetTask.objects.create(type=DatasetTaskType.DEDUPLICATION, params={
        "kinds": ["near"], "embedding_model": model.key, "threshold": THRESHOLD, "neighbours": NEIGHBOURS})
    reset_queries()
    started = time.perf_counter()
    with CaptureQueriesContext(connection) as captured:
        result = deduplication_run(task, _TimedProgress())
    total = time.perf_counter() - started
    uses_index = _knn_plan_uses_index(model)

    planted_pairs = {pair for cluster in planted for pair in itertools.combinations(cluster, 2)}
    found_groups: dict[int, list[int]] = {}
    for group_id, video_id in DuplicateGroupMember.objects.filter(group__task=task).values_list("group_id", "video_id"):
        found_groups.setdefault(group_id, []).append(video_id)
    found_pairs = {pair for members in found_groups.values() for pair in itertools.combinations(sorted(members), 2)}
    recovered = len(planted_pairs & found_pairs)
    near, seconds = result["near"], result["seconds"]
    load_after = os.getloadavg()
    print()
    print(f"videos {args.videos:,}  dimensions {args.dimensions}  index {near['index']}  "
          f"(KNN plan uses the index: {uses_index})")
    print(f"compose + hash texts  {seconds['compose']:8.1f} s")
    print(f"index build           {seconds['index']:8.1f} s")
    print(f"search (KNN + groups) {seconds['search']:8.1f} s  ({near['knn_statements']} KNN statements)")
    print(f"write groups          {seconds['write']:8.1f} s")
    print(f"total                 {total:8.1f} s  ({len(captured)} statements in all)")
    print(f"pairs found {near['pairs']:,}  groups {near['groups']:,}  videos in groups {near['videos']:,}")
    print(f"planted pairs recovered {recovered:,} / {len(planted_pairs):,} "
          f"(recall {recovered / max(len(planted_pairs), 1):.4f}); pairs in groups not planted "
          f"{len(found_pairs - planted_pairs):,}")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
