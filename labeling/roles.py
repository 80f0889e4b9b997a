"""The team's roles, as Django groups. Lowest app, so every app above can check them."""

LABELERS = "labelers"
REVIEWERS = "reviewers"
ADMINS = "admins"
ALL_ROLES = (LABELERS, REVIEWERS, ADMINS)


def user_has_role(user, *roles: str) -> bool:
    """Superusers hold every role; otherwise group membership decides."""
    if not user.is_authenticated:
        return False
    if user.is_superuser:
        return True
    # Evaluated once per request: the groups are prefetched by the caller when it matters.
    return user.groups.filter(name__in=roles).exists()
