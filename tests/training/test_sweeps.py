"""Sweeps (``training.services.sweeps``): the search space checked against the
architecture's schema, the Optuna study in this PostgreSQL (the test database), trials
as ordinary runs, the advance step (never more than ``parallelism`` active), pruning,
cancel, and a whole sweep through real workers."""

from __future__ import annotations

import threading
from datetime import timedelta

import optuna
import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from optuna.trial import TrialState

from experiments import services as tracking
from experiments.models import MetricPoint, Param, Run, RunStatus
from tests.experiments.factories import ExperimentFactory
from tests.support.celery_worker import running_worker
from tests.support.waiting import wait_until
from tests.training.factories import separable_dataset_version
from training import services
from training.models import JobStatus, Sweep, SweepSampler, SweepTrial
from training.services import queueing
from training.services import sweeps as sweep_services

FAST = {"epochs": 3, "batch_size": 16, "early_stopping_patience": 0}


@pytest.fixture
def experiment(db):
    return ExperimentFactory(default_dataset_version=separable_dataset_version(rows=60, dimensions=8, seed=5))


@pytest.fixture
def advances(monkeypatch) -> list[int]:
    """The advance messages a test would send (recorded instead: no broker traffic)."""
    sent: list[int] = []
    monkeypatch.setattr(sweep_services, "sweep_advance_enqueue", lambda sweep_id: sent.append(sweep_id) or True)
    return sent


def create(experiment, **overrides) -> Sweep:
    arguments = {
        "experiment_id": experiment.pk,
        "architecture_key": "mlp",
        "search_space": {"learning_rate": {"low": 1e-4, "high": 1e-1, "log": True},
                         "hidden_sizes": {"choices": ["16", "32,8"]}},
        "fixed_hyperparameters": FAST,
        "sampler": SweepSampler.RANDOM,
        "trial_count": 4,
        "parallelism": 2,
        "metric_key": "val_f1",
        "pruning": False,
        "seed": 7,
        "name": "lr and width",
        **overrides,
    }
    return services.sweep_create(**arguments)


def study_states(sweep: Sweep) -> dict[int, TrialState]:
    return {trial.number: trial.state for trial in sweep_services.sweep_study(sweep).get_trials(deepcopy=False)}


def finish(run: Run, *, f1: float | None, status: str = RunStatus.SUCCEEDED) -> None:
    """Play a worker: start the run, log its final val F1, end it."""
    started = tracking.run_transition(run.pk, RunStatus.RUNNING)
    if f1 is not None:
        tracking.run_metrics_log(run.pk, [("val_f1", 1, f1), ("final_val_f1", 1, f1)], expected_attempt=started.attempts)
    tracking.run_transition(run.pk, status, expected_attempt=started.attempts,
                            error="boom" if status == RunStatus.FAILED else "")


# --- the search space ---------------------------------------------------------------------


@pytest.mark.parametrize(("search_space", "fixed", "field", "message"), [
    ({"learnin_rate": {"low": 1e-3, "high": 1e-2}}, {}, "learnin_rate", "not a hyperparameter of mlp"),
    ({"learning_rate": {"low": 0, "high": 1e-2}}, {}, "learning_rate", "low must be between 1e-06 and 1"),
    ({"dropout": {"low": 0.1, "high": 0.95}}, {}, "dropout", "high must be between 0 and 0.9"),
    ({"dropout": {"low": 0.1, "high": 0.5, "log": True}}, {}, "dropout", "cannot be searched on a log scale"),
    ({"dropout": {"low": 0.5, "high": 0.1}}, {}, "dropout", "low must be below high"),
    ({"activation": {"choices": ["relu", "swish"]}}, {}, "activation", "must be one of: relu, gelu, tanh"),
    ({"activation": {"low": 1, "high": 2}}, {}, "activation", "a choice is searched over choices"),
    ({"hidden_sizes": {"choices": ["64", "0,8"]}}, {}, "hidden_sizes", "each item must be between 1 and 8192"),
    ({"dropout": {"low": 0.1, "high": 0.5, "step": 0.1}}, {}, "dropout", "unknown key(s) step"),
    ({"dropout": {"low": 0.1, "high": 0.5}}, {"epochs": 0}, "epochs", "must be between 1 and 1000"),
    ({"dropout": {"low": 0.1, "high": 0.5}}, {"dropout": 0.2}, "dropout", "both fixed and searched"),
    ({}, {}, "search_space", "search at least one hyperparameter"),
])
def test_a_bad_search_space_is_refused_keyed_by_field_and_nothing_is_written(
    experiment, search_space, fixed, field, message
):
    with pytest.raises(ValidationError) as error:
        create(experiment, search_space=search_space, fixed_hyperparameters=fixed)

    assert message in " ".join(error.value.message_dict[field])
    assert not Sweep.objects.exists() and not Run.objects.exists()


