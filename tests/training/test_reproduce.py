"""Reproducing a run: the service, the button on the run page, the API, and the run
page's "Differences from the origin run" section."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from datasets.models import DatasetVersionStatus
from experiments import selectors as experiment_selectors
from experiments.models import Artifact, MetricPoint, Param, Run, RunMetricSummary, RunStatus
from tests.datasets.panel_fixtures import make_versions
from tests.experiments.factories import ExperimentFactory, RunFactory
from tests.training.factories import separable_dataset_version
from training import services
from training.predictions import PREDICTIONS_PATH

pytestmark = pytest.mark.django_db


@pytest.fixture
def version():
    return separable_dataset_version(rows=60, dimensions=8, seed=4)


@pytest.fixture
def experiment(version):
    return ExperimentFactory(default_dataset_version=version)


@pytest.fixture
def admin(make_user):
    return make_user("boss", group="admins")


def queue(experiment, **hyperparameters) -> Run:
    return services.run_queue(
        experiment_id=experiment.pk, architecture_key="mlp",
        hyperparameters={"epochs": 6, "batch_size": 16, "early_stopping_patience": 0, "hidden_sizes": "32,16",
                         "dropout": 0.1, "seed": 13, **hyperparameters},
        enqueue=False,
    )


def points(run: Run) -> list[tuple[str, int, float]]:
    # Timings are the only values allowed to differ.
    return sorted(MetricPoint.objects.filter(run=run).exclude(key="epoch_seconds").values_list("key", "step", "value"))


@pytest.fixture
def trained(experiment, artifacts) -> Run:
    run = services.run_train(queue(experiment).pk)
    assert run.status == RunStatus.SUCCEEDED, run.error
    # A model that learned something: identical metrics are then not those of a constant.
    assert RunMetricSummary.objects.get(run=run, key="test_roc_auc").latest_value > 0.9
    return run


def test_a_reproduction_copies_the_inputs_and_records_its_origin(trained):
    reproduction = services.run_reproduce(trained.pk, enqueue=False)

    assert reproduction.status == RunStatus.QUEUED
    assert reproduction.origin_run_id == trained.pk
    assert reproduction.tags == {"reproduces": str(trained.pk)}
    assert (reproduction.experiment_id, reproduction.dataset_version_id, reproduction.architecture_key,
            reproduction.seed) == (trained.experiment_id, trained.dataset_version_id, "mlp", 13)

    def params(run):
        return dict(Param.objects.filter(run=run).values_list("key", "value"))

    assert params(reproduction) == params(trained) and params(trained)["hidden_sizes"] == "32,16"


def test_a_reproduction_on_the_cpu_gives_identical_metrics_weights_and_predictions(trained):
    reproduction = services.run_train(services.run_reproduce(trained.pk, enqueue=False).pk)

    assert reproduction.status == RunStatus.SUCCEEDED, reproduction.error
    assert points(reproduction) == points(trained) and len(points(trained)) > 30
    for path in (services.WEIGHTS_PATH, PREDICTIONS_PATH):
        hashes = {run.pk: Artifact.objects.get(run=run, path=path).sha256 for run in (trained, reproduction)}
        assert hashes[trained.pk] == hashes[reproduction.pk], path


def test_the_reproductions_page_shows_identical_metrics_and_no_param_differences(trained, client, admin):
    reproduction = services.run_train(services.run_reproduce(trained.pk, enqueue=False).pk)
    client.force_login(admin)

    page = client.get(reverse("experiments:run-detail", args=[reproduction.pk]))

    html = page.content.decode()
    assert page.status_code == 200
    assert 'data-testid="origin-differences"' in html and 'data-testid="origin-identical"' in html
    assert 'data-testid="origin-same-params"' in html and 'data-testid="origin-param-differences"' not in html
    differences = page.context["origin_differences"]
    keys = {metric.key for metric in differences.metrics}
    assert {"test_f1", "test_roc_auc", "final_val_loss", "test_fp", "threshold", "best_epoch"} <= keys
    assert "epoch_seconds" not in keys and "train_loss" not in keys
    assert all(metric.difference == 0.0 for metric in differences.metrics)
    # The origin's own page has no such section.
    origin_page = client.get(reverse("experiments:run-detail", args=[trained.pk]))
    assert origin_page.context["origin_differences"] is None
    assert 'data-testid="origin-differences"' not in origin_page.content.decode()


def test_differences_are_shown_with_their_sign_and_params_that_differ(trained, client, admin):
    reproduction = services.run_train(services.run_reproduce(trained.pk, enqueue=False).pk)
    RunMetricSummary.objects.filter(run=reproduction, key="test_f1").update(latest_value=0.25)
    origin_f1 = RunMetricSummary.objects.get(run=trained, key="test_f1").latest_value
    Param.objects.filter(run=trained, key="dropout").update(value="0.4")
    client.force_login(admin)

    page = client.get(reverse("experiments:run-detail", args=[reproduction.pk]))

    differences = page.context["origin_differences"]
    f1 = next(metric for metric in differences.metrics if metric.key == "test_f1")
    assert f1.difference == pytest.approx(0.25 - origin_f1) and not differences.metrics_identical
    assert [(param.key, param.origin_value) for param in differences.params] == [("dropout", "0.4")]
    html = page.content.decode()
    assert 'data-testid="origin-identical"' not in html and 'data-testid="origin-param-differences"' in html


def test_the_differences_cost_two_queries(trained, django_assert_num_queries):
    reproduction = services.run_reproduce(trained.pk, enqueue=False)
    run = experiment_selectors.run_detail(reproduction.pk)

    with django_assert_num_queries(2):
        differences = experiment_selectors.run_origin_differences(run)

    # Queued: nothing logged yet, so every metric is the origin's alone.
    assert differences.origin.pk == trained.pk and differences.metrics
    assert all(metric.value is None and metric.difference is None for metric in differences.metrics)
    assert not differences.metrics_identical and differences.params == []


# --- refused ------------------------------------------------------------------------------


def test_a_deleted_run_is_not_reproduced(trained):
    Run.objects.filter(pk=trained.pk).update(deleted_at=timezone.now())

    with pytest.raises(ValidationError, match="is deleted: restore it"):
        services.run_reproduce(trained.pk, enqueue=False)
    assert Run.objects.count() == 1


def test_a_run_of_a_deleted_experiment_is_not_reproduced(trained):
    trained.experiment.__class__.objects.filter(pk=trained.experiment_id).update(deleted_at=timezone.now())

    with pytest.raises(ValidationError, match="experiment is deleted"):
        services.run_reproduce(trained.pk, enqueue=False)
    assert Run.objects.count() == 1


def test_a_run_whose_version_is_not_ready_is_not_reproduced(experiment, version):
    # A ready version is frozen for good (a trigger), so only a run inserted on a failed
    # version (by hand, or by a future bug) can get here.
    (failed,) = make_versions(1, version.embedding_model, status=DatasetVersionStatus.FAILED)
    run = RunFactory(experiment=experiment, dataset_version=failed)

    with pytest.raises(ValidationError, match="is failed, not ready: it cannot be reproduced"):
        services.run_reproduce(run.pk, enqueue=False)
    assert Run.objects.count() == 1


def test_params_that_no_longer_pass_the_schema_are_refused_with_the_param_named(experiment):
    run = queue(experiment)
    Param.objects.filter(run=run, key="dropout").update(value="7")

    with pytest.raises(ValidationError, match="no longer pass the mlp schema: dropout"):
        services.run_reproduce(run.pk, enqueue=False)
    assert Run.objects.count() == 1


def test_an_unknown_run_does_not_exist(db):
    with pytest.raises(Run.DoesNotExist):
        services.run_reproduce(123456, enqueue=False)


# --- the page button ------------------------------------------------------------------------


def test_admins_see_the_button_and_it_queues_a_reproduction(trained, client, admin):
    client.force_login(admin)
    page = client.get(reverse("experiments:run-detail", args=[trained.pk]))
    assert 'data-testid="reproduce-run"' in page.content.decode()
    assert reverse("training:run-reproduce", args=[trained.pk]) == f"/training/runs/{trained.pk}/reproduce"

    response = client.post(reverse("training:run-reproduce", args=[trained.pk]))

    reproduction = Run.objects.get(origin_run=trained)
    assert response.status_code == 302
    assert response["Location"] == reverse("experiments:run-detail", args=[reproduction.pk])
    follow = client.get(response["Location"])
    assert f"a reproduction of run {trained.pk}" in follow.content.decode()


def test_labelers_see_no_button_and_may_not_reproduce(trained, client, make_user):
    client.force_login(make_user("lab", group="labelers"))

    page = client.get(reverse("experiments:run-detail", args=[trained.pk]))
    response = client.post(reverse("training:run-reproduce", args=[trained.pk]))

    assert 'data-testid="reproduce-run"' not in page.content.decode()
    assert response.status_code == 403
    assert Run.objects.count() == 1


def test_a_refused_reproduction_says_why_on_the_run_page(trained, client, admin):
    Run.objects.filter(pk=trained.pk).update(deleted_at=timezone.now())
    client.force_login(admin)

    response = client.post(reverse("training:run-reproduce", args=[trained.pk]), follow=False)

    assert response.status_code == 302 and Run.objects.count() == 1
    message = [str(message) for message in response.wsgi_request._messages]
    assert message == [f"Cannot reproduce this run: run {trained.pk} is deleted: restore it before reproducing it"]
    assert client.post(reverse("training:run-reproduce", args=[987654])).status_code == 404


# --- the API -------------------------------------------------------------------------------


def test_the_api_answers_201_with_the_new_run(trained, admin):
    api = APIClient()
    api.force_authenticate(admin)

    response = api.post(f"/api/v1/runs/{trained.pk}/reproduce")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["origin_run"] == trained.pk and body["status"] == "queued" and body["id"] != trained.pk
    assert body["params"] == {param.key: param.value for param in Param.objects.filter(run=trained)}


def test_the_api_refuses_bad_cases(trained, admin, make_user):
    api = APIClient()
    api.force_authenticate(make_user("lab", group="labelers"))
    assert api.post(f"/api/v1/runs/{trained.pk}/reproduce").status_code == 403
    api.force_authenticate(admin)
    assert api.post("/api/v1/runs/987654/reproduce").status_code == 404
    Run.objects.filter(pk=trained.pk).update(deleted_at=timezone.now())

    response = api.post(f"/api/v1/runs/{trained.pk}/reproduce")

    assert response.status_code == 400
    assert "is deleted" in response.json()["detail"]
    assert Run.objects.count() == 1
