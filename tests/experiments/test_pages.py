"""Experiment pages: the list (filters, create, deleted + restore), an experiment's runs
table (sort, filter, edit, delete), a run's page (live block, curves' JSON, results, log
tail, artifacts, cancel/delete/restore), permissions and query counts."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from experiments import services
from experiments.models import Experiment, MetricPoint, Param, Run, RunStatus
from datasets.models import DatasetVersionStatus
from tests.experiments.factories import (
    ExperimentFactory,
    RunFactory,
    dataset_version,
    make_runs,
    ready_dataset_version,
    running_run,
)

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def artifacts_dir(settings, tmp_path):
    settings.CVSA_ARTIFACTS_DIR = tmp_path / "artifacts"
    return settings.CVSA_ARTIFACTS_DIR


@pytest.fixture
def admin_client(make_user):
    client = Client()
    client.force_login(make_user("experiments-admin", group="admins"))
    return client


@pytest.fixture
def labeler_client(make_user):
    client = Client()
    client.force_login(make_user("experiments-labeler", group="labelers"))
    return client


def page(response) -> str:
    return response.content.decode()


def finished_run(experiment: Experiment, *, name: str = "trained", epochs: int = 3, **fields) -> Run:
    """A succeeded run that logged what the trainer logs: per-epoch curves, final metrics
    and a confusion matrix, with params."""
    run = running_run(experiment=experiment, name=name, **fields)
    services.run_params_log(run.pk, {"learning_rate": 0.001, "epochs": epochs, "hidden_sizes": [64, 32]})
    points = []
    for epoch in range(1, epochs + 1):
        points += [("train_loss", epoch, 1.0 / epoch), ("val_loss", epoch, 1.1 / epoch),
                   ("val_f1", epoch, 0.5 + epoch / (10 * epochs)), ("val_accuracy", epoch, 0.6),
                   ("val_roc_auc", epoch, 0.7)]
    services.run_metrics_log(run.pk, points)
    final = {"test_f1": 0.8125, "test_accuracy": 0.9, "test_roc_auc": 0.93, "final_val_f1": 0.84,
             "test_tn": 50, "test_fp": 7, "test_fn": 5, "test_tp": 38, "threshold": 0.45, "best_epoch": 2}
    services.run_metrics_log(run.pk, [(key, epochs, value) for key, value in final.items()])
    return services.run_transition(run.pk, RunStatus.SUCCEEDED, now=timezone.now() + timedelta(seconds=5))


# --- permissions ------------------------------------------------------------------------


def test_pages_need_login(client):
    run = RunFactory()
    for url in ("/experiments/", f"/experiments/{run.experiment_id}/", f"/experiments/runs/{run.pk}/",
                f"/experiments/runs/{run.pk}/metrics.json"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), url


def test_pages_need_a_team_role(make_user):
    client = Client()
    client.force_login(make_user("outsider", group=None))
    run = RunFactory()
    for url in ("/experiments/", f"/experiments/{run.experiment_id}/", f"/experiments/runs/{run.pk}/"):
        assert client.get(url).status_code == 403, url


def test_a_labeler_reads_but_cannot_write(labeler_client):
    run = running_run()
    experiment = run.experiment

    list_page = page(labeler_client.get("/experiments/"))
    assert experiment.name in list_page
    assert 'data-testid="create-experiment"' not in list_page
    detail = page(labeler_client.get(f"/experiments/{experiment.pk}/"))
    assert run.name in detail and 'data-testid="new-run"' not in detail and "delete-experiment" not in detail
    run_page = page(labeler_client.get(f"/experiments/runs/{run.pk}/"))
    assert 'data-testid="cancel-run"' not in run_page

    writes = [
        ("/experiments/new", {"name": "sneaky", "metric_key": "val_f1", "metric_direction": "max"}),
        (f"/experiments/{experiment.pk}/edit", {"edit-name": "renamed"}),
        (f"/experiments/{experiment.pk}/delete", {}),
        (f"/experiments/{experiment.pk}/restore", {}),
        (f"/experiments/runs/{run.pk}/cancel", {}),
        (f"/experiments/runs/{run.pk}/delete", {}),
        (f"/experiments/runs/{run.pk}/restore", {}),
    ]
    for url, data in writes:
        assert labeler_client.post(url, data).status_code == 403, url
    run.refresh_from_db()
    experiment.refresh_from_db()
    assert (run.status, experiment.name, experiment.deleted_at) == (RunStatus.RUNNING, experiment.name, None)
    assert not Experiment.objects.filter(name="sneaky").exists()


def test_the_nav_links_to_experiments(labeler_client):
    response = labeler_client.get("/experiments/")
    assert response.status_code == 200
    assert re.search(r'<a href="/experiments/" aria-current="page">Experiments</a>', page(response))


# --- experiments list ---------------------------------------------------------------------


def test_list_shows_experiments_with_run_counts_and_filters(admin_client):
    mlp = ExperimentFactory(name="wider mlp", tags=["mlp", "width"])
    baseline = ExperimentFactory(name="logistic baseline", tags=["baseline"], description="the floor")
    make_runs(mlp, 3)
    make_runs(mlp, 1, status=RunStatus.FAILED)
    running_run(experiment=baseline)

    html = page(admin_client.get("/experiments/"))
    assert "wider mlp" in html and "logistic baseline" in html
    row = re.search(rf'<tr data-experiment="{mlp.pk}">.*?</tr>', html, re.S).group(0)
    assert "3 succeeded" in row and "1 failed" in row and "<strong>4</strong>" in row

    assert "logistic baseline" not in page(admin_client.get("/experiments/?tag=mlp"))
    assert "wider mlp" not in page(admin_client.get("/experiments/?q=floor"))
    by_status = page(admin_client.get("/experiments/?status=running"))
    assert "logistic baseline" in by_status and "wider mlp" not in by_status
    other_version = ready_dataset_version()
    assert "No experiment matches" in page(admin_client.get(f"/experiments/?dataset_version={other_version.pk}"))

    partial = admin_client.get("/experiments/?tag=baseline", **HTMX)
    assert partial.status_code == 200
    assert "<html" not in page(partial) and "logistic baseline" in page(partial)


def test_list_refuses_a_bad_filter(admin_client):
    response = admin_client.get("/experiments/?status=exploded")
    assert response.status_code == 400
    assert 'data-testid="filter-errors"' in page(response)


def test_create_an_experiment(admin_client):
    version = ready_dataset_version()
    response = admin_client.post("/experiments/new", {
        "name": "  deeper   mlp ", "description": "3 layers", "tags": "MLP, depth,, mlp",
        "default_dataset_version": str(version.pk), "metric_key": "val_roc_auc", "metric_direction": "max",
    })

    experiment = Experiment.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/experiments/{experiment.pk}/"
    assert (experiment.name, experiment.tags, experiment.default_dataset_version_id, experiment.metric_key) == (
        "deeper mlp", ["mlp", "depth"], version.pk, "val_roc_auc")
    assert experiment.owner.username == "experiments-admin"
    assert "Created experiment deeper mlp." in page(admin_client.get(response["Location"]))


def test_create_with_bad_input_shows_the_field_errors_and_writes_nothing(admin_client):
    ExperimentFactory(name="taken")
    building = dataset_version(DatasetVersionStatus.BUILDING)
    data = {"name": "taken", "tags": "ok", "metric_key": "val f1!", "metric_direction": "max"}

    response = admin_client.post("/experiments/new", data)
    assert response.status_code == 400
    html = page(response)
    assert 'data-testid="error-summary"' in html
    assert "only letters, digits, spaces" in html  # the metric key, from the service's validation
    assert Experiment.objects.count() == 1

    # htmx gets the form alone (200: htmx swaps only 2xx), with the error next to the field.
    response = admin_client.post("/experiments/new", {**data, "metric_key": "val_f1"}, **HTMX)
    assert response.status_code == 200 and "<html" not in page(response)
    assert re.search(r'already exists.*id="id_name"', page(response), re.S)
    assert Experiment.objects.count() == 1

    # A version that is not ready is not offered (the form refuses it before the service).
    response = admin_client.post("/experiments/new", {**data, "name": "new",
                                                       "default_dataset_version": str(building.pk)})
    assert response.status_code == 400 and "Select a valid choice" in page(response)
    response = admin_client.post("/experiments/new", {"name": "", "metric_key": "", "metric_direction": "sideways"})
    assert response.status_code == 400 and page(response).count('class="errorlist') >= 3
    assert Experiment.objects.count() == 1


def test_deleted_experiments_are_listed_and_restored(admin_client):
    experiment = ExperimentFactory(name="old idea")
    response = admin_client.post(f"/experiments/{experiment.pk}/delete")
    assert response.status_code == 302 and response["Location"] == "/experiments/?deleted=on"
    assert f'data-experiment="{experiment.pk}"' not in page(admin_client.get("/experiments/"))
    deleted = page(admin_client.get(response["Location"]))
    assert "old idea" in deleted and 'data-testid="restore-experiment"' in deleted
    assert admin_client.get(f"/experiments/{experiment.pk}/").status_code == 404

    response = admin_client.post(f"/experiments/{experiment.pk}/restore")
    assert response.status_code == 302
    experiment.refresh_from_db()
    assert experiment.deleted_at is None
    assert "Restored experiment old idea." in page(admin_client.get(response["Location"]))


def test_an_experiment_with_an_active_run_is_not_deleted(admin_client):
    run = running_run()
    response = admin_client.post(f"/experiments/{run.experiment_id}/delete", follow=True)

    assert "queued or running run(s); cancel them first" in page(response)
    assert Experiment.objects.get(pk=run.experiment_id).deleted_at is None


# --- an experiment and its runs table ---------------------------------------------------------


def test_detail_shows_the_experiment_and_links_to_a_new_run(admin_client):
    experiment = ExperimentFactory(description="does width help?", tags=["mlp"])
    run = finished_run(experiment)

    html = page(admin_client.get(f"/experiments/{experiment.pk}/"))
    assert "does width help?" in html and str(experiment.default_dataset_version) in html
    assert f'href="{new_run_path()}?experiment={experiment.pk}"' in html
    row = re.search(rf'<tr data-run="{run.pk}".*?</tr>', html, re.S).group(0)
    assert f'href="/experiments/runs/{run.pk}/"' in row and "Succeeded" in row
    assert 'data-metric="val_f1">0.6<' in row  # latest val_f1 (0.5 + 3/30)
    assert '<td class="param" data-param="learning_rate"><span class="clip" title="0.001">' in row


def new_run_path() -> str:
    """The training app's new-run form (its literal path until that url name exists)."""
    try:
        return reverse("training:run-new")
    except NoReverseMatch:
        return "/training/runs/new"