def test_a_grid_needs_values_for_every_searched_parameter_and_no_more_trials_than_points(experiment):
    with pytest.raises(ValidationError) as error:
        create(experiment, sampler=SweepSampler.GRID,
               search_space={"learning_rate": {"low": 1e-3, "high": 1e-2}, "activation": {"choices": ["relu"]}})
    assert "a grid sweep needs the values" in error.value.message_dict["learning_rate"][0]

    with pytest.raises(ValidationError) as error:
        create(experiment, sampler=SweepSampler.GRID, trial_count=5,
               search_space={"learning_rate": {"low": 1e-3, "high": 1e-2, "grid": [1e-3, 1e-2]},
                             "activation": {"choices": ["relu", "tanh"]}})
    assert error.value.message_dict["trial_count"] == ["the grid has 4 points: at most 4 trials"]

    with pytest.raises(ValidationError) as error:
        create(experiment, sampler=SweepSampler.GRID,
               search_space={"learning_rate": {"low": 1e-3, "high": 1e-2, "grid": [1e-3, 0.5]}})
    assert "grid values must lie between low and high" in error.value.message_dict["learning_rate"][0]
    assert not Sweep.objects.exists() and not Run.objects.exists()


@pytest.mark.parametrize(("overrides", "field"), [
    ({"trial_count": 0}, "trial_count"),
    ({"parallelism": 65}, "parallelism"),
    ({"metric_key": "test_f1"}, "metric_key"),
    ({"metric_key": "val_loss", "metric_direction": "max"}, "metric_direction"),
    ({"sampler": "cmaes"}, "sampler"),
    ({"architecture_key": "resnet"}, "architecture"),
    ({"experiment_id": 10**12}, "experiment_id"),
])
def test_bad_sweep_settings_are_refused_and_nothing_is_written(experiment, overrides, field):
    with pytest.raises(ValidationError) as error:
        create(experiment, **overrides)

    assert field in error.value.message_dict
    assert not Sweep.objects.exists() and not Run.objects.exists()


# --- creating and advancing ---------------------------------------------------------------


def test_a_sweep_creates_its_study_and_queues_parallelism_trials_as_tagged_runs(experiment, advances):
    sweep = create(experiment, search_space={"lr": {"low": 1e-4, "high": 1e-1, "log": True},
                                             "hidden_sizes": {"choices": ["16", "32,8"]}})

    assert sweep.status == JobStatus.RUNNING and sweep.started_at is not None
    assert sweep.search_space["learning_rate"] == {"low": 1e-4, "high": 1e-1, "log": True}  # the alias resolved
    trials = list(sweep.trials.select_related("run"))
    assert [trial.number for trial in trials] == [0, 1]
    for trial in trials:
        assert trial.run.status == RunStatus.QUEUED
        assert trial.run.tags == {"sweep": str(sweep.pk), "trial": str(trial.number)}
        params = dict(Param.objects.filter(run=trial.run).values_list("key", "value"))
        assert params["epochs"] == "3" and params["hidden_sizes"] in {"16", "32,8"}
        assert 1e-4 <= float(params["learning_rate"]) <= 1e-1
    assert study_states(sweep) == {0: TrialState.RUNNING, 1: TrialState.RUNNING}
    # The study is stored in the test database, in its own schema.
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM optuna.studies WHERE study_name = %s", [sweep.study_name])
        assert cursor.fetchone() == (1,)


