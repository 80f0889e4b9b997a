"""``manage.py predict``: score videos with a registered model from the command line,
or start a batch scoring job and follow its progress.

    manage.py predict --aids 170001,170002 [--model NAME | --version ID]
    manage.py predict --title "..." [--description "..."] [--tags "a,b"]
    manage.py predict --score-all [--only-unscored] [--search WORDS] [--no-wait]

The production version of ``--model`` (default: the only model with a production
version) scores, or ``--version`` (any stage). Validation is the API's (the scoring
services): bad input is one ``CommandError`` and nothing is written. A scoring job
goes to the ``training`` queue (a worker runs it); the command follows its progress
until it ends, or returns at once with ``--no-wait``.
"""

from __future__ import annotations

import time

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from core.validation import validation_error_message
from datasets.embedding_providers import EmbeddingProviderError
from training import services
from training.models import ACTIVE_JOB_STATUSES, JobStatus, ScoringJob
from training.prediction_cache import prediction_cache
from training.served_models import WeightsFileError

#: How often the command reads the job while a worker scores.
POLL_SECONDS = 1.0
INTERRUPTED_STATUS = 130


def _wait_for_the_worker() -> None:
    time.sleep(POLL_SECONDS)


def _aids(raw: str) -> list[int]:
    try:
        return [int(part) for part in raw.replace(" ", "").split(",") if part]
    except ValueError:
        raise CommandError(f"--aids: comma separated video aids, got {raw!r}") from None


class Command(BaseCommand):
    help = "Score videos (by aid, or a raw title/description/tags) with a model version, or start a batch scoring job."

    def create_parser(self, prog_name, subcommand, **kwargs):
        # ``--version`` names a model version here, not Django's version (which it replaces).
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser):
        what = parser.add_argument_group("what to score (one of)")
        what.add_argument("--aids", help="comma separated aids of archived videos")
        what.add_argument("--title", help="a raw video's title (with --description and --tags)")
        what.add_argument("--description", default="")
        what.add_argument("--tags", default="", help="comma separated")
        what.add_argument("--score-all", action="store_true",
                          help="start a batch scoring job over all videos (stored as predictions, never labels)")
        parser.add_argument("--model", help="a registered model's name (default: the only one in production)")
        parser.add_argument("--version", type=int, help="a model version id (any stage) instead of the production one")
        parser.add_argument("--only-unscored", action="store_true", help="--score-all: only videos not yet scored")
        parser.add_argument("--search", default="", help="--score-all: only videos whose title contains this")
        parser.add_argument("--no-wait", action="store_true", help="--score-all: queue the job and return")

    def handle(self, *args, **options):
        chosen = [name for name in ("aids", "title") if options[name]] + (["score-all"] if options["score_all"] else [])
        if len(chosen) != 1:
            raise CommandError("give exactly one of --aids, --title or --score-all")
        try:
            served = (prediction_cache.served(options["version"]) if options["version"] is not None
                      else prediction_cache.production(options["model"]))
            if options["model"] and served.model_name != options["model"]:
                raise CommandError(f"version {served.version_id} belongs to model {served.model_name!r}, "
                                   f"not {options['model']!r}")
            if options["score_all"]:
                return self._score_all(served, options)
            if options["aids"]:
                scored = services.predict_aids(served, _aids(options["aids"]))
            else:
                scored = services.predict_items(served, [{"title": options["title"], "description":
                                                          options["description"], "tags": options["tags"]}])
        except ValidationError as error:
            raise CommandError(validation_error_message(error, with_fields=True)) from None
        except (WeightsFileError, EmbeddingProviderError) as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"model {served.model_name} version {served.number} (id {served.version_id}), "
                          f"threshold {served.threshold:.4f}")
        for row in scored:
            name = f"av{row.aid}" if row.aid is not None else "item"
            self.stdout.write(f"{name}\t{row.probability:.6f}\t{'yes' if row.label else 'no'}")

    def _score_all(self, served, options) -> None:
        video_filter = {"only_unscored": options["only_unscored"], "search": options["search"]}
        job = services.scoring_job_create(version_id=served.version_id, video_filter=video_filter)
        self.stdout.write(f"queued scoring job {job.pk}: model {served.model_name} version {served.number}")
        if options["no_wait"]:
            return
        try:
            job = self._follow(job.pk)
        except KeyboardInterrupt:
            self.stderr.write(f"stopped following; job {job.pk} goes on (cancel: POST /api/v1/scoring-jobs/"
                              f"{job.pk}/cancel)")
            raise SystemExit(INTERRUPTED_STATUS) from None
        if job.status != JobStatus.SUCCEEDED:
            raise CommandError(f"scoring job {job.pk} {job.status}: {job.error or job.message}")
        self.stdout.write(self.style.SUCCESS(f"scoring job {job.pk} succeeded: {job.message}"))

    def _follow(self, job_id: int) -> ScoringJob:
        shown = None
        while True:
            job = ScoringJob.objects.get(pk=job_id)
            line = f"{job.status}: {job.done}/{job.total} {job.message}"
            if line != shown:
                self.stdout.write(line)
                shown = line
            if job.status not in ACTIVE_JOB_STATUSES:
                return job
            _wait_for_the_worker()
