"""Session authentication for the API with one CSRF rule for every endpoint.

A logged-in browser page (the old ML panel served from this server, Swagger UI) sends the
session cookie and no CSRF token. Such an unsafe request (POST, PUT, PATCH, DELETE) is
accepted without a token only when the browser says it comes from this server: its
``Origin`` header, or without one its ``Referer``, is this server's own origin
(``scheme://host`` as Django sees the request) or one of ``CSRF_TRUSTED_ORIGINS``
(``https://*.example.com`` wildcards included). A cross-site page cannot forge either
header, and browsers send ``Origin`` on every cross-origin POST, so a forged request
carries a foreign origin (or ``null``) and falls back to Django's normal CSRF check: 403
without a valid token. Token-authenticated requests never reach this class (DRF tries
``TokenAuthentication`` first), and safe methods need no check.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.utils.http import is_same_domain
from rest_framework.authentication import SessionAuthentication

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def _origin_of(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def request_origin(request) -> str | None:
    """The origin the browser claims for the request: ``Origin``, else the ``Referer``'s."""
    origin = request.META.get("HTTP_ORIGIN")
    if origin is not None:
        return _origin_of(origin)  # "null" (sandboxed frames, privacy redirects) is no origin
    referer = request.META.get("HTTP_REFERER")
    return _origin_of(referer) if referer else None


def own_origin(request) -> str:
    return f"{'https' if request.is_secure() else 'http'}://{request.get_host()}".lower()


def is_trusted_origin(origin: str) -> bool:
    for trusted in settings.CSRF_TRUSTED_ORIGINS:
        trusted = trusted.lower()
        if origin == trusted:
            return True
        if "*" in trusted:
            scheme, _, pattern = trusted.partition("://")
            origin_scheme, _, origin_host = origin.partition("://")
            if scheme == origin_scheme and is_same_domain(origin_host, pattern.replace("*", "", 1)):
                return True
    return False


def is_same_origin_request(request) -> bool:
    origin = request_origin(request)
    return origin is not None and (origin == own_origin(request) or is_trusted_origin(origin))


class SameOriginSessionAuthentication(SessionAuthentication):
    """DRF's ``SessionAuthentication`` that waives the CSRF token for requests from this server's own origin."""

    def enforce_csrf(self, request):
        if request.method in SAFE_METHODS or is_same_origin_request(request):
            return
        super().enforce_csrf(request)
