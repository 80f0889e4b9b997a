"""``manage.py build_dataset``: request a dataset version build, or resume one (--resume);
queued, or in-process with --sync."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from datasets import selectors, services
from datasets.embedding_registry import EmbeddingRegistryError
from datasets.models import DatasetTask, DatasetTaskStatus


def _read_aids(path: str) -> list[int]:
    """One aid per line (blank lines and # comments skipped), or a JSON list."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise CommandError(f"--aids-file: cannot read {path}: {error}") from None
    if text.lstrip().startswith("["):
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise CommandError(f"--aids-file: invalid JSON: {error}") from None
    else:
        values = [line.split("#", 1)[0].strip() for line in text.splitlines()]
        values = [value for value in values if value]
    aids = []
    for number, value in enumerate(values, start=1):
        try:
            aids.append(int(str(value).removeprefix("av")))
        except ValueError:
            raise CommandError(f"--aids-file: entry {number} is not an integer aid: {value!r}") from None
    return aids


def _ratios(value: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(part) for part in value.split(","))
    except ValueError:
        raise CommandError(f"--split: expected three comma separated numbers, got {value!r}") from None
    if len(parts) != 3:
        raise CommandError(f"--split: expected three numbers (train,val,test), got {value!r}")
    return parts  # type: ignore[return-value]


class Command(BaseCommand):
    help = (
        "Build a dataset version from an aid list (--aids-file) or a sampling strategy (--strategy). "
        "Queues a Celery job (queue 'embeddings') and prints its task id, or with --sync runs the "
        "build in this process with a progress bar."
    )

    def add_arguments(self, parser):
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--resume", metavar="TASK_ID",
                            help="resume a failed or cancelled build task (reuses every embedding already stored)")
        source.add_argument("--aids-file", help="file with one aid per line, or a JSON list of aids")
        source.add_argument("--strategy", choices=list(selectors.SAMPLING_STRATEGIES), help="sampling strategy")
        parser.add_argument("--model", help="embedding model key (default: the registry's default model)")
        parser.add_argument("--limit", type=int, help="sample size for --strategy")
        parser.add_argument("--label-value", choices=["true", "false"], help="keep only this consensus label")
        parser.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                            help=f"metadata filter, repeatable; keys: {', '.join(selectors.METADATA_FILTERS)}")
        parser.add_argument("--sample-seed", type=int, help="seed of the random sampling strategies")
        parser.add_argument("--description", default="")
        parser.add_argument("--dataset", help=f"dataset name (default: {services.DEFAULT_DATASET_NAME!r})")
        default_split = ",".join(f"{ratio:g}" for ratio in services.DEFAULT_SPLIT_RATIOS)
        parser.add_argument("--split", default=default_split, help=f"train,val,test ratios (default {default_split})")
        parser.add_argument("--seed", type=int, default=services.DEFAULT_SEED,
                            help=f"split seed (default {services.DEFAULT_SEED})")
        parser.add_argument("--force-regenerate", action="store_true", help="re-embed every text and overwrite")
        parser.add_argument("--include-inconsistent", action="store_true",
                            help="keep videos whose labelers disagree (with the majority label)")
        parser.add_argument("--sync", action="store_true", help="build in this process, with a progress bar")

    def _metadata_filter(self, pairs: list[str]) -> dict | None:
        result = {}
        for pair in pairs:
            key, separator, value = pair.partition("=")
            if not separator:
                raise CommandError(f"--filter: expected KEY=VALUE, got {pair!r}")
            key = key.strip()
            if key in ("min_duration", "max_duration", "uploader_mid"):
                try:
                    result[key] = int(value)
                except ValueError:
                    raise CommandError(f"--filter {key}: not an integer: {value!r}") from None
            else:
                result[key] = value
        return result or None

    def handle(self, *args, **options):
        if options["resume"]:
            self._resume(options["resume"], sync=options["sync"])
            return
        try:
            model_key = options["model"] or services.embedding_registry().default_key
        except EmbeddingRegistryError as error:
            raise CommandError(str(error)) from None
        build_fields = {
            "embedding_model_key": model_key,
            "description": options["description"],
            "split_ratios": _ratios(options["split"]),
            "seed": options["seed"],
            "force_regenerate": options["force_regenerate"],
            "include_inconsistent": options["include_inconsistent"],
            "dataset_name": options["dataset"],
        }
        if options["aids_file"]:
            source = {
                "aid_list": _read_aids(options["aids_file"]),
                "selection": {"strategy": "aid_list", "source": str(options["aids_file"])},
            }
        else:
            label_value = None if options["label_value"] is None else options["label_value"] == "true"
            source = {"sampling": services.SamplingRequest(
                strategy=options["strategy"],
                limit=options["limit"],
                label_value=label_value,
                metadata_filter=self._metadata_filter(options["filter"]),
                seed=options["sample_seed"],
            )}
        try:
            started = services.dataset_build_request(
                services.BuildRequest(**build_fields, **source), enqueue=not options["sync"]
            )
        except ValidationError as error:
            raise CommandError(services.validation_error_message(error)) from None
        task = started.task
        if started.sample is not None:
            self.stdout.write(
                f"Sampled {started.sample.sampled_count} of {started.sample.total_available} videos "
                f"({options['strategy']})"
            )

        if not options["sync"]:
            self.stdout.write(self.style.SUCCESS(
                f"Queued build task {task.pk} for dataset version {task.dataset_version_id} ({started.requested} aids)"
            ))
            return

        self._report(self._run_with_progress_bar(task.pk))

    def _report(self, task) -> None:
        if task.status != DatasetTaskStatus.COMPLETED:
            raise CommandError(f"Build {task.pk} {task.status}: {task.error}")
        version = selectors.dataset_version_get(task.dataset_version_id)
        self.stdout.write(self.style.SUCCESS(
            f"Dataset version {version.pk} ({version.dataset.name} v{version.number}) ready: "
            f"{version.total_records} records (train {version.train_count}, val {version.val_count}, "
            f"test {version.test_count}), {version.new_embeddings} new / {version.reused_embeddings} reused "
            f"embeddings, {version.inconsistent_excluded} inconsistent excluded, content hash {version.content_hash}"
        ))

    def _resume(self, task_id: str, *, sync: bool) -> None:
        try:
            task = services.dataset_task_resume(task_id, enqueue=not sync)
        except DatasetTask.DoesNotExist:
            raise CommandError(f"--resume: no task {task_id}") from None
        except ValidationError as error:
            raise CommandError(services.validation_error_message(error)) from None
        if not sync:
            self.stdout.write(self.style.SUCCESS(
                f"Resumed build task {task.pk} for dataset version {task.dataset_version_id}: queued"
            ))
            return
        self._report(self._run_with_progress_bar(task.pk))

    def _run_with_progress_bar(self, task_id):
        from tqdm import tqdm

        bar = tqdm(total=100, unit="%", file=self.stderr._out, bar_format="{l_bar}{bar}| {n:.0f}% {postfix}")
        state = {"step": None}

        def on_progress(snapshot: dict) -> None:
            if snapshot["current_step"] != state["step"]:
                state["step"] = snapshot["current_step"]
                bar.set_description(f"{snapshot['completed_steps']}/{snapshot['total_steps']} {state['step']}")
            bar.n = snapshot["percentage"]
            postfix = f"{snapshot['done']}/{snapshot['total']}" if snapshot["total"] else ""
            if snapshot.get("estimated_time_remaining"):
                postfix += f" eta {snapshot['estimated_time_remaining']:.0f}s"
            bar.set_postfix_str(postfix, refresh=False)
            bar.refresh()

        try:
            return services.dataset_version_build(task_id=task_id, on_progress=on_progress)
        finally:
            bar.close()
