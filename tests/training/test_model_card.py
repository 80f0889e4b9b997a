"""The model card: lineage (version → model → run → experiment → dataset version with its
label counts at freeze), metrics (the run's final numbers, the version's evaluations),
the gate results of its promotion and its stage history; the same data on the page and
in the API, read in a fixed number of queries whatever the version's history."""

from __future__ import annotations

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from experiments.models import MetricPoint
from tests.training.registry_factories import registered_version
from training import services
from training.model_card import model_card
from training.models import Evaluation, JobStatus, ModelStage, ModelVersionTransition

pytestmark = pytest.mark.django_db

RULES = [{"metric": "f1", "min": 0.0}, {"metric": "roc_auc", "max_drop": 0.5}]


@pytest.fixture(autouse=True)
def artifacts(tmp_path, settings):
    settings.CVSA_ARTIFACTS_DIR = tmp_path


def promoted_version(admin):
    services.registered_model_create(name="m", gate_rules=RULES, user=admin)
    return registered_version("m", stage=ModelStage.PRODUCTION, user=admin, architecture="mlp",
                              hidden_sizes="8", seed=3)


def test_the_card_traces_the_version_back_to_its_data_with_metrics_gates_and_history(admin):
    version = promoted_version(admin)
    run = version.run
    dataset_version = run.dataset_version

    card = model_card(version.pk)

    assert card["version"]["number"] == 1 and card["version"]["stage"] == "production"
    assert card["version"]["weights_sha256"] == version.weights_sha256
    assert card["registered_model"]["name"] == "m"
    assert [rule["description"] for rule in card["registered_model"]["gate_rules"]] == [
        "f1 ≥ 0", "roc_auc ≥ production − 0.5"]
    assert card["run"]["id"] == run.pk and card["run"]["architecture"] == "mlp" and card["run"]["seed"] == 3
    assert card["run"]["params"]["hidden_sizes"] == "8" and card["run"]["params"]["seed"] == "3"
    assert card["run"]["git_commit"] == run.reproducibility["code_version"]
    assert card["experiment"] == {"id": run.experiment.pk, "name": run.experiment.name,
                                  "metric_key": run.experiment.metric_key}
    lineage = card["dataset_version"]
    assert lineage["id"] == str(dataset_version.pk) and lineage["content_hash"] == dataset_version.content_hash
    assert lineage["name"] == f"{dataset_version.dataset.name} v{dataset_version.number}"
    assert lineage["embedding_model"] == dataset_version.embedding_model.key
    assert lineage["split_counts"] == dataset_version.split_counts
    assert sum(split["total"] for split in lineage["split_counts"].values()) == lineage["total_records"]

    logged_f1 = MetricPoint.objects.get(run=run, key="test_f1").value
    run_metrics = card["metrics"]["run"]
    assert run_metrics["test"]["f1"] == logged_f1 and "f1" in run_metrics["val"]
    assert sum(map(sum, run_metrics["test"]["confusion_matrix"])) == dataset_version.split_counts["test"]["total"]
    assert run_metrics["threshold"] == pytest.approx(version.threshold)
    # The gate computed the test-split evaluation it judged.
    (evaluation,) = card["metrics"]["evaluations"]
    assert evaluation["status"] == "succeeded" and evaluation["metrics"]["f1"] == pytest.approx(logged_f1)

    (gate,) = card["gates"]
    assert gate["passed"] is True and gate["to_stage"] == "production" and gate["user"] == "ada"
    assert gate["evaluation"] == evaluation["id"] and gate["dataset_version"] == str(dataset_version.pk)
    assert [result["rule"] for result in gate["results"]] == ["f1 ≥ 0", "roc_auc ≥ production − 0.5"]
    assert all(result["passed"] for result in gate["results"])
    assert [(change["from_stage"], change["to_stage"]) for change in card["stage_history"]] == [
        ("", "candidate"), ("candidate", "staging"), ("staging", "production")]
    assert card["onnx"] is None


def add_history(version, count: int) -> None:
    """``count`` more evaluations and stage changes, as years of use leave them."""
    now = timezone.now()
    Evaluation.objects.bulk_create([
        Evaluation(version=version, dataset_version_id=version.run.dataset_version_id, split="test",
                   status=JobStatus.SUCCEEDED, rows=12, positives=6, metrics={"f1": 0.9},
                   confusion_matrix=[[5, 1], [1, 5]], started_at=now, finished_at=now)
        for _ in range(count)
    ])
    ModelVersionTransition.objects.bulk_create([
        ModelVersionTransition(registered_model_id=version.registered_model_id, version=version,
                               from_stage="staging", to_stage="production", user=version.created_by,
                               gate={"passed": True, "results": [], "split": "test"}, created_at=now)
        for _ in range(count)
    ])


@pytest.mark.parametrize("history", [2, 40])
def test_the_card_reads_a_fixed_number_of_queries(admin, django_assert_num_queries, history):
    version = promoted_version(admin)
    add_history(version, history)

    # version with its lineage, params, metric summaries, evaluations, transitions
    with django_assert_num_queries(5):
        card = model_card(version.pk)

    assert len(card["stage_history"]) == 3 + history and len(card["gates"]) == 1 + history


def test_the_page_and_the_api_show_the_card(client, admin, make_user):
    version = promoted_version(admin)
    labeler = make_user("lea", group="labelers")
    client.force_login(labeler)
    api = APIClient()
    api.force_authenticate(labeler)

    page = client.get(f"/training/model-versions/{version.pk}/card")
    response = api.get(f"/api/v1/model-versions/{version.pk}/card")

    html = page.content.decode()
    assert page.status_code == 200
    assert version.run.dataset_version.content_hash in html and 'data-testid="card-gate"' in html
    assert "roc_auc ≥ production − 0.5" in html and version.run.reproducibility["code_version"] in html
    body = response.json()
    assert response.status_code == 200 and body["version"]["id"] == version.pk
    assert body["dataset_version"]["split_counts"] == version.run.dataset_version.split_counts
    assert body["gates"][0]["passed"] is True and body["onnx"] is None
    assert client.get("/training/model-versions/987654321/card").status_code == 404
    assert api.get("/api/v1/model-versions/987654321/card").json() == {"detail": "Model version not found"}


def test_the_card_names_the_onnx_export_once_there_is_one(admin):
    version = promoted_version(admin)
    info = services.model_version_onnx_export(version.pk, user=admin)

    assert model_card(version.pk)["onnx"] == info.as_json()
