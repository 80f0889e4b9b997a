"""The custom rule's filter language: errors name the position; values never reach SQL as text."""

from __future__ import annotations

import pytest

from datasets.cleaning_filter import FilterSyntaxError, expression_q, parse_expression
from labeling.models import Video
from tests.datasets.cleaning_factories import video


@pytest.mark.parametrize("text, position, words", [
    ("title = ", 9, "expected a value"),
    ("titel = 'x'", 1, "expected a field"),
    ("title = 'x' and", 16, "expected a comparison"),
    ("(title = 'x'", 13, "expected ) closing the ( at position 1"),
    ("duration < 'long'", 12, "whole number"),
    ("title = 3", 9, "quote the value"),
    ("duration contains 'x'", 10, "compares text"),
    ("title = 'x' title", 13, "expected and, or"),
    ("title ~ 'x'", 7, "unexpected character"),
    ("title = 'x", 9, "unclosed string"),
    ("published_at < 'yesterday'", 16, "quoted date"),
    ("length(duration) > 3", 8, "length() takes a text field"),
    ("title is full", 10, "expected empty"),
    ("", 1, "empty"),
])
def test_parse_errors_name_the_position(text, position, words):
    with pytest.raises(FilterSyntaxError) as raised:
        parse_expression(text)
    assert raised.value.position == position
    message = raised.value.message_dict["expression"][0]
    assert message.startswith(f"at position {position}:") and words in message


def test_precedence_not_and_or():
    node = parse_expression("not title = 'a' and title = 'b' or title = 'c'")
    assert node.op == "or" and node.operands[0].op == "and"


@pytest.mark.django_db
def test_values_are_parameters_not_sql():
    video(1, "'; DROP TABLE labeling_video; --")
    video(2, "normal")
    assert list(Video.objects.filter(expression_q("title = \"'; DROP TABLE labeling_video; --\"")).values_list(
        "aid", flat=True)) == [1]
    assert Video.objects.count() == 2


@pytest.mark.django_db
def test_in_lists_and_like_escapes():
    # In the string, \\ is one backslash; in the like pattern, that backslash escapes the %.
    video(1, "100%", uploader_name="a")
    video(2, "1000", uploader_name="b")
    video(3, "x", uploader_name="c")
    assert list(Video.objects.filter(expression_q(r"title like '100\\%'")).values_list("aid", flat=True)) == [1]
    assert list(Video.objects.filter(expression_q("uploader_name not in ('a', 'b')")).values_list(
        "aid", flat=True)) == [3]
