"""Reads of the experiments app. Every list costs a fixed number of queries whatever the
number of experiments, runs or epochs: counts are aggregated in SQL, params and metric
summaries prefetched, and nothing here reads metric points except the series of one run."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from django.core.exceptions import ValidationError
from django.db.models import Count, Exists, OuterRef, Prefetch, Q, QuerySet

from datasets.selectors import as_uuid
from experiments.models import Artifact, Experiment, MetricPoint, Param, Run, RunMetricSummary, RunStatus
from experiments.services.validation import clean_id, clean_key

MAX_SERIES_KEYS = 50
#: A dataset version's aid list can hold a whole corpus: lists never load it.
_DEFAULT_VERSION_DEFERRED = ("default_dataset_version__requested_aids", "default_dataset_version__selection")


def _run_counts() -> dict[str, Count]:
    live = Q(runs__deleted_at__isnull=True)
    counts = {"run_count": Count("runs", filter=live)}
    for status in RunStatus.values:
        counts[f"{status}_count"] = Count("runs", filter=live & Q(runs__status=status))
    return counts


def experiment_list(
    *,
    search: str | None = None,
    tag: str | None = None,
    status: str | None = None,
    dataset_version_id: uuid.UUID | str | None = None,
    deleted: bool = False,
) -> QuerySet[Experiment]:
    """Experiments, newest first, with ``run_count`` and ``<status>_count`` (live runs)
    annotated: one query.

    ``search``: words of the name or description; ``tag``: experiments carrying it (the
    GIN index); ``status``: experiments with a live run in that status;
    ``dataset_version_id``: its default version, or a live run on it; ``deleted``: the
    soft-deleted ones instead (the restore list).
    """
    experiments = (
        Experiment.objects.filter(deleted_at__isnull=not deleted)
        .select_related("owner", "default_dataset_version__dataset")
        .defer(*_DEFAULT_VERSION_DEFERRED)
    )
    if search:
        for word in search.split():
            experiments = experiments.filter(Q(name__icontains=word) | Q(description__icontains=word))
    if tag:
        experiments = experiments.filter(tags__contains=[" ".join(tag.split()).lower()])
    live_runs = Run.objects.filter(experiment=OuterRef("pk"), deleted_at__isnull=True)
    if status is not None:
        if status not in RunStatus.values:
            raise ValidationError({"status": f"must be one of {', '.join(RunStatus.values)} (got {status!r})"})
        experiments = experiments.filter(Exists(live_runs.filter(status=status)))
    if dataset_version_id is not None:
        version_uuid = as_uuid(dataset_version_id, "dataset_version_id")
        experiments = experiments.filter(
            Q(default_dataset_version_id=version_uuid) | Exists(live_runs.filter(dataset_version_id=version_uuid))
        )
    return experiments.annotate(**_run_counts()).order_by("-created_at", "-id")


def experiment_get(experiment_id: int, *, include_deleted: bool = False) -> Experiment:
    """One experiment with its owner and default version; raises ``Experiment.DoesNotExist``."""
    experiments = Experiment.objects.select_related("owner", "default_dataset_version__dataset").defer(
        *_DEFAULT_VERSION_DEFERRED
    )
    if not include_deleted:
        experiments = experiments.filter(deleted_at__isnull=True)
    return experiments.get(pk=clean_id(experiment_id, "experiment_id"))


class RunRow(NamedTuple):
    """One line of a runs table: the run, its params (key → text) and its metric
    summaries (key → ``RunMetricSummary``; best = ``summary.best(direction)``)."""

    run: Run
    params: dict[str, str]
    metrics: dict[str, RunMetricSummary]


def run_table(
    experiment: Experiment, *, status: str | None = None, deleted: bool = False, limit: int | None = None
) -> list[RunRow]:
    """The runs of ``experiment`` (newest first) with their params and metric summaries:
    three queries whatever the number of runs, params or epochs."""
    runs = Run.objects.filter(experiment=experiment, deleted_at__isnull=not deleted)
    if status is not None:
        if status not in RunStatus.values:
            raise ValidationError({"status": f"must be one of {', '.join(RunStatus.values)} (got {status!r})"})
        runs = runs.filter(status=status)
    runs = runs.select_related("dataset_version__dataset").defer(
        "reproducibility", "dataset_version__requested_aids", "dataset_version__selection"
    ).prefetch_related(
        Prefetch("params", queryset=Param.objects.order_by("key"), to_attr="param_list"),
        Prefetch("metric_summaries", queryset=RunMetricSummary.objects.order_by("key"), to_attr="summary_list"),
    ).order_by("-created_at", "-id")
    if limit is not None:
        runs = runs[:limit]
    return [
        RunRow(
            run=run,
            params={param.key: param.value for param in run.param_list},
            metrics={summary.key: summary for summary in run.summary_list},
        )
        for run in runs
    ]


class SeriesPoint(NamedTuple):
    step: int
    value: float
    wall_time: datetime


def run_metric_series(run_id: int, keys: Sequence[str]) -> dict[str, list[SeriesPoint]]:
    """The points of the chosen metrics of one run, each ordered by step: one query
    (by the (run, key, step) unique index). Every key asked for is in the result."""
    run_id = clean_id(run_id, "run_id")
    if isinstance(keys, str) or len(keys) > MAX_SERIES_KEYS:
        raise ValidationError({"keys": f"must be a list of at most {MAX_SERIES_KEYS} metric keys"})
    chosen = list(dict.fromkeys(clean_key(key, "keys") for key in keys))
    series: dict[str, list[SeriesPoint]] = {key: [] for key in chosen}
    if not chosen:
        return series
    rows = (
        MetricPoint.objects.filter(run_id=run_id, key__in=chosen)
        .order_by("key", "step")
        .values_list("key", "step", "value", "wall_time")
    )
    for key, step, value, wall_time in rows:
        series[key].append(SeriesPoint(step, value, wall_time))
    return series


def run_detail(run_id: int, *, include_deleted: bool = False) -> Run:
    """One run with its experiment, dataset version and origin joined, and its params,
    metric summaries and artifacts prefetched (``param_list``, ``summary_list``,
    ``artifact_list``): four queries. Raises ``Run.DoesNotExist``."""
    runs = Run.objects.select_related(
        "experiment", "dataset_version__dataset", "dataset_version__embedding_model", "origin_run"
    ).defer("dataset_version__requested_aids").prefetch_related(
        Prefetch("params", queryset=Param.objects.order_by("key"), to_attr="param_list"),
        Prefetch("metric_summaries", queryset=RunMetricSummary.objects.order_by("key"), to_attr="summary_list"),
        Prefetch("artifacts", queryset=Artifact.objects.order_by("path"), to_attr="artifact_list"),
    )
    if not include_deleted:
        runs = runs.filter(deleted_at__isnull=True, experiment__deleted_at__isnull=True)
    return runs.get(pk=clean_id(run_id, "run_id"))


def run_metric_keys(run_id: int) -> list[str]:
    """The metric keys a run has logged (from its summaries, not its points)."""
    return list(
        RunMetricSummary.objects.filter(run_id=clean_id(run_id, "run_id")).order_by("key").values_list("key", flat=True)
    )
