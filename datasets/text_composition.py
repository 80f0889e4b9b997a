"""Compose the text that is embedded for a video.

The composed text is hashed (`text_checksum`) and embeddings are deduplicated by
(model, checksum), so any change to the output of `compose_video_text` for the same
input must come with a new `TEXT_TEMPLATE_VERSION`: dataset versions record the
version they were built with, and old embeddings stay valid for old versions.

Template v1 (one line per non-empty part, parts in this order)::

    标题：<title>
    简介：<description>
    标签：<tag>, <tag>, ...

- Each part is cleaned: HTML comments, `<script>`/`<style>` blocks and tags removed
  (block tags such as `<br>`, `<p>` become a space), entities unescaped once,
  Unicode NFC-normalised, invisible characters (zero-width, BOM, controls) removed,
  every run of whitespace (newlines included) collapsed to one space, ends trimmed.
- Tags arrive comma separated upstream; ASCII/full-width commas, `、` and semicolons
  all separate tags. Empty tags are dropped and duplicates (after cleaning) keep
  only their first occurrence.
- A part that is empty after cleaning is omitted together with its label; a video
  with no text at all composes to "" (callers skip it: there is nothing to embed).

The labels are Chinese because the corpus is (Bilibili); multilingual embedding
models read them fine, and a label tells the model which part is which.
"""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata
from collections.abc import Iterable
from typing import Final

TEXT_TEMPLATE_VERSION: Final = "v1"

TITLE_LABEL: Final = "标题："
DESCRIPTION_LABEL: Final = "简介："
TAGS_LABEL: Final = "标签："
TAG_SEPARATOR: Final = ", "

_COMMENT_PATTERN: Final = re.compile(r"<!--.*?(?:-->|$)", re.DOTALL)
_SCRIPT_OR_STYLE_PATTERN: Final = re.compile(
    r"<\s*(script|style)\b[^>]*>.*?(?:<\s*/\s*\1\s*>|$)", re.IGNORECASE | re.DOTALL
)
# Tags that separate words when rendered; removing them without a space would glue
# the neighbouring words together ("line one<br>line two").
_BLOCK_TAG_PATTERN: Final = re.compile(
    r"<\s*/?\s*(?:br|p|div|li|ul|ol|tr|td|th|table|h[1-6]|blockquote|pre|hr|section|article)\b[^>]*>",
    re.IGNORECASE,
)
# Only things that look like real tags (`<` followed by a letter, `/` or `!`), so text
# such as "a < b > c" or "<3" survives.
_TAG_PATTERN: Final = re.compile(r"<\s*[/!]?\s*[A-Za-z][^<>]*>")
_TAG_SPLIT_PATTERN: Final = re.compile(r"[,，、;；]")
_WHITESPACE_PATTERN: Final = re.compile(r"\s+")
# Zero-width and BOM characters are format characters (Cf) that \s does not match.
_INVISIBLE_CATEGORIES: Final = frozenset({"Cc", "Cf"})


def compose_video_text(
    *,
    title: str | None,
    description: str | None,
    tags: str | Iterable[str] | None,
) -> str:
    """The template-v1 text of one video; deterministic for the same input."""
    lines: list[str] = []
    clean_title = clean_text(title)
    if clean_title:
        lines.append(TITLE_LABEL + clean_title)
    clean_description = clean_text(description)
    if clean_description:
        lines.append(DESCRIPTION_LABEL + clean_description)
    clean_tags = normalize_tags(tags)
    if clean_tags:
        lines.append(TAGS_LABEL + TAG_SEPARATOR.join(clean_tags))
    return "\n".join(lines)


def text_checksum(text: str) -> str:
    """SHA-256 hex digest (64 characters) of the exact UTF-8 bytes of `text`."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def clean_text(value: str | None) -> str:
    """Strip HTML, unescape entities, drop invisible characters, collapse whitespace."""
    if not value:
        return ""
    text = _COMMENT_PATTERN.sub(" ", value)
    text = _SCRIPT_OR_STYLE_PATTERN.sub(" ", text)
    text = _BLOCK_TAG_PATTERN.sub(" ", text)
    text = _TAG_PATTERN.sub("", text)
    # After removing tags, so an escaped "&lt;b&gt;" stays visible text.
    text = html.unescape(text)
    text = _WHITESPACE_PATTERN.sub(" ", unicodedata.normalize("NFC", text))
    # Printable text (the usual case) holds no control or format character: only text
    # that is not pays for the per-character pass (whose removals may join spaces).
    if not text.isprintable():
        text = "".join(
            character for character in text if unicodedata.category(character) not in _INVISIBLE_CATEGORIES
        )
        text = _WHITESPACE_PATTERN.sub(" ", text)
    return text.strip()


def normalize_tags(tags: str | Iterable[str] | None) -> list[str]:
    """Cleaned, non-empty, de-duplicated tags in their original order."""
    if not tags:
        return []
    raw_tags: Iterable[str] = [tags] if isinstance(tags, str) else tags
    seen: set[str] = set()
    result: list[str] = []
    for raw in raw_tags:
        # Clean first: an entity such as "&#44;" may itself decode to a separator.
        for part in _TAG_SPLIT_PATTERN.split(clean_text(raw)):
            tag = part.strip()
            if tag and tag not in seen:
                seen.add(tag)
                result.append(tag)
    return result
