"""Agreement pages at scale: the summary (Cohen per pair + Fleiss + counters), one
labeler's agreement, a pair's first page of disagreements — seconds and queries.

Run: .venv/bin/python bench/agreement.py [--videos 100000] [--labelers 3]
Every labeler labels every video (``--videos`` × ``--labelers`` labels; 1M × 3 is the
issue's target). Uses its own database (cvsa_bench_agreement); the dev data is untouched.

At 1M videos × 3 labelers (2 shared cores), before → after the trigger-kept pair tables
(migration 0011): summary 3.1 s → 0.54 s (4 queries; Cohen per pair 2.8 s → 1 ms, the rest
is the corpus counters 0.40 s and Fleiss 0.15 s), one labeler 4.1 s → 2 ms (2 queries), a
pair's first page of disagreements 3.7 s → 6 ms (2 queries).
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_database import setup_django, videos_copy  # noqa: E402

BENCH_DATABASE = "cvsa_bench_agreement"


@contextmanager
def measured(name: str, results: list):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        yield
        elapsed = time.perf_counter() - started
    results.append((name, elapsed, len(queries)))


def load_corpus(videos: int, labelers: int, seed: int) -> list:
    """``videos`` videos, each labeled by every one of ``labelers`` users (90 % agree with
    a hidden truth), by COPY. Returns the users."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    rng = random.Random(seed)
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE labeling_review, labeling_label, labeling_video RESTART IDENTITY CASCADE")
    users = [get_user_model().objects.get_or_create(username=f"bench-labeler-{n}")[0] for n in range(labelers)]
    label_rows = io.StringIO()
    for video_id in range(1, videos + 1):
        truth = rng.random() < 0.3
        for user in users:
            value = truth if rng.random() < 0.9 else not truth
            label_rows.write(f"{video_id}\t{user.pk}\t{'t' if value else 'f'}\thuman\tnow\t\\N\n")
    with connection.cursor() as cursor:
        videos_copy(cursor, ((f"视频 {n}", "", "") for n in range(1, videos + 1)))
        with cursor.copy("COPY labeling_label (video_id, user_id, value, source, created_at, retracted_at) FROM STDIN") as copy:
            copy.write(label_rows.getvalue())
        cursor.execute("ANALYZE")
    return users


def measure_agreement(users) -> list[tuple[str, float, int]]:
    """What H4's bench/labeling.py can call too: ``(name, seconds, queries)`` rows."""
    from django.core.paginator import Paginator

    from labeling import agreement

    results: list = []
    with measured("agreement summary (counters + Cohen per pair + Fleiss)", results):
        agreement.agreement_summary()
    with measured("agreement: counters only", results):
        agreement.corpus_counts()
    with measured("agreement: Cohen per pair only", results):
        agreement.pair_agreement_tables()
    with measured("agreement: Fleiss only", results):
        agreement.overall_fleiss()
    with measured("one labeler (consensus agreement + κ per peer)", results):
        agreement.labeler_agreement(users[0].pk)
    with measured("pair disagreements: first page of 50 + count", results):
        page = Paginator(agreement.pair_disagreements(users[0].pk, users[1].pk), 50).get_page(1)
        list(page.object_list)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--videos", type=int, default=100_000)
    parser.add_argument("--labelers", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    setup_django(BENCH_DATABASE)

    started = time.perf_counter()
    users = load_corpus(args.videos, args.labelers, args.seed)
    print(f"loaded {args.videos:,} videos × {args.labelers} labelers in {time.perf_counter() - started:.1f} s")
    measure_agreement(users)  # warm the cache
    for name, seconds, queries in measure_agreement(users):
        print(f"{name:58s} {seconds * 1000:9.1f} ms  {queries} queries")


if __name__ == "__main__":
    main()