def test_detail_of_an_unknown_experiment_is_404(labeler_client):
    assert labeler_client.get("/experiments/999999/").status_code == 404


def runs_with(experiment: Experiment, values: dict[str, dict]) -> dict[str, Run]:
    """Runs named by ``values``' keys, each with its params (``param_*``) and latest metrics."""
    runs = {}
    for name, fields in values.items():
        run = running_run(experiment=experiment, name=name)
        params = {key.removeprefix("param_"): value for key, value in fields.items() if key.startswith("param_")}
        if params:
            services.run_params_log(run.pk, params)
        metrics = [(key, 1, value) for key, value in fields.items() if not key.startswith("param_")]
        if metrics:
            services.run_metrics_log(run.pk, metrics)
        runs[name] = services.run_transition(run.pk, RunStatus.SUCCEEDED)
    return runs


def table_order(html: str) -> list[str]:
    return re.findall(r'<a class="clip run-name" title="([^"]+)"', html)


def test_sort_by_a_metric_both_ways_runs_without_it_last(admin_client):
    experiment = ExperimentFactory()
    runs_with(experiment, {"low": {"val_f1": 0.2}, "high": {"val_f1": 0.9}, "mid": {"val_f1": 0.5}, "none": {}})
    url = f"/experiments/{experiment.pk}/"

    assert table_order(page(admin_client.get(url + "?sort=metric:val_f1&dir=desc"))) == ["high", "mid", "low", "none"]
    assert table_order(page(admin_client.get(url + "?sort=metric:val_f1&dir=asc"))) == ["low", "mid", "high", "none"]
    partial = admin_client.get(url + "?sort=metric:val_f1&dir=desc", **HTMX)
    assert partial.status_code == 200 and "<html" not in page(partial) and 'id="runs"' in page(partial)
    assert 'aria-sort="descending"' in page(partial)


