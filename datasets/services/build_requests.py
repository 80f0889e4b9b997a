"""Build requests: ONE request object, validated in one place, and ONE service that
turns it into a queued build; also resume and cancel.

Every surface (the build form, the ML panel API, ``manage.py build_dataset``) makes a
``BuildRequest`` and calls ``dataset_build_request(request, user=...)``, which checks
the embedding model (known, API key configured), chooses the aids (the list given, or
a sampling among the videos the build will keep) and writes the version and its task.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F, Max
from django.utils import timezone

from datasets.embedding_registry import EmbeddingModelSpec, EmbeddingRegistryError
from datasets.models import (
    Dataset,
    DatasetTask,
    DatasetTaskStatus,
    DatasetTaskType,
    DatasetVersion,
    DatasetVersionStatus,
)
from datasets.selectors import (
    VIDEO_CONSENSUS_FROM,
    SamplingResult,
    as_uuid,
    build_eligibility_condition,
    sampling_count,
    sampling_select,
)
from datasets.services.embedding_models import embedding_model_spec, embedding_models_upsert, embedding_registry
from datasets.services.job_lifecycle import BUILD_STEPS, build_enqueue
from datasets.text_composition import TEXT_TEMPLATE_VERSION


DEFAULT_DATASET_NAME = "default"
DEFAULT_SPLIT_RATIOS = (0.8, 0.1, 0.1)
#: The split seed when none is given (also the ML panel's default).
DEFAULT_SEED = 42
MAX_DATASET_NAME_LENGTH = 200
MAX_ERROR_AIDS_LISTED = 20
NO_MATCH_MESSAGE = "No AIDs found matching the sampling criteria"
SAMPLING_KEYS = ("strategy", "limit", "label_value", "metadata_filter", "seed")
_BIGINT_MAX = 2**63 - 1


# --- the request object ------------------------------------------------------------


@dataclass(frozen=True)
class SamplingRequest:
    """How to choose the aids (``selectors.sampling_select``'s arguments)."""

    strategy: str
    limit: int | None = None
    label_value: bool | None = None
    metadata_filter: Mapping[str, Any] | None = None
    seed: int | None = None

    @classmethod
    def from_mapping(cls, sampling: object) -> SamplingRequest:
        """From a JSON-like object with the keys of ``SAMPLING_KEYS``; ``ValidationError``
        (``sampling``) when it is not an object, has other keys or lacks ``strategy``."""
        if not isinstance(sampling, Mapping):
            raise ValidationError({"sampling": "must be an object"})
        unknown = sorted(str(key) for key in set(sampling) - set(SAMPLING_KEYS))
        if unknown:
            raise ValidationError({"sampling": f"unknown key(s): {', '.join(unknown)}"})
        if "strategy" not in sampling:
            raise ValidationError({"sampling": "strategy is required"})
        return cls(**sampling)

    def arguments(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "limit": self.limit,
            "label_value": self.label_value,
            "metadata_filter": None if self.metadata_filter is None else dict(self.metadata_filter),
            "seed": self.seed,
        }


@dataclass(frozen=True)
class BuildRequest:
    """What to build: the videos (``aid_list`` or ``sampling``, exactly one), the
    embedding model, the dataset it is a version of, the split and the options.

    Constructing one checks every field's shape and raises ``ValidationError`` keyed
    by field (``aid_list``, ``split_ratios``, ``seed``, ``dataset_name``,
    ``description``, ``selection``, ``sampling``) listing every problem at once; the
    fields are then normalised (aids de-duplicated in first-seen order, ratios as
    floats, the name stripped, None name → ``"default"``). What needs the registry or
    the database (model, API key, aids in the corpus, sampling filters) is checked by
    ``dataset_build_request``. ``selection`` (aid lists only) records where the aids
    came from; a sampling records its own.
    """

    embedding_model_key: str
    aid_list: Sequence[int] | None = None
    sampling: SamplingRequest | Mapping[str, Any] | None = None
    dataset_name: str | None = None
    description: str | None = ""
    split_ratios: Sequence[float] = DEFAULT_SPLIT_RATIOS
    seed: int = DEFAULT_SEED
    force_regenerate: bool = False
    include_inconsistent: bool = False
    selection: Mapping[str, Any] | None = None
    include_excluded: bool = False

    def __post_init__(self) -> None:
        errors: dict[str, str] = {}
        normalised: dict[str, Any] = {}

        def check(field: str, clean) -> None:
            try:
                normalised[field] = clean(getattr(self, field))
            except ValidationError as error:
                errors[field] = " ".join(error.messages)

        if self.sampling is None:
            check("aid_list", _clean_aid_list)
        elif self.aid_list is not None:
            errors["aid_list"] = "give an aid list or a sampling, not both"
        else:
            check("sampling", lambda sampling: sampling if isinstance(sampling, SamplingRequest)
                  else SamplingRequest.from_mapping(sampling))
        check("split_ratios", _clean_split_ratios)
        check("seed", _clean_seed)
        check("dataset_name", _clean_dataset_name)
        if self.description is not None and not isinstance(self.description, str):
            errors["description"] = "must be a string"
        if self.selection is not None and not isinstance(self.selection, Mapping):
            errors["selection"] = "must be an object"
        if errors:
            raise ValidationError(errors)
        for field, value in normalised.items():
            object.__setattr__(self, field, value)
        object.__setattr__(self, "description", self.description or "")
        object.__setattr__(self, "force_regenerate", bool(self.force_regenerate))
        object.__setattr__(self, "include_inconsistent", bool(self.include_inconsistent))
        object.__setattr__(self, "include_excluded", bool(self.include_excluded))

    @classmethod
    def from_panel(cls, data: Mapping[str, Any]) -> BuildRequest:
        """From an ML panel request body as its serializer validated it (the
        ``PanelBuildOptions`` fields, plus ``aid_list`` or ``sampling``)."""
        return cls(
            embedding_model_key=data.get("embedding_model"),
            aid_list=data.get("aid_list"),
            sampling=data.get("sampling"),
            dataset_name=data.get("name"),
            description=data.get("description") or "",
            split_ratios=data.get("split_ratios") or DEFAULT_SPLIT_RATIOS,
            seed=data.get("seed", DEFAULT_SEED),
            force_regenerate=data.get("force_regenerate", False),
            include_inconsistent=data.get("include_inconsistent", False),
            include_excluded=data.get("include_excluded", False),
        )

    @property
    def uses_sampling(self) -> bool:
        return self.sampling is not None


@dataclass(frozen=True)
class BuildStarted:
    """What ``dataset_build_request`` wrote: the task (``task.dataset_version`` is the
    new version), the aids it requested, and the sampling that chose them (if any)."""

    task: DatasetTask
    aid_list: list[int]
    sample: SamplingResult | None = None

    @property
    def requested(self) -> int:
        return len(self.aid_list)


def _clean_aid_list(aid_list: object) -> list[int]:
    if aid_list is None or isinstance(aid_list, (str, bytes, Mapping)) or not isinstance(aid_list, Iterable):
        raise ValidationError("must be a list of integer aids")
    aids = list(aid_list)
    if not aids:
        raise ValidationError("is empty: give at least one aid")
    bad = [aid for aid in aids if not isinstance(aid, int) or isinstance(aid, bool) or not 0 < aid <= _BIGINT_MAX]
    if bad:
        shown = ", ".join(repr(aid) for aid in bad[:MAX_ERROR_AIDS_LISTED])
        raise ValidationError(f"aids must be positive integers; invalid: {shown}")
    return list(dict.fromkeys(aids))  # de-duplicated, first occurrence order


def _clean_split_ratios(split_ratios: object) -> tuple[float, float, float]:
    try:
        ratios = tuple(float(value) for value in split_ratios)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ValidationError("must be three numbers (train, val, test)") from None
    if len(ratios) != 3:
        raise ValidationError(f"must be three numbers (train, val, test), got {len(ratios)}")
    train, val, test = ratios
    if not (0 < train <= 1 and 0 <= val <= 1 and 0 <= test <= 1):
        raise ValidationError(f"train must be in (0, 1], val and test in [0, 1] (got {ratios})")
    if abs(train + val + test - 1.0) > 1e-6:
        raise ValidationError(f"must sum to 1 (got {train + val + test:g})")
    return train, val, test


def _clean_seed(seed: object) -> int:
    if not isinstance(seed, int) or isinstance(seed, bool) or not -(2**63) <= seed <= _BIGINT_MAX:
        raise ValidationError(f"must be an integer (got {seed!r})")
    return seed


def _clean_dataset_name(name: object) -> str:
    name = DEFAULT_DATASET_NAME if name is None else name
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_DATASET_NAME_LENGTH:
        raise ValidationError(f"must be a non-empty string of at most {MAX_DATASET_NAME_LENGTH} characters")
    return name.strip()


# --- checks that need the registry or the database -------------------------------------


def embedding_model_for_build(key: object) -> EmbeddingModelSpec:
    """The registry's spec for ``key``, refused (``ValidationError`` on
    ``embedding_model``) when the key is unknown or the environment variable that must
    hold its API key is not set: such a build could only fail, after taking a version
    number. Raises ``EmbeddingRegistryError`` when the registry file itself is invalid."""
    spec = embedding_model_spec(key)
    if spec.api_key_is_set is False:
        raise ValidationError({"embedding_model": missing_api_key_message(spec)})
    return spec


def missing_api_key_message(spec: EmbeddingModelSpec) -> str:
    return (
        f"the API key of embedding model {spec.key!r} is not configured: set the environment variable "
        f"{spec.api_key_env} for the web server and the workers, then restart them"
    )


def _check_aids_exist(aids: list[int], *, include_inconsistent: bool) -> None:
    """One query: unknown aids, and whether any requested video is one a build keeps."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT v.aid, c.value IS NOT NULL, {build_eligibility_condition(include_inconsistent)} "
            f"FROM {VIDEO_CONSENSUS_FROM} WHERE v.aid = ANY(%s)",
            [aids],
        )
        found = {aid: (labeled, eligible) for aid, labeled, eligible in cursor.fetchall()}
    unknown = [aid for aid in aids if aid not in found]
    if unknown:
        shown = ", ".join(str(aid) for aid in unknown[:MAX_ERROR_AIDS_LISTED])
        more = f" and {len(unknown) - MAX_ERROR_AIDS_LISTED} more" if len(unknown) > MAX_ERROR_AIDS_LISTED else ""
        raise ValidationError({"aid_list": f"{len(unknown)} aid(s) not in the corpus: {shown}{more}"})
    if not any(labeled for labeled, _ in found.values()):
        raise ValidationError({"aid_list": f"none of the {len(aids)} video(s) has a consensus label"})
    if not any(eligible for _, eligible in found.values()):
        raise ValidationError({"aid_list": (
            f"none of the {len(aids)} video(s) can be used: every labeled one has disagreeing labelers "
            "(include inconsistent videos to keep those with a majority label)"
        )})


def build_request_video_count(request: BuildRequest) -> int:
    """How many videos ``request`` would be built from (nothing is written): the aids
    listed, or what its sampling would take among the videos a build keeps (one query).
    Raises the sampling's ``ValidationError``."""
    if not request.uses_sampling:
        return len(request.aid_list)
    counted = sampling_count(**request.sampling.arguments(), include_inconsistent=request.include_inconsistent,
                             include_excluded=request.include_excluded)
    return counted.sampled_count


# --- the service -----------------------------------------------------------------------


def dataset_build_request(request: BuildRequest, *, user=None, enqueue: bool = True) -> BuildStarted:
    """Check ``request`` against the registry and the corpus, create the version + task,
    queue the job on commit.

    The model must be in the registry with its API key configured
    (``embedding_model_for_build``). A sampling chooses among the videos the build keeps
    (consensus label, agreeing labelers unless ``include_inconsistent``), so its
    ``limit`` and ``balanced`` quotas hold; an aid list must name known videos, some of
    them usable. Raises ``ValidationError`` keyed by field (``embedding_model``,
    ``aid_list``, ``sampling`` "No AIDs found matching the sampling criteria", the
    sampling's own fields) with nothing written. ``enqueue=False`` leaves the task
    pending for an in-process ``dataset_version_build`` (``--sync``).
    """
    spec = embedding_model_for_build(request.embedding_model_key)
    sample = None
    if request.uses_sampling:
        sample = sampling_select(**request.sampling.arguments(), include_inconsistent=request.include_inconsistent,
                                 include_excluded=request.include_excluded)
        if not sample.aid_list:
            raise ValidationError({"sampling": NO_MATCH_MESSAGE})
        aids, selection = sample.aid_list, sample.selection()
    else:
        aids, selection = list(request.aid_list), dict(request.selection or {"strategy": "aid_list"})
        _check_aids_exist(aids, include_inconsistent=request.include_inconsistent)
    task = _version_and_task_create(request, spec, aids, selection, user=user, enqueue=enqueue)
    return BuildStarted(task=task, aid_list=aids, sample=sample)


def _version_and_task_create(
    request: BuildRequest,
    spec: EmbeddingModelSpec,
    aids: list[int],
    selection: dict[str, Any],
    *,
    user,
    enqueue: bool,
) -> DatasetTask:
    user_id = getattr(user, "pk", None) if user is not None and getattr(user, "is_authenticated", False) else None
    ratios = request.split_ratios
    with transaction.atomic():
        model = embedding_models_upsert([spec])[spec.key]
        dataset, _ = Dataset.objects.select_for_update().get_or_create(
            name=request.dataset_name, defaults={"created_by_id": user_id}
        )
        number = (dataset.versions.aggregate(highest=Max("number"))["highest"] or 0) + 1
        version = DatasetVersion.objects.create(
            dataset=dataset,
            number=number,
            description=request.description,
            created_by_id=user_id,
            embedding_model=model,
            embedding_dimensions=spec.dimensions,
            selection=selection,
            requested_aids=aids,
            text_template_version=TEXT_TEMPLATE_VERSION,
            train_ratio=ratios[0],
            val_ratio=ratios[1],
            test_ratio=ratios[2],
            seed=request.seed,
            force_regenerate=request.force_regenerate,
            include_inconsistent=request.include_inconsistent,
            include_excluded=request.include_excluded,
        )
        task = DatasetTask.objects.create(
            type=DatasetTaskType.BUILD,
            dataset_version=version,
            created_by_id=user_id,
            params={
                "aid_count": len(aids),
                "embedding_model": spec.key,
                "force_regenerate": request.force_regenerate,
                "include_inconsistent": request.include_inconsistent,
                "include_excluded": request.include_excluded,
                "split_ratios": list(ratios),
                "seed": request.seed,
                "dataset_name": dataset.name,
                "description": request.description or None,
            },
            total_steps=len(BUILD_STEPS),
            message="Task initialized",
            celery_task_id=str(uuid.uuid4()) if enqueue else "",
        )
        if enqueue:
            transaction.on_commit(lambda: build_enqueue(task.pk, task.celery_task_id))
    return task


def _check_api_key_for_resume(model_key: str) -> None:
    """A resume whose model has no API key configured here could only fail again."""
    try:
        registry = embedding_registry()
    except EmbeddingRegistryError:
        return  # the build reports the invalid registry itself
    if model_key in registry and registry.get(model_key).api_key_is_set is False:
        raise ValidationError({"embedding_model": missing_api_key_message(registry.get(model_key))})


def dataset_task_resume(task_id: uuid.UUID | str, *, enqueue: bool = True) -> DatasetTask:
    """Re-queue a failed or cancelled build; it reuses every embedding already stored.

    Raises ``DatasetTask.DoesNotExist`` or ``ValidationError`` (``task_id``) when the task
    is not a resumable build, (``embedding_model``) when its model's API key is not set.
    """
    task_uuid = as_uuid(task_id, "task_id")
    with transaction.atomic():
        task = (
            DatasetTask.objects.select_for_update(of=("self",))
            .select_related("dataset_version__embedding_model")
            .get(pk=task_uuid)
        )
        if task.type != DatasetTaskType.BUILD:
            raise ValidationError({"task_id": f"task {task.pk} is a {task.type} task, not a build"})
        if task.status in (DatasetTaskStatus.PENDING, DatasetTaskStatus.RUNNING, DatasetTaskStatus.COMPLETED):
            raise ValidationError({"task_id": f"task {task.pk} is {task.status}; only failed or cancelled builds resume"})
        version = task.dataset_version
        if version is None:
            raise ValidationError({"task_id": f"task {task.pk}: its dataset version was deleted"})
        if version.status == DatasetVersionStatus.READY:
            raise ValidationError({"task_id": f"task {task.pk}: dataset version {version.pk} is already ready"})
        _check_api_key_for_resume(version.embedding_model.key)
        other = (
            DatasetTask.objects.filter(
                dataset_version_id=version.pk, status__in=[DatasetTaskStatus.PENDING, DatasetTaskStatus.RUNNING]
            )
            .exclude(pk=task.pk)
            .values_list("pk", flat=True)
            .first()
        )
        if other is not None:
            raise ValidationError({"task_id": f"dataset version {version.pk} is already being built by task {other}"})
        DatasetVersion.objects.filter(pk=version.pk).update(status=DatasetVersionStatus.BUILDING, error="")
        celery_task_id = str(uuid.uuid4()) if enqueue else ""
        DatasetTask.objects.filter(pk=task.pk).update(
            status=DatasetTaskStatus.PENDING,
            attempts=F("attempts") + 1,  # fences out the late writes of an earlier worker
            heartbeat_at=timezone.now(),  # "queued at": the sweeper fails it if it never starts
            error="",
            result=None,
            message="Resumed: waiting for a worker",
            current_step="initialized",
            completed_steps=0,
            done=0,
            total=0,
            percentage=0.0,
            eta_seconds=None,
            completed_at=None,
            celery_task_id=celery_task_id,
        )
        if enqueue:
            transaction.on_commit(lambda: build_enqueue(task.pk, celery_task_id))
    task.refresh_from_db()
    return task


def dataset_task_cancel(task_id: uuid.UUID | str) -> DatasetTask:
    """Cancel a pending or running build; the worker stops at its next progress write."""
    task_uuid = as_uuid(task_id, "task_id")
    now = timezone.now()
    with transaction.atomic():
        task = DatasetTask.objects.select_for_update().get(pk=task_uuid)
        if task.status not in (DatasetTaskStatus.PENDING, DatasetTaskStatus.RUNNING):
            raise ValidationError({"task_id": f"task {task.pk} is {task.status}; only pending or running tasks cancel"})
        DatasetTask.objects.filter(pk=task.pk).update(
            status=DatasetTaskStatus.CANCELLED,
            attempts=F("attempts") + 1,  # the worker's next fenced write fails: it stops
            message="Cancelled",
            completed_at=now,
            eta_seconds=None,
        )
        if task.dataset_version_id:
            DatasetVersion.objects.filter(pk=task.dataset_version_id, status=DatasetVersionStatus.BUILDING).update(
                status=DatasetVersionStatus.FAILED, error="build cancelled"
            )
    task.refresh_from_db()
    return task
