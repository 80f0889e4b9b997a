"""Template context every page gets (wired in ``TEMPLATES`` in ``cvsa_ml/settings.py``)."""

from django.utils.functional import SimpleLazyObject

from core.roles import RoleFlags, user_role_names


def roles(request):
    """``user_roles.can_label`` / ``.can_review`` for navigation: one query, and only
    when a template reads them."""
    return {"user_roles": SimpleLazyObject(lambda: RoleFlags(user_role_names(request.user)))}