def test_sort_by_a_param_is_numeric_when_values_are_numbers(admin_client):
    experiment = ExperimentFactory()
    runs_with(experiment, {
        "a": {"param_learning_rate": "0.1"}, "b": {"param_learning_rate": "1e-3"},
        "c": {"param_learning_rate": "0.01"}, "d": {"param_learning_rate": "2"},
        "e": {"param_learning_rate": "adaptive"}, "f": {},
    })
    url = f"/experiments/{experiment.pk}/?sort=param:learning_rate"

    # Numbers by value (1e-3 < 0.01 < 0.1 < 2, not as text), then text, then runs without it.
    assert table_order(page(admin_client.get(url + "&dir=asc"))) == ["b", "c", "a", "d", "e", "f"]
    assert table_order(page(admin_client.get(url + "&dir=desc"))) == ["d", "a", "c", "b", "e", "f"]
    # The sorted param is shown as a column.
    assert 'data-sort="param:learning_rate"' in page(admin_client.get(url))


def test_sort_by_run_columns_and_best_metric(admin_client):
    experiment = ExperimentFactory(metric_direction="min", metric_key="val_loss")
    for name, curve in (("beta", (0.3, 0.3)), ("alpha", (0.1, 0.9)), ("gamma", (0.2, 0.5))):
        run = running_run(experiment=experiment, name=name)
        services.run_metrics_log(run.pk, [("val_loss", step, value) for step, value in enumerate(curve, start=1)])
        services.run_transition(run.pk, RunStatus.SUCCEEDED)
    url = f"/experiments/{experiment.pk}/"

    assert table_order(page(admin_client.get(url + "?sort=name"))) == ["alpha", "beta", "gamma"]
    # best = the lowest (the experiment minimises val_loss); latest = the last epoch's
    assert table_order(page(admin_client.get(url + "?sort=best:val_loss"))) == ["alpha", "gamma", "beta"]
    assert table_order(page(admin_client.get(url + "?sort=metric:val_loss"))) == ["beta", "gamma", "alpha"]
    assert table_order(page(admin_client.get(url))) == ["gamma", "alpha", "beta"]  # newest first
    html = page(admin_client.get(url + "?sort=best:val_loss"))
    assert re.search(r'<tr data-run="\d+" data-run-status="succeeded">\s*<td><a class="clip run-name" title="alpha".*?'
                     r'data-metric="val_loss">0.9</td>\s*<td class="num metric-col best" title="at step 1">0.1</td>',
                     html, re.S)