def test_the_advance_step_tells_the_study_and_never_exceeds_parallelism(experiment, advances):
    sweep = create(experiment, trial_count=3)

    # Called again (twice) with nothing finished: nothing changes.
    services.sweep_advance(sweep.pk)
    services.sweep_advance(sweep.pk)
    assert sweep.trials.count() == 2

    first, second = (trial.run for trial in sweep.trials.select_related("run"))
    finish(first, f1=0.8)
    services.sweep_advance(sweep.pk)
    services.sweep_advance(sweep.pk)
    assert sweep.trials.count() == 3
    assert study_states(sweep) == {0: TrialState.COMPLETE, 1: TrialState.RUNNING, 2: TrialState.RUNNING}
    assert sweep_services.sweep_study(sweep).trials[0].value == pytest.approx(0.8)

    # All three asked: ending the others ends the sweep; a failed run is a FAIL.
    finish(second, status=RunStatus.FAILED, f1=None)
    finish(sweep.trials.get(number=2).run, f1=0.9)
    swept = services.sweep_advance(sweep.pk)
    assert swept.status == JobStatus.SUCCEEDED and swept.finished_at is not None
    assert sweep.trials.count() == 3
    assert study_states(sweep) == {0: TrialState.COMPLETE, 1: TrialState.FAIL, 2: TrialState.COMPLETE}


def test_a_sweep_whose_every_trial_failed_ends_failed(experiment, advances):
    sweep = create(experiment, trial_count=1, parallelism=1)
    finish(sweep.trials.get().run, status=RunStatus.FAILED, f1=None)

    swept = services.sweep_advance(sweep.pk)

    assert swept.status == JobStatus.FAILED and "no trial completed" in swept.error


def test_a_grid_sweep_tries_each_point_once(experiment, advances):
    sweep = create(experiment, sampler=SweepSampler.GRID, trial_count=4, parallelism=4,
                   search_space={"learning_rate": {"low": 1e-3, "high": 1e-2, "grid": [1e-3, 1e-2]},
                                 "activation": {"choices": ["relu", "tanh"]}})
    points = set()
    for trial in sweep.trials.select_related("run"):
        params = dict(Param.objects.filter(run=trial.run).values_list("key", "value"))
        points.add((params["learning_rate"], params["activation"]))
    assert points == {("0.001", "relu"), ("0.001", "tanh"), ("0.01", "relu"), ("0.01", "tanh")}

    for trial in sweep.trials.select_related("run"):
        finish(trial.run, f1=0.5)
    assert services.sweep_advance(sweep.pk).status == JobStatus.SUCCEEDED  # the grid's stop() is no error


def test_a_study_that_cannot_be_created_fails_the_sweep_with_the_reason(experiment, advances, monkeypatch):
    monkeypatch.setattr(sweep_services, "optuna_storage",
                        lambda: (_ for _ in ()).throw(RuntimeError("connection refused")))

    sweep = create(experiment)

    assert sweep.status == JobStatus.FAILED
    assert "could not create the Optuna study" in sweep.error and "connection refused" in sweep.error
    assert not Run.objects.exists()


def test_cancelling_a_sweep_cancels_its_queued_and_running_trials_and_asks_no_more(experiment, advances):
    sweep = create(experiment, trial_count=4)
    first, second = (trial.run for trial in sweep.trials.select_related("run"))
    tracking.run_transition(first.pk, RunStatus.RUNNING)

    cancelled = services.sweep_cancel(sweep.pk)

    assert cancelled.status == JobStatus.CANCELLED and cancelled.finished_at is not None
    assert set(Run.objects.filter(pk__in=[first.pk, second.pk]).values_list("status", flat=True)) == {
        RunStatus.CANCELLED}
    services.sweep_advance(sweep.pk)  # what the cancel's message does
    assert sweep.trials.count() == 2
    assert study_states(sweep) == {0: TrialState.FAIL, 1: TrialState.FAIL}
    with pytest.raises(ValidationError):
        services.sweep_cancel(sweep.pk)


