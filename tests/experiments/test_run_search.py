"""The run search: the filter language (good expressions of every ref type and operator,
precedence, errors with their position, injection attempts), the selector (sorts by
metric aggregates, params and attributes, across experiments, query counts), the page
and the CSV export."""

from __future__ import annotations

import csv
import io
import random
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from experiments import search_selectors, services
from experiments.models import Experiment, Param, Run, RunMetricSummary, RunStatus
from experiments.run_search import FilterSyntaxError, filter_q, parse_filter, parse_ref
from tests.experiments.factories import ExperimentFactory, make_runs, running_run

pytestmark = pytest.mark.django_db


def finished(experiment: Experiment, name: str, *, params: dict, curves: dict[str, tuple[float, ...]],
             tags: dict | None = None, status: str = RunStatus.SUCCEEDED) -> Run:
    run = running_run(experiment=experiment, name=name)
    services.run_params_log(run.pk, params)
    services.run_metrics_log(run.pk, [(key, step, value) for key, curve in curves.items()
                                      for step, value in enumerate(curve)])
    if tags:
        services.run_tags_set(run.pk, tags)
    if status == RunStatus.FAILED:
        return services.run_transition(run.pk, status, error="boom")
    return services.run_transition(run.pk, status)


@pytest.fixture
def runs():
    """Two experiments: "wide" ranks by val_f1 (max), "small" by val_loss (min)."""
    wide = ExperimentFactory(name="wide", metric_key="val_f1", metric_direction="max")
    small = ExperimentFactory(name="small", metric_key="val_loss", metric_direction="min")
    made = {
        "slow": finished(wide, "mlp-slow", params={"lr": "0.001", "optimizer": "adam", "hidden sizes": [64, 32]},
                         curves={"val_f1": (0.5, 0.9, 0.7), "val_loss": (0.9, 0.4, 0.6)}, tags={"arch": "mlp"}),
        "fast": finished(wide, "mlp-fast", params={"lr": "1e-1", "optimizer": "sgd", "early": True},
                         curves={"val_f1": (0.6, 0.65), "val_loss": (0.8, 0.7)}, tags={"arch": "mlp", "sweep": "3"}),
        "logreg": finished(small, "logreg-a", params={"lr": "0.01", "optimizer": "adaptive"},
                           curves={"val_f1": (0.2, 0.85), "val_loss": (0.5, 0.1, 0.3)}, tags={"arch": "logreg"}),
        "broken": finished(small, "Broken run", params={"lr": "fast"}, curves={"val_loss": (1.0,)},
                           status=RunStatus.FAILED),
    }
    return made


def search(text: str, **kwargs) -> set[str]:
    return {run.name for run in search_selectors.run_search(text, **kwargs)}


# --- the language -------------------------------------------------------------------------


def test_params_compare_as_numbers_whatever_their_spelling_and_as_text(runs):
    assert search("params.lr < 0.01") == {"mlp-slow"}
    assert search("params.lr <= 0.01") == {"mlp-slow", "logreg-a"}
    assert search("params.lr = 0.1") == {"mlp-fast"}  # stored as 1e-1
    assert search("params.lr != 0.1") == {"mlp-slow", "logreg-a"}  # "fast" is no number: not compared
    assert search('params.lr = "fast"') == {"Broken run"}
    assert search('params.optimizer in ("adam", "sgd")') == {"mlp-slow", "mlp-fast"}
    assert search('params.optimizer not in ("adam", "sgd")') == {"logreg-a", "Broken run"}
    assert search("params.early = true") == {"mlp-fast"}
    assert search('params.`hidden sizes` = "[64,32]"') == {"mlp-slow"}
    assert search('params.optimizer like "ada%"') == {"mlp-slow", "logreg-a"}
    assert search('params.optimizer like "ADA%"') == set()
    assert search('params.optimizer ilike "ADA_"') == {"mlp-slow"}


