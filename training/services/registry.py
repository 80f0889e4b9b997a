"""Writes of the model registry: models, registering a run's weights as a version, and
every stage change through one function with the legal moves, the optimistic lock, the
promotion gate and an audit row.

Exactly one version of a model is in production: the database's partial unique index
(``modelversion_one_production``) guarantees it; a promotion archives the previous
production version in the same transaction, and of two promotions racing for the same
model one commits and the other is refused with ``RegistryConflict`` (HTTP 409).
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Max
from django.utils import timezone

from datasets.models import DatasetVersion
from datasets.selectors import as_uuid
from experiments.models import Artifact, Run, RunStatus
from experiments.services.validation import clean_id
from training.gates import GateReport, gate_evaluate, gate_rules_clean
from training.models import (
    MAX_NAME_LENGTH,
    EvaluationSplit,
    ModelStage,
    ModelVersion,
    ModelVersionTransition,
    RegisteredModel,
)
from training.registry_selectors import WEIGHTS_FILE_NAME, run_weights_path
from training.served_models import WeightsFileError, load_classifier
from training.services.evaluations import evaluation_ensure

logger = logging.getLogger(__name__)

MAX_REASON_LENGTH = 2000
MAX_DESCRIPTION_LENGTH = 10_000

#: Stage → the stages a version may move to from it.
LEGAL_MOVES: dict[str, tuple[str, ...]] = {
    ModelStage.CANDIDATE: (ModelStage.STAGING, ModelStage.ARCHIVED),
    ModelStage.STAGING: (ModelStage.PRODUCTION, ModelStage.CANDIDATE, ModelStage.ARCHIVED),
    ModelStage.PRODUCTION: (ModelStage.STAGING, ModelStage.ARCHIVED),
    ModelStage.ARCHIVED: (ModelStage.CANDIDATE,),
}


class RegistryConflict(Exception):
    """The change lost a race: a stale ``lock_version``, or another promotion of the
    same model committed first (HTTP 409)."""


class GateRefused(Exception):
    """Promotion to production refused by the model's gate; ``report`` says which rules."""

    def __init__(self, report: GateReport, version: ModelVersion) -> None:
        self.report = report
        self.version = version
        super().__init__(
            f"version {version.number} of {version.registered_model.name} was not promoted: {report.failure_message()}"
        )


# --- models ------------------------------------------------------------------------


def _clean_text(value: object, field: str, *, max_length: int, required: bool = False) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ValidationError({field: "must be text"})
    value = value.strip()
    if "\x00" in value:
        raise ValidationError({field: "must not contain NUL characters"})
    if required and not value:
        raise ValidationError({field: "must not be empty"})
    if len(value) > max_length:
        raise ValidationError({field: f"at most {max_length} characters (got {len(value)})"})
    return value


def _clean_model_name(name: object) -> str:
    cleaned = _clean_text(name, "name", max_length=MAX_NAME_LENGTH, required=True)
    if "/" in cleaned:
        raise ValidationError({"name": "must not contain '/' (it is part of the model's URLs)"})
    return cleaned


def registered_model_create(*, name: object, description: object = "", gate_rules: object = None,
                            user=None) -> RegisteredModel:
    """A new registered model; ``ValidationError`` on a bad or taken name or bad rules."""
    cleaned_name = _clean_model_name(name)
    model = RegisteredModel(
        name=cleaned_name,
        description=_clean_text(description, "description", max_length=MAX_DESCRIPTION_LENGTH),
        gate_rules=gate_rules_clean(gate_rules),
        created_by=user,
    )
    try:
        with transaction.atomic():
            model.save()
    except IntegrityError:
        raise ValidationError({"name": f"a model named {cleaned_name!r} already exists"}) from None
    return model


def registered_model_update(model_id: int, *, description: object = None, gate_rules: object = None) -> RegisteredModel:
    """Change the description and/or the gate rules (``None``: unchanged)."""
    model = RegisteredModel.objects.get(pk=clean_id(model_id, "model_id"))
    fields = ["updated_at"]
    if description is not None:
        model.description = _clean_text(description, "description", max_length=MAX_DESCRIPTION_LENGTH)
        fields.append("description")
    if gate_rules is not None:
        model.gate_rules = gate_rules_clean(gate_rules)
        fields.append("gate_rules")
    model.save(update_fields=fields)
    return model


# --- versions ----------------------------------------------------------------------


def _registrable_run(run_id: object) -> tuple[Run, Artifact]:
    try:
        run = Run.objects.select_related("dataset_version").get(
            pk=clean_id(run_id, "run_id"), deleted_at__isnull=True
        )
    except Run.DoesNotExist:
        raise ValidationError({"run_id": f"no run {run_id}"}) from None
    if run.status != RunStatus.SUCCEEDED:
        raise ValidationError({"run_id": f"run {run.pk} is {run.status}: only a succeeded run's model can be registered"})
    artifact = Artifact.objects.filter(run=run, path=WEIGHTS_FILE_NAME).first()
    if artifact is None:
        raise ValidationError({"run_id": f"run {run.pk} saved no {WEIGHTS_FILE_NAME}"})
    return run, artifact