# --- pruning --------------------------------------------------------------------------------


def test_pruning_stops_a_clearly_worse_trial_early(experiment, advances, monkeypatch, settings, tmp_path):
    """A median pruner that judges from the first epoch, and a finished trial whose val
    loss was 0 at every epoch: the next trial's worse val loss gets it pruned after
    epoch 1 of 50. Its run ends cancelled and tagged, and the study hears PRUNED."""
    settings.CVSA_ARTIFACTS_DIR = tmp_path
    monkeypatch.setattr(sweep_services, "PRUNER_STARTUP_TRIALS", 1)
    monkeypatch.setattr(sweep_services, "PRUNER_WARMUP_EPOCHS", 0)
    sweep = create(experiment, metric_key="val_loss", pruning=True, trial_count=3, parallelism=1,
                   fixed_hyperparameters={**FAST, "epochs": 50},
                   search_space={"learning_rate": {"low": 1e-3, "high": 1e-2}})
    study = sweep_services.sweep_study(sweep)
    study.add_trial(optuna.trial.create_trial(
        params={"learning_rate": 1e-3}, distributions=sweep_services.sweep_distributions(sweep), value=0.0,
        intermediate_values={epoch: 0.0 for epoch in range(1, 51)},
    ))
    trial = sweep.trials.select_related("run").get()

    ended = services.run_train(trial.run.pk)

    assert ended.status == RunStatus.CANCELLED and ended.tags["pruned"] == "1"
    assert SweepTrial.objects.get(pk=trial.pk).pruned
    assert set(MetricPoint.objects.filter(run=ended, key="val_loss").values_list("step", flat=True)) == {1}
    assert advances == [sweep.pk]  # the run's end advances its sweep
    services.sweep_advance(sweep.pk)
    assert study_states(sweep)[trial.number] == TrialState.PRUNED
    assert sweep.trials.count() == 2  # the next trial is queued


def test_a_run_without_a_sweep_trains_as_before(experiment, advances, settings, tmp_path):
    settings.CVSA_ARTIFACTS_DIR = tmp_path
    run = services.run_queue(experiment_id=experiment.pk, architecture_key="mlp", hyperparameters=FAST)

    assert services.run_train(run.pk).status == RunStatus.SUCCEEDED
    assert advances == []


# --- concurrency and real workers ----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_advances_at_once_ask_no_extra_trial(monkeypatch, advances):
    monkeypatch.setattr(queueing, "run_enqueue", lambda *args, **kwargs: True)  # no broker traffic
    experiment = ExperimentFactory(default_dataset_version=separable_dataset_version(rows=40, seed=9))
    sweep = create(experiment, trial_count=10)
    for trial in sweep.trials.select_related("run"):
        finish(trial.run, f1=0.5)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def advance() -> None:
        try:
            barrier.wait()
            services.sweep_advance(sweep.pk)
        except BaseException as error:  # noqa: BLE001 (reported by the test)
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=advance) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sweep.trials.count() == 4
    assert sweep.trials.filter(run__status=RunStatus.QUEUED).count() == 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_sweep_of_four_trials_with_parallelism_two_runs_on_real_workers():
    experiment = ExperimentFactory(default_dataset_version=separable_dataset_version(rows=40, dimensions=8, seed=4))
    with running_worker(concurrency=2, queues="training,default", name="sweeps"):
        sweep = create(experiment, trial_count=4, parallelism=2)
        ended = wait_until(lambda: Sweep.objects.filter(pk=sweep.pk).exclude(status=JobStatus.RUNNING).first(),
                           "the sweep to end", interval=0.2)

    assert ended.status == JobStatus.SUCCEEDED, ended.error
    runs = [trial.run for trial in ended.trials.select_related("run").order_by("number")]
    assert len(runs) == 4 and {run.status for run in runs} == {RunStatus.SUCCEEDED}
    chosen = {tuple(sorted(Param.objects.filter(run=run, key__in=["learning_rate", "hidden_sizes"])
                           .values_list("key", "value"))) for run in runs}
    assert len(chosen) == 4  # distinct params
    states = study_states(ended)
    assert set(states.values()) == {TrialState.COMPLETE} and len(states) == 4
    best = sweep_services.sweep_study(ended).best_trial
    assert best.number in range(4) and 0.0 <= best.value <= 1.0
    # Never more than two trials queued or running at once: each trial after the first
    # two was queued after an earlier one finished.
    for run in runs:
        active = [other for other in runs
                  if other.queued_at <= run.queued_at < (other.finished_at or run.queued_at + timedelta(days=1))]
        assert len(active) <= 2


