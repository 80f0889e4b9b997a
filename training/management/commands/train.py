"""``manage.py train``: queue a training run from the command line and follow it.

Validation is the run form's and the API's (``services.run_queue`` through the
architecture's schema): every bad field is listed in one ``CommandError`` and nothing is
written. Without ``--sync`` the run goes to the ``training`` queue and the command
follows it by polling the run's metric summaries until it finishes; with ``--sync`` it
trains here, in this process (no worker needed).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Mapping

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, DjangoHelpFormatter
from django.db import transaction

from core.validation import validation_error_message
from experiments import selectors as experiment_selectors
from experiments import services as tracking
from experiments.models import Experiment, Run, RunStatus
from training import services
from training.architectures import ARCHITECTURES
from training.hyperparameters import parse_assignments

DEFAULT_EXPERIMENT = "default"
#: How often the command reads the run while a worker trains it.
POLL_SECONDS = 1.0
#: The exit status after Ctrl-C (128 + SIGINT), as a shell reports it.
INTERRUPTED_STATUS = 130
EPOCH_METRICS = ("train_loss", "val_loss", "val_f1")
FINAL_METRICS = (("F1", "f1"), ("ROC-AUC", "roc_auc"), ("PR-AUC", "pr_auc"), ("accuracy", "accuracy"),
                 ("precision", "precision"), ("recall", "recall"), ("loss", "loss"))
CONFUSION_CELLS = ("tn", "fp", "fn", "tp")


class _HelpFormatter(DjangoHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Django's argument order, with the hyperparameter list kept as written."""


def _bound(value: float | None) -> str:
    if value is None:
        return ""
    return str(value) if isinstance(value, int) else f"{value:g}"


def _schema_listing() -> str:
    """One line per hyperparameter: name (aliases), default, bounds or choices, and the
    architectures that have it when not all do."""
    lines = ["hyperparameters (--set NAME=VALUE; name, default, accepted values):"]
    seen: dict[str, list[str]] = {}
    parameters = {}
    for architecture in ARCHITECTURES.values():
        for parameter in architecture.schema:
            parameters.setdefault(parameter.name, parameter)
            seen.setdefault(parameter.name, []).append(architecture.key)
    for name, parameter in parameters.items():
        title = name + (f" ({', '.join(parameter.aliases)})" if parameter.aliases else "")
        if parameter.choices:
            accepted = " | ".join(parameter.choices)
        elif parameter.minimum is not None or parameter.maximum is not None:
            accepted = f"{_bound(parameter.minimum)} .. {_bound(parameter.maximum)}"
            if parameter.log_scale:
                accepted += " (log)"
            if parameter.max_items is not None:
                accepted = f"{parameter.min_items or 0}-{parameter.max_items} items, each {accepted}"
        else:
            accepted = "true | false" if parameter.type == "bool" else parameter.type
        only = "" if len(seen[name]) == len(ARCHITECTURES) else f"  [{', '.join(seen[name])} only]"
        lines.append(f"  {title:<36} {parameter.as_text(parameter.default):<10} {accepted}{only}")
    return "\n".join(lines)