def test_a_bad_sort_is_reported_and_the_table_still_shown(admin_client):
    experiment = ExperimentFactory()
    make_runs(experiment, 2)
    response = admin_client.get(f"/experiments/{experiment.pk}/?sort=colour&dir=sideways&status=exploded")
    assert response.status_code == 400
    html = page(response)
    assert html.count('data-testid="table-error"') == 2
    assert len(table_order(html)) == 2


def test_status_filter_and_column_choice(admin_client):
    experiment = ExperimentFactory()
    make_runs(experiment, 2)
    (failed,) = make_runs(experiment, 1, status=RunStatus.FAILED)
    url = f"/experiments/{experiment.pk}/"

    assert table_order(page(admin_client.get(url + "?status=failed"))) == [failed.name]
    chosen = page(admin_client.get(url + "?columns=chosen&param=lr&metric=val_loss"))
    assert 'data-sort="param:lr"' in chosen and 'data-sort="param:epochs"' not in chosen
    assert 'data-sort="metric:val_loss"' in chosen


def test_runs_table_pages_past_the_page_size(admin_client, monkeypatch):
    from experiments import views

    monkeypatch.setattr(views, "RUNS_PAGE_SIZE", 5)
    experiment = ExperimentFactory()
    make_runs(experiment, 12)
    url = f"/experiments/{experiment.pk}/?sort=seed&dir=asc"

    first = page(admin_client.get(url))
    third = page(admin_client.get(url + "&page=3"))
    assert table_order(first) == [f"bulk-{index}" for index in range(5)]
    assert table_order(third) == ["bulk-10", "bulk-11"]
    assert "Runs 11–12 of 12" in third


