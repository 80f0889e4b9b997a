"""Cleaning rules: which videos a rule would exclude from dataset builds, and why.

Each rule has a key, parameters with bounds (``RuleSpec.params``; ``rule_params_clean``
checks and fills defaults, ``ValidationError`` keyed by parameter) and a matcher:

- ``placeholder_text`` — every chosen field (default title and description) is empty,
  only punctuation/symbols, or a placeholder such as 无, -, 暂无简介 (HTML stripped first).
- ``short_title`` — the title (trimmed) has fewer than ``min_length`` characters. SQL.
- ``links_or_emoji_description`` — the description holds links and/or emoji and nothing
  else (white space and punctuation aside).
- ``banned_words`` — a word of the list appears (case-insensitive) in a chosen field.
- ``language`` — the letters of title + description + tags are mostly (below
  ``min_share``) outside the allowed scripts: zh = Han, ja = Han + kana, en = Latin.
  Detected by Unicode ranges (no dependency); a text without letters never matches.
- ``custom`` — a filter expression over title, description, tags, uploader_name,
  duration, published_at (``datasets.cleaning_filter``), compiled to SQL.

The text rules are pure functions of a video's fields (``*_reason`` below: the reason
text when the video matches, else None), run over all videos read with ONE streamed
query; the SQL rules are one query. ``rule_matches`` returns the matches in aid order:
the preview and the run both use it, so the count a preview shows is what the run writes.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import F, Q
from django.db.models.functions import Length, Trim

from datasets.cleaning_filter import expression_q, parse_expression
from datasets.text_composition import clean_text
from labeling.models import Video

#: Videos read per round trip by the streamed scan of the text rules.
SCAN_CHUNK_VIDEOS = 2000
#: A reason quotes at most this much of the video's text.
REASON_QUOTE_CHARS = 40

TEXT_FIELD_CHOICES = ("title", "description", "tags")
LANGUAGE_CHOICES = ("zh", "ja", "en")
DEFAULT_PLACEHOLDERS = (
    "无", "暂无", "暂无简介", "没有简介", "无简介", "简介", "略", "如题", "同上", "n/a", "na", "none", "null", "nil",
    "no description", "なし", "特になし",
)
MAX_LIST_ITEMS = 500
MAX_ITEM_CHARS = 100


# --- parameters -------------------------------------------------------------------------


@dataclass(frozen=True)
class ParamSpec:
    name: str
    kind: str  # int, float, choices (a subset of ``choices``), words (a list of text), text
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    required: bool = False

    def clean(self, raw: Any) -> Any:
        if raw is None or raw == "" or raw == []:
            if self.required:
                raise ValidationError("required")
            return list(self.default) if isinstance(self.default, tuple) else self.default
        if self.kind == "int":
            return self._bounded(_as_number(raw, int))
        if self.kind == "float":
            return self._bounded(_as_number(raw, float))
        if self.kind == "text":
            if not isinstance(raw, str):
                raise ValidationError("must be text")
            return raw
        items = _as_list(raw)
        if self.kind == "choices":
            unknown = [item for item in items if item not in self.choices]
            if unknown:
                raise ValidationError(f"unknown {', '.join(map(repr, unknown))} (choose from {', '.join(self.choices)})")
            items = [choice for choice in self.choices if choice in items]  # canonical order, no repeats
        else:
            too_long = [item for item in items if len(item) > MAX_ITEM_CHARS]
            if too_long:
                raise ValidationError(f"{too_long[0][:20]!r}… is longer than {MAX_ITEM_CHARS} characters")
            items = list(dict.fromkeys(items))
        if len(items) > MAX_LIST_ITEMS:
            raise ValidationError(f"at most {MAX_LIST_ITEMS} items")
        if not items:
            raise ValidationError("give at least one item")
        return items

    def _bounded(self, value):
        if self.minimum is not None and value < self.minimum:
            raise ValidationError(f"must be at least {self.minimum:g}")
        if self.maximum is not None and value > self.maximum:
            raise ValidationError(f"must be at most {self.maximum:g}")
        return value


def _as_number(raw: Any, kind: type):
    if isinstance(raw, bool):
        raise ValidationError("must be a number")
    if isinstance(raw, (int, float)) and kind is float:
        value = float(raw)
    elif isinstance(raw, int) and kind is int:
        return raw
    elif isinstance(raw, str):
        try:
            value = kind(raw.strip())
        except ValueError:
            raise ValidationError(f"must be a{'' if kind is float else ' whole'} number, got {raw!r}") from None
    else:
        raise ValidationError(f"must be a{'' if kind is float else ' whole'} number")
    if value != value or value in (float("inf"), float("-inf")):
        raise ValidationError("must be a finite number")
    return value


_LIST_SEPARATORS = re.compile(r"[\n,，、]")


def _as_list(raw: Any) -> list[str]:
    """A list of text items: a JSON list, or text split on new lines and commas (, ， 、)."""
    if isinstance(raw, str):
        raw = _LIST_SEPARATORS.split(raw)
    if not isinstance(raw, (list, tuple)) or not all(isinstance(item, str) for item in raw):
        raise ValidationError("must be a list of text, or text with one item per line or comma")
    return [item.strip() for item in raw if item.strip()]


# --- the pure text checks ------------------------------------------------------------------


def _quote(text: str) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= REASON_QUOTE_CHARS else text[: REASON_QUOTE_CHARS - 1] + "…"


def _is_filler(char: str) -> bool:
    """White space, punctuation, symbols (emoji included) and marks carry no words."""
    category = unicodedata.category(char)
    return char.isspace() or category[0] in "PSZMC"


def _normalized(text: str) -> str:
    return clean_text(text).casefold()


def text_core(text: str) -> str:
    """The words of a text: HTML stripped, casefolded, without white space, punctuation or symbols."""
    return "".join(char for char in _normalized(text) if not _is_filler(char))


def is_placeholder(text: str, placeholders: frozenset[str]) -> bool:
    """Empty, only punctuation/symbols, or one of ``placeholders`` (given as ``text_core``s)."""
    core = text_core(text)
    return not core or core in placeholders


def placeholder_reason(video: Mapping[str, str], *, fields: list[str], placeholders: frozenset[str]) -> str | None:
    if all(is_placeholder(video[name] or "", placeholders) for name in fields):
        shown = ", ".join(f"{name} {_quote(clean_text(video[name] or ''))!r}" for name in fields)
        return f"no real text: {shown}"
    return None


_URL = re.compile(r"(?:https?://|www\.)\S+|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|cn|net|org|tv|me|jp|io|cc)(?:/\S*)?"
                  r"|\b(?:BV[0-9A-Za-z]{10}|av[0-9]+)\b", re.IGNORECASE)


def _is_emoji(char: str) -> bool:
    code = ord(char)
    return (
        0x1F000 <= code <= 0x1FAFF  # emoticons, pictographs, transport, symbols & pictographs extended
        or 0x2600 <= code <= 0x27BF  # miscellaneous symbols, dingbats
        or 0x2B00 <= code <= 0x2BFF  # arrows, stars
        or 0xFE00 <= code <= 0xFE0F  # variation selectors
        or code == 0x200D  # zero-width joiner
        or 0xE0020 <= code <= 0xE007F  # tag characters (flags)
        or unicodedata.category(char) == "So"
    )


def links_or_emoji_reason(video: Mapping[str, str]) -> str | None:
    description = clean_text(video["description"] or "")
    if not description:
        return None
    links = _URL.findall(description)
    rest = _URL.sub(" ", description)
    emoji = [char for char in rest if _is_emoji(char)]
    if not links and not emoji:
        return None
    if all(_is_emoji(char) or _is_filler(char) for char in rest):
        parts = ([f"{len(links)} link(s)"] if links else []) + ([f"{len(emoji)} emoji"] if emoji else [])
        return f"description is only {' and '.join(parts)}: {_quote(description)!r}"
    return None


def banned_word_reason(video: Mapping[str, str], *, fields: list[str], words: list[str]) -> str | None:
    folded = [(word, word.casefold()) for word in words]
    for name in fields:
        text = _normalized(video[name] or "")
        for word, needle in folded:
            if needle in text:
                return f"banned word {word!r} in {name}"
    return None


def letter_script(char: str) -> str | None:
    """The script of a letter: han, kana, latin, hangul, cyrillic, other; None for a non-letter."""
    code = ord(char)
    if (0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0x20000 <= code <= 0x2FA1F
            or 0xF900 <= code <= 0xFAFF or char in "々〆〇"):
        return "han"
    if 0x3040 <= code <= 0x30FF or 0x31F0 <= code <= 0x31FF or 0xFF66 <= code <= 0xFF9D:
        return "kana"
    if not char.isalpha():
        return None
    if code < 0x250 or 0x1E00 <= code <= 0x1EFF or 0xFF21 <= code <= 0xFF5A:
        return "latin"
    if 0xAC00 <= code <= 0xD7AF or 0x1100 <= code <= 0x11FF or 0x3130 <= code <= 0x318F:
        return "hangul"
    if 0x0400 <= code <= 0x052F:
        return "cyrillic"
    return "other"


#: The scripts whose letters each language allows.
LANGUAGE_SCRIPTS = {"zh": {"han"}, "ja": {"han", "kana"}, "en": {"latin"}}


def script_counts(text: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for char in text:
        script = letter_script(char)
        if script is not None:
            counts[script] = counts.get(script, 0) + 1
    return counts


def language_reason(video: Mapping[str, str], *, languages: list[str], min_share: float) -> str | None:
    text = " ".join(clean_text(video[name] or "") for name in TEXT_FIELD_CHOICES)
    counts = script_counts(text)
    letters = sum(counts.values())
    if not letters:
        return None
    allowed = set().union(*(LANGUAGE_SCRIPTS[language] for language in languages))
    share = sum(count for script, count in counts.items() if script in allowed) / letters
    if share >= min_share:
        return None
    main = max(counts, key=counts.get)
    return (f"{share:.0%} of {letters} letters in {'/'.join(languages)} scripts (< {min_share:.0%}); "
            f"mostly {main}")


# --- the rules ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    video_id: int
    aid: int
    title: str
    reason: str


@dataclass(frozen=True)
class RuleSpec:
    key: str
    label: str
    description: str
    params: tuple[ParamSpec, ...] = ()
    #: A text rule: ``check(video_fields, **params) -> reason | None``, run over a scan.
    check: Callable[..., str | None] | None = None
    #: An SQL rule: ``matches(**params) -> Iterator[Match]``.
    sql_matches: Callable[..., Iterator[Match]] | None = field(default=None, repr=False)


def _short_title_matches(*, min_length: int) -> Iterator[Match]:
    rows = (
        Video.objects.annotate(title_length=Length(Trim(F("title"))))
        .filter(title_length__lt=min_length)
        .order_by("aid")
        .values_list("id", "aid", "title", "title_length")
    )
    for video_id, aid, title, length in rows.iterator(chunk_size=SCAN_CHUNK_VIDEOS):
        yield Match(video_id, aid, title, f"title {_quote(title.strip())!r} has {length} character(s) (< {min_length})")


def _custom_matches(*, expression: str) -> Iterator[Match]:
    condition: Q = expression_q(expression)
    reason = f"custom rule: {_quote(expression)}"
    rows = Video.objects.filter(condition).order_by("aid").values_list("id", "aid", "title")
    for video_id, aid, title in rows.iterator(chunk_size=SCAN_CHUNK_VIDEOS):
        yield Match(video_id, aid, title, reason)


@functools.lru_cache(maxsize=16)
def _placeholder_set(placeholders: tuple[str, ...]) -> frozenset[str]:
    return frozenset(text_core(placeholder) for placeholder in placeholders)


def _placeholder_check(video, *, fields, placeholders):
    return placeholder_reason(video, fields=fields, placeholders=_placeholder_set(tuple(placeholders)))


def _fields_param(default: tuple[str, ...]) -> ParamSpec:
    return ParamSpec("fields", "choices", default, "Fields to look at", choices=TEXT_FIELD_CHOICES)


RULES: dict[str, RuleSpec] = {
    spec.key: spec
    for spec in (
        RuleSpec(
            "placeholder_text", "Empty or placeholder text",
            "Every chosen field is empty, only punctuation/symbols, or a placeholder such as 无, -, 暂无简介.",
            (_fields_param(("title", "description")),
             ParamSpec("placeholders", "words", DEFAULT_PLACEHOLDERS, "Placeholder texts (one per line)")),
            check=_placeholder_check,
        ),
        RuleSpec(
            "short_title", "Short title", "The title, trimmed, has fewer than min_length characters.",
            (ParamSpec("min_length", "int", 4, "Shortest title kept", minimum=1, maximum=200),),
            sql_matches=_short_title_matches,
        ),
        RuleSpec(
            "links_or_emoji_description", "Description only links or emoji",
            "The description holds links (URLs, BV/av ids) and/or emoji and no words.",
            check=lambda video: links_or_emoji_reason(video),
        ),
        RuleSpec(
            "banned_words", "Banned words", "A word of the list appears (any case) in a chosen field.",
            (ParamSpec("words", "words", (), "Banned words (one per line)", required=True),
             _fields_param(TEXT_FIELD_CHOICES)),
            check=banned_word_reason,
        ),
        RuleSpec(
            "language", "Not Chinese/Japanese/English",
            "Fewer than min_share of the letters (title, description, tags) are in the allowed languages' "
            "scripts (zh: Han; ja: Han and kana; en: Latin). Texts without letters never match.",
            (ParamSpec("languages", "choices", LANGUAGE_CHOICES, "Allowed languages", choices=LANGUAGE_CHOICES),
             ParamSpec("min_share", "float", 0.5, "Least share of allowed letters", minimum=0.01, maximum=1.0)),
            check=language_reason,
        ),
        RuleSpec(
            "custom", "Custom rule",
            "A filter expression over title, description, tags, uploader_name, duration, published_at, "
            'e.g. length(title) < 4 and duration < 30, or tags icontains "广告".',
            (ParamSpec("expression", "text", "", "Filter expression", required=True),),
            sql_matches=_custom_matches,
        ),
    )
}


def rule_get(key: object) -> RuleSpec:
    if not isinstance(key, str) or key not in RULES:
        raise ValidationError({"rule": f"unknown rule {key!r} (rules: {', '.join(RULES)})"})
    return RULES[key]


def rule_params_clean(key: object, raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """The rule's parameters checked, defaults filled; ``ValidationError`` keyed
    ``params.<name>`` (or ``rule``) naming every problem."""
    spec = rule_get(key)
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ValidationError({"params": "must be an object"})
    known = {param.name for param in spec.params}
    errors = {f"params.{name}": f"{spec.key} has no parameter {name!r}" for name in raw if name not in known}
    cleaned: dict[str, Any] = {}
    for param in spec.params:
        try:
            cleaned[param.name] = param.clean(raw.get(param.name))
        except ValidationError as error:
            errors[f"params.{param.name}"] = " ".join(error.messages)
    if not errors and spec.key == "custom":
        try:
            parse_expression(cleaned["expression"])
        except ValidationError as error:
            errors["params.expression"] = " ".join(error.messages)
    if errors:
        raise ValidationError(errors)
    return cleaned


def _scanned(check: Callable[..., str | None], params: dict[str, Any]) -> Iterator[Match]:
    rows = Video.objects.order_by("aid").values_list("id", "aid", "title", "description", "tags")
    for video_id, aid, title, description, tags in rows.iterator(chunk_size=SCAN_CHUNK_VIDEOS):
        reason = check({"title": title, "description": description, "tags": tags}, **params)
        if reason is not None:
            yield Match(video_id, aid, title, reason)


def rule_matches(key: str, params: dict[str, Any]) -> Iterator[Match]:
    """Every video the rule matches, in aid order (``params`` as ``rule_params_clean`` returned them)."""
    spec = rule_get(key)
    if spec.sql_matches is not None:
        return spec.sql_matches(**params)
    return _scanned(spec.check, params)
