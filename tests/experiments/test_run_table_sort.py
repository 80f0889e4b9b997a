"""The selectors behind the experiment pages: the runs table's SQL sort (metrics, best,
params as numbers or text, run columns), its page cut, the table's keys and counts, the
tag list and the log tail."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from experiments import selectors, services
from experiments.models import RunStatus
from tests.experiments.factories import ExperimentFactory, make_runs, running_run

pytestmark = pytest.mark.django_db


def names(rows) -> list[str]:
    return [row.run.name for row in rows]


def experiment_with_params(values: dict[str, str | None]):
    experiment = ExperimentFactory()
    for name, value in values.items():
        run = running_run(experiment=experiment, name=name)
        if value is not None:
            services.run_params_log(run.pk, {"lr": value})
        services.run_transition(run.pk, RunStatus.SUCCEEDED)
    return experiment


def test_run_order_parses_the_query_parameters():
    assert selectors.run_order(None) is None
    assert selectors.run_order("") is None
    assert selectors.run_order("metric:val_f1", "desc") == selectors.RunOrder("metric:val_f1", True)
    order = selectors.run_order("param:hidden sizes", "asc")
    assert (order.kind, order.key, order.descending) == ("param", "hidden sizes", False)
    assert selectors.run_order("created").column == "created"
    for bad in [("colour", None), ("metric:", None), ("metric:bad!", None), ("tag:x", None), ("name", "down")]:
        with pytest.raises(ValidationError):
            selectors.run_order(*bad)


def test_params_sort_as_numbers_then_text_then_missing():
    experiment = experiment_with_params({
        "tenth": "0.1", "thousandth": "1e-3", "hundredth": "0.01", "two": "2", "minus": "-5", "half": ".5",
        "huge": "1e999", "long": "1" + "0" * 400, "word": "adaptive", "other": "constant", "none": None,
    })

    ascending = selectors.run_table(experiment, order_by=selectors.RunOrder("param:lr"))
    assert names(ascending) == ["minus", "thousandth", "hundredth", "tenth", "half", "two", "long", "huge",
                                "word", "other", "none"]
    descending = selectors.run_table(experiment, order_by=selectors.RunOrder("param:lr", descending=True))
    assert names(descending) == ["huge", "long", "two", "half", "tenth", "hundredth", "thousandth", "minus",
                                 "other", "word", "none"]


def test_metric_sort_latest_or_best_by_the_experiments_direction():
    experiment = ExperimentFactory(metric_key="val_f1", metric_direction="max")
    for name, curve in (("steady", (0.6, 0.6)), ("peaked", (0.9, 0.3)), ("late", (0.2, 0.7))):
        run = running_run(experiment=experiment, name=name)
        services.run_metrics_log(run.pk, [("val_f1", step, value) for step, value in enumerate(curve)])
        services.run_transition(run.pk, RunStatus.SUCCEEDED)
    running_run(experiment=experiment, name="no points")

    latest = selectors.run_table(experiment, order_by=selectors.RunOrder("metric:val_f1", descending=True))
    assert names(latest) == ["late", "steady", "peaked", "no points"]
    best = selectors.run_table(experiment, order_by=selectors.RunOrder("best:val_f1", descending=True))
    assert names(best) == ["peaked", "late", "steady", "no points"]
    experiment.metric_direction = "min"  # best = the lowest value now
    best_low = selectors.run_table(experiment, order_by=selectors.RunOrder("best:val_f1"))
    assert names(best_low) == ["late", "peaked", "steady", "no points"]


def test_run_column_sorts_and_the_page_cut():
    experiment = ExperimentFactory()
    runs = make_runs(experiment, 7)
    by_seed = selectors.run_table(experiment, order_by=selectors.RunOrder("seed", descending=True), offset=2, limit=3)
    assert [row.run.seed for row in by_seed] == [4, 3, 2]
    by_name = selectors.run_table(experiment, order_by=selectors.RunOrder("name"))
    assert names(by_name) == sorted(run.name for run in runs)
    for column in selectors.RUN_SORT_COLUMNS:
        assert len(selectors.run_table(experiment, order_by=selectors.RunOrder(column))) == 7


@pytest.mark.parametrize("run_count", [10, 200])
def test_sorted_runs_table_is_three_queries_whatever_the_number_of_runs(run_count, django_assert_num_queries):
    experiment = ExperimentFactory()
    make_runs(experiment, run_count)
    for column in ("metric:val_f1", "best:val_f1", "param:lr", "duration", "dataset"):
        with django_assert_num_queries(3):
            rows = selectors.run_table(experiment, order_by=selectors.RunOrder(column, True), limit=100)
        assert len(rows) == min(run_count, 100)
    top = selectors.run_table(experiment, order_by=selectors.RunOrder("param:lr", True), limit=1)
    assert top[0].params["lr"] == str(run_count - 1)  # numeric: "199" above "99"


def test_table_keys_counts_and_tags(django_assert_num_queries):
    experiment = ExperimentFactory(tags=["mlp", "wide"])
    ExperimentFactory(tags=["baseline", "mlp"])
    make_runs(experiment, 3, param_keys=("lr", "epochs"))
    services.run_delete(make_runs(experiment, 1, status=RunStatus.FAILED)[0].pk)
    running_run(experiment=experiment)

    with django_assert_num_queries(2):
        keys = selectors.run_table_keys(experiment)
    assert keys.param_keys == ["epochs", "lr"] and keys.metric_keys == ["val_f1", "val_loss"]
    # make_runs gives each run its own values; the running run has none.
    assert keys.varying_param_keys == ["epochs", "lr"]
    with django_assert_num_queries(1):
        counts = selectors.run_status_counts(experiment)
    assert counts == {"total": 4, "deleted": 1, "queued": 0, "running": 1, "succeeded": 3, "failed": 0,
                      "cancelled": 0}
    with django_assert_num_queries(1):
        assert selectors.experiment_tags() == ["baseline", "mlp", "wide"]


def test_run_status_get_hides_deleted_runs():
    (run,) = make_runs(ExperimentFactory(), 1)
    assert selectors.run_status_get(run.pk) == RunStatus.SUCCEEDED
    services.run_delete(run.pk)
    with pytest.raises(type(run).DoesNotExist):
        selectors.run_status_get(run.pk)


# --- log tail ----------------------------------------------------------------------------


@pytest.fixture
def log_file(settings, tmp_path):
    settings.CVSA_ARTIFACTS_DIR = tmp_path

    def write(run_id: int, content: bytes):
        folder = services.run_artifact_dir(run_id)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / services.RUN_LOG_PATH).write_bytes(content)

    return write


def test_log_tail_last_lines(log_file):
    log_file(1, b"".join(b"line %d\n" % index for index in range(1, 10_001)))
    assert selectors.run_log_tail(1, 3) == ["line 9998", "line 9999", "line 10000"]
    log_file(2, b"only\nthree\nlines")  # no final newline
    assert selectors.run_log_tail(2, 50) == ["only", "three", "lines"]
    assert selectors.run_log_tail(3) == []  # no log yet
    log_file(4, "épreuve ✓\n".encode() * 3)
    assert selectors.run_log_tail(4, 2) == ["épreuve ✓", "épreuve ✓"]


def test_log_tail_reads_only_the_end_of_a_huge_log(log_file, monkeypatch):
    log_file(1, b"x" * 3_000_000 + b"\nlast line\n")
    reads: list[int] = []
    original_open = type(services.run_artifact_dir(1) / services.RUN_LOG_PATH).open

    def counting_open(path, *args, **kwargs):
        handle = original_open(path, *args, **kwargs)
        original_read = handle.read

        class Counting:
            def __getattr__(self, name):
                return getattr(handle, name)

            def read(self, size=-1):
                reads.append(size)
                return original_read(size)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                handle.close()

        return Counting()

    monkeypatch.setattr(type(services.run_artifact_dir(1)), "open", counting_open)
    assert selectors.run_log_tail(1, 50, max_bytes=64 * 1024) == ["last line"]  # the cut line left out
    assert sum(reads) <= 64 * 1024 and all(size > 0 for size in reads)

    reads.clear()
    log_file(2, b"y" * 3_000_000)  # one line longer than the bytes read: its end
    (tail,) = selectors.run_log_tail(2, 50, max_bytes=64 * 1024)
    assert tail == "…" + "y" * 64 * 1024
    assert sum(reads) == 64 * 1024
