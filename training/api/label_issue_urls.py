"""Label-issue scans under ``/api/v1/`` (mounted by ``cvsa_ml.urls``); no trailing slashes."""

from django.urls import path

from training.api import label_issues as views

urlpatterns = [
    path("label-issue-scans", views.LabelIssueScanListApi.as_view(), name="label-issue-scan-list"),
    path("label-issue-scans/<bigint:scan_id>", views.LabelIssueScanDetailApi.as_view(),
         name="label-issue-scan-detail"),
    path("label-issue-scans/<bigint:scan_id>/cancel", views.LabelIssueScanCancelApi.as_view(),
         name="label-issue-scan-cancel"),
    path("label-issue-scans/<bigint:scan_id>/issues", views.LabelIssueListApi.as_view(), name="label-issue-list"),
    path("label-issue-scans/<bigint:scan_id>/review-requests", views.LabelIssueReviewRequestsApi.as_view(),
         name="label-issue-review-requests"),
]