def test_metric_aggregates_and_best_by_the_experiments_direction(runs):
    assert search("metrics.val_f1 > 0.68") == {"mlp-slow", "logreg-a"}  # latest: 0.7, 0.65, 0.85
    assert search("metrics.val_f1.final > 0.68") == {"mlp-slow", "logreg-a"}
    assert search("metrics.val_f1.max >= 0.9") == {"mlp-slow"}
    assert search("metrics.val_f1.min < 0.3") == {"logreg-a"}
    # val_loss is "small"'s metric, minimized; in "wide" it is a loss: best = min too.
    assert search("metrics.val_loss.best <= 0.1") == {"logreg-a"}
    assert search("metrics.val_loss.best <= 0.4") == {"logreg-a", "mlp-slow"}  # "wide": min (0.4), not max (0.9)
    assert search("metrics.val_loss.best >= 1") == {"Broken run"}
    # Any other key: the highest (val_f1 is "wide"'s metric, maximized; "small" ranks by val_loss).
    assert search("metrics.val_f1.best >= 0.85") == {"mlp-slow", "logreg-a"}
    assert search("metrics.val_f1 in (0.65, 0.85)") == {"mlp-fast", "logreg-a"}
    assert search("metrics.val_f1 != 0.65") == {"mlp-slow", "logreg-a"}  # the broken run has no val_f1


def test_tags_and_attributes(runs):
    assert search('tags.arch = "mlp"') == {"mlp-slow", "mlp-fast"}
    assert search("tags.sweep = 3") == {"mlp-fast"}
    assert search('tags.arch != "mlp"') == {"logreg-a"}
    assert search('status = "failed"') == {"Broken run"}
    assert search('attributes.status in ("failed", "succeeded") and name ilike "broken%"') == {"Broken run"}
    assert search('experiment = "small"') == {"logreg-a", "Broken run"}
    assert search(f"experiment = {runs['slow'].experiment_id}") == {"mlp-slow", "mlp-fast"}
    assert search('architecture = "mlp"') == {"mlp-slow", "mlp-fast", "logreg-a", "Broken run"}
    assert search(f"id in ({runs['slow'].pk}, {runs['fast'].pk}) and seed = 0") == {"mlp-slow", "mlp-fast"}
    assert search(f'dataset_version = "{runs["slow"].dataset_version_id}"') == {"mlp-slow", "mlp-fast"}
    today = timezone.localdate().isoformat()
    assert len(search(f'created = "{today}"')) == 4
    assert search(f'created < "{today}"') == set()
    assert len(search(f'started >= "{today}" and finished <= "{timezone.localtime() + timedelta(hours=1):%Y-%m-%dT%H:%M}"')) == 4
    assert len(search("duration >= 0 and duration < 3600")) == 4


def test_precedence_parentheses_and_not(runs):
    # not > and > or: a or (b and c)
    assert search('name = "logreg-a" or tags.arch = "mlp" and params.lr < 0.01') == {"logreg-a", "mlp-slow"}
    assert search('(name = "logreg-a" or tags.arch = "mlp") and params.lr < 0.01') == {"mlp-slow"}
    # not takes the complement, runs without the value included
    assert search('not tags.arch = "mlp"') == {"logreg-a", "Broken run"}
    assert search('not (status = "failed" or params.lr >= 0.01)') == {"mlp-slow"}
    assert search("NOT NOT metrics.val_f1 > 0.8 AND status = 'succeeded'") == {"logreg-a"}


