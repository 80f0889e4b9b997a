"""Find exact and near duplicates now, in this process:
``manage.py find_duplicates --kinds exact,near --model KEY --threshold 0.05 [--neighbours 10]``.

Writes a completed ``deduplication`` task with its groups (decide on the duplicates page
or the API); the same runner the curation job runs, with a progress bar."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from datasets.services.duplicates import deduplication_task_run_now


class _BarProgress:
    """The runner's progress on a tqdm bar: one bar per step."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.bar = None

    def step(self, name: str, *, total: int = 0, message: str = "", **kwargs) -> None:
        from tqdm import tqdm

        self.close()
        self.bar = tqdm(total=total or None, desc=name, file=self.stream, unit="")
        if message:
            self.bar.set_postfix_str(message, refresh=True)

    def advance(self, done: int, *, message: str | None = None) -> None:
        if self.bar is not None:
            self.bar.n = done
            self.bar.refresh()

    def heartbeat(self) -> None:
        pass

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class Command(BaseCommand):
    help = "Find exact (same composed text) and near (embedding cosine distance) duplicate videos."

    def add_arguments(self, parser):
        parser.add_argument("--kinds", default="exact,near", help="exact, near or exact,near")
        parser.add_argument("--model", help="embedding model key (near duplicates)")
        parser.add_argument("--threshold", type=float, help="cosine distance cut, 0 < t <= 0.5 (default 0.05)")
        parser.add_argument("--neighbours", type=int, help="nearest neighbours per text (default 10)")

    def handle(self, *args, kinds, model, threshold, neighbours, **options):
        params = {"kinds": kinds, "embedding_model": model}
        if threshold is not None:
            params["threshold"] = threshold
        if neighbours is not None:
            params["neighbours"] = neighbours
        progress = _BarProgress(self.stderr._out)
        try:
            task = deduplication_task_run_now(params, progress=progress)
        except ValidationError as error:
            raise CommandError("; ".join(f"{key}: {' '.join(messages)}" for key, messages in
                                         getattr(error, "message_dict", {"error": error.messages}).items())) from None
        finally:
            progress.close()
        self.stdout.write(f"{task.message} (task {task.pk})")
        seconds = task.result.get("seconds", {})
        self.stdout.write("seconds: " + ", ".join(f"{step} {value:.1f}" for step, value in seconds.items()))
