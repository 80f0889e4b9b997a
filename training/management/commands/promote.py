"""``manage.py promote``: move a model version to another stage from the command line,
through the same service as the pages and the API (legal moves, gate, audit row).

    manage.py promote MODEL NUMBER [--to production] [--reason TEXT] [--dataset-version UUID]
    manage.py promote --register-run RUN_ID MODEL [--reason TEXT]

To production (the default target) the model's gate rules are evaluated and each rule's
verdict is printed; a refused promotion, an illegal move or a conflict exits non-zero
with the reason (the failing rule named) and changes nothing. ``--register-run``
registers a succeeded run's weights as the model's next version (a candidate).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from core.validation import validation_error_message
from datasets.models import DatasetVersion
from training import registry_selectors, services
from training.gates import describe_rule
from training.models import ModelStage, ModelVersion, RegisteredModel
from training.registry_page_selectors import version_history


class Command(BaseCommand):
    help = (
        "Move version NUMBER of model MODEL to another stage (default production, through the model's gate; "
        "every rule's verdict is printed and a refusal exits 1 naming the failing rule), or, with "
        "--register-run RUN_ID MODEL, register a succeeded run as the model's next version (a candidate)."
    )

    def add_arguments(self, parser):
        parser.add_argument("model", help="the registered model's name")
        parser.add_argument("number", nargs="?", type=int, help="the version number (not with --register-run)")
        parser.add_argument("--to", dest="to_stage", choices=ModelStage.values, default=ModelStage.PRODUCTION,
                            help="the target stage (default: production)")
        parser.add_argument("--reason", default="", help="why (kept in the model's history)")
        parser.add_argument("--dataset-version", dest="dataset_version",
                            help="to production: the ready dataset version whose test split the gate evaluates on "
                                 "(default: the version's run's)")
        parser.add_argument("--register-run", dest="register_run", type=int, metavar="RUN_ID",
                            help="register this succeeded run as the next version of MODEL instead (created when "
                                 "new); the version number is then not given")

    def handle(self, *args, model: str, number: int | None, to_stage: str, reason: str,
               dataset_version: str | None, register_run: int | None, **options):
        if register_run is not None:
            if number is not None:
                raise CommandError("--register-run takes the model name only, not a version number")
            return self._register(register_run, model, reason)
        if number is None:
            raise CommandError("give the version number (or --register-run RUN_ID to register a run)")
        version = self._version(model, number)
        try:
            moved = services.model_version_transition(
                version.pk, to_stage=to_stage, expected_lock_version=version.lock_version, reason=reason,
                gate_dataset_version_id=dataset_version,
            )
        except services.GateRefused as refused:
            self._print_gate(refused.report.as_json())
            raise CommandError(str(refused)) from None
        except services.RegistryConflict as conflict:
            raise CommandError(str(conflict)) from None
        except ValidationError as error:
            raise CommandError(validation_error_message(error)) from None
        except DatasetVersion.DoesNotExist:
            raise CommandError(f"no dataset version {dataset_version}") from None
        latest = latest_gate(moved)
        if latest:
            self._print_gate(latest)
        self.stdout.write(self.style.SUCCESS(
            f"{model} version {number}: {version.stage} → {moved.stage} (lock_version {moved.lock_version})"
        ))

    def _version(self, model: str, number: int) -> ModelVersion:
        try:
            registered = registry_selectors.registered_model_get(model)
            return registry_selectors.model_version_by_number(registered, number)
        except RegisteredModel.DoesNotExist:
            raise CommandError(f"no registered model named {model!r}") from None
        except ModelVersion.DoesNotExist:
            raise CommandError(f"model {model} has no version {number}") from None

    def _register(self, run_id: int, model: str, reason: str) -> None:
        try:
            version = services.model_version_register(run_id=run_id, model_name=model, description=reason)
        except ValidationError as error:
            raise CommandError(validation_error_message(error)) from None
        self.stdout.write(self.style.SUCCESS(
            f"run {run_id} registered as {version.registered_model.name} version {version.number} (candidate)"
        ))

    def _print_gate(self, gate: dict) -> None:
        results = gate.get("results", [])
        if not results:
            self.stdout.write("gate: no rules")
            return
        self.stdout.write(f"gate ({len(results)} rule{'s' if len(results) != 1 else ''}):")
        for result in results:
            mark = "PASS" if result["passed"] else "FAIL"
            description = result.get("description") or describe_rule(result["rule"])
            self.stdout.write(f"  {mark}  {description}  ({result['message']})")


def latest_gate(version: ModelVersion) -> dict:
    """The gate record of the version's latest stage change (empty when it ran none)."""
    latest = version_history(version).last()
    return latest.gate if latest is not None else {}
