import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from labeling.import_files import count_lines, format_errors
from labeling.label_import import DEFAULT_CHUNK_SIZE, FORMATS, ImportFileError, import_labels, resolve_format


class Command(BaseCommand):
    help = (
        "Import labels from the old system (aid, user, label, created_at) from a JSONL or CSV file, as votes "
        "with source 'import'. Re-importing a file adds nothing twice. Bad rows are reported with their line "
        "numbers and skipped (--atomic: nothing is written when any row is bad)."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="path to a .jsonl or .csv file")
        parser.add_argument("--format", choices=FORMATS, help="override the format guessed from the extension")
        parser.add_argument("--dry-run", action="store_true", help="validate and count, write nothing")
        parser.add_argument(
            "--atomic", action="store_true", help="all or nothing: write nothing when any row is rejected"
        )
        parser.add_argument(
            "--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE,
            help=f"rows per database write (default {DEFAULT_CHUNK_SIZE})",
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, file, format, dry_run, atomic, chunk_size, no_progress, verbosity, **options):
        if chunk_size < 1:
            raise CommandError("--chunk-size must be at least 1")
        try:
            resolved = resolve_format(format=format, filename=file)
            total = count_lines(file) - (resolved == "csv")
            stream = open(file, "rb")
        except ImportFileError as error:
            raise CommandError(str(error)) from error
        except OSError as error:
            raise CommandError(f"cannot read {file}: {error.strerror or error}") from error

        bar = tqdm(
            total=total,
            unit="rows",
            desc="Importing labels",
            file=getattr(self.stderr, "_out", sys.stderr),
            disable=no_progress or verbosity == 0,
            dynamic_ncols=True,
        )

        def progress(rows_done: int) -> None:
            bar.update(rows_done - bar.n)

        try:
            with stream:
                result = import_labels(
                    source=stream, format=resolved, atomic=atomic, dry_run=dry_run, chunk_size=chunk_size,
                    progress=progress,
                )
        except ImportFileError as error:
            raise CommandError(f"{file}: {error}") from error
        except OSError as error:
            raise CommandError(f"cannot read {file}: {error.strerror or error}") from error
        finally:
            if bar.n < bar.total:
                bar.total = bar.n  # blank lines, CSV records spanning lines
            bar.close()

        for message in format_errors(result.errors):
            self.stdout.write(self.style.WARNING(message))
        if result.errors_omitted:
            self.stdout.write(self.style.WARNING(f"... and {result.errors_omitted} more rejected rows not shown"))
        if atomic and result.rejected and not dry_run:
            raise CommandError(result.summary())
        style = self.style.SUCCESS if not result.rejected else self.style.WARNING
        self.stdout.write(style(result.summary()))
