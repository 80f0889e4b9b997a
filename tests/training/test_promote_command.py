"""``manage.py promote``: moves through the registry service, prints the gate's verdict
per rule, exits non-zero naming the failing rule with nothing changed; ``--register-run``."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from tests.training.registry_factories import registered_version, trained_run
from training import services
from training.models import ModelStage, ModelVersion, ModelVersionTransition

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def artifacts(tmp_path, settings):
    settings.CVSA_ARTIFACTS_DIR = tmp_path


def promote(*args: str) -> str:
    out = io.StringIO()
    call_command("promote", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_register_then_promote_through_a_passing_gate(settings):
    run = trained_run(seed=1)

    registered = promote("--register-run", str(run.pk), "spam")
    version = ModelVersion.objects.get(run=run)
    services.registered_model_update(version.registered_model_id, gate_rules=[{"metric": "accuracy", "min": 0.5}])
    staged = promote("spam", "1", "--to", "staging", "--reason", "try it")
    produced = promote("spam", "1", "--reason", "ship it", "--dataset-version", str(run.dataset_version_id))

    assert f"run {run.pk} registered as spam version 1 (candidate)" in registered
    assert "spam version 1: candidate → staging" in staged
    assert "PASS  accuracy ≥ 0.5" in produced and "spam version 1: staging → production" in produced
    version.refresh_from_db()
    assert version.stage == ModelStage.PRODUCTION
    last = ModelVersionTransition.objects.filter(version=version).last()
    assert (last.to_stage, last.reason) == ("production", "ship it")


def test_a_refusing_gate_exits_non_zero_naming_the_rule_and_changes_nothing():
    version = registered_version("spam", stage=ModelStage.STAGING)
    services.registered_model_update(version.registered_model_id, gate_rules=[{"metric": "accuracy", "min": 0.0},
                                                                                {"metric": "f1", "min": 1.0}])
    out = io.StringIO()

    with pytest.raises(CommandError) as raised:
        call_command("promote", "spam", "1", stdout=out, stderr=io.StringIO())

    assert "gate rule f1 ≥ 1 failed" in str(raised.value)
    assert "PASS  accuracy ≥ 0" in out.getvalue() and "FAIL  f1 ≥ 1" in out.getvalue()
    version.refresh_from_db()
    assert (version.stage, version.lock_version) == (ModelStage.STAGING, 2)


@pytest.mark.parametrize(("args", "message"), [
    (["nope", "1"], "no registered model named 'nope'"),
    (["spam", "7"], "model spam has no version 7"),
    (["spam", "1", "--to", "candidate"], "it can move to staging or archived, not candidate"),
    (["spam"], "give the version number"),
    (["--register-run", "999999", "spam"], "no run 999999"),
])
def test_bad_requests_exit_non_zero_with_the_reason(args, message):
    version = registered_version("spam")

    with pytest.raises(CommandError) as raised:
        promote(*args)

    assert message in str(raised.value)
    version.refresh_from_db()
    assert (version.stage, ModelVersion.objects.count()) == (ModelStage.CANDIDATE, 1)
