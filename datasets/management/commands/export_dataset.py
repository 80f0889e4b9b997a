"""``manage.py export_dataset VERSION_ID --format parquet|npz --output PATH``."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from datasets import services
from datasets.models import DatasetVersion


class Command(BaseCommand):
    help = "Export a ready dataset version: Parquet (aid, label, split, title, text_checksum, vector) or NPZ (X, y, aid, split)."

    def add_arguments(self, parser):
        parser.add_argument("version_id", help="dataset version id (the ML panel's dataset_id)")
        parser.add_argument("--format", choices=services.EXPORT_FORMATS, default="parquet")
        parser.add_argument("--output", required=True, help="file to write")

    def handle(self, *args, version_id, format, output, **options):
        try:
            path = services.dataset_version_export(version_id, format=format, path=output)
        except DatasetVersion.DoesNotExist:
            raise CommandError(f"dataset version {version_id} not found") from None
        except ValidationError as error:
            raise CommandError(services.validation_error_message(error)) from None
        self.stdout.write(self.style.SUCCESS(f"Wrote {path} ({path.stat().st_size} bytes)"))
