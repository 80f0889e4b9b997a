"""The labeling queue, answer request and review page at archive scale: p50/p95 server
time and query counts, for a labeler with a long history and a new one.

Run: .venv/bin/python bench/labeling.py [--videos 1000000] [--repeat 40]
Uses its own database (cvsa_bench_labeling) on the embedded server; the dev data is untouched.

The corpus: ``--videos`` videos and about 3 labels per video, COPY'd in one statement
(so the vote-count triggers of labeling/migrations/0010 see one 3M-row import): a veteran
labeled the first 60% of the videos in aid order (the head of every queue), seven
others between 0 and 7 labels per video, so every queue has work left for both.
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import sys
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_database import setup_django, videos_copy  # noqa: E402

BENCH_DATABASE = "cvsa_bench_labeling"
OTHER_LABELERS = 7
# Others' labels per video: on the veteran's videos, then on the rest.
VETERAN_SHARE = 0.6
OTHERS_ON_VETERAN_VIDEOS = [0, 1, 1, 2, 2]
OTHERS_ON_REST = [0, 1, 2, 5, 5, 5, 6, 6, 7, 7]


@contextmanager
def measured(samples: dict, name: str):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        yield
        elapsed = time.perf_counter() - started
    seconds, counts = samples.setdefault(name, ([], []))
    seconds.append(elapsed)
    counts.append(len(queries))


def _load_corpus(videos: int, seed: int) -> tuple[int, float]:
    from django.contrib.auth import get_user_model
    from django.db import connection

    rng = random.Random(seed)
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE labeling_labelreservation, labeling_labelpass, labeling_review, labeling_label, "
                       "labeling_video RESTART IDENTITY CASCADE")
    users = [get_user_model().objects.get_or_create(username=f"bench-labeler-{n}")[0] for n in range(OTHER_LABELERS + 1)]
    veteran, others = users[0], users[1:]
    label_rows = io.StringIO()
    labels = 0
    veteran_videos = int(videos * VETERAN_SHARE)
    # Spread over the past year: today's and this week's counters read their own range only.
    today = datetime.now(UTC)
    past_days = [(today - timedelta(days=day)).isoformat() for day in range(8, 365)]
    for video_id in range(1, videos + 1):
        truth = rng.random() < 0.3
        voters = rng.sample(others, rng.choice(OTHERS_ON_VETERAN_VIDEOS if video_id <= veteran_videos else OTHERS_ON_REST))
        if video_id <= veteran_videos:
            voters.append(veteran)
        for user in voters:
            value = truth if rng.random() < 0.9 else not truth
            label_rows.write(f"{video_id}\t{user.pk}\t{'t' if value else 'f'}\thuman\t{rng.choice(past_days)}\t\\N\n")
            labels += 1
    with connection.cursor() as cursor:
        videos_copy(cursor, ((f"视频 {n}", "", "") for n in range(1, videos + 1)))
        started = time.perf_counter()
        with cursor.copy("COPY labeling_label (video_id, user_id, value, source, created_at, retracted_at) FROM STDIN") as copy:
            copy.write(label_rows.getvalue())
        label_copy_seconds = time.perf_counter() - started
        cursor.execute("VACUUM ANALYZE labeling_video")
        cursor.execute("VACUUM ANALYZE labeling_label")
        cursor.execute("VACUUM ANALYZE labeling_videolabelstats")
    return labels, label_copy_seconds


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--videos", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-agreement", action="store_true", help="leave out the agreement summary")
    args = parser.parse_args()
    setup_django(BENCH_DATABASE)

    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.paginator import Paginator

    from labeling import agreement, selectors, services
    from labeling.models import LabelReservation
    from labeling.queue import queue_next_videos, reservation_release

    started = time.perf_counter()
    labels, label_copy_seconds = _load_corpus(args.videos, args.seed)
    print(f"loaded {args.videos:,} videos and {labels:,} labels in {time.perf_counter() - started:.1f} s "
          f"(the labels' COPY with its vote-count triggers: {label_copy_seconds:.1f} s); overlap target "
          f"{settings.CVSA_LABELING_OVERLAP}")

    labelers = Group.objects.get_or_create(name="labelers")[0]

    def labeler(username: str):
        user = get_user_model().objects.get_or_create(username=username)[0]
        user.groups.add(labelers)
        return user

    veteran = labeler("bench-labeler-0")
    samples: dict = {}
    for mode in ("unlabeled", "low_agreement", "random"):
        for who in ("veteran", "new"):
            for n in range(args.repeat):
                user = veteran if who == "veteran" else labeler(f"new-{mode}-{n}-{time.time()}")
                with measured(samples, f"next video: {mode}, {who} labeler"):
                    served = queue_next_videos(user=user, mode=mode)
                assert served, f"{mode} queue empty for {who}"
                reservation_release(user=user)
    for who in ("veteran", "new"):
        user = veteran if who == "veteran" else labeler(f"new-answers-{time.time()}")
        card = queue_next_videos(user=user, mode="unlabeled")[0]
        for _ in range(args.repeat):
            with measured(samples, f"answer request (label + progress + next card), {who}"):
                services.label_create(video=card, user=user, value=True)
                selectors.labeling_progress(user=user)
                card = queue_next_videos(user=user, mode="unlabeled")[0]
    for _ in range(max(args.repeat // 4, 3)):
        with measured(samples, "review queue: first page of 50 (+ their labels)"):
            page = list(selectors.review_queue()[:50])
            selectors.effective_labels_by_video(video.pk for video in page)
        with measured(samples, "review queue: conflicts only, first page"):
            list(selectors.review_queue(show="conflicts")[:50])
        with measured(samples, "review queue counts"):
            counts = selectors.review_queue_counts()
    if not args.skip_agreement:
        with measured(samples, "agreement summary (Cohen per pair + Fleiss)"):
            agreement.agreement_summary()
        pair = agreement.pair_agreement_tables()[-1]  # two occasional labelers: few common videos
        for _ in range(max(args.repeat // 4, 3)):
            with measured(samples, "agreement: one labeler (consensus + κ per peer), veteran"):
                agreement.labeler_agreement(veteran.pk)
            with measured(samples, "agreement: pair disagreements, veteran + other, page 1 + count"):
                list(Paginator(agreement.pair_disagreements(veteran.pk, pair.user_b_id), 50).get_page(1).object_list)
            with measured(samples, "agreement: pair disagreements, two others, page 1 + count"):
                list(Paginator(agreement.pair_disagreements(pair.user_a_id, pair.user_b_id), 50)
                     .get_page(1).object_list)
    LabelReservation.objects.all().delete()

    print(f"{counts['conflicts']:,} open conflicts\n")
    print(f"{'flow':62} {'p50 ms':>8} {'p95 ms':>8} {'queries':>8} {'n':>4}")
    for name, (seconds, queries) in samples.items():
        query_counts = f"{min(queries)}" if min(queries) == max(queries) else f"{min(queries)}-{max(queries)}"
        print(f"{name:62} {statistics.median(seconds) * 1000:8.1f} {_percentile(seconds, 0.95) * 1000:8.1f} "
              f"{query_counts:>8} {len(seconds):4d}")


if __name__ == "__main__":
    main()