# --- pages and API --------------------------------------------------------------------------


@pytest.fixture
def admin_client(client, make_user):
    client.force_login(make_user("sweep-admin", group="admins"))
    return client


def form_data(experiment, **overrides) -> dict:
    data = {
        "experiment": experiment.pk, "architecture": "mlp", "sampler": "random", "trial_count": "3",
        "parallelism": "2", "metric_key": "val_f1", "seed": "1", "name": "",
        "value__epochs": "3", "value__batch_size": "16",
        "search__learning_rate": "on", "low__learning_rate": "1e-4", "high__learning_rate": "1e-2",
        "log__learning_rate": "on", "search__activation": "on", "choices__activation": ["relu", "tanh"],
    }
    data.update(overrides)
    return data


def test_the_new_sweep_form_lists_every_hyperparameter_with_its_bounds(logged_in_client, experiment):
    response = logged_in_client.get(f"/training/sweeps/new?experiment={experiment.pk}&architecture=mlp")

    assert response.status_code == 200
    html = response.content.decode()
    for name in ("learning_rate", "dropout", "hidden_sizes", "activation"):
        assert f'data-hyperparameter="{name}"' in html
    assert 'name="low__learning_rate" value="1e-06"' in html and 'name="high__dropout" value="0.9"' in html
    assert 'name="log__learning_rate"' in html and 'name="log__dropout"' not in html  # log only where allowed


def test_the_form_starts_a_sweep_and_its_page_ranks_the_trials(admin_client, experiment, advances):
    response = admin_client.post("/training/sweeps/", form_data(experiment))

    sweep = Sweep.objects.get()
    assert response.status_code == 302 and response.url == f"/training/sweeps/{sweep.pk}/"
    assert set(sweep.search_space) == {"learning_rate", "activation"}
    assert sweep.search_space["activation"] == {"choices": ["relu", "tanh"]}
    assert sweep.trials.count() == 2
    first, second = (trial.run for trial in sweep.trials.select_related("run"))
    finish(first, f1=0.6)
    finish(second, f1=0.9)
    services.sweep_advance(sweep.pk)

    page = admin_client.get(response.url).content.decode()

    assert 'data-testid="best-trial"' in page and f"/experiments/runs/{second.pk}/" in page
    assert page.index(f'data-trial="1"') < page.index(f'data-trial="0"')  # best first
    assert 'class="importance-bar"' in page  # two complete trials: importances shown
    assert 'hx-trigger="every 3s"' in page  # still running: the ranking polls
    live = admin_client.get(f"/training/sweeps/{sweep.pk}/live", headers={"HX-Request": "true"})
    assert live.status_code == 200


def test_a_bad_form_is_shown_again_with_the_error_and_nothing_is_written(admin_client, experiment, advances):
    response = admin_client.post("/training/sweeps/", form_data(experiment, low__learning_rate="0"))

    assert response.status_code == 400
    assert "learning_rate: low must be between 1e-06 and 1" in response.content.decode()
    assert not Sweep.objects.exists() and not Run.objects.exists()


