"""Checks of the values every tracking write shares: names, keys, tags, ids."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from django.core.exceptions import ValidationError

from core.api.bounds import MAX_BIGINT
from experiments.models import MAX_KEY_LENGTH, MAX_NAME_LENGTH, MAX_TAG_LENGTH

#: Param and metric keys: MLflow's alphabet (letters, digits, _ - . / and spaces).
KEY_PATTERN = re.compile(r"^[A-Za-z0-9_\-./ ]+$")
MAX_TAGS = 20


def _has_nul(text: str) -> bool:
    return "\x00" in text


def clean_name(value: object, field: str = "name") -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError({field: "must be a non-empty string"})
    name = " ".join(value.split())
    if len(name) > MAX_NAME_LENGTH:
        raise ValidationError({field: f"at most {MAX_NAME_LENGTH} characters (got {len(name)})"})
    if _has_nul(name):
        raise ValidationError({field: "must not contain NUL (\\u0000) characters"})
    return name


def clean_text(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise ValidationError({field: f"must be a string (got {type(value).__name__})"})
    if _has_nul(value):
        raise ValidationError({field: "must not contain NUL (\\u0000) characters"})
    return value.strip()


def clean_key(value: object, field: str = "key") -> str:
    """A param or metric key, as given (keys are identifiers: never rewritten)."""
    if not isinstance(value, str) or not value:
        raise ValidationError({field: f"must be a non-empty string (got {value!r})"})
    if len(value) > MAX_KEY_LENGTH:
        raise ValidationError({field: f"at most {MAX_KEY_LENGTH} characters (got {len(value)})"})
    if not KEY_PATTERN.match(value):
        raise ValidationError({field: f"{value!r}: only letters, digits, spaces and _ - . / are allowed"})
    return value


def clean_tags(value: object, field: str = "tags") -> list[str]:
    """Tags trimmed, inner whitespace collapsed, lower-cased, de-duplicated in order."""
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValidationError({field: f"must be a list of strings (got {type(value).__name__})"})
    tags: list[str] = []
    for index, tag in enumerate(value):
        if not isinstance(tag, str) or not tag.strip():
            raise ValidationError({field: f"item {index}: must be a non-empty string (got {tag!r})"})
        tag = " ".join(tag.split()).lower()
        if len(tag) > MAX_TAG_LENGTH:
            raise ValidationError({field: f"item {index}: at most {MAX_TAG_LENGTH} characters (got {len(tag)})"})
        if _has_nul(tag):
            raise ValidationError({field: f"item {index}: must not contain NUL (\\u0000) characters"})
        if tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise ValidationError({field: f"at most {MAX_TAGS} tags (got {len(tags)})"})
    return tags


def clean_run_tags(value: object, field: str = "tags") -> dict[str, str]:
    """A run's tags: key (a metric-style key) → text (at most ``MAX_TAG_LENGTH`` × 10
    characters), at most ``MAX_TAGS`` of them."""
    if not isinstance(value, Mapping):
        raise ValidationError({field: f"must be an object of key: text (got {type(value).__name__})"})
    if len(value) > MAX_TAGS:
        raise ValidationError({field: f"at most {MAX_TAGS} tags (got {len(value)})"})
    tags: dict[str, str] = {}
    for key, text in value.items():
        clean_key(key, field)
        if not isinstance(text, str) or len(text) > MAX_TAG_LENGTH * 10 or _has_nul(text):
            raise ValidationError(
                {field: f"{key}: must be text of at most {MAX_TAG_LENGTH * 10} characters, without NUL"}
            )
        tags[key] = text
    return tags


def clean_id(value: object, field: str) -> int:
    """A row id (bigint primary key)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_BIGINT:
        raise ValidationError({field: f"not a valid id: {value!r}"})
    return value


def clean_non_negative_int(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_BIGINT:
        raise ValidationError({field: f"must be an integer from 0 to {MAX_BIGINT} (got {value!r})"})
    return value
