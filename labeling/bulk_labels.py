"""Bulk labeling (admins): label every video a filter selects — by uploader (mid or
name), tag, title words — after a count preview, as ``import`` labels under the admin.

One confirmation is one transaction: the ``BulkLabelOperation`` audit row (the filter,
its description, the previewed count) and one ``INSERT … SELECT`` of the labels.

Votes: the labels are the admin's own, so each video gets at most one vote from them
(the same user's latest label counts). Running the same filter with the same value again
writes nothing for videos where the admin's effective label already has that value (the
operation row records 0 written); with the other value, the new labels replace the
admin's earlier vote on those videos (never a second vote).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.models import Q, QuerySet

from core.roles import can_write_machine_labels
from labeling.models import BulkLabelOperation, EffectiveLabel, Label, LabelSource, Video

PREVIEW_EXAMPLES = 10
MAX_FILTER_TEXT = 200
FILTER_FIELDS = ("uploader", "tag", "title")


@dataclass(frozen=True)
class BulkLabelFilter:
    """The cleaned filter; every given part must match (AND)."""

    uploader: str = ""  # an uploader mid (digits) or their exact name (any case)
    tag: str = ""  # one whole tag (any case)
    title: str = ""  # words in the title

    def as_dict(self) -> dict:
        return {field: getattr(self, field) for field in FILTER_FIELDS if getattr(self, field)}

    def description(self) -> str:
        parts = []
        if self.uploader:
            parts.append(f"uploader mid {self.uploader}" if self.uploader.isascii() and self.uploader.isdigit()
                         else f'uploader "{self.uploader}"')
        if self.tag:
            parts.append(f'tag "{self.tag}"')
        if self.title:
            parts.append(f'title contains "{self.title}"')
        return "videos with " + " and ".join(parts)


def bulk_filter_clean(data) -> BulkLabelFilter:
    """The filter from a form or an API body. An empty filter would label every video:
    ``ValidationError``, nothing written."""
    values = {}
    for field in FILTER_FIELDS:
        raw = data.get(field, "") if hasattr(data, "get") else ""
        if raw is None:
            raw = ""
        if not isinstance(raw, str):
            raise ValidationError({field: "must be text"})
        raw = raw.strip()
        if len(raw) > MAX_FILTER_TEXT:
            raise ValidationError({field: f"at most {MAX_FILTER_TEXT} characters"})
        values[field] = raw
    if not any(values.values()):
        raise ValidationError(
            "Give an uploader, a tag or title words: an empty filter would label every video in the corpus."
        )
    return BulkLabelFilter(**values)


def _tag_condition(tag: str) -> Q:
    # Tags are stored comma separated as upstream (ASCII or full-width commas): match one whole tag.
    separator = r"[,，]"
    return Q(tags__iregex=rf"(^|{separator})\s*{re.escape(tag)}\s*({separator}|$)")


def bulk_filter_videos(bulk_filter: BulkLabelFilter) -> QuerySet[Video]:
    videos = Video.objects.all()
    if bulk_filter.uploader:
        if bulk_filter.uploader.isascii() and bulk_filter.uploader.isdigit():
            videos = videos.filter(uploader_mid=int(bulk_filter.uploader))
        else:
            videos = videos.filter(uploader_name__iexact=bulk_filter.uploader)
    if bulk_filter.tag:
        videos = videos.filter(_tag_condition(bulk_filter.tag))
    if bulk_filter.title:
        videos = videos.filter(title__icontains=bulk_filter.title)
    return videos


@dataclass(frozen=True)
class BulkLabelPreview:
    filter: BulkLabelFilter
    description: str
    count: int
    examples: list[Video]

    @property
    def more(self) -> int:
        """Videos beyond the examples shown."""
        return self.count - len(self.examples)


def bulk_label_preview(bulk_filter: BulkLabelFilter) -> BulkLabelPreview:
    """How many videos the filter selects and the first few (by aid): two queries."""
    videos = bulk_filter_videos(bulk_filter)
    return BulkLabelPreview(
        filter=bulk_filter, description=bulk_filter.description(), count=videos.count(),
        examples=list(videos.order_by("aid")[:PREVIEW_EXAMPLES]),
    )


@transaction.atomic
def bulk_label_apply(*, bulk_filter: BulkLabelFilter, value: bool, user, previewed_count: int) -> BulkLabelOperation:
    """Write ``import`` labels with ``value`` under ``user`` on every video the filter
    selects, except those where the user's effective label already is ``value``; record
    the operation. Admins only (``PermissionDenied``)."""
    if not can_write_machine_labels(user):
        raise PermissionDenied("only admins can bulk label videos")
    if not isinstance(value, bool):
        raise ValidationError({"value": f"must be true or false (got {value!r})"})
    if not isinstance(previewed_count, int) or isinstance(previewed_count, bool) or previewed_count < 0:
        raise ValidationError({"previewed_count": "must be the count the preview showed (0 or more)"})
    operation = BulkLabelOperation.objects.create(
        created_by=user, value=value, filter=bulk_filter.as_dict(), description=bulk_filter.description(),
        previewed_count=previewed_count,
    )
    already = EffectiveLabel.objects.filter(user=user, value=value).values("video_id")
    targets = bulk_filter_videos(bulk_filter).exclude(pk__in=already).values("pk")
    select_sql, select_params = targets.query.sql_with_params()
    # clock_timestamp(), not now(): a second run in the same transaction is later, so it is
    # the latest label, and the one-import-per-(video, user, time) index is not hit.
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {Label._meta.db_table} (video_id, user_id, value, source, created_at, bulk_operation_id)
                SELECT target.id, %s, %s, %s, clock_timestamp(), %s FROM ({select_sql}) AS target(id)""",
            [user.pk, value, LabelSource.IMPORT, operation.pk, *select_params],
        )
        operation.labels_written = cursor.rowcount
    operation.save(update_fields=["labels_written"])
    return operation
