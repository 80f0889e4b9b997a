"""Checking an API refusal: the status, and a JSON ``{"detail": ...}`` naming the problem."""

from __future__ import annotations


def assert_refused(response, status: int, *fragments: str) -> dict:
    """The response's body, after checking its status and that ``detail`` is a non-empty
    string holding every fragment."""
    assert response.status_code == status, response.content
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    for fragment in fragments:
        assert fragment in body["detail"], body["detail"]
    return body
