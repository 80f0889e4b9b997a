"""Generic experiment tracking (it knows no torch): experiments, runs, params, metric
points, per-run metric summaries and artifacts.

Like a tracking server, this app stores what it is told: the training app decides what
a run computes and logs it through ``experiments.services``; pages, the API and
comparisons read through ``experiments.selectors``. Constraints live in the database.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.db.models import F, Q

from core.timestamped import TimestampedModel

MAX_NAME_LENGTH = 200
MAX_TAG_LENGTH = 50
#: Param and metric keys (MLflow's limit).
MAX_KEY_LENGTH = 250
#: Param values are text (MLflow's limit).
MAX_PARAM_VALUE_LENGTH = 6000
MAX_ARTIFACT_PATH_LENGTH = 500
#: Largest finite double: metric values are finite (a NaN would poison min/max).
FLOAT_MAX = 1.7976931348623157e308


class MetricDirection(models.TextChoices):
    MAXIMIZE = "max", "Maximize"
    MINIMIZE = "min", "Minimize"


# "loss", "val_loss", "train/loss", "test-loss": lower is better.
_LOSS_KEY = re.compile(r"(?:^|[_./-])loss$")


def metric_key_direction(key: str) -> str:
    """Which way a metric is better when nothing says otherwise: lower for a loss,
    higher for anything else (accuracy, F1, AUC …)."""
    return MetricDirection.MINIMIZE if _LOSS_KEY.search(key) else MetricDirection.MAXIMIZE


class Experiment(TimestampedModel):
    """A question being asked of the data: its runs, the dataset version they use by
    default, and the metric that ranks them.

    Deleting is soft (``deleted_at``, restorable, like MLflow's lifecycle stage); the
    purge command removes rows deleted long enough ago.
    """

    name = models.CharField(max_length=MAX_NAME_LENGTH, unique=True)
    description = models.TextField(blank=True)
    tags = ArrayField(models.CharField(max_length=MAX_TAG_LENGTH), default=list, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="experiments"
    )
    default_dataset_version = models.ForeignKey(
        "datasets.DatasetVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="experiments"
    )
    metric_key = models.CharField(max_length=MAX_KEY_LENGTH, help_text="The metric that ranks runs, e.g. val_f1")
    metric_direction = models.CharField(
        max_length=3, choices=MetricDirection.choices, default=MetricDirection.MAXIMIZE
    )
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=~Q(name=""), name="experiment_name_not_empty"),
            models.CheckConstraint(condition=~Q(metric_key=""), name="experiment_metric_key_not_empty"),
            models.CheckConstraint(
                condition=Q(metric_direction__in=MetricDirection.values), name="experiment_metric_direction_valid"
            ),
        ]
        indexes = [
            # The experiments list: live experiments, newest first.
            models.Index(
                fields=["-created_at"], condition=Q(deleted_at__isnull=True), name="experiment_live_created_idx"
            ),
            # The tag filter (``tags @> ARRAY[...]``).
            GinIndex(fields=["tags"], name="experiment_tags_gin_idx"),
            # The purge: deleted experiments by deletion time.
            models.Index(fields=["deleted_at"], condition=Q(deleted_at__isnull=False), name="experiment_deleted_idx"),
        ]

    def __str__(self) -> str:
        return self.name

    def direction_for(self, key: str) -> str:
        """Which way ``key`` is better for this experiment's runs: its own direction for
        its ranking metric, else ``metric_key_direction`` (lower for a loss)."""
        return self.metric_direction if key == self.metric_key else metric_key_direction(key)

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_RUN_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)
FINISHED_RUN_STATUSES = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)

#: The state machine, in one place: ``services.run_transition`` is the only writer of
#: ``status``, and refuses any move not listed here.
RUN_TRANSITIONS: dict[str, frozenset[str]] = {
    RunStatus.QUEUED: frozenset({RunStatus.RUNNING, RunStatus.CANCELLED, RunStatus.FAILED}),
    RunStatus.RUNNING: frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED}),
    RunStatus.SUCCEEDED: frozenset(),
    RunStatus.FAILED: frozenset(),
    RunStatus.CANCELLED: frozenset(),
}


class Run(TimestampedModel):
    """One execution of an architecture on a dataset version.

    ``attempts`` is the fencing token (as on ``DatasetTask``): bumped when a worker starts
    the run and when it is cancelled; a worker's writes (metrics, params, artifacts, its
    final status) apply only while the run is still at the attempt it started, so a
    cancelled or taken-over worker writes nothing more. The timestamps follow the status
    (check constraint ``run_timestamps_match_status``).
    """

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="runs")
    name = models.CharField(max_length=MAX_NAME_LENGTH)
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    dataset_version = models.ForeignKey("datasets.DatasetVersion", on_delete=models.PROTECT, related_name="runs")
    architecture_key = models.CharField(max_length=64)
    seed = models.BigIntegerField()
    origin_run = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reproductions",
        help_text="The run this one reproduces",
    )
    queued_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Last sign of life of the running worker")
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(
        default=0,
        help_text="Fencing token: bumped when a worker starts the run and when it is cancelled; "
        "a worker's writes only apply while it still matches",
    )
    worker_starts = models.PositiveIntegerField(
        default=0, help_text="Workers that have started this run (a takeover after a worker death counts)"
    )
    worker = models.CharField(max_length=255, blank=True, help_text="host:pid of the worker that runs it")
    celery_task_id = models.CharField(max_length=64, blank=True)
    reproducibility = models.JSONField(
        default=dict, blank=True,
        help_text="What reproduces the run: dataset hash, code and package versions, device, ...",
    )
    tags = models.JSONField(
        default=dict, blank=True, help_text='Key → text labels of the run, e.g. {"sweep": "3"} (searchable as tags.key)'
    )
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=RunStatus.values), name="run_status_valid"),
            models.CheckConstraint(condition=~Q(name=""), name="run_name_not_empty"),
            models.CheckConstraint(condition=~Q(architecture_key=""), name="run_architecture_key_not_empty"),
            models.CheckConstraint(condition=Q(seed__gte=0), name="run_seed_non_negative"),
            models.CheckConstraint(condition=~Q(origin_run=F("pk")), name="run_origin_not_itself"),
            # queued: not started; running: started, not finished; succeeded: both;
            # failed / cancelled: finished (possibly never started).
            models.CheckConstraint(
                condition=(
                    Q(status=RunStatus.QUEUED, started_at__isnull=True, finished_at__isnull=True)
                    | Q(status=RunStatus.RUNNING, started_at__isnull=False, finished_at__isnull=True)
                    | Q(status=RunStatus.SUCCEEDED, started_at__isnull=False, finished_at__isnull=False)
                    | Q(status__in=[RunStatus.FAILED, RunStatus.CANCELLED], finished_at__isnull=False)
                ),
                name="run_timestamps_match_status",
            ),
            models.CheckConstraint(
                condition=Q(started_at__isnull=True)
                | Q(finished_at__isnull=True)
                | Q(finished_at__gte=F("started_at")),
                name="run_finished_after_started",
            ),
            models.CheckConstraint(condition=~Q(status=RunStatus.FAILED) | ~Q(error=""), name="run_failed_has_error"),
        ]
        indexes = [
            # The runs table of an experiment, optionally by status, newest first.
            models.Index(fields=["experiment", "status", "-created_at"], name="run_experiment_status_idx"),
            models.Index(fields=["experiment", "-created_at"], name="run_experiment_created_idx"),
            # The stale sweeper: running runs by heartbeat.
            models.Index(fields=["heartbeat_at"], condition=Q(status="running"), name="run_running_heartbeat_idx"),
            # Run search on tags (``tags @> {...}``).
            GinIndex(fields=["tags"], name="run_tags_gin_idx"),
            # The admin's and the API's architecture filter.
            models.Index(fields=["architecture_key", "-created_at"], name="run_architecture_idx"),
            # The purge: deleted runs by deletion time.
            models.Index(fields=["deleted_at"], condition=Q(deleted_at__isnull=False), name="run_deleted_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_RUN_STATUSES

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


class Param(models.Model):
    """One input of a run (a resolved hyperparameter), as text; written once (MLflow's rule)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="params")
    key = models.CharField(max_length=MAX_KEY_LENGTH)
    value = models.TextField()

    class Meta:
        constraints = [
            # Also the index of "the params of a run".
            models.UniqueConstraint(fields=["run", "key"], name="param_run_key_unique"),
            models.CheckConstraint(condition=~Q(key=""), name="param_key_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


class MetricPoint(models.Model):
    """One value of one metric at one step (an epoch) of a run; written a batch at a time."""

    id = models.BigAutoField(primary_key=True)
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="metric_points")
    key = models.CharField(max_length=MAX_KEY_LENGTH)
    step = models.BigIntegerField()
    value = models.FloatField()
    wall_time = models.DateTimeField()

    class Meta:
        constraints = [
            # Also the index of a metric series: a run's points of a key, by step.
            models.UniqueConstraint(fields=["run", "key", "step"], name="metricpoint_run_key_step_unique"),
            models.CheckConstraint(condition=~Q(key=""), name="metricpoint_key_not_empty"),
            models.CheckConstraint(condition=Q(step__gte=0), name="metricpoint_step_non_negative"),
            # NaN and infinities are refused (NaN compares above every number in PostgreSQL).
            models.CheckConstraint(
                condition=Q(value__gte=-FLOAT_MAX) & Q(value__lte=FLOAT_MAX), name="metricpoint_value_finite"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.key}[{self.step}]={self.value:g}"


class RunMetricSummary(models.Model):
    """Latest, lowest and highest value of one metric of one run, kept by the same
    statement that writes a batch of points, so lists and comparisons over thousands of
    runs read one row per (run, metric) and never the points.

    "Best" is not stored: it is ``max`` or ``min`` by the direction the reader ranks by
    (an experiment's metric direction, or a column's in a comparison), so changing an
    experiment's direction never leaves stale rows. Ties keep the earliest step.
    """

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="metric_summaries")
    key = models.CharField(max_length=MAX_KEY_LENGTH)
    point_count = models.PositiveIntegerField()
    latest_step = models.BigIntegerField()
    latest_value = models.FloatField()
    min_value = models.FloatField()
    min_step = models.BigIntegerField()
    max_value = models.FloatField()
    max_step = models.BigIntegerField()
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "key"], name="runmetricsummary_run_key_unique"),
            models.CheckConstraint(condition=Q(min_value__lte=F("max_value")), name="runmetricsummary_min_le_max"),
            models.CheckConstraint(condition=Q(point_count__gt=0), name="runmetricsummary_has_points"),
        ]

    def __str__(self) -> str:
        return f"{self.key}: latest {self.latest_value:g} @ {self.latest_step}"

    def best(self, direction: str) -> tuple[float, int]:
        """(value, step) of the best point when ranking by ``direction``."""
        if direction == MetricDirection.MINIMIZE:
            return self.min_value, self.min_step
        return self.max_value, self.max_step


class Artifact(TimestampedModel):
    """A file a run produced (e.g. its weights), under the run's artifact folder
    (``services.run_artifact_dir``); size and SHA-256 computed from the file."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="artifacts")
    path = models.CharField(max_length=MAX_ARTIFACT_PATH_LENGTH, help_text="Relative to the run's artifact folder")
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)

    class Meta:
        ordering = ["path"]
        constraints = [
            models.UniqueConstraint(fields=["run", "path"], name="artifact_run_path_unique"),
            models.CheckConstraint(condition=Q(size__gte=0), name="artifact_size_non_negative"),
            models.CheckConstraint(condition=Q(sha256__regex=r"^[0-9a-f]{64}$"), name="artifact_sha256_hex"),
            models.CheckConstraint(
                condition=~Q(path="") & ~Q(path__startswith="/") & ~Q(path__contains=".."),
                name="artifact_path_relative",
            ),
        ]

    def __str__(self) -> str:
        return self.path
