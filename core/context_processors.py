"""Template context every page gets (wired in ``TEMPLATES`` in ``cvsa_ml/settings.py``)."""

from django.utils.functional import SimpleLazyObject

from core.roles import RoleFlags, request_role_names


def roles(request):
    """``user_roles.can_label`` / ``.can_review`` for navigation: read only when a
    template reads them, and shared with the page's role check (one query per request)."""
    return {"user_roles": SimpleLazyObject(lambda: RoleFlags(request_role_names(request)))}