def model_version_register(*, run_id: object, model_name: object, user=None, description: object = "") -> ModelVersion:
    """Register succeeded run ``run_id``'s weights as the next version (a candidate) of
    the model named ``model_name``, creating the model when it does not exist."""
    name = _clean_model_name(model_name)
    cleaned_description = _clean_text(description, "description", max_length=MAX_DESCRIPTION_LENGTH)
    run, artifact = _registrable_run(run_id)
    try:
        classifier = load_classifier(run_weights_path(run.pk), expected_sha256=artifact.sha256)
    except WeightsFileError as error:
        raise ValidationError({"run_id": f"run {run.pk}: {error}"}) from None
    if classifier.input_dimensions != run.dataset_version.embedding_dimensions:
        raise ValidationError({"run_id": (
            f"run {run.pk}'s weights read {classifier.input_dimensions} dimensions but its dataset version has "
            f"{run.dataset_version.embedding_dimensions}"
        )})
    with transaction.atomic():
        model, _ = RegisteredModel.objects.select_for_update().get_or_create(
            name=name, defaults={"created_by": user}
        )
        existing = ModelVersion.objects.filter(registered_model=model, run=run).values_list("number", flat=True).first()
        if existing is not None:
            raise ValidationError({"run_id": f"run {run.pk} is already version {existing} of {model.name}"})
        number = (ModelVersion.objects.filter(registered_model=model).aggregate(last=Max("number"))["last"] or 0) + 1
        version = ModelVersion.objects.create(
            registered_model=model, number=number, run=run,
            embedding_model_id=run.dataset_version.embedding_model_id,
            input_dimensions=classifier.input_dimensions, threshold=classifier.threshold,
            architecture_key=classifier.config.architecture, weights_sha256=artifact.sha256,
            description=cleaned_description, created_by=user,
        )
        ModelVersionTransition.objects.create(
            registered_model=model, version=version, from_stage="", to_stage=ModelStage.CANDIDATE, user=user,
            reason=f"registered from run {run.pk}",
        )
    logger.info("run %s registered as version %s of %s", run.pk, number, model.name)
    return version


def model_version_update(version_id: object, *, description: object, expected_lock_version: int | None = None
                         ) -> ModelVersion:
    """Change a version's description; a stale ``expected_lock_version`` is a ``RegistryConflict``."""
    pk = clean_id(version_id, "version_id")
    cleaned = _clean_text(description, "description", max_length=MAX_DESCRIPTION_LENGTH)
    version = ModelVersion.objects.get(pk=pk)
    lock_version = version.lock_version if expected_lock_version is None else expected_lock_version
    updated = ModelVersion.objects.filter(pk=pk, lock_version=lock_version).update(
        description=cleaned, lock_version=F("lock_version") + 1, updated_at=timezone.now()
    )
    if not updated:
        raise RegistryConflict(_stale_message(version, lock_version))
    return ModelVersion.objects.select_related("registered_model").get(pk=pk)


def _stale_message(version: ModelVersion, expected: int) -> str:
    return (f"version {version.number} changed since you loaded it (lock_version {expected}, now "
            f"{version.lock_version}): reload it and try again")


def _clean_stage(to_stage: object) -> str:
    if to_stage not in ModelStage.values:
        raise ValidationError({"to_stage": f"must be one of {', '.join(ModelStage.values)} (got {to_stage!r})"})
    return str(to_stage)


def _run_gate(version: ModelVersion, dataset_version_id: Any, user) -> tuple[GateReport, dict[str, Any]]:
    """The model's rules on the version's evaluation of the gate's dataset version (test
    split), computing the missing evaluations now; returns the report and what the audit
    row keeps (rules, results, evaluation numbers, the production version compared)."""
    model = version.registered_model
    rules = gate_rules_clean(model.gate_rules)
    candidate = evaluation_ensure(version.pk, dataset_version_id, EvaluationSplit.TEST, user=user)
    production = (
        ModelVersion.objects.filter(registered_model=model, stage=ModelStage.PRODUCTION).exclude(pk=version.pk).first()
    )
    production_evaluation = None
    if production is not None and any("max_drop" in rule for rule in rules):
        production_evaluation = evaluation_ensure(production.pk, dataset_version_id, EvaluationSplit.TEST, user=user)
    report = gate_evaluate(rules, candidate.metrics, None if production_evaluation is None else production_evaluation.metrics)
    record = report.as_json() | {
        "dataset_version_id": str(dataset_version_id),
        "split": EvaluationSplit.TEST,
        "evaluation_id": candidate.pk,
        "production_version_id": None if production is None else production.pk,
        "production_evaluation_id": None if production_evaluation is None else production_evaluation.pk,
    }
    return report, record


