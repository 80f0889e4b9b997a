"""core.permissions: the page decorators and the API permission classes refuse with the
role's own message, and let the roles through."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.test import RequestFactory

from core import permissions
from core.roles import ADMINS, LABELERS, REVIEWERS

pytestmark = pytest.mark.django_db


def _request(user):
    request = RequestFactory().get("/")
    request.user = user
    return request


def _page(request, *args, **kwargs):
    return HttpResponse(f"ok {args} {kwargs}")


@pytest.mark.parametrize(
    ("decorator", "allowed_group", "refused_group", "message"),
    [
        (permissions.labeler_required, LABELERS, None, "Only labelers, reviewers and admins can label videos."),
        (permissions.reviewer_required, REVIEWERS, LABELERS, "Only reviewers and admins can see and resolve conflicts."),
        (permissions.team_role_required, LABELERS, None, permissions.TEAM_ROLE_MESSAGE),
        (permissions.dataset_manager_required, ADMINS, REVIEWERS, permissions.DATASET_MANAGER_MESSAGE),
    ],
)
def test_page_decorators_refuse_with_the_roles_message(make_user, decorator, allowed_group, refused_group, message):
    view = decorator(_page)

    response = view(_request(make_user("allowed", group=allowed_group)), 7, key="v")
    assert response.content == b"ok (7,) {'key': 'v'}"
    for user in (make_user("refused", group=refused_group), AnonymousUser()):
        with pytest.raises(PermissionDenied, match=message.replace(".", r"\.")):
            view(_request(user))
    assert view.__name__ == "_page"


@pytest.mark.parametrize(
    ("permission_class", "allowed_group", "refused_group", "message"),
    [
        (permissions.CanLabel, LABELERS, None, "Only labelers, reviewers and admins can label videos."),
        (permissions.CanImportVideos, ADMINS, REVIEWERS, "Importing videos needs the add and change permissions"),
        (permissions.HasTeamRole, LABELERS, None, permissions.TEAM_ROLE_MESSAGE),
        (permissions.CanManageDatasets, ADMINS, REVIEWERS, permissions.DATASET_MANAGER_MESSAGE),
    ],
)
def test_api_permission_classes_follow_the_roles(make_user, permission_class, allowed_group, refused_group, message):
    permission = permission_class()

    assert permission.message.startswith(message)
    assert permission.has_permission(_request(make_user("allowed", group=allowed_group)), view=None)
    assert not permission.has_permission(_request(make_user("refused", group=refused_group)), view=None)
    assert not permission.has_permission(_request(AnonymousUser()), view=None)
