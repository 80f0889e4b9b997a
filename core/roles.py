"""The team's roles, as Django groups. In ``core`` so that every app (labeling, datasets,
experiments, training) checks the same roles without importing another app."""

from dataclasses import dataclass

LABELERS = "labelers"
REVIEWERS = "reviewers"
ADMINS = "admins"
ALL_ROLES = (LABELERS, REVIEWERS, ADMINS)
LABELING_ROLES = (LABELERS, REVIEWERS, ADMINS)
REVIEWING_ROLES = (REVIEWERS, ADMINS)


def user_role_names(user) -> frozenset[str]:
    """Superusers hold every role; otherwise group membership decides (one query)."""
    if not user.is_authenticated:
        return frozenset()
    if user.is_superuser:
        return frozenset(ALL_ROLES)
    return frozenset(user.groups.filter(name__in=ALL_ROLES).values_list("name", flat=True))


#: Where a request keeps its user's role names once read: the page's role check and the
#: navigation (the ``user_roles`` template context) share one query.
_REQUEST_ROLES_ATTRIBUTE = "_cvsa_role_names"


def request_role_names(request) -> frozenset[str]:
    """The role names of ``request.user``, read once per request."""
    names = getattr(request, _REQUEST_ROLES_ATTRIBUTE, None)
    if names is None:
        names = user_role_names(request.user)
        setattr(request, _REQUEST_ROLES_ATTRIBUTE, names)
    return names


def user_has_role(user, *roles: str) -> bool:
    return not user_role_names(user).isdisjoint(roles)


@dataclass(frozen=True)
class RoleFlags:
    """What the navigation needs to know about a user, from one query."""

    names: frozenset[str]

    @property
    def can_label(self) -> bool:
        return not self.names.isdisjoint(LABELING_ROLES)

    @property
    def can_review(self) -> bool:
        return not self.names.isdisjoint(REVIEWING_ROLES)

    @property
    def is_team_member(self) -> bool:
        return bool(self.names)

    @property
    def can_run_experiments(self) -> bool:
        return ADMINS in self.names

    @property
    def is_admin(self) -> bool:
        return ADMINS in self.names


def can_label(user) -> bool:
    return user_has_role(user, *LABELING_ROLES)


def can_review(user) -> bool:
    return user_has_role(user, *REVIEWING_ROLES)


def can_write_machine_labels(user) -> bool:
    """Labels with source model/import come from scripts run by admins, not from labelers."""
    return user_has_role(user, ADMINS)


def has_team_role(user) -> bool:
    """Any of labelers, reviewers or admins (superusers included): may read datasets."""
    return user_has_role(user, *ALL_ROLES)


def can_manage_datasets(user) -> bool:
    """Admins (superusers included): build, resume and delete dataset versions, clean up."""
    return user_has_role(user, ADMINS)


def can_run_experiments(user) -> bool:
    """Admins (superusers included): create experiments, start, cancel and delete runs."""
    return user_has_role(user, ADMINS)


def can_import_videos(user) -> bool:
    return user.is_authenticated and user.has_perms(["labeling.add_video", "labeling.change_video"])
