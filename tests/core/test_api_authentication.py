"""One CSRF rule for every API endpoint (issue 10, item 6): a session-authenticated unsafe
request needs no token only when its Origin (or Referer) is this server or a trusted origin."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from labeling.models import Label
from tests.labeling.factories import VideoFactory

pytestmark = pytest.mark.django_db

OWN_ORIGIN = "http://testserver"


@pytest.fixture
def browser(user) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


@pytest.fixture
def video(db):
    return VideoFactory()


def post_label(client: Client, video, **headers):
    return client.post("/api/v1/labels", json.dumps({"aid": video.aid, "value": True}),
                       content_type="application/json", **headers)


@pytest.mark.parametrize("headers", [
    {"HTTP_ORIGIN": OWN_ORIGIN},
    {"HTTP_REFERER": f"{OWN_ORIGIN}/labeling/"},
    {"HTTP_ORIGIN": "HTTP://TESTSERVER"},
])
def test_a_same_origin_session_request_needs_no_token(browser, video, headers):
    response = post_label(browser, video, **headers)

    assert response.status_code == 201, response.content
    assert Label.objects.filter(video=video).count() == 1


@pytest.mark.parametrize("trusted,origin", [
    (["https://panel.example"], "https://panel.example"),
    (["https://*.example.org"], "https://panel.example.org"),
])
def test_a_trusted_origin_needs_no_token(browser, video, settings, trusted, origin):
    settings.CSRF_TRUSTED_ORIGINS = trusted

    assert post_label(browser, video, HTTP_ORIGIN=origin).status_code == 201


@pytest.mark.parametrize("headers", [
    {"HTTP_ORIGIN": "https://evil.example"},
    {"HTTP_ORIGIN": "https://testserver"},  # another scheme is another origin
    {"HTTP_ORIGIN": "http://testserver.evil.example"},
    {"HTTP_ORIGIN": "null"},
    {"HTTP_REFERER": "https://evil.example/attack"},
    {"HTTP_ORIGIN": "https://evil.example", "HTTP_REFERER": f"{OWN_ORIGIN}/"},  # Origin wins
    {},
])
def test_a_cross_origin_session_request_is_refused_and_writes_nothing(browser, video, headers):
    response = post_label(browser, video, **headers)

    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert not Label.objects.exists()


def test_a_wildcard_does_not_trust_another_scheme(browser, video, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://*.example.org"]

    assert post_label(browser, video, HTTP_ORIGIN="http://panel.example.org").status_code == 403


def test_safe_methods_need_no_origin(browser):
    assert browser.get("/api/v1/videos", HTTP_ORIGIN="https://evil.example").status_code == 200


def test_token_requests_are_unaffected_by_the_origin(user, video):
    client = Client(enforce_csrf_checks=True)
    token = Token.objects.create(user=user)

    response = post_label(client, video, HTTP_AUTHORIZATION=f"Token {token.key}", HTTP_ORIGIN="https://evil.example")

    assert response.status_code == 201
    assert Label.objects.count() == 1


def test_every_api_view_uses_the_one_rule():
    """No view opts out with its own authentication classes."""
    from django.urls import get_resolver
    from rest_framework.settings import api_settings

    from core.api.authentication import SameOriginSessionAuthentication

    def views(patterns):
        for pattern in patterns:
            if hasattr(pattern, "url_patterns"):
                yield from views(pattern.url_patterns)
            elif hasattr(pattern.callback, "cls"):
                yield pattern.callback.cls

    assert SameOriginSessionAuthentication in api_settings.DEFAULT_AUTHENTICATION_CLASSES
    api_views = list(views(get_resolver().url_patterns))
    assert len(api_views) > 20
    for view in api_views:
        if view.__module__.startswith("drf_spectacular"):
            continue
        assert view.authentication_classes == api_settings.DEFAULT_AUTHENTICATION_CLASSES, view
