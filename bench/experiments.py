"""Benchmark: runs list, run search and compare over 10,000 runs × 50 epochs × 5 metrics.

Run: .venv/bin/python -m bench.experiments [--runs 10000] [--epochs 50] [--compare 1000]

Uses its own database (cvsa_bench_experiments) on the embedded server of
``CVSA_DATA_DIR``; the dev data is untouched. It seeds one experiment of ``--runs``
succeeded runs in a few statements run by the server (``INSERT … SELECT`` over
``generate_series``): 12 params per run, ``--epochs`` points of 5 metrics per run and
their per-run summaries. Then it prints, for each flow, the server time (median of
``--repeats``, the first call warms the caches) and its query count:

- runs list: the experiment page's ``selectors.run_table`` for one page (100 runs,
  params and summaries prefetched), the whole page rendered, and the count of
  ``selectors.run_list`` (every run). Target < 1 s.
- search: ``search_selectors.run_search`` with a filter over params, metrics and tags,
  one page (and its count). Target < 200 ms.
- compare of ``--compare`` runs: every selector of the compare page (runs, params,
  metrics with an "at epoch N" column, curves of one metric by step and by wall time,
  scatter), then the page and its series.json through the test client. Target < 2 s.

It is a benchmark, not a test: it prints numbers and exits 0.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_database import setup_django  # noqa: E402

BENCH_DATABASE = "cvsa_bench_experiments"
METRIC_KEYS = ("train_loss", "val_loss", "val_f1", "val_accuracy", "val_roc_auc")
RUNS_PAGE = 100
SEARCH_FILTER = 'params.learning_rate < 0.01 and metrics.val_f1.best > 0.8 and tags.arch = "mlp"'


# --- seeding --------------------------------------------------------------------------


def _seed(runs: int, epochs: int, seed: float) -> int:
    """One experiment of ``runs`` succeeded runs with params, points and summaries (the
    bench tables emptied first); the experiment's id."""
    from django.db import connection, transaction
    from django.utils import timezone

    from datasets.models import Dataset, DatasetVersion, DatasetVersionStatus, EmbeddingModel
    from experiments.models import Experiment

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE experiments_experiment, experiments_run, experiments_param, experiments_metricpoint, "
            "experiments_runmetricsummary, experiments_artifact RESTART IDENTITY CASCADE"
        )
        model, _ = EmbeddingModel.objects.get_or_create(
            key="bench-experiments",
            defaults={"name": "bench", "provider_type": "local", "dimensions": 8, "max_tokens": 512,
                      "max_batch_size": 8},
        )
        dataset, _ = Dataset.objects.get_or_create(name="bench-experiments")
        version = DatasetVersion.objects.filter(dataset=dataset).first() or DatasetVersion.objects.create(
            dataset=dataset, number=1, embedding_model=model, embedding_dimensions=8, text_template_version="v1",
            train_ratio=0.8, val_ratio=0.1, test_ratio=0.1, seed=1, status=DatasetVersionStatus.READY,
            frozen_at=timezone.now(), content_hash="b" * 64,
        )
        experiment = Experiment.objects.create(name="bench: 10k runs", metric_key="val_f1",
                                               default_dataset_version=version)
        cursor.execute("SELECT setseed(%s)", [seed])
        # Runs: a quarter logreg, the rest mlp; started an hour ago, one a second.
        cursor.execute(
            """
            INSERT INTO experiments_run (experiment_id, name, status, dataset_version_id, architecture_key, seed,
                queued_at, started_at, finished_at, heartbeat_at, error, attempts, worker_starts, worker,
                celery_task_id, reproducibility, tags, created_at, updated_at)
            SELECT %(experiment)s, 'run-' || n, 'succeeded', %(version)s,
                   CASE WHEN n %% 4 = 0 THEN 'logreg' ELSE 'mlp' END, n,
                   now() - interval '2 hours' + n * interval '1 second',
                   now() - interval '2 hours' + n * interval '1 second',
                   now() - interval '1 hour' + n * interval '1 second', NULL, '', 1, 1, 'bench:1', '', '{}',
                   jsonb_build_object('arch', CASE WHEN n %% 4 = 0 THEN 'logreg' ELSE 'mlp' END,
                                      'sweep', (n %% 10)::text),
                   now() - interval '2 hours' + n * interval '1 second',
                   now() - interval '2 hours' + n * interval '1 second'
            FROM generate_series(1, %(runs)s) AS n
            """,
            {"experiment": experiment.pk, "version": version.pk, "runs": runs},
        )
        # 12 params each, the ones a training run logs.
        cursor.execute(
            """
            INSERT INTO experiments_param (run_id, key, value)
            SELECT r.id, p.key, p.value
            FROM experiments_run r,
            LATERAL (VALUES
                ('learning_rate', (ARRAY['0.1', '0.03', '0.01', '0.003', '0.001', '0.0003'])[1 + r.seed %% 6]),
                ('batch_size', (ARRAY['32', '64', '128', '256'])[1 + r.seed %% 4]),
                ('epochs', %(epochs)s::text),
                ('hidden_sizes', (ARRAY['64', '128', '256,64', '512,128'])[1 + (r.seed / 7) %% 4]),
                ('dropout', (ARRAY['0', '0.1', '0.2', '0.5'])[1 + (r.seed / 3) %% 4]),
                ('weight_decay', (ARRAY['0', '1e-5', '1e-4'])[1 + (r.seed / 5) %% 3]),
                ('optimizer', (ARRAY['adam', 'adamw', 'sgd'])[1 + (r.seed / 11) %% 3]),
                ('seed', r.seed::text),
                ('early_stopping_patience', '0'),
                ('activation', (ARRAY['relu', 'gelu'])[1 + (r.seed / 13) %% 2]),
                ('class_weight', (ARRAY['none', 'balanced'])[1 + (r.seed / 17) %% 2]),
                ('threshold_metric', 'f1')
            ) AS p(key, value)
            """,
            {"epochs": epochs},
        )
        # Curves: losses fall and scores rise towards a per-run plateau, with noise.
        cursor.execute(
            """
            INSERT INTO experiments_metricpoint (run_id, key, step, value, wall_time)
            SELECT r.id, k.key, s.step,
                   CASE WHEN k.key LIKE '%%loss'
                        THEN 0.2 + 0.5 * exp(-s.step / (3.0 + (r.seed %% 17))) + 0.02 * random()
                        ELSE 0.95 - (0.2 + 0.03 * (r.seed %% 7)) * exp(-s.step / (4.0 + (r.seed %% 13)))
                             - 0.02 * random() END,
                   r.started_at + s.step * (2 + r.seed %% 5) * interval '1 second'
            FROM experiments_run r, unnest(%(keys)s::text[]) AS k(key), generate_series(1, %(epochs)s) AS s(step)
            """,
            {"keys": list(METRIC_KEYS), "epochs": epochs},
        )
        cursor.execute(
            """
            INSERT INTO experiments_runmetricsummary (run_id, key, point_count, latest_step, latest_value,
                min_value, min_step, max_value, max_step, updated_at)
            SELECT run_id, key, count(*), max(step), (array_agg(value ORDER BY step DESC))[1],
                   min(value), (array_agg(step ORDER BY value, step))[1],
                   max(value), (array_agg(step ORDER BY value DESC, step))[1], now()
            FROM experiments_metricpoint GROUP BY run_id, key
            """
        )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE experiments_run, experiments_param, experiments_metricpoint, "
                       "experiments_runmetricsummary")
    return experiment.pk