@pytest.mark.parametrize(("text", "position", "expected"), [
    ("params.lr ~ 1", 11, "unexpected character '~'"),
    ("params.lr contains 1", 11, "expected an operator"),
    ('params.lr = "abc', 13, "unclosed string"),
    ("params.`lr = 1", 8, "unclosed key"),
    ('(status = "queued"', 19, "expected ) closing the ( at position 1"),
    ("colour = 1", 1, "unknown attribute 'colour'"),
    ("attributes.colour = 1", 12, "unknown attribute 'colour'"),
    ("metrics.val_f1.bset > 1", 16, "expected an aggregate (latest, final, best, min, max), got 'bset'"),
    ("params.lr.best > 1", 10, "a param has no aggregate"),
    ("params.lr <", 12, "expected a value"),
    ("params.lr = adam", 13, "quote text"),
    ("params.lr = 1 and", 18, "expected a comparison"),
    ("params.lr = 1 params.x = 2", 15, "expected and, or or the end"),
    ('metrics.val_f1 > "high"', 18, "metrics compare with numbers"),
    ('metrics.val_f1 like "x"', 16, "like compares text"),
    ('status = "done"', 10, "expected a status"),
    ('created > "yesterday"', 11, "expected a quoted date"),
    ("seed = 1.5", 8, "seed takes a whole number"),
    ("seed = 99999999999999999999", 8, "between"),
    ("metrics.x > 1e999", 13, "out of range"),
    ('dataset_version = "v3"', 19, "UUID"),
    ("params.`a'b` = 1", 8, "no param can have the key"),
    ("params.lr like 1", 16, "like takes a quoted pattern"),
    ("(" * 60 + "seed = 1" + ")" * 60, 51, "nested more than"),
])
def test_bad_filters_name_the_position(text, position, expected):
    with pytest.raises(FilterSyntaxError) as raised:
        filter_q(text)
    assert raised.value.position == position
    message = raised.value.message_dict["filter"][0]
    assert message.startswith(f"at position {position}: ")
    assert expected in message


def test_filter_errors_are_validation_errors_keyed_filter():
    with pytest.raises(ValidationError) as raised:
        search_selectors.run_search("params.lr >> 1")
    assert list(raised.value.message_dict) == ["filter"]
    assert parse_filter("   ") is None


@pytest.mark.parametrize("text", [
    "params.lr = \"1'; drop table experiments_run; --\"",
    "tags.arch = \"x\\\"}'; delete from experiments_param; --\"",
    "params.`lr; drop table x` = 1",  # no key can hold ; : a clean error
    "name = 'é🙂\\u0000'",
    'name like "%\'%" or name ilike "\\\\%"',
    "tags.`a b` = \"') or 1=1 --\"",
    'params.lr = "1" or "1" = "1"',
])
def test_injection_attempts_are_literals_or_clean_errors(runs, text):
    try:
        matched = search(text)
    except ValidationError as error:
        assert "filter" in error.message_dict
    else:
        assert matched == set()
    assert Run.objects.count() == 4 and Param.objects.count() == 9 and RunMetricSummary.objects.count() == 7


def test_keys_with_odd_characters_and_unicode_values_match_literally(runs):
    run = finished(runs["slow"].experiment, "odd", params={"drop table/x": "é'; --"}, curves={"val_f1": (0.1,)},
                   tags={"x y": "🙂"})
    assert search("params.`drop table/x` = \"é'; --\"") == {run.name}
    assert search('tags.`x y` = "🙂"') == {run.name}


# --- sorting -------------------------------------------------------------------------------


def names(text: str = "", sort: str | None = None, direction: str | None = None, **kwargs) -> list[str]:
    order = search_selectors.search_order(sort, direction)
    return [run.name for run in search_selectors.run_search(text, order_by=order, **kwargs)]


def test_sort_by_metric_aggregates_params_and_attributes_across_experiments(runs):
    assert names(sort="-metrics.val_f1") == ["logreg-a", "mlp-slow", "mlp-fast", "Broken run"]
    assert names(sort="metrics.val_f1.max", direction="desc") == ["mlp-slow", "logreg-a", "mlp-fast", "Broken run"]
    # best: min for "small" (its metric, minimized) and for "wide" (a loss)
    assert names(sort="metrics.val_loss.best") == ["logreg-a", "mlp-slow", "mlp-fast", "Broken run"]
    assert names(sort="params.lr") == ["mlp-slow", "logreg-a", "mlp-fast", "Broken run"]  # numbers, then text
    assert names(sort="-params.lr") == ["mlp-fast", "logreg-a", "mlp-slow", "Broken run"]
    assert names(sort="name") == ["Broken run", "logreg-a", "mlp-fast", "mlp-slow"]
    assert names(sort="experiment", direction="desc")[:2] == ["mlp-fast", "mlp-slow"]  # wide, newest first
    assert names(sort="tags.arch") == ["logreg-a", "mlp-fast", "mlp-slow", "Broken run"]
    assert names('tags.arch = "mlp"', sort="best:val_f1", direction="desc") == ["mlp-slow", "mlp-fast"]
    assert names(sort="params.lr", experiment_id=runs["logreg"].experiment_id) == ["logreg-a", "Broken run"]


