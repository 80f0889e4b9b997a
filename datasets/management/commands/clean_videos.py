"""Preview or run a cleaning rule: ``manage.py clean_videos --rule short_title --param min_length=3 [--dry-run]``.

``--param`` repeats; list parameters take comma-separated values (``--param words=广告,加群``).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from datasets.cleaning_rules import RULES
from datasets.services.cleaning import cleaning_preview, cleaning_run


def _param(text: str) -> tuple[str, str]:
    name, separator, value = text.partition("=")
    if not separator or not name.strip():
        raise CommandError(f"--param takes name=value, got {text!r}")
    return name.strip(), value


class Command(BaseCommand):
    help = "Preview (--dry-run) or run a cleaning rule: exclusions that dataset builds respect."

    def add_arguments(self, parser):
        parser.add_argument("--rule", required=True, choices=list(RULES))
        parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
        parser.add_argument("--dry-run", action="store_true", help="only preview: count and the first examples")

    def handle(self, *args, rule, param, dry_run, **options):
        params = dict(_param(text) for text in param)
        try:
            if dry_run:
                preview = cleaning_preview(rule, params)
            else:
                task = cleaning_run(rule, params)
        except ValidationError as error:
            raise CommandError("; ".join(f"{key}: {' '.join(messages)}" for key, messages in
                                         getattr(error, "message_dict", {"error": error.messages}).items())) from None
        if dry_run:
            self.stdout.write(f"{rule}: {preview.would_exclude} video(s) would be excluded "
                              f"({preview.matched} match, {preview.already_excluded} already excluded)")
            for match in preview.examples:
                self.stdout.write(f"  av{match.aid}  {match.reason}")
            return
        self.stdout.write(f"{task.message} (task {task.pk})")
