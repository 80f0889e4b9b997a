"""Writes of the labeling app: labels (append only), undo (retraction), reviews, review requests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.utils import timezone

from core.roles import can_label, can_review, can_write_machine_labels
from labeling.models import VOTING_SOURCES, Label, LabelSource, Review, ReviewRequest, Video, VideoConsensus

#: Videos one call may send to review (a page of issues, or an API request).
MAX_REVIEW_REQUEST_VIDEOS = 1000
MAX_REVIEW_REQUEST_SOURCE_LENGTH = ReviewRequest._meta.get_field("source").max_length


def label_create(*, video: Video, user, value: bool, source: str = LabelSource.HUMAN, guideline=None) -> Label:
    """Append a label. A repeated answer adds a row but never a second vote:
    consensus counts each user's latest human (or imported) label only; a ``model`` label
    is history, never a vote. ``guideline``: the version the labeler was shown."""
    if not can_label(user):
        raise PermissionDenied("only labelers, reviewers and admins can label videos")
    if source not in LabelSource.values:
        raise ValidationError({"source": f"must be one of {', '.join(LabelSource.values)} (got {source!r})"})
    if source != LabelSource.HUMAN and not can_write_machine_labels(user):
        raise PermissionDenied(f"only admins can write labels with source {source!r}")
    if not isinstance(value, bool):
        raise ValidationError({"value": f"must be true or false (got {value!r})"})
    return Label.objects.create(video=video, user=user, value=value, source=source, guideline=guideline)


@transaction.atomic
def label_undo_last(*, user) -> Label | None:
    """Retract the user's most recent answer; the one before it (if any) counts again.

    A model label written under the same account is not an answer of theirs, so undo
    passes over it. The row lock makes two concurrent undos retract two different labels,
    not one twice.
    """
    label = (
        Label.objects.select_for_update()
        .filter(user=user, retracted_at__isnull=True, source__in=VOTING_SOURCES)
        .order_by("-created_at", "-id")
        .select_related("video")
        .first()
    )
    if label is None:
        return None
    label.retracted_at = timezone.now()
    label.save(update_fields=["retracted_at"])
    return label


@transaction.atomic
def review_create(*, video: Video, reviewer, value: bool, note: str | None = "", only_if_unresolved: bool = False) -> Review:
    """A reviewer's final answer; the latest review overrides the vote.

    ``only_if_unresolved`` is what the review queue sends: the video row is locked, so
    of two reviewers resolving the same conflict at once the second is told it is
    already resolved instead of silently overriding the first.
    """
    if not can_review(reviewer):
        raise PermissionDenied("only reviewers can resolve conflicts")
    if not isinstance(value, bool):
        raise ValidationError({"value": f"must be true or false (got {value!r})"})
    Video.objects.select_for_update().filter(pk=video.pk).exists()
    open_requests = ReviewRequest.objects.filter(video=video, resolved_at__isnull=True)
    if only_if_unresolved:
        consensus = VideoConsensus.objects.select_related("review__reviewer").get(video=video)
        if not consensus.is_inconsistent and not open_requests.exists():
            by = f" by {consensus.review.reviewer}" if consensus.review else ""
            raise ValidationError(f"av{video.aid} is already resolved{by}")
    review = Review.objects.create(video=video, reviewer=reviewer, value=value, note=(note or "").strip())
    # Any review of the video answers its open request (the queue shows it no more).
    open_requests.update(resolved_at=review.created_at, resolved_by=review)
    return review


@dataclass(frozen=True)
class ReviewRequestCounts:
    created: int
    already_open: int  # videos that had an open request: left as they were


def review_request_create_many(
    video_ids: Iterable[int], *, reason: str | Mapping[int, str], source: str, user
) -> ReviewRequestCounts:
    """Ask reviewers to look at these videos, even where their labelers agree: one open
    request per video, in one INSERT; a video that already has an open request keeps it
    (idempotent). ``reason`` is shown to the reviewer: one text for all, or one per video
    id. ``source`` says what asked (e.g. "label issues of <dataset> v3").

    Reviewers and admins only (``PermissionDenied``); ``ValidationError`` (nothing
    written) for no videos, too many, unknown ids, or an empty reason or source.
    """
    if not can_review(user):
        raise PermissionDenied("only reviewers and admins can send videos to review")
    ids = list(dict.fromkeys(video_ids))
    if not ids:
        raise ValidationError({"video_ids": "choose at least one video"})
    if len(ids) > MAX_REVIEW_REQUEST_VIDEOS:
        raise ValidationError({"video_ids": f"at most {MAX_REVIEW_REQUEST_VIDEOS} videos at once (got {len(ids)})"})
    if any(isinstance(video_id, bool) or not isinstance(video_id, int) for video_id in ids):
        raise ValidationError({"video_ids": "must be video ids (integers)"})
    source = (source or "").strip()
    if not source or len(source) > MAX_REVIEW_REQUEST_SOURCE_LENGTH:
        raise ValidationError({"source": f"must be 1 to {MAX_REVIEW_REQUEST_SOURCE_LENGTH} characters"})
    if isinstance(reason, Mapping):
        reasons = [(reason.get(video_id) or "").strip() for video_id in ids]
    else:
        reasons = [(reason or "").strip()] * len(ids)
    if not all(reasons):
        raise ValidationError({"reason": "a review request needs a reason to show the reviewer"})
    known = set(Video.objects.filter(pk__in=ids).values_list("pk", flat=True))
    unknown = [video_id for video_id in ids if video_id not in known]
    if unknown:
        shown = ", ".join(str(video_id) for video_id in unknown[:10])
        raise ValidationError({"video_ids": f"no such video: {shown}{' …' if len(unknown) > 10 else ''}"})
    # ON CONFLICT DO NOTHING: the one-open-request-per-video index skips the videos that
    # have one, also when another request for them commits meanwhile.
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {ReviewRequest._meta.db_table} (video_id, reason, source, requested_by_id, created_at)
                SELECT video_id, reason, %s, %s, now() FROM unnest(%s::bigint[], %s::text[]) AS r(video_id, reason)
                ON CONFLICT DO NOTHING RETURNING id""",
            [source, user.pk, ids, reasons],
        )
        created = len(cursor.fetchall())
    return ReviewRequestCounts(created=created, already_open=len(ids) - created)
