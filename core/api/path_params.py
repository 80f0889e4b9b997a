"""Path parameters parsed so that a malformed id is "not found" (404), never a 400 or a 500.

Ids are matched as plain strings (``<str:task_id>``) and parsed here: a path that names no
object, whether its id is unknown or not an id at all, answers the view's 404.
"""

from __future__ import annotations

import uuid

from django.core.exceptions import ObjectDoesNotExist

from core.api.bounds import MAX_BIGINT


def uuid_or_not_found(raw: str) -> uuid.UUID:
    """The UUID in a path segment; ``ObjectDoesNotExist`` (the view's 404) when it is none."""
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise ObjectDoesNotExist(raw) from None


class PositiveBigIntConverter:
    """``<bigint:aid>``: digits that fit PostgreSQL's bigint; anything longer matches no route (JSON 404)."""

    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if not 1 <= number <= MAX_BIGINT:
            raise ValueError(f"{value} is out of range")
        return number

    def to_url(self, value: int) -> str:
        return str(value)