def _gate_dataset_version_id(version: ModelVersion, requested: object) -> Any:
    if requested in (None, ""):
        return version.run.dataset_version_id
    dataset_version_id = as_uuid(requested, "gate_dataset_version_id")
    if not DatasetVersion.objects.filter(pk=dataset_version_id).exists():
        raise ValidationError({"gate_dataset_version_id": f"no dataset version {dataset_version_id}"})
    return dataset_version_id


def model_version_transition(
    version_id: object,
    *,
    to_stage: object,
    expected_lock_version: int | None = None,
    user=None,
    reason: object = "",
    gate_dataset_version_id: object = None,
) -> ModelVersion:
    """Move a version to ``to_stage`` and write the audit row(s).

    ``ValidationError`` for an illegal move or bad input; ``RegistryConflict`` when the
    version changed since ``expected_lock_version`` or another version of the model was
    promoted meanwhile; ``GateRefused`` when the gate refuses a promotion to production
    (nothing changes then).
    """
    stage = _clean_stage(to_stage)
    cleaned_reason = _clean_text(reason, "reason", max_length=MAX_REASON_LENGTH)
    pk = clean_id(version_id, "version_id")
    if expected_lock_version is not None and (
        isinstance(expected_lock_version, bool) or not isinstance(expected_lock_version, int)
    ):
        raise ValidationError({"lock_version": f"must be an integer (got {expected_lock_version!r})"})
    version = ModelVersion.objects.select_related("registered_model", "run", "embedding_model").get(pk=pk)
    lock_version = version.lock_version if expected_lock_version is None else expected_lock_version
    if lock_version != version.lock_version:
        raise RegistryConflict(_stale_message(version, lock_version))
    if stage not in LEGAL_MOVES[version.stage]:
        raise ValidationError({"to_stage": (
            f"version {version.number} is {version.stage}: it can move to "
            f"{' or '.join(LEGAL_MOVES[version.stage])}, not {stage}"
        )})
    gate_record: dict[str, Any] = {}
    compared_production_id = None
    if stage == ModelStage.PRODUCTION:
        dataset_version_id = _gate_dataset_version_id(version, gate_dataset_version_id)
        report, gate_record = _run_gate(version, dataset_version_id, user)
        if not report.passed:
            raise GateRefused(report, version)
        compared_production_id = gate_record["production_version_id"]
    try:
        with transaction.atomic():
            replaced = _archive_production(version, stage, compared_production_id)
            updated = ModelVersion.objects.filter(pk=pk, stage=version.stage, lock_version=lock_version).update(
                stage=stage, lock_version=F("lock_version") + 1, updated_at=timezone.now()
            )
            if not updated:
                raise RegistryConflict(
                    f"version {version.number} changed while it was being moved: reload it and try again"
                )
            now = timezone.now()
            transitions = [ModelVersionTransition(
                registered_model=version.registered_model, version=version, from_stage=version.stage, to_stage=stage,
                user=user, reason=cleaned_reason, gate=gate_record, created_at=now,
            )]
            if replaced is not None:
                transitions.insert(0, ModelVersionTransition(
                    registered_model=version.registered_model, version=replaced, from_stage=ModelStage.PRODUCTION,
                    to_stage=ModelStage.ARCHIVED, user=user, reason=f"replaced by version {version.number}",
                    created_at=now,
                ))
            ModelVersionTransition.objects.bulk_create(transitions)
    except IntegrityError:
        # The partial unique index: another promotion of this model committed first.
        raise RegistryConflict(
            f"another version of {version.registered_model.name} was promoted to production at the same time: "
            "reload and try again"
        ) from None
    logger.info("version %s of %s: %s → %s", version.number, version.registered_model.name, version.stage, stage)
    return ModelVersion.objects.select_related("registered_model", "run", "embedding_model").get(pk=pk)


def _archive_production(version: ModelVersion, stage: str, compared_production_id: int | None) -> ModelVersion | None:
    """Inside the promotion's transaction: archive the model's production version (the
    one the gate compared with), locking it; ``RegistryConflict`` when production
    changed since the gate ran."""
    if stage != ModelStage.PRODUCTION:
        return None
    current = list(
        ModelVersion.objects.select_for_update()
        .filter(registered_model_id=version.registered_model_id, stage=ModelStage.PRODUCTION)
        .exclude(pk=version.pk)
    )
    current_id = current[0].pk if current else None
    if current_id != compared_production_id:
        raise RegistryConflict(
            f"the production version of {version.registered_model.name} changed while the gate ran: "
            "reload and try again"
        )
    if not current:
        return None
    ModelVersion.objects.filter(pk=current_id).update(
        stage=ModelStage.ARCHIVED, lock_version=F("lock_version") + 1, updated_at=timezone.now()
    )
    return current[0]
