"""The registry's REST API: team reads, admin writes; register → version 1 candidate;
transitions with 200 / 400 illegal / 409 stale, concurrent or gate refused (the rule
named) and nothing changed; gate rules validated; the history with ``?at=``; lists in a
fixed number of queries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from tests.training.registry_factories import registered_version, trained_run
from training import services
from training.models import ModelVersion, ModelVersionTransition, RegisteredModel

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def artifacts(tmp_path, settings):
    settings.CVSA_ARTIFACTS_DIR = tmp_path


@pytest.fixture
def api(make_user):
    def client_for(group: str | None):
        client = APIClient()
        client.force_authenticate(make_user(f"user-{group}", group=group))
        return client

    return client_for


@pytest.fixture
def admin_api(api):
    return api("admins")


@pytest.fixture
def version():
    return registered_version("spam")


def transition(client, version, to_stage, **body):
    return client.post(f"/api/v1/model-versions/{version.pk}/transition", {"to_stage": to_stage, **body},
                       format="json")


def test_the_team_reads_models_versions_and_history(api, version):
    client = api("labelers")

    models = client.get("/api/v1/models")
    model = client.get("/api/v1/models/spam")
    versions = client.get("/api/v1/models/spam/versions")
    one = client.get(f"/api/v1/model-versions/{version.pk}")
    history = client.get("/api/v1/models/spam/history")

    assert [r.status_code for r in (models, model, versions, one, history)] == [200] * 5
    assert models.json()["results"][0] | {"last_change": None} == model.json() | {"last_change": None}
    assert model.json()["version_count"] == 1 and model.json()["production_version"] is None
    assert versions.json()["results"][0] == one.json()
    assert one.json()["stage"] == "candidate" and one.json()["lock_version"] == 1
    assert one.json()["run"] == version.run_id and one.json()["dataset_version"] == str(version.run.dataset_version_id)
    assert [(row["from_stage"], row["to_stage"]) for row in history.json()["transitions"]] == [("", "candidate")]
    assert history.json()["production_version"] is None


def test_outsiders_read_nothing_and_labelers_write_nothing(api, version):
    outsider, labeler = api(None), api("labelers")

    assert outsider.get("/api/v1/models").status_code == 403
    assert outsider.get(f"/api/v1/model-versions/{version.pk}").status_code == 403
    writes = [
        labeler.post("/api/v1/models", {"name": "new"}, format="json"),
        labeler.patch("/api/v1/models/spam", {"description": "x"}, format="json"),
        labeler.post("/api/v1/models/spam/versions", {"run_id": version.run_id}, format="json"),
        labeler.patch(f"/api/v1/model-versions/{version.pk}", {"description": "x"}, format="json"),
        transition(labeler, version, "staging"),
    ]
    assert [answer.status_code for answer in writes] == [403] * 5
    version.refresh_from_db()
    assert (version.stage, version.lock_version, version.description) == ("candidate", 1, "")
    assert RegisteredModel.objects.count() == 1


def test_unknown_names_and_ids_are_404s(admin_api):
    assert admin_api.get("/api/v1/models/nope").json() == {"detail": "Model not found"}
    assert admin_api.get("/api/v1/models/nope/versions").status_code == 404
    assert admin_api.get("/api/v1/models/nope/history").status_code == 404
    assert admin_api.get("/api/v1/models/a%00b").status_code == 404
    assert admin_api.get("/api/v1/model-versions/999").json() == {"detail": "Model version not found"}
    assert transition(admin_api, type("V", (), {"pk": 999})(), "staging").status_code == 404


def test_create_and_patch_a_model_with_gate_rules(admin_api):
    created = admin_api.post("/api/v1/models", {"name": "ham", "description": "d",
                                                "gate_rules": [{"metric": "f1", "min": 0.8}]}, format="json")
    patched = admin_api.patch("/api/v1/models/ham", {"gate_rules": [{"metric": "roc_auc", "max_drop": 0.02}]},
                              format="json")
    bad = admin_api.patch("/api/v1/models/ham", {"gate_rules": [{"metric": "f1", "min": 0.5}, {"metric": "zz"}]},
                          format="json")
    taken = admin_api.post("/api/v1/models", {"name": "ham"}, format="json")

    assert created.status_code == 201 and created.json()["gate_rules"] == [{"metric": "f1", "min": 0.8}]
    assert patched.status_code == 200 and patched.json()["description"] == "d"
    assert patched.json()["gate_rules"] == [{"metric": "roc_auc", "max_drop": 0.02}]
    assert bad.status_code == 400 and bad.json()["errors"]["gate_rules"] == [
        "rule 2: metric must be one of accuracy, precision, recall, f1, roc_auc, pr_auc, loss (got 'zz')"]
    assert taken.status_code == 400 and "already exists" in taken.json()["detail"]
    assert RegisteredModel.objects.get(name="ham").gate_rules == [{"metric": "roc_auc", "max_drop": 0.02}]


def test_registering_a_run_makes_version_1_a_candidate_and_bad_runs_are_400s(admin_api):
    run = trained_run(seed=2)

    created = admin_api.post("/api/v1/models/new-model/versions", {"run_id": run.pk, "description": "v1"},
                             format="json")
    again = admin_api.post("/api/v1/models/new-model/versions", {"run_id": run.pk}, format="json")
    unknown = admin_api.post("/api/v1/models/new-model/versions", {"run_id": 999999}, format="json")

    assert created.status_code == 201
    assert (created.json()["model"], created.json()["number"], created.json()["stage"]) == ("new-model", 1, "candidate")
    assert again.status_code == 400 and "is already version 1" in again.json()["errors"]["run_id"][0]
    assert unknown.status_code == 400 and unknown.json()["errors"]["run_id"] == ["no run 999999"]
    assert ModelVersion.objects.count() == 1


def test_a_version_description_uses_the_optimistic_lock(admin_api, version):
    url = f"/api/v1/model-versions/{version.pk}"

    changed = admin_api.patch(url, {"description": "better", "lock_version": 1}, format="json")
    stale = admin_api.patch(url, {"description": "worse", "lock_version": 1}, format="json")

    assert changed.status_code == 200 and changed.json()["lock_version"] == 2
    assert stale.status_code == 409 and "changed since you loaded it" in stale.json()["detail"]
    version.refresh_from_db()
    assert (version.description, version.lock_version) == ("better", 2)


def test_transitions_answer_200_400_illegal_and_409_stale(admin_api, version):
    moved = transition(admin_api, version, "staging", lock_version=1, reason="looks good")
    stale = transition(admin_api, version, "archived", lock_version=1)
    illegal = transition(admin_api, version, "staging", lock_version=2)
    unknown_stage = transition(admin_api, version, "retired")

    assert moved.status_code == 200 and moved.json()["stage"] == "staging" and moved.json()["lock_version"] == 2
    assert stale.status_code == 409 and "lock_version 1, now 2" in stale.json()["detail"]
    assert illegal.status_code == 400 and "not staging" in illegal.json()["errors"]["to_stage"][0]
    assert unknown_stage.status_code == 400 and "to_stage" in unknown_stage.json()["errors"]
    version.refresh_from_db()
    assert (version.stage, version.lock_version) == ("staging", 2)
    last = ModelVersionTransition.objects.filter(version=version).last()
    assert (last.to_stage, last.reason, last.user.username) == ("staging", "looks good", "user-admins")


def test_the_gate_refusal_is_a_409_naming_the_rule_and_nothing_changes(admin_api, version):
    services.registered_model_update(version.registered_model_id, gate_rules=[{"metric": "f1", "min": 1.0}])
    version = services.model_version_transition(version.pk, to_stage="staging")
    rows = ModelVersionTransition.objects.count()

    refused = transition(admin_api, version, "production", lock_version=2)
    unknown_data = transition(admin_api, version, "production",
                              gate_dataset_version_id="00000000-0000-0000-0000-000000000000")

    assert refused.status_code == 409 and "gate rule f1 ≥ 1 failed" in refused.json()["detail"]
    assert unknown_data.status_code == 400 and "gate_dataset_version_id" in unknown_data.json()["errors"]
    version.refresh_from_db()
    assert (version.stage, version.lock_version) == ("staging", 2)
    assert ModelVersionTransition.objects.count() == rows


def test_a_passing_gate_promotes_and_the_history_answers_at(admin_api, version):
    services.registered_model_update(version.registered_model_id, gate_rules=[{"metric": "accuracy", "min": 0.5}])
    version = services.model_version_transition(version.pk, to_stage="staging")

    promoted = transition(admin_api, version, "production", lock_version=2,
                          gate_dataset_version_id=str(version.run.dataset_version_id))

    assert promoted.status_code == 200 and promoted.json()["stage"] == "production"
    history = admin_api.get("/api/v1/models/spam/history").json()
    into = history["transitions"][-1]
    assert (into["from_stage"], into["to_stage"]) == ("staging", "production")
    assert into["gate"]["passed"] is True and into["gate"]["results"][0]["description"] == "accuracy ≥ 0.5"
    promoted_at = ModelVersionTransition.objects.get(to_stage="production").created_at
    before = admin_api.get("/api/v1/models/spam/history", {"at": (promoted_at - timedelta(seconds=1)).isoformat()})
    after = admin_api.get("/api/v1/models/spam/history", {"at": (promoted_at + timedelta(seconds=1)).isoformat()})
    assert before.json()["production_version"] is None
    assert after.json()["production_version"]["id"] == version.pk
    assert admin_api.get("/api/v1/models/spam/history", {"at": "soon"}).status_code == 400


def test_the_history_is_paged_oldest_first(admin_api, version):
    version = services.model_version_transition(version.pk, to_stage="staging")
    services.model_version_transition(version.pk, to_stage="candidate")

    first = admin_api.get("/api/v1/models/spam/history", {"limit": 2}).json()
    rest = admin_api.get("/api/v1/models/spam/history", {"limit": 2, "offset": 2}).json()

    assert first["transition_count"] == rest["transition_count"] == 3
    moves = [(row["from_stage"], row["to_stage"]) for row in first["transitions"] + rest["transitions"]]
    assert moves == [("", "candidate"), ("candidate", "staging"), ("staging", "candidate")]
    assert admin_api.get("/api/v1/models/spam/history", {"limit": 0}).status_code == 400


def test_lists_read_in_a_fixed_number_of_queries(admin_api):
    first = registered_version("a", seed=1)
    second = registered_version("b", seed=2)

    def count(url):
        with CaptureQueriesContext(connection) as captured:
            assert admin_api.get(url).status_code == 200
        return len(captured)

    few_versions, few_models = count("/api/v1/models/a/versions"), count("/api/v1/models")
    for seed in range(3, 6):
        services.model_version_register(run_id=trained_run(first.run.experiment, seed=seed).pk, model_name="b")
        services.registered_model_create(name=f"extra-{seed}")
    assert second.registered_model.versions.count() == 4
    assert count("/api/v1/models/b/versions") == few_versions
    assert count("/api/v1/models") == few_models