def test_bad_sorts_are_errors_keyed_sort():
    for sort, direction in (("metrics.x.worst", None), ("colour", None), ("metric:", None), ("name", "down")):
        with pytest.raises(ValidationError):
            search_selectors.search_order(sort, direction)
    with pytest.raises(ValidationError) as raised:
        search_selectors.search_order("metrics.val_f1.bset")
    assert raised.value.message_dict["sort"][0].startswith("at position 16: ")
    assert parse_ref("metrics.`a.b`.best").text == "metrics.`a.b`.best"


# --- query counts --------------------------------------------------------------------------


def _search_page_queries(client: Client, count: int) -> int:
    Experiment.objects.all().delete()
    experiment = ExperimentFactory()
    make_runs(experiment, count)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("experiments:run-search"),
                              {"filter": "params.lr >= 0 and metrics.val_f1.best >= 0", "sort": "-params.lr"})
    assert response.status_code == 200
    assert response.content.decode().count("data-run=") == min(count, 50)
    return len(queries)


def test_search_page_query_count_does_not_grow_with_the_runs(admin_client):
    assert _search_page_queries(admin_client, 10) == _search_page_queries(admin_client, 1000)


def _csv_lines_and_queries(client: Client, count: int) -> tuple[int, int]:
    Experiment.objects.all().delete()
    make_runs(ExperimentFactory(), count)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("experiments:run-search-csv"), {"filter": "params.lr >= 0"})
        lines = b"".join(response.streaming_content).decode().splitlines()
    return len(lines), len(queries)


def test_csv_query_count_does_not_grow_with_the_runs(admin_client):
    small_lines, small_queries = _csv_lines_and_queries(admin_client, 10)
    many = 2 * search_selectors.CSV_CHUNK_SIZE + 7  # more than two chunks of the cursor
    large_lines, large_queries = _csv_lines_and_queries(admin_client, many)
    assert (small_lines, large_lines) == (11, many + 1)
    assert small_queries == large_queries


# --- the page and the CSV ------------------------------------------------------------------


@pytest.fixture
def admin_client(make_user):
    client = Client()
    client.force_login(make_user("search-admin", group="admins"))
    return client


def test_search_page_shows_the_matching_runs_with_compare_and_export(admin_client, runs):
    response = admin_client.get(reverse("experiments:run-search"),
                                {"filter": 'tags.arch = "mlp"', "sort": "metrics.val_f1.best", "dir": "desc"})
    html = response.content.decode()
    assert response.status_code == 200
    assert html.index("mlp-slow") < html.index("mlp-fast")
    assert "logreg-a" not in html and "Broken run" not in html
    assert 'name="runs"' in html and 'data-testid="compare-selected"' in html
    assert "/experiments/runs.csv?" in html and "filter=tags.arch" in html
    assert 'data-sort="metrics.val_f1.best"' in html and 'aria-sort="descending"' in html
    assert admin_client.get(reverse("experiments:list")).content.decode().count(reverse("experiments:run-search")) == 1


