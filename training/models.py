"""What the training app stores besides runs (which are the ``experiments`` app's):
sweeps over hyperparameters with their trials, and label-issue scans with the videos
they rank as likely mislabeled. Constraints live in the database."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from core.timestamped import TimestampedModel

MAX_NAME_LENGTH = 200
MAX_SWEEP_TRIALS = 1000
MAX_SWEEP_PARALLELISM = 64
MIN_FOLDS, MAX_FOLDS = 2, 20


class JobStatus(models.TextChoices):
    """The states of a sweep and of a label-issue scan (the same machine as a run's)."""

    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_JOB_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)


class SweepSampler(models.TextChoices):
    GRID = "grid", "Grid"
    RANDOM = "random", "Random"
    TPE = "tpe", "TPE (Bayesian)"


class Sweep(TimestampedModel):
    """A search over hyperparameters of one architecture: an Optuna study (stored in this
    PostgreSQL, ``study_name``) whose trials are ordinary training runs of the experiment.

    ``search_space`` maps a hyperparameter name to ``{"low", "high", "log"}`` (numbers)
    or ``{"choices": [...]}``; ``fixed_hyperparameters`` are the others' values."""

    experiment = models.ForeignKey("experiments.Experiment", on_delete=models.CASCADE, related_name="sweeps")
    name = models.CharField(max_length=MAX_NAME_LENGTH)
    dataset_version = models.ForeignKey("datasets.DatasetVersion", on_delete=models.PROTECT, related_name="sweeps")
    architecture_key = models.CharField(max_length=64)
    search_space = models.JSONField()
    fixed_hyperparameters = models.JSONField(default=dict, blank=True)
    sampler = models.CharField(max_length=10, choices=SweepSampler.choices, default=SweepSampler.TPE)
    trial_count = models.PositiveIntegerField()
    parallelism = models.PositiveIntegerField(default=1)
    metric_key = models.CharField(max_length=250, default="val_f1")
    metric_direction = models.CharField(max_length=3, default="max")
    pruning = models.BooleanField(default=True, help_text="Stop trials whose val metric is below the median")
    seed = models.BigIntegerField(default=0)
    study_name = models.CharField(max_length=100, unique=True)
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="sweeps"
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=~Q(name=""), name="sweep_name_not_empty"),
            models.CheckConstraint(condition=Q(status__in=JobStatus.values), name="sweep_status_valid"),
            models.CheckConstraint(condition=Q(sampler__in=SweepSampler.values), name="sweep_sampler_valid"),
            models.CheckConstraint(condition=Q(metric_direction__in=["max", "min"]), name="sweep_direction_valid"),
            models.CheckConstraint(
                condition=Q(trial_count__gte=1, trial_count__lte=MAX_SWEEP_TRIALS), name="sweep_trial_count_range"
            ),
            models.CheckConstraint(
                condition=Q(parallelism__gte=1, parallelism__lte=MAX_SWEEP_PARALLELISM), name="sweep_parallelism_range"
            ),
            models.CheckConstraint(condition=Q(seed__gte=0), name="sweep_seed_non_negative"),
            models.CheckConstraint(condition=~Q(status=JobStatus.FAILED) | ~Q(error=""), name="sweep_failed_has_error"),
        ]
        indexes = [
            # An experiment's sweeps, newest first.
            models.Index(fields=["experiment", "-created_at"], name="sweep_experiment_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"


class SweepTrial(models.Model):
    """One trial of a sweep: the Optuna trial ``number`` and the run that trains it."""

    sweep = models.ForeignKey(Sweep, on_delete=models.CASCADE, related_name="trials")
    number = models.PositiveIntegerField()
    run = models.OneToOneField("experiments.Run", on_delete=models.CASCADE, related_name="sweep_trial")
    pruned = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["sweep", "number"]
        constraints = [
            # Also the index of a sweep's trials in order.
            models.UniqueConstraint(fields=["sweep", "number"], name="sweeptrial_sweep_number_unique"),
        ]

    def __str__(self) -> str:
        return f"trial {self.number} of sweep {self.sweep_id}"


class LabelIssueScan(TimestampedModel):
    """A job: out-of-fold predicted probabilities over a dataset version (k-fold with an
    architecture and its hyperparameters, usually a run's), ranked by cleanlab into the
    videos most likely mislabeled. Runs on the shared job mechanism (``core.jobs``)."""

    dataset_version = models.ForeignKey(
        "datasets.DatasetVersion", on_delete=models.PROTECT, related_name="label_issue_scans"
    )
    source_run = models.ForeignKey(
        "experiments.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="label_issue_scans"
    )
    architecture_key = models.CharField(max_length=64)
    hyperparameters = models.JSONField(default=dict)
    folds = models.PositiveSmallIntegerField(default=5)
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    error = models.TextField(blank=True)
    message = models.CharField(max_length=500, blank=True)
    folds_done = models.PositiveSmallIntegerField(default=0)
    issue_count = models.PositiveIntegerField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="label_issue_scans"
    )
    # The job row's lifecycle columns (core.jobs).
    attempts = models.PositiveIntegerField(default=0)
    worker_starts = models.PositiveIntegerField(default=0)
    worker = models.CharField(max_length=255, blank=True)
    celery_task_id = models.CharField(max_length=64, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=JobStatus.values), name="labelissuescan_status_valid"),
            models.CheckConstraint(
                condition=Q(folds__gte=MIN_FOLDS, folds__lte=MAX_FOLDS), name="labelissuescan_folds_range"
            ),
            models.CheckConstraint(condition=Q(folds_done__lte=F("folds")), name="labelissuescan_folds_done_le_folds"),
            models.CheckConstraint(
                condition=~Q(status=JobStatus.FAILED) | ~Q(error=""), name="labelissuescan_failed_has_error"
            ),
        ]
        indexes = [
            # The stale sweeper: running scans by heartbeat.
            models.Index(fields=["heartbeat_at"], condition=Q(status="running"), name="labelissuescan_running_idx"),
        ]

    def __str__(self) -> str:
        return f"label issues of {self.dataset_version_id} ({self.status})"


class LabelIssue(models.Model):
    """A video of a scan's dataset version whose label the out-of-fold model doubts,
    ranked (1 = most likely mislabeled)."""

    scan = models.ForeignKey(LabelIssueScan, on_delete=models.CASCADE, related_name="issues")
    video = models.ForeignKey("labeling.Video", on_delete=models.CASCADE, related_name="label_issues")
    given_label = models.BooleanField()
    probability = models.FloatField(help_text="Out-of-fold predicted probability of the positive class")
    label_quality = models.FloatField(help_text="cleanlab's label quality score (low: likely wrong)")
    rank = models.PositiveIntegerField()

    class Meta:
        ordering = ["scan", "rank"]
        constraints = [
            models.UniqueConstraint(fields=["scan", "video"], name="labelissue_scan_video_unique"),
            # Also the index of a scan's issues in rank order.
            models.UniqueConstraint(fields=["scan", "rank"], name="labelissue_scan_rank_unique"),
            models.CheckConstraint(
                condition=Q(probability__gte=0, probability__lte=1), name="labelissue_probability_range"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.rank} video {self.video_id}"