# --- measuring ------------------------------------------------------------------------


def _measure(name: str, action, repeats: int, results: list) -> object:
    """Median seconds of ``repeats`` calls after a warm-up, and the queries of one call."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    outcome = action()  # warm-up: caches, prepared plans
    seconds = []
    queries = 0
    for _ in range(repeats):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            outcome = action()
            seconds.append(time.perf_counter() - started)
        queries = len(captured)
    results.append((name, statistics.median(seconds), queries))
    return outcome


def _print(title: str, results: list, target: float | None) -> None:
    print(f"\n{title}" + (f" (target < {target * 1000:.0f} ms)" if target else ""))
    print(f"  {'flow':62} {'ms':>8} {'queries':>8}")
    for name, seconds, queries in results:
        verdict = "" if target is None else ("  OK" if seconds < target else "  OVER TARGET")
        print(f"  {name:62} {seconds * 1000:8.1f} {queries:8d}{verdict}")


def _client():
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.test.utils import setup_test_environment

    from django.test.utils import override_settings

    from cvsa_ml.bootstrap import groups_bootstrap

    setup_test_environment()  # "testserver" is an allowed host
    # Pages name their static files; without `collectstatic` there is no manifest to read.
    override_settings(STORAGES={
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }).enable()
    user, _ = get_user_model().objects.get_or_create(username="bench-compare")
    user.groups.add(groups_bootstrap()["labelers"])
    client = Client()
    client.force_login(user)
    return client


def _get(client, url: str) -> int:
    response = client.get(url)
    if response.status_code != 200:
        raise SystemExit(f"{url[:120]} answered {response.status_code}: {response.content[:300]!r}")
    return len(response.content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--compare", type=int, default=1000, help="runs in the compare selection")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=float, default=0.42, help="PostgreSQL setseed() for the curves' noise")
    parser.add_argument("--reuse", action="store_true",
                        help="keep the runs of an earlier run of the bench when it seeded as many")
    args = parser.parse_args()
    setup_django(BENCH_DATABASE)

    from experiments import compare_selectors, selectors
    from experiments.models import Experiment, MetricPoint, Run

    started = time.perf_counter()
    expected_points = args.runs * args.epochs * len(METRIC_KEYS)
    if args.reuse and Run.objects.count() == args.runs and MetricPoint.objects.count() == expected_points:
        experiment_id = Experiment.objects.get().pk
        print(f"reusing {args.runs:,} runs × {args.epochs} epochs × {len(METRIC_KEYS)} metrics (database "
              f"{BENCH_DATABASE})")
    else:
        experiment_id = _seed(args.runs, args.epochs, args.seed)
        points = MetricPoint.objects.count()
        print(f"seeded {args.runs:,} runs × {args.epochs} epochs × {len(METRIC_KEYS)} metrics = {points:,} points, "
              f"12 params each, in {time.perf_counter() - started:.1f} s (INSERT … SELECT; database "
              f"{BENCH_DATABASE})")
    experiment = Experiment.objects.get(pk=experiment_id)
    client = _client()

    results: list = []
    _measure(f"run_table: one page of {RUNS_PAGE} (newest first)", lambda: selectors.run_table(
        experiment, limit=RUNS_PAGE), args.repeats, results)
    _measure(f"run_table: one page of {RUNS_PAGE} sorted by best val_f1", lambda: selectors.run_table(
        experiment, limit=RUNS_PAGE, order_by=selectors.RunOrder("best:val_f1", True)), args.repeats, results)
    count = _measure(f"run_list().count() (all {args.runs:,} runs)", lambda: selectors.run_list().count(),
                     args.repeats, results)
    from experiments import search_selectors

    _measure(f"run_search_rows: all {args.runs:,} runs with params and metrics, as rows",
             lambda: list(search_selectors.run_search_rows("")), args.repeats, results)
    _measure("experiment page (HTML, runs table page 1, via test client)",
             lambda: _get(client, f"/experiments/{experiment_id}/"), args.repeats, results)
    _print(f"RUNS LIST ({count:,} runs)", results, 1.0)

    results = []

    def search_page():
        runs = search_selectors.run_search(SEARCH_FILTER)
        return runs.count(), list(runs[:RUNS_PAGE])

    found, _page = _measure(f"run_search: count + page of {RUNS_PAGE}", search_page, args.repeats, results)
    _measure("run_search across all, sorted by best val_f1 (count + page)", lambda: (
        lambda runs: (runs.count(), list(runs[:RUNS_PAGE])))(search_selectors.run_search(
            SEARCH_FILTER, order_by=search_selectors.search_order("metrics.val_f1.best", "desc"))),
        args.repeats, results)
    _print(f"SEARCH over {args.runs:,} runs: {SEARCH_FILTER}  → {found:,} runs", results, 0.2)

    results = []
    ids = list(Run.objects.order_by("id").values_list("id", flat=True)[:args.compare])
    query_ids = ",".join(map(str, ids))
    aggregates = {"val_f1": "best", "val_loss": "min", "train_loss": "epoch", "val_accuracy": "max"}

    def compare_all():
        runs = compare_selectors.compared_runs(ids)
        params = compare_selectors.compare_params(runs)
        metrics = compare_selectors.compare_metrics(runs, aggregates, epoch=args.epochs // 2)
        by_step = compare_selectors.compare_series(ids, "val_loss")
        by_time = compare_selectors.compare_series(ids, "val_loss", x_axis="wall")
        colours = compare_selectors.compare_param_values(ids, "learning_rate")
        scatter = compare_selectors.compare_scatter(runs, params, metrics, "learning_rate", "val_f1")
        return runs, params, metrics, by_step, by_time, colours, scatter

    _measure(f"compared_runs ({len(ids):,} ids)", lambda: compare_selectors.compared_runs(ids), args.repeats, results)
    runs = compare_selectors.compared_runs(ids)
    params = _measure("compare_params", lambda: compare_selectors.compare_params(runs), args.repeats, results)
    metrics = _measure("compare_metrics (best, min, max, final, at epoch N)", lambda: compare_selectors.compare_metrics(
        runs, aggregates, epoch=args.epochs // 2), args.repeats, results)
    _measure("compare_series val_loss, x = step", lambda: compare_selectors.compare_series(ids, "val_loss"),
             args.repeats, results)
    _measure("compare_series val_loss, x = wall time", lambda: compare_selectors.compare_series(
        ids, "val_loss", x_axis="wall"), args.repeats, results)
    _measure("compare_series val_loss, 20 points per run (downsampled)", lambda: compare_selectors.compare_series(
        ids, "val_loss", max_points=20), args.repeats, results)
    _measure("compare_scatter (no query)", lambda: compare_selectors.compare_scatter(
        runs, params, metrics, "learning_rate", "val_f1"), args.repeats, results)
    _measure("ALL SELECTORS OF THE PAGE together", compare_all, args.repeats, results)
    size = _measure("compare page (HTML via test client)", lambda: _get(
        client, f"/experiments/compare?runs={query_ids}&agg.train_loss=epoch&epoch={args.epochs // 2}"),
        args.repeats, results)
    json_size = _measure("series.json (val_loss, colour by learning_rate)", lambda: _get(
        client, f"/experiments/compare/series.json?runs={query_ids}&metric=val_loss&color=learning_rate"),
        args.repeats, results)
    _print(f"COMPARE of {len(ids):,} runs × {args.epochs} epochs (page {size / 1e6:.1f} MB, "
           f"series.json {json_size / 1e6:.1f} MB)", results, 2.0)


if __name__ == "__main__":
    main()
