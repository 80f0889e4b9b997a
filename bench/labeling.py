"""Consensus + inconsistency over 100k videos × 3 labelers: seconds and queries.

Run: .venv/bin/python bench/labeling.py [--videos 100000]
Uses its own database (cvsa_bench_labeling) on the embedded server; the dev data is untouched.
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

from bench.bench_database import setup_django  # noqa: E402

BENCH_DATABASE = "cvsa_bench_labeling"


@contextmanager
def measured(name: str, results: list):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        yield
        elapsed = time.perf_counter() - started
    results.append((name, elapsed, len(queries)))


def _load_corpus(videos: int, labelers: int, seed: int) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection

    rng = random.Random(seed)
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE labeling_review, labeling_label, labeling_video RESTART IDENTITY CASCADE")
    users = [get_user_model().objects.get_or_create(username=f"bench-labeler-{n}")[0] for n in range(labelers)]
    video_rows = io.StringIO()
    for n in range(1, videos + 1):
        video_rows.write(f"{n}\t{100_000_000 + n}\t\t视频 {n}\t\t\t\\N\t\t\\N\t\\N\t\t{{}}\tnow\tnow\n")
    label_rows = io.StringIO()
    for video_id in range(1, videos + 1):
        truth = rng.random() < 0.3
        for user in users:
            value = truth if rng.random() < 0.9 else not truth
            label_rows.write(f"{video_id}\t{user.pk}\t{'t' if value else 'f'}\thuman\tnow\t\\N\n")
    with connection.cursor() as cursor:
        with cursor.copy(
            "COPY labeling_video (id, aid, bvid, title, description, tags, uploader_mid, uploader_name, "
            "published_at, duration, cover_url, raw, created_at, updated_at) FROM STDIN"
        ) as copy:
            copy.write(video_rows.getvalue())
        with cursor.copy("COPY labeling_label (video_id, user_id, value, source, created_at, retracted_at) FROM STDIN") as copy:
            copy.write(label_rows.getvalue())
        cursor.execute("SELECT setval('labeling_video_id_seq', %s)", [videos])
        cursor.execute("ANALYZE labeling_video; ANALYZE labeling_label")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--videos", type=int, default=100_000)
    parser.add_argument("--labelers", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    setup_django(BENCH_DATABASE)

    from django.contrib.auth import get_user_model

    from labeling import agreement, selectors
    from labeling.models import VideoConsensus

    started = time.perf_counter()
    _load_corpus(args.videos, args.labelers, args.seed)
    print(f"loaded {args.videos:,} videos × {args.labelers} labelers in {time.perf_counter() - started:.1f} s (COPY)")

    results: list = []
    with measured("consensus of every video (all rows fetched)", results):
        rows = list(VideoConsensus.objects.values_list("video_id", "value", "is_inconsistent"))
    with measured("count inconsistent videos", results):
        inconsistent = VideoConsensus.objects.filter(is_inconsistent=True).count()
    with measured("review queue: first page of 50", results):
        page = list(selectors.inconsistent_videos()[:50])
        selectors.effective_labels_by_video(video.pk for video in page)
    with measured("consensus for 10,000 aids", results):
        selectors.consensus_by_aid(range(100_000_001, 100_010_001))
    with measured("one video's consensus", results):
        VideoConsensus.objects.get(video_id=args.videos // 2)
    user = get_user_model().objects.get(username="bench-labeler-0")
    with measured("labeling queue: next unlabeled (low agreement)", results):
        selectors.labeling_queue_next(user=get_user_model().objects.create_user(f"fresh-{time.time()}"), mode="low_agreement")
    with measured("labeling progress counter", results):
        selectors.labeling_progress(user=user)
    with measured("agreement summary (Cohen per pair + Fleiss)", results):
        agreement.agreement_summary()

    print(f"{len(rows):,} consensus rows, {inconsistent:,} inconsistent\n")
    print(f"{'flow':50} {'seconds':>8} {'queries':>8} {'rows/s':>12}")
    for name, seconds, queries in results:
        rate = f"{len(rows) / seconds:,.0f}" if name.startswith("consensus of every") else ""
        print(f"{name:50} {seconds:8.3f} {queries:8d} {rate:>12}")


if __name__ == "__main__":
    main()
