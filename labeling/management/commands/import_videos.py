from labeling.management.import_command import FileImportCommand
from labeling.video_import import FORMATS, import_videos, resolve_format


class Command(FileImportCommand):
    help = (
        "Import (upsert by aid) Bilibili videos from a JSONL, CSV or JSON file. Bad rows are reported "
        "with their line numbers and skipped; the command fails only when the file cannot be read at all."
    )
    formats = FORMATS
    uncounted_formats = ("json",)

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--chunk-size", type=int, default=1000, help="rows per database write (default 1000)")

    def resolve_format(self, *, format, filename):
        return resolve_format(format=format, filename=filename)

    def run_import(self, stream, resolved, progress, options):
        return import_videos(source=stream, format=resolved, chunk_size=options["chunk_size"], progress=progress)
