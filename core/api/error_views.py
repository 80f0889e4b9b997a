"""JSON errors for paths no API view answers; pages keep Django's (HTML) error views.

``api_not_found`` is mounted as the last route under each API prefix, so an unknown path
there (``/v1/tasks/``, ``/api/v1/videos/null%2Cnull``) answers ``{"detail": "Not found."}``
with DEBUG on or off, and no ``APPEND_SLASH`` redirect turns a POST into a GET. The
``handler400/403/404/500`` functions serve the same JSON body for errors raised outside DRF
views under those prefixes (a body over the upload limit read by a middleware, a crash),
and delegate every other path to Django's defaults, which render ``templates/<code>.html``.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import JsonResponse
from django.shortcuts import render
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt

from core.api.errors import DEFAULT_NOT_FOUND_DETAIL, request_too_large_detail

API_PATH_PREFIXES = ("/api/", "/v1/")


class ExplainedPermissionDenied(PermissionDenied):
    """A refusal whose message is written for the person refused (what the page is, who
    may use it): the 403 page shows it. Any other ``PermissionDenied`` message stays in
    the log, never on the page (it may name internals)."""


def is_api_path(path: str) -> bool:
    return path.startswith(API_PATH_PREFIXES)


def _error(detail: str, status: int) -> JsonResponse:
    return JsonResponse({"detail": detail}, status=status)


@csrf_exempt
@login_not_required
def api_not_found(request, *args, **kwargs):
    return _error(DEFAULT_NOT_FOUND_DETAIL, 404)


def bad_request(request, exception, template_name=defaults.ERROR_400_TEMPLATE_NAME):
    if isinstance(exception, RequestDataTooBig):
        if is_api_path(request.path):
            return _error(request_too_large_detail(), 413)
    elif is_api_path(request.path):
        return _error("Bad request.", 400)
    return defaults.bad_request(request, exception, template_name)


def permission_denied(request, exception, template_name=defaults.ERROR_403_TEMPLATE_NAME):
    if is_api_path(request.path):
        return _error("You do not have permission to perform this action.", 403)
    if isinstance(exception, ExplainedPermissionDenied):
        return render(request, template_name, {"reason": str(exception)}, status=403)
    return defaults.permission_denied(request, exception, template_name)


def page_not_found(request, exception, template_name=defaults.ERROR_404_TEMPLATE_NAME):
    if is_api_path(request.path):
        return _error(DEFAULT_NOT_FOUND_DETAIL, 404)
    return defaults.page_not_found(request, exception, template_name)


def server_error(request, template_name=defaults.ERROR_500_TEMPLATE_NAME):
    if is_api_path(request.path):
        return _error("Server error: the failure is logged; try again or tell an administrator.", 500)
    return defaults.server_error(request, template_name)
