from django.core.management.base import CommandError

from labeling.label_import import DEFAULT_CHUNK_SIZE, FORMATS, import_labels, resolve_format
from labeling.management.import_command import FileImportCommand


class Command(FileImportCommand):
    help = (
        "Import labels from the old system (aid, user, label, created_at) from a JSONL or CSV file, as votes "
        "with source 'import'. Re-importing a file adds nothing twice. Bad rows are reported with their line "
        "numbers and skipped (--atomic: nothing is written when any row is bad)."
    )
    formats = FORMATS
    progress_label = "Importing labels"

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--dry-run", action="store_true", help="validate and count, write nothing")
        parser.add_argument(
            "--atomic", action="store_true", help="all or nothing: write nothing when any row is rejected"
        )
        parser.add_argument(
            "--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE,
            help=f"rows per database write (default {DEFAULT_CHUNK_SIZE})",
        )

    def resolve_format(self, *, format, filename):
        return resolve_format(format=format, filename=filename)

    def run_import(self, stream, resolved, progress, options):
        return import_labels(
            source=stream, format=resolved, atomic=options["atomic"], dry_run=options["dry_run"],
            chunk_size=options["chunk_size"], progress=progress,
        )

    def check_result(self, result, options):
        if options["atomic"] and result.rejected and not options["dry_run"]:
            raise CommandError(result.summary())
