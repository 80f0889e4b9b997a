import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from labeling.demo_data import DEFAULT_SEED, DEFAULT_VIDEO_COUNT, load_demo_data
from labeling.video_import import format_errors


class Command(BaseCommand):
    help = (
        "Load a deterministic demo corpus of Bilibili-like videos (upsert by aid) and, once, demo labels by "
        "labeler1..4 and reviews by reviewer1. New demo users get random passwords, printed only here."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--videos", type=int, default=DEFAULT_VIDEO_COUNT, help=f"how many videos (default {DEFAULT_VIDEO_COUNT})"
        )
        parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})")
        parser.add_argument("--if-empty", action="store_true", help="do nothing when any video exists already")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, videos, seed, if_empty, no_progress, verbosity, **options):
        if videos < 0:
            raise CommandError("--videos must be ≥ 0")
        bar = tqdm(
            total=videos,
            unit="videos",
            desc="Demo videos",
            file=getattr(self.stderr, "_out", sys.stderr),
            disable=no_progress or verbosity == 0 or if_empty,
            dynamic_ncols=True,
        )
        try:
            result = load_demo_data(
                videos=videos, seed=seed, if_empty=if_empty, progress=lambda done: bar.update(done - bar.n)
            )
        finally:
            bar.close()
        if result.skipped:
            self.stdout.write("Videos already exist: demo data not loaded.")
            return
        imported = result.videos
        for message in format_errors(imported.errors):
            self.stdout.write(self.style.WARNING(message))
        self.stdout.write(f"Demo videos (seed {seed}): {imported.summary()}")
        if result.labels_skipped:
            self.stdout.write("Demo labels: the demo users have labels already, none added.")
        else:
            self.stdout.write(
                f"Demo labels: {result.labels_created} labels on {result.labeled_videos} videos, "
                f"{result.reviews_created} reviews."
            )
        self.stdout.write(f"Videos with unresolved disagreement (review queue): {result.inconsistent_videos}")
        if result.new_users:
            self.stdout.write(self.style.SUCCESS("New demo users (passwords are shown only now and not saved):"))
            for username, password in result.new_users:
                self.stdout.write(self.style.SUCCESS(f"  {username} / {password}"))