def test_edit_the_experiment(admin_client):
    experiment = ExperimentFactory(name="first name")
    response = admin_client.post(f"/experiments/{experiment.pk}/edit", {
        "edit-name": "second name", "edit-tags": "a, b", "edit-description": "now clearer",
        "edit-default_dataset_version": "", "edit-metric_key": "val_loss", "edit-metric_direction": "min",
    })
    assert response.status_code == 302
    experiment.refresh_from_db()
    assert (experiment.name, experiment.tags, experiment.metric_key, experiment.metric_direction) == (
        "second name", ["a", "b"], "val_loss", "min")
    assert experiment.default_dataset_version_id is None

    bad = admin_client.post(f"/experiments/{experiment.pk}/edit", {"edit-name": "", "edit-metric_key": "x",
                                                                     "edit-metric_direction": "min"}, **HTMX)
    assert bad.status_code == 200 and 'data-testid="error-summary"' in page(bad)
    experiment.refresh_from_db()
    assert experiment.name == "second name"


def test_deleted_runs_are_listed_and_restored(admin_client):
    experiment = ExperimentFactory()
    run = finished_run(experiment, name="to delete")

    response = admin_client.post(f"/experiments/runs/{run.pk}/delete")
    assert response.status_code == 302 and response["Location"] == f"/experiments/{experiment.pk}/"
    html = page(admin_client.get(response["Location"]))
    assert table_order(html) == [] and f'data-deleted-run="{run.pk}"' in html
    assert admin_client.get(f"/experiments/runs/{run.pk}/").status_code == 404

    assert admin_client.post(f"/experiments/runs/{run.pk}/restore").status_code == 302
    assert table_order(page(admin_client.get(f"/experiments/{experiment.pk}/"))) == ["to delete"]


def test_an_active_run_is_not_deleted(admin_client):
    run = running_run()
    response = admin_client.post(f"/experiments/runs/{run.pk}/delete", follow=True)
    assert "cancel it first" in page(response)
    assert Run.objects.get(pk=run.pk).deleted_at is None


# --- a run ------------------------------------------------------------------------------------


def test_run_page_shows_results_confusion_matrix_params_and_record(labeler_client):
    run = finished_run(ExperimentFactory())
    Run.objects.filter(pk=run.pk).update(reproducibility={"torch": "2.5.0", "hyperparameters": {"epochs": 3}})

    response = labeler_client.get(f"/experiments/runs/{run.pk}/")
    assert response.status_code == 200
    html = page(response)
    assert 'data-testid="run-status">Succeeded<' in html
    assert 'hx-trigger="every 2s"' not in html  # finished: no polling
    final = re.search(r'data-testid="final-metrics".*?</table>', html, re.S).group(0)
    assert re.search(r'data-final-metric="f1"><td>f1</td><td class="num">0.84</td><td class="num">0.8125</td>', final)
    matrix = re.search(r'data-testid="confusion-matrix".*?</table>', html, re.S).group(0)
    assert "actual" in matrix and "predicted" in matrix
    assert [cell for cell in re.findall(r'data-cell="(\w+)"[^>]*>(\d+)<', matrix)] == [
        ("tn", "50"), ("fp", "7"), ("fn", "5"), ("tp", "38")]
    assert "learning_rate" in html and "[64,32]" in html
    assert "Reproducibility record" in html and "2.5.0" in html and "{&quot;epochs&quot;: 3}" in html
    assert "uPlot.iife.min.js" in html and "js/run_curves.js" in html
    assert f'data-series-url="/experiments/runs/{run.pk}/metrics.json?keys=' in html


