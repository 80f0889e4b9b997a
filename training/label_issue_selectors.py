"""Reads of label-issue scans: the list, one scan, its ranked issues. Each costs a fixed
number of queries whatever the number of scans or issues."""

from __future__ import annotations

from django.db.models import Exists, OuterRef, QuerySet

from labeling.models import ReviewRequest
from training.models import LabelIssue, LabelIssueScan


def label_issue_scan_list(*, dataset_version_id=None) -> QuerySet[LabelIssueScan]:
    """Scans, newest first, with their version, dataset, source run and creator joined."""
    scans = LabelIssueScan.objects.select_related(
        "dataset_version__dataset", "source_run", "created_by"
    ).defer("dataset_version__requested_aids", "dataset_version__selection").order_by("-created_at", "-id")
    if dataset_version_id is not None:
        scans = scans.filter(dataset_version_id=dataset_version_id)
    return scans


def label_issue_scan_get(scan_id: int) -> LabelIssueScan:
    """One scan with its version, dataset, source run and creator (``DoesNotExist`` if unknown)."""
    return label_issue_scan_list().get(pk=scan_id)


def label_issue_rows(scan_id: int) -> QuerySet[LabelIssue]:
    """The scan's issues in rank order, each with its video, the video's consensus
    (labelers, agreement) and ``in_review``: whether it has an open review request."""
    open_request = ReviewRequest.objects.filter(video_id=OuterRef("video_id"), resolved_at__isnull=True)
    return (
        LabelIssue.objects.filter(scan_id=scan_id)
        .select_related("video", "video__consensus")
        .annotate(in_review=Exists(open_request))
        .order_by("rank")
    )


def label_issues_by_video(scan_id: int, video_ids) -> dict[int, LabelIssue]:
    """The scan's issues of these videos, by video id (one query)."""
    issues = LabelIssue.objects.filter(scan_id=scan_id, video_id__in=list(video_ids))
    return {issue.video_id: issue for issue in issues}
