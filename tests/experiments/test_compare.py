"""The compare view: its selectors (params with their differences, metrics by final /
best / min / max / at epoch N, curves downsampled in SQL, the scatter), the page and its
JSON, bad selections, and query counts that do not grow with runs or epochs."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from experiments import compare_selectors, services
from experiments.compare_selectors import Aggregate, XAxis
from experiments.models import MetricPoint, Run, RunMetricSummary, RunStatus, metric_key_direction
from tests.experiments.factories import ExperimentFactory, make_runs, running_run

pytestmark = pytest.mark.django_db

T0 = timezone.now().replace(microsecond=0)


@pytest.fixture
def labeler_client(client, make_user):
    client.force_login(make_user("compare-labeler", group="labelers"))
    return client


def run_with(experiment, name: str, params: dict, curves: dict[str, list[float]], *,
             seconds_per_epoch: float = 10.0) -> Run:
    """A succeeded run with ``params`` and, per key, values at epochs 1, 2, …, logged
    ``seconds_per_epoch`` apart."""
    run = running_run(experiment=experiment, name=name)
    services.run_params_log(run.pk, params)
    points = [(key, epoch, value, T0 + timedelta(seconds=seconds_per_epoch * epoch))
              for key, values in curves.items() for epoch, value in enumerate(values, start=1)]
    services.run_metrics_log(run.pk, points)
    return services.run_transition(run.pk, RunStatus.SUCCEEDED)


@pytest.fixture
def trio():
    """Three runs of an experiment ranked by val_loss (lower is better)."""
    experiment = ExperimentFactory(metric_key="val_loss", metric_direction="min")
    a = run_with(experiment, "a", {"lr": "0.1", "epochs": "3", "optimizer": "adam"},
                 {"val_loss": [0.9, 0.4, 0.6], "val_f1": [0.5, 0.8, 0.7]})
    b = run_with(experiment, "b", {"lr": "0.01", "epochs": "3", "optimizer": "adam"},
                 {"val_loss": [0.8, 0.7, 0.3], "val_f1": [0.6, 0.6, 0.9]}, seconds_per_epoch=2.5)
    c = run_with(experiment, "c", {"lr": "0.001", "epochs": "3"},
                 {"val_loss": [1.0, 0.95], "val_f1": [0.2, 0.3]})
    return experiment, [a, b, c]


# --- the selection ------------------------------------------------------------------------------


def test_run_ids_come_as_a_comma_list_or_repeated_values_without_duplicates():
    assert compare_selectors.compare_run_ids("3,1,2") == [3, 1, 2]
    assert compare_selectors.compare_run_ids(["3", "1,2", "3", " 4 "]) == [3, 1, 2, 4]


@pytest.mark.parametrize("values, message", [
    ("1", "at least 2 runs"),
    ("", "at least 2 runs"),
    ("1,1", "at least 2 runs"),
    (",".join(str(n) for n in range(1, 1002)), "at most 1,000 runs"),
    ("1,abc", "'abc' is not a run id"),
    ("1,-2", "'-2' is not a run id"),
    ("1,2.5", "'2.5' is not a run id"),
    ("1,99999999999999999999", "is not a run id"),
    ("1,２", "is not a run id"),
])
def test_bad_run_ids_are_refused_with_a_clear_message(values, message):
    with pytest.raises(ValidationError) as error:
        compare_selectors.compare_run_ids(values)
    assert message in str(error.value)


def test_unknown_and_deleted_runs_are_named(trio):
    _experiment, (a, b, c) = trio
    services.run_delete(c.pk)
    with pytest.raises(ValidationError, match=f"unknown or deleted\\): {c.pk}, 999999"):
        compare_selectors.compared_runs([a.pk, c.pk, b.pk, 999999])
    assert [run.name for run in compare_selectors.compared_runs([b.pk, a.pk])] == ["b", "a"]


# --- params -------------------------------------------------------------------------------------


def test_params_flag_the_keys_whose_values_differ(trio):
    _experiment, runs = trio
    params = compare_selectors.compare_params(runs)
    assert params.keys == ["epochs", "lr", "optimizer"]
    # lr differs; optimizer too (run c has none); epochs is the same everywhere.
    assert params.differing_keys == ["lr", "optimizer"]
    assert params.values[runs[2].pk] == {"lr": "0.001", "epochs": "3"}
    assert params.reference == {"epochs": "3", "lr": "0.1", "optimizer": "adam"}
    same = compare_selectors.compare_params(runs[:2][::-1])
    assert same.differing_keys == ["lr"]


# --- metrics ------------------------------------------------------------------------------------


def values_of(table, runs, key):
    return [table.values[run.pk].get(key) for run in runs]


def test_metric_aggregates_match_hand_computed_values(trio):
    _experiment, runs = trio
    table = compare_selectors.compare_metrics(runs, {"val_loss": "final", "val_f1": "final"})
    assert [column.key for column in table.columns] == ["val_f1", "val_loss"]
    assert values_of(table, runs, "val_loss") == [(0.6, 3), (0.3, 3), (0.95, 2)]

    table = compare_selectors.compare_metrics(runs, {"val_loss": "min", "val_f1": "max"})
    assert values_of(table, runs, "val_loss") == [(0.4, 2), (0.3, 3), (0.95, 2)]
    assert values_of(table, runs, "val_f1") == [(0.8, 2), (0.9, 3), (0.3, 2)]

    table = compare_selectors.compare_metrics(runs, {"val_loss": "max", "val_f1": "min"})
    assert values_of(table, runs, "val_loss") == [(0.9, 1), (0.8, 1), (1.0, 1)]
    assert values_of(table, runs, "val_f1") == [(0.5, 1), (0.6, 1), (0.2, 1)]


def test_best_follows_the_experiments_direction_for_its_metric_else_lowest_for_a_loss_highest_otherwise(trio):
    _experiment, runs = trio
    table = compare_selectors.compare_metrics(runs, {"val_loss": "best", "val_f1": "best"})
    # val_loss is the experiment's metric, ranked lowest first; val_f1 is best high.
    assert values_of(table, runs, "val_loss") == [(0.4, 2), (0.3, 3), (0.95, 2)]
    assert values_of(table, runs, "val_f1") == [(0.8, 2), (0.9, 3), (0.3, 2)]
    assert table.best == {"val_loss": 0.3, "val_f1": 0.9}
    assert table.directions == {"val_loss": "min", "val_f1": "max"}

    other = ExperimentFactory(metric_key="val_f1", metric_direction="min")  # an odd choice, but its own
    run = run_with(other, "d", {}, {"val_f1": [0.4, 0.1, 0.2], "train_loss": [3.0, 1.0, 2.0]})
    table = compare_selectors.compare_metrics([run, runs[0]], {"val_f1": "best", "train_loss": "best"})
    assert values_of(table, [run], "val_f1") == [(0.1, 2)]
    # Not the experiment's metric: a loss is best lowest (as in the runs table and the run search).
    assert values_of(table, [run], "train_loss") == [(1.0, 2)]
    assert table.directions["train_loss"] == "min"


def test_the_value_at_epoch_n_is_read_from_the_points_and_missing_when_a_run_stopped_before(trio):
    _experiment, runs = trio
    table = compare_selectors.compare_metrics(runs, {"val_loss": "epoch", "val_f1": "final"}, epoch="3")
    assert table.epoch == 3
    assert values_of(table, runs, "val_loss") == [(0.6, 3), (0.3, 3), None]
    assert values_of(table, runs, "val_f1") == [(0.7, 3), (0.9, 3), (0.3, 2)]
    table = compare_selectors.compare_metrics(runs, {"val_loss": "epoch"}, epoch=1)
    assert values_of(table, runs, "val_loss") == [(0.9, 1), (0.8, 1), (1.0, 1)]
    assert compare_selectors.compare_metrics(runs).epoch is None


@pytest.mark.parametrize("aggregates, epoch, message", [
    ({"val_loss": "median"}, None, "'median' is not one of final, best, min, max, epoch"),
    ({"val_loss": "epoch"}, None, "choose the epoch N"),
    ({"val_loss": "epoch"}, "-1", "whole number of at least 0"),
    ({"val_loss": "epoch"}, "two", "whole number of at least 0"),
    ({"bad key!": "final"}, None, "only letters, digits"),
])
def test_bad_aggregate_choices_are_refused(trio, aggregates, epoch, message):
    _experiment, runs = trio
    with pytest.raises(ValidationError, match=re.escape(message)):
        compare_selectors.compare_metrics(runs, aggregates, epoch)


# --- curves -------------------------------------------------------------------------------------


def test_curves_of_every_run_with_step_or_wall_time_as_x(trio):
    _experiment, (a, b, c) = trio
    series = compare_selectors.compare_series([a.pk, b.pk, c.pk], "val_loss")
    assert series[a.pk] == ([1.0, 2.0, 3.0], [0.9, 0.4, 0.6], 3)
    assert series[c.pk] == ([1.0, 2.0], [1.0, 0.95], 2)
    wall = compare_selectors.compare_series([a.pk, b.pk], "val_loss", x_axis=XAxis.WALL)
    # Seconds since the run's first point of the metric.
    assert wall[a.pk].xs == [0.0, 10.0, 20.0]
    assert wall[b.pk].xs == [0.0, 2.5, 5.0]
    assert compare_selectors.compare_series([a.pk, b.pk], "no_such_metric") == {}


def test_downsampling_bounds_the_points_and_keeps_the_ends_and_each_buckets_extremes():
    experiment = ExperimentFactory()
    spiky = [float(epoch % 7) for epoch in range(1, 1001)]
    spiky[500] = 100.0  # one spike in the middle
    spiky[733] = -50.0  # and one dip
    run = run_with(experiment, "long", {}, {"val_loss": spiky})
    short = run_with(experiment, "short", {}, {"val_loss": [1.0, 2.0, 3.0]})

    for max_points in (4, 10, 51, 200):
        curve = compare_selectors.compare_series([run.pk, short.pk], "val_loss", max_points=max_points)[run.pk]
        assert curve.total == 1000
        assert 4 <= len(curve.xs) <= max_points
        assert curve.xs[0] == 1.0 and curve.xs[-1] == 1000.0  # first and last
        assert curve.xs == sorted(curve.xs)
        assert 100.0 in curve.ys and -50.0 in curve.ys  # the extremes survive
        assert curve.ys[curve.xs.index(501.0)] == 100.0
    # Every bucket keeps its lowest and highest point: with 10 buckets of 100 epochs,
    # each bucket of the 0..6 saw-tooth contributes a 0 and a 6.
    curve = compare_selectors.compare_series([run.pk], "val_loss", max_points=22)[run.pk]
    assert curve.ys.count(6.0) >= 9 and curve.ys.count(0.0) >= 9
    # A curve with fewer points than the bound is kept whole.
    assert compare_selectors.compare_series([short.pk, run.pk], "val_loss", max_points=4)[short.pk].ys == [1, 2, 3]


def test_bad_curve_choices_are_refused():
    for kwargs, field in (({"x_axis": "time"}, "x"), ({"max_points": 3}, "points"), ({"max_points": "many"}, "points")):
        with pytest.raises(ValidationError) as error:
            compare_selectors.compare_series([1, 2], "val_loss", **kwargs)
        assert field in error.value.message_dict


# --- scatter ------------------------------------------------------------------------------------


def test_scatter_uses_numbers_when_every_value_is_one_and_the_tables_aggregate(trio):
    _experiment, runs = trio
    params = compare_selectors.compare_params(runs)
    metrics = compare_selectors.compare_metrics(runs, {"val_loss": "min"})
    scatter = compare_selectors.compare_scatter(runs, params, metrics, "lr", "val_loss")
    assert scatter.numeric and scatter.aggregate == "min"
    assert [(point.x, point.y) for point in scatter.points] == [(0.1, 0.4), (0.01, 0.3), (0.001, 0.95)]
    text = compare_selectors.compare_scatter(runs, params, metrics, "optimizer", "val_loss")
    assert not text.numeric and text.categories == ["adam"] and text.left_out == 1


# --- the page and its JSON ----------------------------------------------------------------------


def test_compare_page_shows_differences_only_by_default_and_highlights_them(labeler_client, trio):
    _experiment, (a, b, c) = trio
    response = labeler_client.get(f"/experiments/compare?runs={a.pk},{b.pk},{c.pk}")
    assert response.status_code == 200
    html = response.content.decode()
    params_table = html.split('data-testid="params-table"')[1].split("</table>")[0]
    assert 'data-param="lr"' in params_table and 'data-param="optimizer"' in params_table
    assert 'data-param="epochs"' not in params_table
    assert "1 the same for every run hidden" in html
    # b's and c's lr differ from a's (the first run): highlighted; a's own value is not.
    row_b = params_table.split(f'data-run="{b.pk}"')[1].split("</tr>")[0]
    assert 'class="param differs"' in row_b
    row_a = params_table.split(f'data-run="{a.pk}"')[1].split("</tr>")[0]
    assert "differs" not in row_a

    everything = labeler_client.get(f"/experiments/compare?runs={a.pk},{b.pk},{c.pk}&diff=0").content.decode()
    assert 'data-param="epochs"' in everything.split('data-testid="params-table"')[1]


def test_compare_page_metrics_follow_the_chosen_aggregates_and_epoch(labeler_client, trio):
    _experiment, (a, b, c) = trio
    response = labeler_client.get(
        f"/experiments/compare?runs={a.pk},{b.pk},{c.pk}&agg.val_loss=epoch&epoch=2&agg.val_f1=max"
    )
    assert response.status_code == 200
    metrics_table = response.content.decode().split('data-testid="metrics-table"')[1].split("</table>")[0]
    row_c = metrics_table.split(f'data-run="{c.pk}"')[1].split("</tr>")[0]
    assert re.findall(r'<td class="num[^"]*"[^>]*>([^<]*)</td>', row_c) == ["0.3", "0.95"]
    assert '<option value="epoch" selected>at epoch 2</option>' in metrics_table
    # The best of each column is highlighted: a's val_loss at epoch 2 (0.4) is the lowest.
    row_a = metrics_table.split(f'data-run="{a.pk}"')[1].split("</tr>")[0]
    assert 'class="num best" title="0.4 at epoch 2"' in row_a


def test_compare_page_htmx_answers_the_results_alone(labeler_client, trio):
    _experiment, runs = trio
    ids = ",".join(str(run.pk) for run in runs)
    response = labeler_client.get(f"/experiments/compare?runs={ids}&diff=0&diff=1", HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="compare-results">') and "<html" not in html
    assert 'data-testid="scatter"' in html and html.count("<circle") == 3


def test_compare_page_reports_unknown_choices_with_a_400(labeler_client, trio):
    _experiment, runs = trio
    ids = ",".join(str(run.pk) for run in runs)
    response = labeler_client.get(f"/experiments/compare?runs={ids}&metric=nope&agg.val_loss=median")
    assert response.status_code == 400
    html = response.content.decode()
    assert "No run has the metric &#x27;nope&#x27;" in html
    assert "&#x27;median&#x27; is not one of" in html
    assert 'data-testid="metrics-table"' in html  # still shown, with final values


@pytest.mark.parametrize("query, message", [
    ("runs=1", "choose at least 2 runs to compare (got 1)"),
    ("", "choose at least 2 runs to compare (got 0)"),
    ("runs=" + ",".join(str(n) for n in range(1, 1002)), "compare at most 1,000 runs at a time"),
    ("runs=1,garbage", "&#x27;garbage&#x27; is not a run id"),
    ("runs={a},999999", "no such run (unknown or deleted): 999999"),
])
def test_bad_selections_answer_400_with_a_clear_message(labeler_client, trio, query, message):
    _experiment, (a, _b, _c) = trio
    query = query.format(a=a.pk)
    page = labeler_client.get(f"/experiments/compare?{query}")
    assert page.status_code == 400
    assert message in page.content.decode()
    series = labeler_client.get(f"/experiments/compare/series.json?{query}&metric=val_loss")
    assert series.status_code == 400
    assert message.replace("&#x27;", "'") in json.loads(series.content)["detail"]


def test_compare_needs_a_team_role(client, make_user, trio):
    _experiment, (a, b, _c) = trio
    client.force_login(make_user("outsider", group=None))
    assert client.get(f"/experiments/compare?runs={a.pk},{b.pk}").status_code == 403
    assert client.get(f"/experiments/compare/series.json?runs={a.pk},{b.pk}&metric=val_loss").status_code == 403


def test_series_json_gives_each_runs_curve_and_colour_value(labeler_client, trio):
    _experiment, (a, b, c) = trio
    response = labeler_client.get(
        f"/experiments/compare/series.json?runs={a.pk},{b.pk},{c.pk}&metric=val_f1&x=wall&color=optimizer&points=4"
    )
    assert response.status_code == 200
    body = json.loads(response.content)
    assert (body["metric"], body["x"], body["color"], body["max_points"]) == ("val_f1", "wall", "optimizer", 4)
    by_name = {run["name"]: run for run in body["runs"]}
    assert by_name["a"]["xs"] == [0.0, 10.0, 20.0] and by_name["a"]["ys"] == [0.5, 0.8, 0.7]
    assert by_name["a"]["color_value"] == "adam" and by_name["c"]["color_value"] is None
    for bad in ("metric=", "metric=val_f1&x=sideways", "metric=val_f1&points=2", "metric=val_f1&color=bad!"):
        response = labeler_client.get(f"/experiments/compare/series.json?runs={a.pk},{b.pk}&{bad}")
        assert response.status_code == 400, bad


def test_experiment_page_runs_table_has_checkboxes_and_a_compare_button(labeler_client, trio):
    experiment, runs = trio
    html = labeler_client.get(f"/experiments/{experiment.pk}/").content.decode()
    assert 'id="compare-runs"' in html and 'action="/experiments/compare"' in html
    for run in runs:
        assert f'name="runs" value="{run.pk}" form="compare-runs"' in html
    # What the checkboxes send (repeated runs=) opens the compare page.
    query = "&".join(f"runs={run.pk}" for run in runs)
    assert labeler_client.get(f"/experiments/compare?{query}").status_code == 200


# --- query counts -------------------------------------------------------------------------------


EPOCHS = 50
CURVE_KEYS = ("val_loss", "val_f1")


def runs_with_curves(count: int) -> list[Run]:
    """``count`` finished runs with params and ``EPOCHS`` points of each of
    ``CURVE_KEYS`` (points and their summaries written in two statements)."""
    experiment = ExperimentFactory(metric_key="val_f1")
    runs = make_runs(experiment, count, metric_keys=(), param_keys=("lr", "epochs", "optimizer"))
    ids = [run.pk for run in runs]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {MetricPoint._meta.db_table} (run_id, key, step, value, wall_time) "
            "SELECT run_id, key, step, random(), %s::timestamptz + step * interval '7 seconds' "
            "FROM unnest(%s::bigint[]) AS run_id, unnest(%s::text[]) AS key, generate_series(1, %s) AS step",
            [T0, ids, list(CURVE_KEYS), EPOCHS],
        )
        cursor.execute(
            f"INSERT INTO {RunMetricSummary._meta.db_table} (run_id, key, point_count, latest_step, latest_value, "
            "min_value, min_step, max_value, max_step, updated_at) "
            "SELECT run_id, key, count(*), max(step), (array_agg(value ORDER BY step DESC))[1], "
            "min(value), (array_agg(step ORDER BY value, step))[1], max(value), "
            "(array_agg(step ORDER BY value DESC, step))[1], now() "
            f"FROM {MetricPoint._meta.db_table} WHERE run_id = ANY(%s) GROUP BY run_id, key",
            [ids],
        )
    return runs


def count_queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
        assert response.status_code == 200, response.content[:500]
    return len(queries)


def test_query_counts_do_not_grow_with_runs_or_epochs(labeler_client, django_assert_max_num_queries):
    few, many = runs_with_curves(10), runs_with_curves(1000)
    assert MetricPoint.objects.filter(run__in=many).count() == 1000 * EPOCHS * len(CURVE_KEYS)

    def urls(runs):
        ids = ",".join(str(run.pk) for run in runs)
        return [
            f"/experiments/compare?runs={ids}",
            f"/experiments/compare?runs={ids}&agg.val_loss=epoch&epoch=25&agg.val_f1=best&sx=lr&sy=val_loss&diff=0",
            f"/experiments/compare/series.json?runs={ids}&metric=val_loss&x=step&color=lr",
            f"/experiments/compare/series.json?runs={ids}&metric=val_f1&x=wall&points=10",
        ]

    assert [count_queries(labeler_client, url) for url in urls(few)] == [
        count_queries(labeler_client, url) for url in urls(many)]

    # The selectors themselves: a fixed, small number of queries.
    for runs in (few, many):
        ids = [run.pk for run in runs]
        with django_assert_max_num_queries(5):
            chosen = compare_selectors.compared_runs(ids)
            params = compare_selectors.compare_params(chosen)
            metrics = compare_selectors.compare_metrics(chosen, {"val_loss": Aggregate.EPOCH}, epoch=10)
            compare_selectors.compare_series(ids, "val_loss", x_axis=XAxis.WALL, max_points=20)
            compare_selectors.compare_scatter(chosen, params, metrics, "lr", "val_loss")
    assert len(metrics.values) == 1000 and all("val_loss" in row for row in metrics.values.values())


@pytest.mark.parametrize(("key", "direction"), [
    ("loss", "min"), ("val_loss", "min"), ("train/loss", "min"), ("test-loss", "min"),
    ("val_f1", "max"), ("lossy_ratio", "max"), ("gloss", "max"), ("roc_auc", "max"),
])
def test_a_key_is_better_lower_only_when_it_names_a_loss(key, direction):
    assert metric_key_direction(key) == direction
