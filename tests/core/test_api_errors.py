"""core.api: the one exception handler and the JSON parser's bounds, without a URL in between."""

from __future__ import annotations

import io

import pytest
from django.core.exceptions import ObjectDoesNotExist, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework.exceptions import ParseError

from core.api.errors import Conflict, PayloadTooLarge, ServiceUnavailable, exception_handler, map_exception
from core.api.parsers import JSONParser, first_problem


class LookupView:
    not_found_detail = "Dataset not found"


class RegistryBroken(Exception):
    pass


@pytest.mark.parametrize("raised,status,detail", [
    (ObjectDoesNotExist("x"), 404, "Dataset not found"),
    (Conflict("Dataset 1 is still building"), 409, "Dataset 1 is still building"),
    (PayloadTooLarge("too many records"), 413, "too many records"),
    (ServiceUnavailable("registry"), 503, "registry"),
    (RequestDataTooBig("big"), 413, "DATA_UPLOAD_MAX_MEMORY_SIZE"),
    (DjangoValidationError({"aid_list": ["no such aid 7"]}), 400, "aid_list: no such aid 7"),
])
def test_errors_map_to_one_json_shape(raised, status, detail):
    response = exception_handler(raised, {"view": LookupView()})

    assert response.status_code == status
    assert detail in response.data["detail"]


def test_a_lookup_without_a_view_detail_says_not_found():
    assert exception_handler(ObjectDoesNotExist(), {"view": object()}).data == {"detail": "Not found."}


def test_an_app_maps_its_own_exception_once():
    map_exception(RegistryBroken, lambda exc: ServiceUnavailable(f"registry unavailable: {exc}"))

    response = exception_handler(RegistryBroken("model = 3"), {"view": None})

    assert (response.status_code, response.data["detail"]) == (503, "registry unavailable: model = 3")


def test_unknown_exceptions_are_left_to_django():
    assert exception_handler(KeyError("boom"), {"view": None}) is None


def parse(body: bytes):
    return JSONParser().parse(io.BytesIO(body), "application/json", {})


@pytest.mark.parametrize("body,fragment", [
    (b"[" * 5000 + b"]" * 5000, "nested deeper than 32 levels"),
    (b'{"a": ' + b"[" * 40 + b"]" * 40 + b"}", "a: JSON nested deeper than 32 levels"),
    (b'{"videos": [{"title": "x\\u0000y"}]}', "videos[0].title: must not contain NUL"),
    (b'{"a\\u0000": 1}', "key must not contain NUL"),
    (b'{"title": "\\ud800"}', "title: must be valid UTF-8"),
    (b'{"aid": 9223372036854775808}', "aid: integer out of range"),
    (b'{"aid": [1, -9223372036854775809]}', "aid[1]: integer out of range"),
    (b'{"ratio": 1e400}', "out of range"),
    (b'{"ratio": NaN}', "NaN is not valid JSON"),
    (b"null", "JSON object"),
    (b'{"a": ', "JSON parse error"),
    (b'\xff\xfe', "JSON parse error"),
])
def test_the_parser_refuses_what_would_fail_later(body, fragment):
    with pytest.raises(ParseError) as refused:
        parse(body)

    assert fragment in str(refused.value.detail)


def test_the_parser_accepts_the_bounds_themselves():
    body = b'{"aid": 9223372036854775807, "deep": ' + b"[" * 31 + b"]" * 31 + b', "text": "\\u00e9"}'

    assert parse(body)["aid"] == 2**63 - 1


def test_the_parser_stops_reading_at_the_upload_limit(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10

    with pytest.raises(PayloadTooLarge) as refused:
        parse(b'{"title": "far too long"}')

    assert "10 bytes" in str(refused.value.detail)


def test_first_problem_walks_without_recursion():
    value: list = []
    for _ in range(100_000):
        value = [value]

    assert "nested deeper" in first_problem({"a": value})