def test_search_page_one_experiment_and_the_htmx_partial(admin_client, runs):
    response = admin_client.get(reverse("experiments:run-search"),
                                {"experiment": runs["logreg"].experiment_id}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html
    assert "logreg-a" in html and "Broken run" in html and "mlp-slow" not in html


def test_a_bad_filter_is_shown_with_a_caret_under_its_position(admin_client, runs):
    response = admin_client.get(reverse("experiments:run-search"), {"filter": "params.lr ~ 1"})
    html = response.content.decode()
    assert response.status_code == 400
    assert "Bad filter at position 11: unexpected character" in html
    assert "params.lr ~ 1\n" + " " * 10 + "^</pre>" in html
    assert 'data-run="' not in html
    partial = admin_client.get(reverse("experiments:run-search"), {"filter": "(seed = 1"}, HTTP_HX_REQUEST="true")
    assert partial.status_code == 200 and 'data-testid="filter-error"' in partial.content.decode()
    bad_experiment = admin_client.get(reverse("experiments:run-search"), {"experiment": "abc"})
    assert bad_experiment.status_code == 400


def test_search_page_needs_a_team_role(client, make_user, runs):
    assert client.get(reverse("experiments:run-search")).status_code in (302, 403)
    client.force_login(make_user("nobody", group=None))
    assert client.get(reverse("experiments:run-search")).status_code == 403
    assert client.get(reverse("experiments:run-search-csv")).status_code == 403


def test_csv_export_streams_one_row_per_run_with_every_param_and_metric(admin_client, runs):
    response = admin_client.get(reverse("experiments:run-search-csv"),
                                {"filter": 'status = "succeeded"', "sort": "name"})
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [row["name"] for row in rows] == ["logreg-a", "mlp-fast", "mlp-slow"]
    assert set(rows[0]) >= {"id", "experiment", "status", "architecture", "dataset_version", "created",
                            "duration_seconds", "params.lr", "params.optimizer", "params.`hidden sizes`",
                            "params.early", "metrics.val_f1", "metrics.val_f1.best", "metrics.val_loss.best"}
    logreg, fast, slow = rows
    assert (logreg["experiment"], logreg["params.lr"], logreg["params.early"]) == ("small", "0.01", "")
    assert float(logreg["metrics.val_loss.best"]) == 0.1 and float(logreg["metrics.val_loss"]) == 0.3
    assert float(slow["metrics.val_loss.best"]) == 0.9  # not wide's metric: the highest
    assert float(slow["metrics.val_f1.best"]) == 0.9 and float(fast["metrics.val_f1"]) == 0.65
    bad = admin_client.get(reverse("experiments:run-search-csv"), {"filter": "seed ="})
    assert bad.status_code == 400 and b"at position 7" in bad.content


def test_csv_cells_never_start_a_formula(admin_client, runs):
    finished(runs["slow"].experiment, "=HYPERLINK(1)", params={"note": "+cmd", "delta": "-0.5"}, curves={})
    response = admin_client.get(reverse("experiments:run-search-csv"), {"filter": "params.note = \"+cmd\""})
    (row,) = csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode()))
    assert (row["name"], row["params.note"], row["params.delta"]) == ("'=HYPERLINK(1)", "'+cmd", "-0.5")


#: Pieces of filters (good and bad) that random filters are made of.
FUZZ_PIECES = (
    "params.lr", "metrics.val_f1", "metrics.val_f1.best", "metrics.x.min", "tags.a", "status", "name", "seed",
    "experiment", "dataset_version", "created", "started", "finished", "duration", "id", "architecture",
    "=", "!=", "<", "<=", ">", ">=", "in", "not", "like", "ilike", "and", "or", "(", ")", ",", "1", "-1", "1e308",
    "1e-308", "0.5", '"x"', '"2026-01-01"', '"2026-13-45"', '"00000000-0000-0000-0000-000000000000"', "true",
    "false", '"%"', '"\\\\"', "1e400", "99999999999999999999", '"9999-12-31"', '"0001-01-01"', '"queued"',
    "`a b`", ".", "1.", ".5", "+1",
)


def test_random_filters_are_results_or_validation_errors_never_database_errors():
    make_runs(ExperimentFactory(), 3)
    rng = random.Random(20261128)
    for index in range(600):
        if index % 2:
            pieces = [rng.choice(FUZZ_PIECES[:16]), rng.choice(FUZZ_PIECES[16:22]), rng.choice(FUZZ_PIECES[31:])]
        else:
            pieces = [rng.choice(FUZZ_PIECES) for _ in range(rng.randint(1, 9))]
        text = " ".join(pieces)
        order = search_selectors.search_order(rng.choice([None, "-params.lr", "metrics.val_f1.best", "tags.a"]))
        try:
            list(search_selectors.run_search(text, order_by=order)[:3])
        except ValidationError as error:
            assert "filter" in error.message_dict, text