def test_a_failed_run_shows_its_error(labeler_client):
    run = running_run()
    services.run_transition(run.pk, RunStatus.FAILED, error="CUDA out of memory")
    html = page(labeler_client.get(f"/experiments/runs/{run.pk}/"))
    assert 'data-testid="run-error">CUDA out of memory' in html


def test_live_block_polls_while_running_and_stops_when_finished(labeler_client):
    run = running_run()
    html = page(labeler_client.get(f"/experiments/runs/{run.pk}/"))
    assert f'hx-get="/experiments/runs/{run.pk}/live" hx-trigger="every 2s"' in html

    live = labeler_client.get(f"/experiments/runs/{run.pk}/live", **HTMX)
    assert live.status_code == 200 and "<html" not in page(live)
    assert 'hx-trigger="every 2s"' in page(live) and 'id="run-log" hx-swap-oob="true"' in page(live)

    services.run_metrics_log(run.pk, [("test_f1", 1, 0.5)])
    services.run_transition(run.pk, RunStatus.SUCCEEDED)
    done = labeler_client.get(f"/experiments/runs/{run.pk}/live", **HTMX)
    assert done.status_code == 286  # htmx: stop polling
    assert "hx-trigger" not in page(done)
    assert 'data-testid="run-status">Succeeded<' in page(done)
    assert 'id="run-record" hx-swap-oob="true"' in page(done)  # artifacts and record refreshed once
    assert labeler_client.get(f"/experiments/runs/{run.pk}/live").status_code == 302  # not htmx: the page


def test_cancel_a_running_run(admin_client):
    run = running_run()
    response = admin_client.post(f"/experiments/runs/{run.pk}/cancel", **HTMX)

    assert response.status_code == 200 and response["HX-Redirect"] == f"/experiments/runs/{run.pk}/"
    assert Run.objects.get(pk=run.pk).status == RunStatus.CANCELLED
    html = page(admin_client.get(f"/experiments/runs/{run.pk}/"))
    assert "cancelled: the curves logged so far are kept" in html
    assert 'data-testid="run-status">Cancelled<' in html and 'data-testid="cancel-run"' not in html

    again = admin_client.post(f"/experiments/runs/{run.pk}/cancel", follow=True)
    assert "cannot go from cancelled to cancelled" in page(again)


def test_metrics_json(labeler_client):
    run = running_run()
    services.run_metrics_log(run.pk, [("val_loss", 2, 0.4), ("val_loss", 1, 0.5), ("train_loss", 1, 0.9)])

    response = labeler_client.get(f"/experiments/runs/{run.pk}/metrics.json?keys=val_loss,train_loss&keys=val_f1")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert response.json() == {
        "run_id": run.pk, "status": "running", "finished": False,
        "series": {"val_loss": {"steps": [1, 2], "values": [0.5, 0.4]},
                   "train_loss": {"steps": [1], "values": [0.9]},
                   "val_f1": {"steps": [], "values": []}},
    }
    services.run_transition(run.pk, RunStatus.SUCCEEDED)
    assert labeler_client.get(f"/experiments/runs/{run.pk}/metrics.json?keys=val_loss").json()["finished"] is True

    bad = labeler_client.get(f"/experiments/runs/{run.pk}/metrics.json?keys=bad!key")
    assert bad.status_code == 400 and "keys" in bad.json()["detail"]
    assert labeler_client.get("/experiments/runs/999999/metrics.json").status_code == 404


def test_log_tail_shows_the_last_lines(labeler_client):
    run = running_run()
    folder = services.run_artifact_dir(run.pk)
    folder.mkdir(parents=True)
    (folder / services.RUN_LOG_PATH).write_text("".join(f"epoch {index}\n" for index in range(1, 201)))

    html = page(labeler_client.get(f"/experiments/runs/{run.pk}/"))
    tail = re.search(r'<pre class="log-tail"[^>]*>(.*?)</pre>', html, re.S).group(1).splitlines()
    assert tail == [f"epoch {index}" for index in range(151, 201)]


