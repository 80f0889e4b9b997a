"""``manage.py purge_experiments [--older-than-days N]``: delete for good what was
soft-deleted long enough ago."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from core.validation import validation_error_message
from experiments import services


class Command(BaseCommand):
    help = (
        "Delete for good the experiments and runs soft-deleted more than N days ago "
        "(default 30), with their params, metrics and artifact files."
    )

    def add_arguments(self, parser):
        parser.add_argument("--older-than-days", type=float, default=services.DEFAULT_PURGE_AFTER_DAYS, metavar="N",
                            help="purge what was deleted more than N days ago (default %(default)s; 0: all of it)")

    def handle(self, *args, older_than_days: float, **options):
        try:
            purged = services.experiments_purge(older_than_days)
        except ValidationError as error:
            raise CommandError(validation_error_message(error)) from None
        self.stdout.write(
            f"Purged {purged.experiments} experiment(s) and {purged.runs} run(s) deleted more than "
            f"{older_than_days:g} day(s) ago."
        )
