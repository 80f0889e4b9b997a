"""Role checks for pages (decorators) and the API (DRF permission classes)."""

from functools import wraps

from rest_framework.permissions import BasePermission

from core.api.error_views import ExplainedPermissionDenied
from core.roles import (
    ADMINS,
    ALL_ROLES,
    LABELING_ROLES,
    REVIEWING_ROLES,
    can_import_videos,
    can_label,
    can_manage_datasets,
    can_run_experiments,
    has_team_role,
    request_role_names,
)

TEAM_ROLE_MESSAGE = "Only labelers, reviewers and admins can see datasets."
DATASET_MANAGER_MESSAGE = "Only admins can build, resume, delete or clean up datasets."
EXPERIMENT_RUNNER_MESSAGE = "Only admins can create experiments and start, cancel or delete runs."


def roles_required(roles: tuple[str, ...], message: str):
    """A page decorator: the view runs for users holding any of ``roles``."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if request_role_names(request).isdisjoint(roles):
                # Written for the person refused: the 403 page shows it.
                raise ExplainedPermissionDenied(message)
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


labeler_required = roles_required(LABELING_ROLES, "Only labelers, reviewers and admins can label videos.")
reviewer_required = roles_required(REVIEWING_ROLES, "Only reviewers and admins can see and resolve conflicts.")
team_role_required = roles_required(ALL_ROLES, TEAM_ROLE_MESSAGE)
dataset_manager_required = roles_required((ADMINS,), DATASET_MANAGER_MESSAGE)
experiment_runner_required = roles_required((ADMINS,), EXPERIMENT_RUNNER_MESSAGE)


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
