"""``manage.py augment_dataset <version-id>``: augment a ready version's train split in this
process (a progress bar), through the same task row and lifecycle as the page and the API."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from core.validation import validation_error_message
from datasets.augmentation import DEFAULT_COPIES, DEFAULT_NOISE_RATE
from datasets.models import AugmentationKind, DatasetTaskStatus, DatasetVersion
from datasets.services.augmentation import augmentation_queue


class Command(BaseCommand):
    help = ("Write augmented copies of a ready dataset version's train members (embedded with the version's "
            "model), synchronously with a progress bar. Val and test are never augmented.")

    def add_arguments(self, parser):
        parser.add_argument("version_id", help="the dataset version's id (UUID)")
        parser.add_argument("--kinds", default=",".join(AugmentationKind.values),
                            help=f"comma separated kinds (default: all): {', '.join(AugmentationKind.values)}")
        parser.add_argument("--copies", type=int, default=DEFAULT_COPIES,
                            help=f"character-noise copies per video, 1-5 (default {DEFAULT_COPIES})")
        parser.add_argument("--noise-rate", type=float, default=DEFAULT_NOISE_RATE,
                            help=f"share of characters edited, 0.01-0.3 (default {DEFAULT_NOISE_RATE})")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, **options):
        from datasets.services.curation_jobs import curation_task_run

        params = {"kinds": [kind.strip() for kind in options["kinds"].split(",") if kind.strip()],
                  "copies": options["copies"], "noise_rate": options["noise_rate"], "seed": options["seed"]}
        try:
            task = augmentation_queue(version_id=options["version_id"], params=params, enqueue=False)
        except DatasetVersion.DoesNotExist:
            raise CommandError(f"no dataset version {options['version_id']}") from None
        except ValidationError as error:
            raise CommandError(validation_error_message(error)) from None
        task = self._run_with_progress_bar(curation_task_run, task.pk)
        if task.status != DatasetTaskStatus.COMPLETED:
            raise CommandError(f"Augmentation {task.pk} {task.status}: {task.error}")
        result = task.result or {}
        by_kind = ", ".join(f"{kind} {count}" for kind, count in result.get("by_kind", {}).items())
        self.stdout.write(self.style.SUCCESS(
            f"Augmented dataset version {options['version_id']} (task {task.pk}): {result.get('rows', 0)} rows "
            f"from {result.get('train_members', 0)} train members ({by_kind}); "
            f"{result.get('new_embeddings', 0)} new / {result.get('reused_embeddings', 0)} reused embeddings"
        ))

    def _run_with_progress_bar(self, run, task_id):
        from tqdm import tqdm

        bar = tqdm(total=100, unit="%", file=self.stderr._out, bar_format="{l_bar}{bar}| {n:.0f}% {postfix}")

        def on_progress(snapshot: dict) -> None:
            bar.set_description(snapshot["current_step"])
            bar.n = snapshot["percentage"]
            bar.set_postfix_str(f"{snapshot['done']}/{snapshot['total']}" if snapshot["total"] else "",
                                refresh=False)
            bar.refresh()

        try:
            return run(task_id, on_progress=on_progress)
        finally:
            bar.close()
