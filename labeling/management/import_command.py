"""The shared shape of the file-import commands: open the file, count its rows for a
progress bar, run the import, report rejected rows with their line numbers."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, BinaryIO

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from labeling.import_files import ImportFileError, count_lines, format_errors


class FileImportCommand(BaseCommand):
    """Subclasses name their ``formats``, resolve a format and run the import
    (``run_import``); this class owns the file, the progress bar and the report."""

    formats: tuple[str, ...] = ()
    progress_label = "Importing"
    #: Formats whose rows cannot be counted by lines (a JSON array): the bar has no total.
    uncounted_formats: tuple[str, ...] = ()

    def add_arguments(self, parser):
        parser.add_argument("file", help=f"path to a {', '.join('.' + f for f in self.formats)} file")
        parser.add_argument("--format", choices=self.formats, help="override the format guessed from the extension")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def resolve_format(self, *, format: str | None, filename: str) -> str:
        raise NotImplementedError

    def run_import(self, stream: BinaryIO, resolved: str, progress: Callable[[int], None], options: dict[str, Any]):
        """Run the import; return its result (``errors``, ``errors_omitted``, ``rejected``, ``summary()``)."""
        raise NotImplementedError

    def check_result(self, result, options: dict[str, Any]) -> None:
        """Raise ``CommandError`` when the result must fail the command (after its rows are reported)."""

    def handle(self, *args, file, format, no_progress, verbosity, **options):
        if options.get("chunk_size", 1) < 1:
            raise CommandError("--chunk-size must be at least 1")
        try:
            resolved = self.resolve_format(format=format, filename=file)
            total = None if resolved in self.uncounted_formats else count_lines(file) - (resolved == "csv")
            stream = open(file, "rb")
        except ImportFileError as error:
            raise CommandError(str(error)) from error
        except OSError as error:
            raise CommandError(f"cannot read {file}: {error.strerror or error}") from error

        bar = tqdm(
            total=total, unit="rows", desc=self.progress_label, file=getattr(self.stderr, "_out", sys.stderr),
            disable=no_progress or verbosity == 0, dynamic_ncols=True,
        )

        def progress(rows_done: int) -> None:
            bar.update(rows_done - bar.n)

        try:
            with stream:
                result = self.run_import(stream, resolved, progress, options)
        except ImportFileError as error:
            raise CommandError(f"{file}: {error}") from error
        except OSError as error:
            raise CommandError(f"cannot read {file}: {error.strerror or error}") from error
        finally:
            if bar.total is not None and bar.n < bar.total:
                bar.total = bar.n  # blank lines, CSV records spanning lines
            bar.close()

        for message in format_errors(result.errors):
            self.stdout.write(self.style.WARNING(message))
        if result.errors_omitted:
            self.stdout.write(self.style.WARNING(f"... and {result.errors_omitted} more rejected rows not shown"))
        self.check_result(result, options)
        style = self.style.SUCCESS if not result.rejected else self.style.WARNING
        self.stdout.write(style(result.summary()))
