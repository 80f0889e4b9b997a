import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from labeling.import_files import count_lines
from labeling.video_import import FORMATS, ImportFileError, format_errors, import_videos, resolve_format


class Command(BaseCommand):
    help = (
        "Import (upsert by aid) Bilibili videos from a JSONL, CSV or JSON file. Bad rows are reported "
        "with their line numbers and skipped; the command fails only when the file cannot be read at all."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="path to a .jsonl, .csv or .json file")
        parser.add_argument("--format", choices=FORMATS, help="override the format guessed from the extension")
        parser.add_argument("--chunk-size", type=int, default=1000, help="rows per database write (default 1000)")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, file, format, chunk_size, no_progress, verbosity, **options):
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
            total=total if resolved != "json" else None,
            unit="rows",
            desc="Importing",
            file=getattr(self.stderr, "_out", sys.stderr),
            disable=no_progress or verbosity == 0,
            dynamic_ncols=True,
        )

        def progress(rows_done: int) -> None:
            bar.update(rows_done - bar.n)

        try:
            with stream:
                result = import_videos(source=stream, format=resolved, chunk_size=chunk_size, progress=progress)
        except ImportFileError as error:
            raise CommandError(f"{file}: {error}") from error
        except OSError as error:
            raise CommandError(f"cannot read {file}: {error.strerror or error}") from error
        finally:
            if bar.total is not None and bar.n < bar.total:
                bar.total = bar.n  # CSV records spanning lines, trailing blank lines
            bar.close()

        for message in format_errors(result.errors):
            self.stdout.write(self.style.WARNING(message))
        if result.errors_omitted:
            self.stdout.write(self.style.WARNING(f"... and {result.errors_omitted} more rejected rows not shown"))
        style = self.style.SUCCESS if not result.rejected else self.style.WARNING
        self.stdout.write(style(result.summary()))
