"""The registry's services: registering a run, the stage machine with its optimistic
lock, exactly one production version (also under two concurrent promotions), the gate,
the audit history and "which version was in production at time T"."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from experiments.models import RunStatus
from experiments.services import run_transition
from tests.experiments.factories import ExperimentFactory, running_run
from tests.training.factories import separable_dataset_version
from tests.training.registry_factories import registered_version, trained_run
from training import services
from training.models import Evaluation, JobStatus, ModelStage, ModelVersion, ModelVersionTransition, RegisteredModel
from training.registry_selectors import model_history, production_version, production_version_at
from training.services import registry

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def artifacts(tmp_path, settings):
    settings.CVSA_ARTIFACTS_DIR = tmp_path


@pytest.fixture
def experiment():
    return ExperimentFactory(default_dataset_version=separable_dataset_version(rows=60, dimensions=8, seed=1))


def move(version, *stages, **options):
    for stage in stages:
        version = services.model_version_transition(version.pk, to_stage=stage, **options)
    return version


# --- registering -----------------------------------------------------------------------


def test_registering_a_run_makes_version_1_a_candidate_with_what_it_needs_to_serve(experiment, make_user):
    user = make_user("boss", group="admins")
    run = trained_run(experiment)

    version = services.model_version_register(run_id=run.pk, model_name="vocaloid", user=user, description="first")

    assert (version.number, version.stage, version.lock_version) == (1, ModelStage.CANDIDATE, 1)
    assert version.registered_model.name == "vocaloid" and version.registered_model.created_by == user
    assert version.embedding_model_id == run.dataset_version.embedding_model_id
    assert version.input_dimensions == 8 and version.architecture_key == "mlp"
    assert version.threshold == pytest.approx(run.reproducibility["threshold"])
    assert version.weights_sha256 == run.artifacts.get(path="model.pt").sha256
    (audit,) = model_history(version.registered_model)
    assert (audit.from_stage, audit.to_stage, audit.user, audit.reason) == (
        "", ModelStage.CANDIDATE, user, f"registered from run {run.pk}")


def test_versions_are_numbered_per_model(experiment):
    first = services.model_version_register(run_id=trained_run(experiment, seed=1).pk, model_name="a")
    second = services.model_version_register(run_id=trained_run(experiment, seed=2).pk, model_name="a")
    other = services.model_version_register(run_id=trained_run(experiment, seed=3).pk, model_name="b")

    assert (first.number, second.number, other.number) == (1, 2, 1)


@pytest.mark.parametrize("make_run, message", [
    (lambda experiment: running_run(experiment=experiment), "is running: only a succeeded run's model"),
    (lambda experiment: run_transition(running_run(experiment=experiment).pk, RunStatus.SUCCEEDED),
     "saved no model.pt"),
])
def test_only_a_succeeded_run_with_weights_can_be_registered(experiment, make_run, message):
    run = make_run(experiment)

    with pytest.raises(ValidationError, match=message):
        services.model_version_register(run_id=run.pk, model_name="m")
    assert not RegisteredModel.objects.exists() and not ModelVersion.objects.exists()


def test_a_run_is_registered_once_per_model_and_bad_names_are_refused(experiment):
    run = trained_run(experiment)
    services.model_version_register(run_id=run.pk, model_name="m")

    with pytest.raises(ValidationError, match="already version 1 of m"):
        services.model_version_register(run_id=run.pk, model_name="m")
    for name, message in (("", "must not be empty"), ("a/b", "must not contain"), ("x" * 201, "at most 200")):
        with pytest.raises(ValidationError, match=message):
            services.model_version_register(run_id=run.pk, model_name=name)
    with pytest.raises(ValidationError, match="no run 999999"):
        services.model_version_register(run_id=999999, model_name="m")
    assert ModelVersion.objects.count() == 1 and ModelVersionTransition.objects.count() == 1


def test_weights_changed_on_disk_since_the_run_are_refused(experiment):
    run = trained_run(experiment)
    weights = registry.run_weights_path(run.pk)
    weights.write_bytes(weights.read_bytes() + b"tampered")

    with pytest.raises(ValidationError, match="changed since its run recorded it"):
        services.model_version_register(run_id=run.pk, model_name="m")
    assert not ModelVersion.objects.exists()


# --- the stage machine -----------------------------------------------------------------


LEGAL = [(start, end) for start, ends in services.LEGAL_MOVES.items() for end in ends]
ILLEGAL = [(start, end) for start in ModelStage.values for end in ModelStage.values
           if end not in services.LEGAL_MOVES[start]]


def version_at(stage, run):
    return registered_version(stage=stage, run=run)


@pytest.mark.parametrize("start, end", LEGAL)
def test_every_legal_move_changes_the_stage_bumps_the_lock_and_is_audited(experiment, start, end):
    version = version_at(start, trained_run(experiment))

    moved = services.model_version_transition(version.pk, to_stage=end, expected_lock_version=version.lock_version,
                                              reason="because")

    assert moved.stage == end and moved.lock_version == version.lock_version + 1
    last = model_history(moved.registered_model).filter(version=moved).last()
    assert (last.from_stage, last.to_stage, last.reason) == (start, end, "because")


@pytest.mark.parametrize("start, end", ILLEGAL)
def test_an_illegal_move_is_refused_and_changes_nothing(experiment, start, end):
    version = version_at(start, trained_run(experiment))
    audits = ModelVersionTransition.objects.count()

    with pytest.raises(ValidationError) as refused:
        services.model_version_transition(version.pk, to_stage=end)

    assert f"version 1 is {start}: it can move to" in str(refused.value)
    version.refresh_from_db()
    assert version.stage == start and ModelVersionTransition.objects.count() == audits


def test_a_stale_lock_version_is_a_conflict_and_changes_nothing(experiment):
    version = registered_version(run=trained_run(experiment))
    services.model_version_update(version.pk, description="edited by someone else", expected_lock_version=1)

    with pytest.raises(services.RegistryConflict, match="changed since you loaded it"):
        services.model_version_transition(version.pk, to_stage=ModelStage.STAGING, expected_lock_version=1)
    with pytest.raises(services.RegistryConflict):
        services.model_version_update(version.pk, description="mine", expected_lock_version=1)

    version.refresh_from_db()
    assert (version.stage, version.description, version.lock_version) == (
        ModelStage.CANDIDATE, "edited by someone else", 2)


def test_bad_transition_input_is_refused_with_the_field_named(experiment):
    version = registered_version(run=trained_run(experiment))
    for kwargs, field in (({"to_stage": "live"}, "to_stage"), ({"to_stage": "staging", "expected_lock_version": "1"},
                                                                 "lock_version"),
                          ({"to_stage": "staging", "reason": "x" * 2001}, "reason")):
        with pytest.raises(ValidationError) as refused:
            services.model_version_transition(version.pk, **kwargs)
        assert field in refused.value.message_dict
    version.refresh_from_db()
    assert version.stage == ModelStage.CANDIDATE


def test_promoting_archives_the_previous_production_version_with_an_audit_row(experiment, make_user):
    user = make_user("boss", group="admins")
    first = registered_version(stage=ModelStage.PRODUCTION, run=trained_run(experiment, seed=1))
    second = move(registered_version(run=trained_run(experiment, seed=2)), ModelStage.STAGING)

    promoted = services.model_version_transition(second.pk, to_stage=ModelStage.PRODUCTION, user=user, reason="better")

    first.refresh_from_db()
    assert promoted.stage == ModelStage.PRODUCTION and first.stage == ModelStage.ARCHIVED
    assert ModelVersion.objects.filter(stage=ModelStage.PRODUCTION).count() == 1
    archived, promotion = model_history(first.registered_model).order_by("-id")[:2][::-1]
    assert (archived.version, archived.from_stage, archived.to_stage, archived.reason) == (
        first, ModelStage.PRODUCTION, ModelStage.ARCHIVED, "replaced by version 2")
    assert (promotion.version, promotion.to_stage, promotion.user) == (second, ModelStage.PRODUCTION, user)
    assert promotion.gate["passed"] is True and promotion.gate["production_version_id"] == first.pk
    assert production_version("m") == promoted


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_promotions_leave_one_production_version_and_the_loser_gets_a_conflict(monkeypatch, tmp_path,
                                                                                             settings):
    settings.CVSA_ARTIFACTS_DIR = tmp_path
    experiment = ExperimentFactory(default_dataset_version=separable_dataset_version(rows=40, dimensions=8, seed=2))
    versions = [move(registered_version(run=trained_run(experiment, seed=seed)), ModelStage.STAGING)
                for seed in (1, 2)]
    # Both pass their gates (nothing in production yet) before either writes: a real race.
    gate, both_gated = registry._run_gate, threading.Barrier(2)

    def gate_then_wait(*args, **kwargs):
        outcome = gate(*args, **kwargs)
        both_gated.wait(timeout=30)
        return outcome

    monkeypatch.setattr(registry, "_run_gate", gate_then_wait)
    outcomes: dict[int, object] = {}

    def promote(version) -> None:
        try:
            outcomes[version.pk] = services.model_version_transition(version.pk, to_stage=ModelStage.PRODUCTION)
        except BaseException as error:  # noqa: BLE001 (asserted below)
            outcomes[version.pk] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=promote, args=(version,)) for version in versions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    winners = [outcome for outcome in outcomes.values() if isinstance(outcome, ModelVersion)]
    losers = [outcome for outcome in outcomes.values() if not isinstance(outcome, ModelVersion)]
    assert len(winners) == 1 and len(losers) == 1
    assert isinstance(losers[0], services.RegistryConflict), losers[0]
    assert "reload and try again" in str(losers[0])
    assert list(ModelVersion.objects.filter(stage=ModelStage.PRODUCTION).values_list("pk", flat=True)) == [winners[0].pk]
    loser_id = next(pk for pk, outcome in outcomes.items() if outcome is losers[0])
    assert ModelVersion.objects.get(pk=loser_id).stage == ModelStage.STAGING
    assert ModelVersionTransition.objects.filter(to_stage=ModelStage.PRODUCTION).count() == 1


# --- the gate ---------------------------------------------------------------------------


def test_the_gate_refuses_a_promotion_naming_the_failing_rule_and_nothing_changes(experiment):
    version = move(registered_version(run=trained_run(experiment)), ModelStage.STAGING)
    services.registered_model_update(version.registered_model_id, gate_rules=[
        {"metric": "f1", "min": 0.5}, {"metric": "loss", "max": 0.0001}])
    audits = ModelVersionTransition.objects.count()

    with pytest.raises(services.GateRefused) as refused:
        services.model_version_transition(version.pk, to_stage=ModelStage.PRODUCTION)

    assert "gate rule loss ≤ 0.0001 failed: loss" in str(refused.value)
    assert "f1 ≥" not in str(refused.value)  # the passing rule is not blamed
    assert [result.passed for result in refused.value.report.results] == [True, False]
    version.refresh_from_db()
    assert version.stage == ModelStage.STAGING and ModelVersionTransition.objects.count() == audits
    # The evaluation it ran is kept: the page can show why.
    assert Evaluation.objects.filter(version=version, status=JobStatus.SUCCEEDED, split="test").count() == 1


def test_the_gate_passes_and_its_numbers_are_in_the_audit_row(experiment):
    version = move(registered_version(run=trained_run(experiment)), ModelStage.STAGING)
    services.registered_model_update(version.registered_model_id, gate_rules=[{"metric": "f1", "min": 0.5}])

    promoted = services.model_version_transition(version.pk, to_stage=ModelStage.PRODUCTION, reason="ship it")

    promotion = promoted.transitions.get(to_stage=ModelStage.PRODUCTION)
    assert promotion.gate["passed"] is True
    assert promotion.gate["results"][0]["description"] == "f1 ≥ 0.5"
    assert promotion.gate["candidate_metrics"]["f1"] >= 0.5
    assert promotion.gate["dataset_version_id"] == str(experiment.default_dataset_version_id)


def test_a_relative_rule_compares_with_production_on_the_same_data(experiment):
    good = registered_version(stage=ModelStage.PRODUCTION, run=trained_run(experiment, seed=1))
    # A model that learnt nothing: one epoch at a tiny learning rate.
    weak_run = trained_run(experiment, architecture="logreg", seed=2, epochs=1, lr=1e-6)
    weak = move(registered_version(run=weak_run), ModelStage.STAGING)
    services.registered_model_update(good.registered_model_id, gate_rules=[{"metric": "roc_auc", "max_drop": 0.01}])

    with pytest.raises(services.GateRefused) as refused:
        services.model_version_transition(weak.pk, to_stage=ModelStage.PRODUCTION)

    assert "gate rule roc_auc ≥ production − 0.01 failed" in str(refused.value)
    assert "below production's" in str(refused.value)
    good.refresh_from_db()
    assert good.stage == ModelStage.PRODUCTION
    # Production's evaluation on the same dataset version was computed for the comparison.
    assert Evaluation.objects.filter(version=good, dataset_version=experiment.default_dataset_version).exists()


def test_the_gate_evaluation_equals_the_runs_own_test_metrics(experiment):
    run = trained_run(experiment)
    version = registered_version(run=run)

    evaluation = services.evaluation_ensure(version.pk, run.dataset_version_id)

    summaries = {summary.key: summary.latest_value for summary in run.metric_summaries.all()}
    for metric in ("f1", "accuracy", "precision", "recall", "roc_auc", "pr_auc", "loss"):
        assert evaluation.metrics[metric] == pytest.approx(summaries[f"test_{metric}"], abs=1e-6), metric
    assert evaluation.confusion_matrix == [[int(summaries["test_tn"]), int(summaries["test_fp"])],
                                           [int(summaries["test_fn"]), int(summaries["test_tp"])]]
    assert services.evaluation_ensure(version.pk, run.dataset_version_id) == evaluation  # reused, not recomputed


def test_an_evaluation_on_another_embedding_model_is_refused(experiment):
    version = registered_version(run=trained_run(experiment))
    other = separable_dataset_version(rows=20, dimensions=4, seed=3, name="other")

    with pytest.raises(ValidationError, match="another embedding model"):
        services.evaluation_ensure(version.pk, other.pk)
    assert not Evaluation.objects.exists()


@pytest.mark.parametrize("rules, message", [
    ("f1>0.8", "must be a list"),
    ([{"metric": "speed", "min": 1}], "rule 1: metric must be one of"),
    ([{"metric": "f1"}], "rule 1: give exactly one of"),
    ([{"metric": "f1", "min": 0.5, "max_drop": 0.1}], "rule 1: give exactly one of"),
    ([{"metric": "f1", "min": 0.5}, {"metric": "f1", "min": "high"}], "rule 2: min must be a number"),
    ([{"metric": "f1", "min": 1.5}], "f1 lies between 0 and 1"),
    ([{"metric": "loss", "min": 0.1}], "loss is better when lower: use max"),
    ([{"metric": "f1", "max": 0.9}], "f1 is better when higher: use min"),
    ([{"metric": "f1", "max_drop": -0.1}], "max_drop must be 0 or more"),
    ([{"metric": "f1", "min": 0.5, "extra": 1}], "unknown key"),
])
def test_bad_gate_rules_are_refused_with_the_rule_named(rules, message):
    with pytest.raises(ValidationError, match=message):
        services.registered_model_create(name="m", gate_rules=rules)
    assert not RegisteredModel.objects.exists()


def test_a_taken_model_name_is_refused():
    services.registered_model_create(name="m")
    with pytest.raises(ValidationError, match="already exists"):
        services.registered_model_create(name="m")


# --- history ----------------------------------------------------------------------------


def test_the_history_answers_which_version_was_in_production_at_a_time(experiment):
    model_versions = [registered_version(run=trained_run(experiment, seed=seed)) for seed in (1, 2)]
    first, second = model_versions
    model = first.registered_model
    before_any = ModelVersionTransition.objects.latest("created_at").created_at
    move(first, ModelStage.STAGING, ModelStage.PRODUCTION)
    first_live = model_history(model).get(version=first, to_stage=ModelStage.PRODUCTION).created_at
    move(second, ModelStage.STAGING, ModelStage.PRODUCTION)
    second_live = model_history(model).get(version=second, to_stage=ModelStage.PRODUCTION).created_at
    move(ModelVersion.objects.get(pk=second.pk), ModelStage.ARCHIVED)
    none_live = model_history(model).get(version=second, to_stage=ModelStage.ARCHIVED).created_at

    assert production_version_at(model, before_any) is None
    assert production_version_at(model, first_live) == first
    assert production_version_at(model, second_live - timedelta(microseconds=1)) == first
    assert production_version_at(model, second_live) == second
    assert production_version_at(model, none_live) is None
    assert production_version_at(model, none_live + timedelta(days=1)) is None


def test_production_version_without_a_name_is_the_only_one_or_an_error(experiment):
    assert production_version() is None
    live = registered_version("a", stage=ModelStage.PRODUCTION, run=trained_run(experiment, seed=1))
    assert production_version() == live
    registered_version("b", stage=ModelStage.PRODUCTION, run=trained_run(experiment, seed=2))
    with pytest.raises(ValidationError, match=r"several models are in production \(a, b\)"):
        production_version()
    with pytest.raises(RegisteredModel.DoesNotExist):
        production_version("nope")