class EpochProgress:
    """A progress bar per epoch on a terminal, else one line per epoch (for logs)."""

    def __init__(self, command: BaseCommand, total_epochs: int | None) -> None:
        self.command = command
        self.total = total_epochs
        self.shown = 0
        self.bar = None
        if command.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total_epochs, unit="epoch", file=sys.stderr, dynamic_ncols=True)

    def epoch(self, number: int, metrics: Mapping[str, float]) -> None:
        if number <= self.shown:
            return
        values = {key: metrics[key] for key in EPOCH_METRICS if metrics.get(key) is not None}
        if self.bar is not None:
            self.bar.update(number - self.shown)
            self.bar.set_postfix({key: f"{value:.4f}" for key, value in values.items()})
        else:
            total = f"/{self.total}" if self.total else ""
            text = "  ".join(f"{key} {value:.4f}" for key, value in values.items())
            self.command.stdout.write(f"epoch {number}{total}  {text}")
        self.shown = number

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Command(BaseCommand):
    help = (
        "Train a run: validate the hyperparameters against the architecture's schema (as the run\n"
        "form and the API do), queue the run on the training queue and follow it to the end, or\n"
        "train it in this process with --sync. Prints the final metrics; exits non-zero when the\n"
        "run fails or is cancelled.\n\n"
        "  manage.py train --dataset-version <uuid> --arch mlp --set lr=1e-3 --set epochs=30"
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.formatter_class = _HelpFormatter
        parser.epilog = _schema_listing()
        return parser

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dataset-version", metavar="ID",
                            help="The ready dataset version to train on (its UUID); default: the experiment's "
                                 "default version.")
        parser.add_argument("--arch", "--architecture", dest="architecture", required=True,
                            help=f"Architecture key: {', '.join(ARCHITECTURES)}.")
        parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="NAME=VALUE",
                            help="A hyperparameter (its name or alias, e.g. lr=1e-3); repeat for more. "
                                 "Those not set take their defaults (listed below).")
        parser.add_argument("--experiment", default=DEFAULT_EXPERIMENT, metavar="NAME_OR_ID",
                            help=f"The experiment the run belongs to, by id or name (default: {DEFAULT_EXPERIMENT!r}, "
                                 "created when missing; any other name must exist).")
        parser.add_argument("--name", default="", help="The run's name (default: <arch>-<number>).")
        parser.add_argument("--use-augmentation", action="store_true",
                            help="Add the version's augmented train rows (see manage.py augment_dataset).")
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--sync", action="store_true",
                          help="Train in this process instead of a worker (no message is queued).")
        mode.add_argument("--no-wait", action="store_true",
                          help="Queue the run, print its id and return without waiting for it.")

    def handle(self, *args, **options) -> None:
        run = self._queue(options)
        if options["no_wait"]:
            self.stdout.write(str(run.pk))
            return
        self.stdout.write(f"Run {run.pk} ({run.name}) queued in experiment {run.experiment.name!r}.")
        progress = EpochProgress(self, self._epochs(experiment_selectors.run_detail(run.pk)))
        try:
            if options["sync"]:
                self._train_here(run, progress)
            else:
                self._follow(run, progress)
        finally:
            progress.close()
        self._report(run.pk)

    # --- queueing ---------------------------------------------------------------------

    def _queue(self, options) -> Run:
        """The queued run; every problem with the input as one ``CommandError``, and then
        nothing written (the default experiment included: one transaction)."""
        try:
            hyperparameters = parse_assignments(options["assignments"])
            with transaction.atomic():
                experiment = self._experiment(options["experiment"])
                return services.run_queue(
                    experiment_id=experiment.pk,
                    architecture_key=options["architecture"],
                    hyperparameters=hyperparameters,
                    dataset_version_id=options["dataset_version"],
                    name=options["name"],
                    use_augmentation=options["use_augmentation"],
                    enqueue=not options["sync"],
                )
        except ValidationError as error:
            raise CommandError(f"Nothing queued: {validation_error_message(error)}") from None

    def _experiment(self, name_or_id: str) -> Experiment:
        found = experiment_selectors.experiment_by_id_or_name(name_or_id)
        if found is not None:
            return found
        if name_or_id != DEFAULT_EXPERIMENT:
            raise ValidationError({"experiment": f"no live experiment has the id or name {name_or_id!r}"})
        return tracking.experiment_create(
            name=DEFAULT_EXPERIMENT, description="Runs started by `manage.py train` without --experiment."
        )

    @staticmethod
    def _epochs(run: Run) -> int | None:
        """The most epochs the run trains (``run``: from ``run_detail``)."""
        epochs = next((param.value for param in run.param_list if param.key == "epochs"), None)
        return int(epochs) if epochs else None

    # --- training here or following the worker ----------------------------------------

    def _train_here(self, run: Run, progress: EpochProgress) -> None:
        try:
            services.run_train(run.pk, on_epoch=lambda epoch: progress.epoch(epoch.epoch, epoch.metric_values()))
        except KeyboardInterrupt:
            self._cancel_interrupted(run)

    def _follow(self, run: Run, progress: EpochProgress) -> None:
        """Poll the run's summaries until it finishes (a worker that dies is taken over or
        fails the run, so this ends). Ctrl-C stops waiting; the run goes on."""
        try:
            while True:
                current = experiment_selectors.run_detail(run.pk)
                summaries = {summary.key: summary for summary in current.summary_list}
                if "train_loss" in summaries and current.status == RunStatus.RUNNING:
                    epoch = summaries["train_loss"].latest_step
                    progress.epoch(epoch, {key: summaries[key].latest_value for key in EPOCH_METRICS
                                           if key in summaries and summaries[key].latest_step == epoch})
                if current.is_finished:
                    return
                time.sleep(POLL_SECONDS)
        except KeyboardInterrupt:
            raise CommandError(
                f"Stopped waiting: run {run.pk} goes on in the worker (cancel it from its page or the API).",
                returncode=INTERRUPTED_STATUS,
            ) from None

    def _cancel_interrupted(self, run: Run) -> None:
        try:
            tracking.run_cancel(run.pk)
        except ValidationError:
            pass  # it finished meanwhile
        raise CommandError(f"Interrupted: run {run.pk} cancelled.", returncode=INTERRUPTED_STATUS)

    # --- the result -----------------------------------------------------------------

    def _report(self, run_id: int) -> None:
        run = experiment_selectors.run_detail(run_id)
        metrics = {summary.key: summary.latest_value for summary in run.summary_list}
        if run.status == RunStatus.FAILED:
            raise CommandError(f"Run {run.pk} failed: {run.error}")
        if run.status == RunStatus.CANCELLED:
            raise CommandError(f"Run {run.pk} was cancelled{f': {run.error}' if run.error else ''}.")
        if run.status != RunStatus.SUCCEEDED:  # only a run_train that returned early
            raise CommandError(f"Run {run.pk} is {run.status}, not finished.")
        facts = run.reproducibility or {}
        self.stdout.write(self.style.SUCCESS(f"Run {run.pk} ({run.name}) succeeded."))
        details = []
        if "best_epoch" in metrics:
            details.append(f"best epoch {int(metrics['best_epoch'])}")
        if facts.get("duration_seconds") is not None:
            details.append(f"{facts['duration_seconds']:.1f} s")
        if facts.get("device"):
            details.append(f"on {facts['device']}")
        if details:
            self.stdout.write("  " + ", ".join(details))
        for split, prefix in (("test", "test_"), ("val", "final_val_")):
            values = [f"{label} {metrics[prefix + key]:.4f}" for label, key in FINAL_METRICS if prefix + key in metrics]
            if values:
                self.stdout.write(f"  {split:<5} " + "  ".join(values))
            cells = [f"{cell} {int(metrics[prefix + cell])}" for cell in CONFUSION_CELLS if prefix + cell in metrics]
            if cells:
                self.stdout.write(f"  {split:<5} confusion: " + "  ".join(cells))
        if "threshold" in metrics:
            self.stdout.write(f"  threshold {metrics['threshold']:.4f}")
        folder = tracking.run_artifact_dir(run.pk)
        for artifact in run.artifact_list:
            self.stdout.write(f"  {artifact.path}: {folder / artifact.path} ({artifact.size:,} bytes, "
                              f"sha256 {artifact.sha256})")
