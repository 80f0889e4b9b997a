"""What the training app stores besides runs (which are the ``experiments`` app's):
sweeps over hyperparameters with their trials, and label-issue scans with the videos
they rank as likely mislabeled. Constraints live in the database."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

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


# --- model registry, evaluations, predictions --------------------------------------


class ModelStage(models.TextChoices):
    """A registered version's stage. Legal moves are ``training.registry_stages``'s."""

    CANDIDATE = "candidate", "Candidate"
    STAGING = "staging", "Staging"
    PRODUCTION = "production", "Production"
    ARCHIVED = "archived", "Archived"


class RegisteredModel(TimestampedModel):
    """A named model that versions are registered under; at most one of its versions is
    in production. ``gate_rules`` is a list of rules a version must pass to be promoted
    to production (see ``training.gates``)."""

    name = models.CharField(max_length=MAX_NAME_LENGTH, unique=True)
    description = models.TextField(blank=True)
    gate_rules = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="registered_models"
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=~Q(name=""), name="registeredmodel_name_not_empty"),
        ]

    def __str__(self) -> str:
        return self.name


class ModelVersion(TimestampedModel):
    """A succeeded run's weights registered under a model, numbered per model. What the
    version needs to score a video is copied from its run when it is registered: the
    embedding model its inputs come from, their dimensions, the decision threshold and
    the weights' SHA-256 (the weights file stays the run's artifact).

    ``lock_version`` is the optimistic lock: every change bumps it, and a change that
    names an older value is refused (HTTP 409)."""

    registered_model = models.ForeignKey(
        RegisteredModel, on_delete=models.CASCADE, related_name="versions", db_index=False
    )
    number = models.PositiveIntegerField()
    run = models.ForeignKey(
        "experiments.Run", on_delete=models.PROTECT, related_name="model_versions", db_index=False
    )
    embedding_model = models.ForeignKey(
        "datasets.EmbeddingModel", on_delete=models.PROTECT, related_name="model_versions"
    )
    input_dimensions = models.PositiveIntegerField()
    threshold = models.FloatField(help_text="Probability at or above which the version says yes")
    architecture_key = models.CharField(max_length=64)
    weights_sha256 = models.CharField(max_length=64)
    stage = models.CharField(max_length=10, choices=ModelStage.choices, default=ModelStage.CANDIDATE)
    lock_version = models.PositiveIntegerField(default=1)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="model_versions"
    )

    class Meta:
        ordering = ["registered_model", "-number"]
        constraints = [
            # Also the index of a model's versions in order.
            models.UniqueConstraint(fields=["registered_model", "number"], name="modelversion_model_number_unique"),
            models.UniqueConstraint(fields=["registered_model", "run"], name="modelversion_model_run_unique"),
            # Exactly one production version per model: a concurrent second promotion fails here.
            models.UniqueConstraint(
                fields=["registered_model"], condition=Q(stage="production"), name="modelversion_one_production"
            ),
            models.CheckConstraint(condition=Q(stage__in=ModelStage.values), name="modelversion_stage_valid"),
            models.CheckConstraint(condition=Q(threshold__gte=0, threshold__lte=1), name="modelversion_threshold_range"),
            models.CheckConstraint(condition=Q(number__gte=1), name="modelversion_number_positive"),
            models.CheckConstraint(condition=Q(lock_version__gte=1), name="modelversion_lock_version_positive"),
        ]
        indexes = [
            # "The production version" of every model (predict, assisted queues).
            models.Index(fields=["stage"], condition=Q(stage="production"), name="modelversion_production_idx"),
            models.Index(fields=["run"], name="modelversion_run_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.registered_model_id} v{self.number} ({self.stage})"


class ModelVersionTransition(models.Model):
    """The audit row of one stage change (append only): who moved which version from
    which stage to which, when and why, with the gate's evaluation numbers when the
    move ran the gate. Registration is the first row (``from_stage`` empty). The rows
    of a model in time order answer "which version was in production at time T"."""

    registered_model = models.ForeignKey(
        RegisteredModel, on_delete=models.CASCADE, related_name="transitions", db_index=False
    )
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="transitions", db_index=False)
    from_stage = models.CharField(max_length=10, blank=True)
    to_stage = models.CharField(max_length=10, choices=ModelStage.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="model_transitions"
    )
    reason = models.TextField(blank=True)
    gate = models.JSONField(default=dict, blank=True, help_text="The gate's rules, results and evaluation numbers")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["registered_model", "created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(from_stage__in=["", *ModelStage.values]), name="modelversiontransition_from_valid"
            ),
            models.CheckConstraint(condition=Q(to_stage__in=ModelStage.values), name="modelversiontransition_to_valid"),
        ]
        indexes = [
            # History of a model in time order; "production at time T" reads it backwards.
            models.Index(fields=["registered_model", "created_at", "id"], name="modeltransition_model_time_idx"),
            models.Index(fields=["version", "created_at"], name="modeltransition_version_idx"),
        ]

    def __str__(self) -> str:
        return f"version {self.version_id}: {self.from_stage or 'registered'} → {self.to_stage}"


class JobRow(TimestampedModel):
    """The columns of a job run on the shared job mechanism (``core.jobs``)."""

    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    error = models.TextField(blank=True)
    message = models.CharField(max_length=500, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    worker_starts = models.PositiveIntegerField(default=0)
    worker = models.CharField(max_length=255, blank=True)
    celery_task_id = models.CharField(max_length=64, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


class EvaluationSplit(models.TextChoices):
    TEST = "test", "Test split"
    VAL = "val", "Validation split"
    TRAIN = "train", "Train split"
    ALL = "all", "All rows"


class Evaluation(JobRow):
    """A job: one model version scored on one split of one dataset version (its own
    held-out test split, or a newer version with fresher labels), at the version's
    threshold. ``metrics`` holds accuracy / precision / recall / f1 / roc_auc / pr_auc /
    loss; ``confusion_matrix`` is ``[[tn, fp], [fn, tp]]``."""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="evaluations", db_index=False)
    dataset_version = models.ForeignKey(
        "datasets.DatasetVersion", on_delete=models.PROTECT, related_name="model_evaluations"
    )
    split = models.CharField(max_length=5, choices=EvaluationSplit.choices, default=EvaluationSplit.TEST)
    rows = models.PositiveIntegerField(null=True, blank=True)
    positives = models.PositiveIntegerField(null=True, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    confusion_matrix = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="model_evaluations"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=JobStatus.values), name="evaluation_status_valid"),
            models.CheckConstraint(condition=Q(split__in=EvaluationSplit.values), name="evaluation_split_valid"),
            models.CheckConstraint(condition=~Q(status=JobStatus.FAILED) | ~Q(error=""), name="evaluation_failed_has_error"),
        ]
        indexes = [
            # The latest evaluation of a version on a dataset version's split (gates, side by side).
            models.Index(fields=["version", "dataset_version", "split", "-created_at"], name="evaluation_lookup_idx"),
            # The stale sweeper: running evaluations by heartbeat.
            models.Index(fields=["heartbeat_at"], condition=Q(status="running"), name="evaluation_running_idx"),
        ]

    def __str__(self) -> str:
        return f"evaluation of {self.version_id} on {self.dataset_version_id}/{self.split} ({self.status})"


class Prediction(models.Model):
    """A version's probability for one video. Never a ``Label``: a model does not vote.
    ``margin`` is ``|probability − threshold|`` (the uncertain queue's order, indexed);
    ``embedding`` is the vector it was computed from (the diverse queue's distances)."""

    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.CASCADE, related_name="predictions", db_index=False
    )
    video = models.ForeignKey("labeling.Video", on_delete=models.CASCADE, related_name="predictions", db_index=False)
    probability = models.FloatField()
    margin = models.FloatField()
    embedding = models.ForeignKey(
        "datasets.Embedding", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model_version", "video"], name="prediction_version_video_unique"),
            models.CheckConstraint(
                condition=Q(probability__gte=0, probability__lte=1), name="prediction_probability_range"
            ),
            models.CheckConstraint(condition=Q(margin__gte=0, margin__lte=1), name="prediction_margin_range"),
        ]
        indexes = [
            # The uncertain queue: a version's predictions nearest its threshold first.
            models.Index(fields=["model_version", "margin"], name="prediction_version_margin_idx"),
            # A video's predictions (the card's hint, the video page).
            models.Index(fields=["video"], name="prediction_video_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.probability:.3f} for video {self.video_id} by version {self.model_version_id}"


class ScoringJob(JobRow):
    """A job: a model version scores all videos, or those ``video_filter`` selects
    (``{"search": str, "only_unscored": bool, "aids": [int]}``), writing ``Prediction``
    rows in bulk; texts without a stored embedding are embedded first (once)."""

    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.CASCADE, related_name="scoring_jobs", db_index=False
    )
    video_filter = models.JSONField(default=dict, blank=True)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    embedded = models.PositiveIntegerField(default=0, help_text="Texts embedded because no vector was stored")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="scoring_jobs"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=JobStatus.values), name="scoringjob_status_valid"),
            models.CheckConstraint(condition=Q(done__lte=F("total")), name="scoringjob_done_le_total"),
            models.CheckConstraint(condition=~Q(status=JobStatus.FAILED) | ~Q(error=""), name="scoringjob_failed_has_error"),
        ]
        indexes = [
            models.Index(fields=["model_version", "-created_at"], name="scoringjob_version_created_idx"),
            models.Index(fields=["heartbeat_at"], condition=Q(status="running"), name="scoringjob_running_idx"),
        ]

    def __str__(self) -> str:
        return f"scoring by {self.model_version_id} ({self.status})"


class AssistedLabelingPreference(TimestampedModel):
    """A labeler's choice for the model-assisted queues: whether the card shows the
    model's probability (off by default, so that labelers are not biased by it)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assisted_labeling_preference"
    )
    show_model_hint = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"{self.user_id}: hint {'on' if self.show_model_hint else 'off'}"
