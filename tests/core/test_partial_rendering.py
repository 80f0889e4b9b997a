"""core.partial_rendering: an htmx swap gets the partial, anything else the full page."""

from __future__ import annotations

import pytest
from django.test import RequestFactory
from django_htmx.middleware import HtmxDetails

from core.partial_rendering import page_or_partial, wants_partial


def _request(**headers):
    request = RequestFactory().get("/", headers=headers)
    request.htmx = HtmxDetails(request)
    return request


@pytest.mark.parametrize(
    ("headers", "partial"),
    [
        ({}, False),
        ({"HX-Request": "true"}, True),
        # After Back, htmx swaps a history restore in as the whole body: it needs the page.
        ({"HX-Request": "true", "HX-History-Restore-Request": "true"}, False),
    ],
)
def test_only_an_htmx_swap_gets_the_partial(headers, partial):
    request = _request(**headers)

    assert wants_partial(request) is partial
    expected = "labeling/queue.html#cards" if partial else "labeling/queue.html"
    assert page_or_partial(request, "labeling/queue.html", "cards") == expected
