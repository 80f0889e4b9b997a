"""The registry's admin: lists and pages load; nothing is added or edited by hand; a
version's stage changes only through the "Change stage…" action, which calls the
service (legal moves, gate, audit row with the reason) and reports refusals."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from tests.training.registry_factories import registered_version
from training import services
from training.models import ModelStage, ModelVersionTransition

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def artifacts(tmp_path, settings):
    settings.CVSA_ARTIFACTS_DIR = tmp_path


@pytest.fixture
def root(client):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw-for-tests-1")
    client.force_login(user)
    return client


@pytest.fixture
def version():
    return registered_version("spam")


def test_changelists_and_pages_load(root, version):
    transition = ModelVersionTransition.objects.get(version=version)
    model_id = version.registered_model_id
    for url in ["/admin/training/registeredmodel/", f"/admin/training/registeredmodel/{model_id}/change/",
                "/admin/training/modelversion/", "/admin/training/modelversion/?stage__exact=candidate",
                f"/admin/training/modelversion/{version.pk}/change/", "/admin/training/modelversiontransition/",
                f"/admin/training/modelversiontransition/{transition.pk}/change/", "/admin/training/prediction/",
                "/admin/training/scoringjob/", "/admin/training/evaluation/"]:
        assert root.get(url).status_code == 200, url


def test_nothing_is_added_or_edited_by_hand(root, version):
    assert root.get("/admin/training/prediction/add/").status_code == 403
    assert root.get("/admin/training/modelversion/add/").status_code == 403
    answer = root.post(f"/admin/training/modelversion/{version.pk}/change/", {"stage": "production"})
    assert answer.status_code == 403
    version.refresh_from_db()
    assert version.stage == ModelStage.CANDIDATE


def change_stage(client, versions, **form):
    """The changelist after the action, and the messages it left."""
    return client.post("/admin/training/modelversion/", {
        "action": "change_stage", "_selected_action": [version.pk for version in versions], **form,
    }, follow=True)


def notes(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def test_the_change_stage_action_asks_for_a_reason_then_calls_the_service(root, version):
    asked = change_stage(root, [version])
    assert asked.status_code == 200 and "Change the stage of model versions" in asked.content.decode()
    version.refresh_from_db()
    assert version.stage == ModelStage.CANDIDATE

    moved = change_stage(root, [version], apply="1", to_stage="staging", reason="ready for shadow traffic")

    assert notes(moved) == ["spam v1: candidate → staging."]
    version.refresh_from_db()
    assert (version.stage, version.lock_version) == (ModelStage.STAGING, 2)
    last = ModelVersionTransition.objects.filter(version=version).last()
    assert (last.to_stage, last.reason, last.user.username) == ("staging", "ready for shadow traffic", "root")


def test_the_action_reports_an_illegal_move_and_a_refusing_gate(root, version):
    services.registered_model_update(version.registered_model_id, gate_rules=[{"metric": "f1", "min": 1.0}])

    illegal = change_stage(root, [version], apply="1", to_stage="production", reason="skip")
    services.model_version_transition(version.pk, to_stage="staging")
    refused = change_stage(root, [version], apply="1", to_stage="production", reason="go")

    assert "it can move to staging or archived, not production" in notes(illegal)[0]
    assert "gate rule f1 ≥ 1 failed" in notes(refused)[0]
    version.refresh_from_db()
    assert version.stage == ModelStage.STAGING