def test_the_cancel_button_cancels_the_sweep_and_polling_stops(admin_client, experiment, advances):
    sweep = create(experiment)

    response = admin_client.post(f"/training/sweeps/{sweep.pk}/cancel")

    assert response.status_code == 302
    assert Sweep.objects.get(pk=sweep.pk).status == JobStatus.CANCELLED
    assert not Run.objects.filter(status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).exists()
    live = admin_client.get(f"/training/sweeps/{sweep.pk}/live", headers={"HX-Request": "true"})
    assert live.status_code == 286


def test_labelers_read_sweeps_but_cannot_start_or_cancel_them(logged_in_client, experiment, advances):
    sweep = create(experiment)

    assert logged_in_client.get(f"/training/experiments/{experiment.pk}/sweeps").status_code == 200
    assert logged_in_client.get(f"/training/sweeps/{sweep.pk}/").status_code == 200
    assert logged_in_client.post(f"/training/sweeps/{sweep.pk}/cancel").status_code == 403
    assert logged_in_client.post("/training/sweeps/", form_data(experiment)).status_code == 403
    assert Sweep.objects.get(pk=sweep.pk).status == JobStatus.RUNNING


def test_the_trial_ranking_reads_a_fixed_number_of_queries(experiment, advances, django_assert_num_queries):
    from training import sweep_selectors

    small = create(experiment, trial_count=2, parallelism=2)
    large = create(experiment, trial_count=12, parallelism=12)
    for sweep in (small, large):
        with django_assert_num_queries(3):
            rows = sweep_selectors.sweep_trial_rows(sweep)
        assert len(rows) == sweep.trial_count


def test_the_api_launches_reads_and_cancels_a_sweep(make_user, experiment, advances):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(make_user("api-admin", group="admins"))
    body = {"experiment": experiment.pk, "architecture": "mlp", "sampler": "random", "trial_count": 3,
            "parallelism": 2, "fixed_hyperparameters": FAST, "pruning": False,
            "search_space": {"lr": {"low": 1e-4, "high": 1e-2, "log": True}}}

    bad = client.post("/api/v1/sweeps", {**body, "search_space": {"lr": {"low": 0, "high": 1e-2}}}, format="json")
    assert bad.status_code == 400 and "learning_rate" in bad.json()["errors"]["search_space"]
    assert not Sweep.objects.exists()

    created = client.post("/api/v1/sweeps", body, format="json")
    assert created.status_code == 201, created.json()
    sweep_id = created.json()["id"]
    assert created.json()["status"] == "running" and len(created.json()["trials"]) == 2
    assert created.json()["best_trial"] is None
    finish(Run.objects.get(pk=created.json()["trials"][0]["run"]), f1=0.7)

    detail = client.get(f"/api/v1/sweeps/{sweep_id}").json()
    assert detail["best_trial"]["objective"] == pytest.approx(0.7)
    assert [sweep["id"] for sweep in client.get(f"/api/v1/sweeps?experiment={experiment.pk}").json()["results"]] \
        == [sweep_id]

    cancelled = client.post(f"/api/v1/sweeps/{sweep_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert client.post(f"/api/v1/sweeps/{sweep_id}/cancel").status_code == 400
    assert client.get("/api/v1/sweeps/999999999").status_code == 404


def test_the_sweep_page_shows_fixed_values_as_the_form_writes_them(admin_client, experiment, advances):
    sweep = create(experiment, search_space={"learning_rate": {"low": 1e-4, "high": 1e-1, "log": True}},
                   fixed_hyperparameters={**FAST, "hidden_sizes": "32,8", "batch_norm": True})

    page = admin_client.get(f"/training/sweeps/{sweep.pk}/").content.decode()

    assert "<code>hidden_sizes=32,8</code>" in page and "<code>batch_norm=true</code>" in page
    assert "[32, 8]" not in page and "batch_norm=True" not in page
