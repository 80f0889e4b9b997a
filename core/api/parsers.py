"""The API's JSON parser: what it returns can be validated, stored and echoed without a 500.

DRF's parser hands views whatever ``json.load`` builds. Four kinds of body then fail deep
inside a request instead of at its door: nesting deep enough to exhaust the interpreter's
stack (``RecursionError``), text PostgreSQL cannot store (NUL characters, lone surrogates:
a ``DataError``), numbers no column holds (integers beyond 64 bits, ``1e400`` read as
infinity) and a top level that is not an object (``null``, ``5``: a ``TypeError`` where a view
looks a key up). This parser refuses all four with a 400 naming the place, and stops reading
at ``DATA_UPLOAD_MAX_MEMORY_SIZE`` with a 413 that states the limit.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError

from core.api.bounds import MAX_BIGINT, MIN_BIGINT
from core.api.errors import PayloadTooLarge, request_too_large_detail

MAX_JSON_DEPTH = 32


def _describe(value: Any) -> str:
    return "null" if value is None else {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), "number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:30]} out of range")
    return value


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def unstorable_text(value: str) -> str | None:
    """Why PostgreSQL would refuse this text, or ``None``."""
    if "\x00" in value:
        return "must not contain NUL (\\u0000) characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid UTF-8 text (a lone surrogate escape such as \\ud800 is not)"
    return None


def first_problem(data: Any, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """The first place (``videos[3].title``) nested too deep, holding unstorable text or a
    number beyond PostgreSQL's bigint.

    Iterative on purpose: a recursive walk would hit the very limit it guards.
    """
    stack: list[tuple[Any, str, int]] = [(data, "", 1)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, (dict, list)) and depth > max_depth:
            field = re.split(r"[.\[]", path, maxsplit=1)[0]  # the top-level field, not 32 levels of [0]
            return f"{field or 'body'}: JSON nested deeper than {max_depth} levels"
        if isinstance(value, str):
            problem = unstorable_text(value)
            if problem:
                return f"{path or 'body'}: {problem}"
        elif isinstance(value, int) and not isinstance(value, bool) and not MIN_BIGINT <= value <= MAX_BIGINT:
            return f"{path or 'body'}: integer out of range (a 64-bit integer: at most {MAX_BIGINT})"
        elif isinstance(value, dict):
            for key, item in value.items():
                child = f"{path}.{key}" if path else key
                problem = unstorable_text(key)
                if problem:
                    return f"{child!r}: key {problem}"
                stack.append((item, child, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{index}]", depth + 1) for index, item in enumerate(value))
    return None


class JSONParser(parsers.JSONParser):
    """``application/json`` bodies: a JSON object, bounded in size, depth, numbers and text."""

    max_depth = MAX_JSON_DEPTH

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(raw) > limit:
            raise PayloadTooLarge(request_too_large_detail())
        try:
            text = raw.decode(parsers.get_encoding(parser_context))
            data = json.loads(text, parse_float=_finite_float, parse_constant=_refuse_constant)
        except RecursionError:
            raise ParseError(f"JSON parse error - nested deeper than {self.max_depth} levels") from None
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise ParseError(f"JSON parse error - {exc}") from None
        if not isinstance(data, dict):
            raise ParseError(f"Invalid data: the body must be a JSON object (a dictionary), got {_describe(data)}")
        problem = first_problem(data, self.max_depth)
        if problem:
            raise ParseError(problem)
        return data
