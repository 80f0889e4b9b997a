"""Label-issue pages under ``/training/`` (namespace ``training``)."""

from django.urls import path

from training import label_issue_views as views

urlpatterns = [
    path("label-issues/", views.scan_list, name="label-issue-scan-list"),
    path("label-issues/new", views.scan_new, name="label-issue-scan-new"),
    path("label-issues/<int:scan_id>/", views.scan_detail, name="label-issue-scan-detail"),
    path("label-issues/<int:scan_id>/progress", views.scan_progress, name="label-issue-scan-progress"),
    path("label-issues/<int:scan_id>/cancel", views.scan_cancel, name="label-issue-scan-cancel"),
    path("label-issues/<int:scan_id>/review-requests", views.scan_review_requests,
         name="label-issue-review-requests"),
]
