"""Role checks for pages (decorators) and the API (DRF permission classes)."""

from functools import wraps

from django.core.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission

from core.roles import (
    can_import_videos,
    can_label,
    can_manage_datasets,
    can_review,
    can_run_experiments,
    has_team_role,
)

TEAM_ROLE_MESSAGE = "Only labelers, reviewers and admins can see datasets."
DATASET_MANAGER_MESSAGE = "Only admins can build, resume, delete or clean up datasets."
EXPERIMENT_RUNNER_MESSAGE = "Only admins can create experiments and start, cancel or delete runs."


def _page_check(check, message: str):
    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not check(request.user):
                raise PermissionDenied(message)
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


labeler_required = _page_check(can_label, "Only labelers, reviewers and admins can label videos.")
reviewer_required = _page_check(can_review, "Only reviewers and admins can see and resolve conflicts.")
team_role_required = _page_check(has_team_role, TEAM_ROLE_MESSAGE)
dataset_manager_required = _page_check(can_manage_datasets, DATASET_MANAGER_MESSAGE)
experiment_runner_required = _page_check(can_run_experiments, EXPERIMENT_RUNNER_MESSAGE)


class CanLabel(BasePermission):
    message = "Only labelers, reviewers and admins can label videos."

    def has_permission(self, request, view):
        return can_label(request.user)


class CanImportVideos(BasePermission):
    message = "Importing videos needs the add and change permissions on videos (the admins group has them)."

    def has_permission(self, request, view):
        return can_import_videos(request.user)


class HasTeamRole(BasePermission):
    message = TEAM_ROLE_MESSAGE

    def has_permission(self, request, view):
        return has_team_role(request.user)


class CanManageDatasets(BasePermission):
    message = DATASET_MANAGER_MESSAGE

    def has_permission(self, request, view):
        return can_manage_datasets(request.user)


class CanRunExperiments(BasePermission):
    message = EXPERIMENT_RUNNER_MESSAGE

    def has_permission(self, request, view):
        return can_run_experiments(request.user)