def test_a_run_without_a_log_says_so(labeler_client):
    run = RunFactory()
    assert "No log yet." in page(labeler_client.get(f"/experiments/runs/{run.pk}/"))


def test_artifact_download_and_bad_paths(labeler_client):
    run = running_run()
    folder = services.run_artifact_dir(run.pk)
    folder.mkdir(parents=True)
    weights = bytes(range(256)) * 40
    (folder / "model.pt").write_bytes(weights)
    services.run_artifact_record(run.pk, "model.pt")
    (folder.parent / "secret.txt").write_text("not yours")

    html = page(labeler_client.get(f"/experiments/runs/{run.pk}/"))
    assert f'href="/experiments/runs/{run.pk}/artifacts/model.pt"' in html
    response = labeler_client.get(f"/experiments/runs/{run.pk}/artifacts/model.pt")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == weights
    assert 'filename="model.pt"' in response["Content-Disposition"]

    for bad in ("../secret.txt", "..%2Fsecret.txt", "missing.pt", "sub/../../secret.txt"):
        assert labeler_client.get(f"/experiments/runs/{run.pk}/artifacts/{bad}").status_code == 404, bad
    assert labeler_client.get("/experiments/runs/999999/artifacts/model.pt").status_code == 404


# --- query counts -----------------------------------------------------------------------------


def query_count(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_list_query_count_does_not_grow(admin_client, django_assert_max_num_queries):
    for index in range(10):
        make_runs(ExperimentFactory(name=f"few {index}", tags=[f"t{index}"]), 1)
    few = query_count(admin_client, "/experiments/")
    for index in range(190):
        make_runs(ExperimentFactory(name=f"many {index}", tags=[f"t{index}"]), 2)
    many = query_count(admin_client, "/experiments/")
    assert few == many
    with django_assert_max_num_queries(12):
        admin_client.get("/experiments/?tag=t1&status=succeeded")


def test_detail_query_count_does_not_grow_with_runs(admin_client, django_assert_max_num_queries):
    experiment = ExperimentFactory()
    make_runs(experiment, 10)
    services.run_delete(make_runs(experiment, 1)[0].pk)
    urls = [f"/experiments/{experiment.pk}/", f"/experiments/{experiment.pk}/?sort=metric:val_f1&dir=desc",
            f"/experiments/{experiment.pk}/?sort=param:lr"]
    few = [query_count(admin_client, url) for url in urls]
    make_runs(experiment, 190)
    many = [query_count(admin_client, url) for url in urls]
    assert few == many
    with django_assert_max_num_queries(16):
        admin_client.get(urls[1])


def test_run_page_query_count_does_not_grow_with_epochs(labeler_client, django_assert_max_num_queries):
    def run_with(epochs: int) -> Run:
        run = running_run()
        services.run_params_log(run.pk, {"lr": 0.1, "epochs": epochs})
        points = [(key, epoch, 1.0 / epoch) for epoch in range(1, epochs + 1) for key in
                  ("train_loss", "val_loss", "val_f1", "val_accuracy", "val_roc_auc")]
        services.run_metrics_log(run.pk, points)
        return run

    few, many = run_with(10), run_with(500)
    assert MetricPoint.objects.filter(run=many).count() == 2500
    keys = "train_loss,val_loss,val_f1,val_accuracy,val_roc_auc"
    for suffix in ("", f"metrics.json?keys={keys}"):
        assert query_count(labeler_client, f"/experiments/runs/{few.pk}/{suffix}") == query_count(
            labeler_client, f"/experiments/runs/{many.pk}/{suffix}")
    with django_assert_max_num_queries(10):
        labeler_client.get(f"/experiments/runs/{many.pk}/")
    with django_assert_max_num_queries(5):
        response = labeler_client.get(f"/experiments/runs/{many.pk}/metrics.json?keys={keys}")
    assert len(json.loads(response.content)["series"]["val_f1"]["steps"]) == 500
    assert Param.objects.filter(run=many).count() == 2
