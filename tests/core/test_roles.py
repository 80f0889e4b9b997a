"""core.roles and core.context_processors: who holds which role, from one query."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser, Group
from django.test import RequestFactory

from core import roles
from core.context_processors import roles as roles_context
from core.roles import ADMINS, ALL_ROLES, LABELERS, REVIEWERS, RoleFlags

pytestmark = pytest.mark.django_db

CHECKS = {
    "can_label": roles.can_label,
    "can_review": roles.can_review,
    "has_team_role": roles.has_team_role,
    "can_manage_datasets": roles.can_manage_datasets,
    "can_write_machine_labels": roles.can_write_machine_labels,
    "can_import_videos": roles.can_import_videos,
}


@pytest.mark.parametrize(
    ("group", "allowed"),
    [
        (LABELERS, {"can_label", "has_team_role"}),
        (REVIEWERS, {"can_label", "can_review", "has_team_role"}),
        (ADMINS, set(CHECKS)),
        (None, set()),
    ],
)
def test_each_group_holds_exactly_its_checks(make_user, group, allowed):
    user = make_user("member", group=group)

    assert {name for name, check in CHECKS.items() if check(user)} == allowed


def test_a_superuser_holds_every_role_without_being_in_a_group(make_user):
    root = make_user("root", group=None, is_superuser=True)

    assert roles.user_role_names(root) == frozenset(ALL_ROLES)
    assert all(check(root) for check in CHECKS.values())


def test_an_anonymous_user_holds_no_role_and_costs_no_query(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert roles.user_role_names(AnonymousUser()) == frozenset()
        assert not any(check(AnonymousUser()) for check in CHECKS.values())


def test_groups_outside_the_roles_do_not_count(make_user):
    user = make_user("outsider", group=None)
    user.groups.add(Group.objects.create(name="visitors"))

    assert roles.user_role_names(user) == frozenset()
    assert not RoleFlags(roles.user_role_names(user)).is_team_member


def test_role_names_take_one_query_whatever_the_number_of_groups(make_user, django_assert_num_queries):
    user = make_user("busy", group=LABELERS)
    user.groups.add(Group.objects.get(name=REVIEWERS), Group.objects.get(name=ADMINS))

    with django_assert_num_queries(1):
        assert roles.user_role_names(user) == frozenset(ALL_ROLES)


def test_role_flags_for_the_navigation():
    labeler, reviewer, nobody = RoleFlags(frozenset({LABELERS})), RoleFlags(frozenset({REVIEWERS})), RoleFlags(frozenset())

    assert (labeler.can_label, labeler.can_review, labeler.is_team_member) == (True, False, True)
    assert (reviewer.can_label, reviewer.can_review, reviewer.is_team_member) == (True, True, True)
    assert (nobody.can_label, nobody.can_review, nobody.is_team_member) == (False, False, False)


def test_the_context_processor_queries_only_when_a_template_reads_the_flags(make_user, django_assert_num_queries):
    request = RequestFactory().get("/")
    request.user = make_user("reader", group=REVIEWERS)

    with django_assert_num_queries(0):
        flags = roles_context(request)["user_roles"]
    with django_assert_num_queries(1):
        assert flags.can_review and flags.can_label
        assert flags.is_team_member
