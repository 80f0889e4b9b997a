"""Deletion of a dataset version, and the cleanups of old tasks and unusable versions."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef, ProtectedError, Q
from django.utils import timezone

from datasets.models import DatasetTask, DatasetTaskStatus, DatasetVersion, DatasetVersionStatus, Exclusion
from datasets.selectors import as_uuid
from datasets.services.job_lifecycle import stale_after


def _active_build_q(now) -> Q:
    return Q(status=DatasetTaskStatus.PENDING) | Q(
        status=DatasetTaskStatus.RUNNING, heartbeat_at__gte=now - stale_after()
    )


def dataset_version_delete(version_id: uuid.UUID | str) -> None:
    """Delete a version and its items (its tasks stay, unlinked).

    Raises ``DatasetVersion.DoesNotExist``; ``ValidationError`` (``dataset_id``) while its
    build is pending or running, or when something else (e.g. an experiment run)
    still refers to it.
    """
    version_uuid = as_uuid(version_id, "dataset_id")
    now = timezone.now()
    with transaction.atomic():
        version = DatasetVersion.objects.select_for_update().get(pk=version_uuid)
        if version.tasks.filter(_active_build_q(now)).exists():
            raise ValidationError({"dataset_id": f"dataset version {version.pk} is being built; cancel the build first"})
        try:
            version.delete()
        except ProtectedError as error:
            users = sorted({str(obj._meta.verbose_name_plural) for obj in error.protected_objects})
            raise ValidationError(
                {"dataset_id": f"dataset version {version.pk} is still used by {', '.join(users)}"}
            ) from None


def dataset_tasks_cleanup(max_age_hours: float = 24) -> int:
    """Delete finished tasks (completed, failed, cancelled) that ended more than
    ``max_age_hours`` ago; pending and running tasks always stay. Returns the count."""
    if not isinstance(max_age_hours, (int, float)) or isinstance(max_age_hours, bool) or max_age_hours < 0:
        raise ValidationError({"max_age_hours": f"must be a non-negative number (got {max_age_hours!r})"})
    cutoff = timezone.now() - timedelta(hours=max_age_hours)
    # A cleaning task stays while exclusions it wrote are active: it is how they are reverted together.
    holds_exclusions = Exists(Exclusion.objects.filter(task=OuterRef("pk"), reverted_at__isnull=True))
    deleted, _ = DatasetTask.objects.filter(
        ~Q(holds_exclusions),
        status__in=[DatasetTaskStatus.COMPLETED, DatasetTaskStatus.FAILED, DatasetTaskStatus.CANCELLED],
        completed_at__lt=cutoff,
    ).delete()
    return deleted


def dataset_versions_cleanup(max_age_days: float = 30, *, include_ready: bool = False) -> dict[str, int]:
    """Delete dataset versions created more than ``max_age_days`` ago that never became
    usable: ``failed`` builds, and ``building`` ones with no live task (orphans of a
    lost queue message). Ready versions are frozen records that experiments refer to, so
    they are only removed with ``include_ready=True`` — and even then not while
    something protects them. Items go with their version; embeddings are kept (shared,
    and re-embedding costs money).

    The filter (status, age, no live task) is applied inside the deleting transaction,
    after locking the candidates' tasks and then the versions themselves (the order
    ``dataset_task_resume`` takes them in), so a version resumed meanwhile is not deleted.

    Returns ``{"removed": n, "kept_in_use": m}``.
    """
    if not isinstance(max_age_days, (int, float)) or isinstance(max_age_days, bool) or max_age_days < 0:
        raise ValidationError({"max_age_days": f"must be a non-negative number (got {max_age_days!r})"})
    cutoff = timezone.now() - timedelta(days=max_age_days)
    statuses = [DatasetVersionStatus.FAILED, DatasetVersionStatus.BUILDING]
    if include_ready:
        statuses.append(DatasetVersionStatus.READY)

    def candidates():
        now = timezone.now()
        return DatasetVersion.objects.filter(created_at__lt=cutoff, status__in=statuses).exclude(
            tasks__in=DatasetTask.objects.filter(_active_build_q(now))
        )

    def lock_and_filter(version_filter: Q) -> list[uuid.UUID]:
        # Tasks first (resume locks its task, then updates the version), then the versions,
        # re-filtered by a statement that starts after those locks are held.
        list(
            DatasetTask.objects.select_for_update()
            .filter(dataset_version__in=candidates().filter(version_filter).values("pk"))
            .values_list("pk", flat=True)
        )
        return list(candidates().filter(version_filter).select_for_update().values_list("pk", flat=True))

    removed = kept = 0
    try:
        with transaction.atomic():
            ids = lock_and_filter(Q())
            if ids:
                removed = DatasetVersion.objects.filter(pk__in=ids).delete()[1].get(DatasetVersion._meta.label, 0)
    except ProtectedError:
        for version_id in list(candidates().values_list("pk", flat=True)):  # some are in use: one by one
            try:
                with transaction.atomic():
                    if lock_and_filter(Q(pk=version_id)):
                        DatasetVersion.objects.filter(pk=version_id).delete()
                        removed += 1
            except ProtectedError:
                kept += 1
    return {"removed": removed, "kept_in_use": kept}
