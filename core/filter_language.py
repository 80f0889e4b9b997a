"""The shared core of the hand-written filter languages (run search in ``experiments``,
custom cleaning rules in ``datasets``): tokens with 1-based positions, quoted strings,
the error that names the position, and the ORM pieces both compile to (comparisons that
are false on NULL, LIKE as an anchored regular expression, dates as day ranges). Each
language keeps its own grammar — its words, operands and operators — in its module and
describes its tokens with a ``Lexicon``."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Protocol

from django.core.exceptions import ValidationError
from django.db.models import Q
from django.db.models.lookups import Exact, GreaterThan, GreaterThanOrEqual, IsNull, LessThan, LessThanOrEqual
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

OPERATORS = ("!=", "<>", "<=", ">=", "==", "=", "<", ">")
OPERATOR_SPELLING = {"<>": "!=", "==": "="}
_LOOKUPS = {"=": Exact, "<": LessThan, "<=": LessThanOrEqual, ">": GreaterThan, ">=": GreaterThanOrEqual}


class FilterSyntaxError(ValidationError):
    """Text that cannot be compiled: ``position`` (1-based) is where the problem starts.
    A language subclasses it to name its form field (``field``)."""

    field = "filter"

    def __init__(self, position: int, problem: str, field: str | None = None):
        self.position = position
        self.problem = problem
        super().__init__({field or self.field: f"at position {position}: {problem}"})


@dataclass(frozen=True)
class Token:
    kind: str  # word, key (a language's quoted key), number, string, op, a punctuation character, end
    text: str  # the source text
    value: object  # a word's or key's text, a string's content, a number's text
    position: int  # 1-based
    end_name: str = "the end"

    def shown(self) -> str:
        return self.end_name if self.kind == "end" else repr(self.text)


@dataclass(frozen=True)
class Lexicon:
    """What one language's tokens look like."""

    word: re.Pattern[str]
    number: re.Pattern[str]
    error: type[FilterSyntaxError]
    end_name: str  # e.g. "the end of the filter"
    key_quote: str | None = None  # a quote whose content is a key, not a string (run search's backticks)
    dot_is_punctuation: bool = False  # "." separates a ref's parts (not a decimal point)


def _quoted(text: str, start: int, quote: str, lexicon: Lexicon) -> tuple[str, int]:
    """The content of the quoted text opening at ``start`` (a backslash escapes the next
    character) and the index after its closing quote."""
    content = []
    index = start + 1
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            content.append(text[index + 1])
            index += 2
            continue
        if char == quote:
            return "".join(content), index + 1
        content.append(char)
        index += 1
    what = "key" if quote == lexicon.key_quote else "string"
    raise lexicon.error(start + 1, f"unclosed {what}: expected a closing {quote}")


def tokenize(text: str, lexicon: Lexicon) -> list[Token]:
    """``text`` as tokens ending with an ``end`` token; ``lexicon.error`` at the first
    character that starts no token."""
    tokens: list[Token] = []
    quotes = "\"'" + (lexicon.key_quote or "")
    index = 0
    while index < len(text):
        char = text[index]
        if char.isspace():
            index += 1
            continue
        position = index + 1
        if char in "()," or (lexicon.dot_is_punctuation and char == "." and not text[index + 1:index + 2].isdigit()):
            tokens.append(Token(char, char, char, position))
            index += 1
            continue
        if char in quotes:
            content, end = _quoted(text, index, char, lexicon)
            tokens.append(Token("key" if char == lexicon.key_quote else "string", text[index:end], content, position))
            index = end
            continue
        operator = next((op for op in OPERATORS if text.startswith(op, index)), None)
        if operator is not None:
            tokens.append(Token("op", operator, OPERATOR_SPELLING.get(operator, operator), position))
            index += len(operator)
            continue
        number = lexicon.number.match(text, index)
        # A sign starts a number only where a value is expected.
        if number and (char not in "+-" or not tokens or tokens[-1].kind in ("op", "(", ",")):
            tokens.append(Token("number", number.group(), number.group(), position))
            index = number.end()
            continue
        word = lexicon.word.match(text, index)
        if word:
            tokens.append(Token("word", word.group(), word.group(), position))
            index = word.end()
            continue
        raise lexicon.error(position, f"unexpected character {char!r}")
    tokens.append(Token("end", "", None, len(text) + 1, end_name=lexicon.end_name))
    return tokens


# --- compiling to the ORM ----------------------------------------------------------------


def like_regex(pattern: str) -> str:
    """A LIKE pattern (``%``, ``_``, backslash escapes) as an anchored regular expression."""
    parts = ["^"]
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            parts.append(re.escape(pattern[index + 1]))
            index += 2
            continue
        parts.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
        index += 1
    parts.append("$")
    return "".join(parts)


def compare(expression, op: str, value) -> Q:
    """``expression op value``, true only where the expression is not NULL (so that
    ``not`` is the complement)."""
    if op == "!=":
        return ~Q(Exact(expression, value)) & Q(IsNull(expression, False))
    return Q(_LOOKUPS[op](expression, value)) & Q(IsNull(expression, False))


def any_of(conditions: Iterable[Q]) -> Q:
    combined = Q()
    for condition in conditions:
        combined |= condition
    return combined


class QuotedValue(Protocol):
    kind: str
    value: object
    text: str
    position: int


def datetime_bounds(value: QuotedValue, *, example: str, error: type[FilterSyntaxError]
                    ) -> tuple[datetime, datetime | None]:
    """A quoted date or date-time: (its start, the next day's start for a date alone),
    aware in the current time zone and representable in UTC (as the database compares)."""
    problem = f"expected a quoted date or time such as {example}"
    if value.kind != "string":
        raise error(value.position, f"{problem}, got {value.text}")
    text = str(value.value).strip()
    try:
        day = parse_date(text)
        moment = None if day is not None else parse_datetime(text)
    except ValueError:
        day = moment = None
    if day is None and moment is None:
        raise error(value.position, f"{problem}, got {value.text}")
    try:
        if day is not None:
            start = timezone.make_aware(datetime.combine(day, time.min))
            next_day = timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min))
            start.astimezone(UTC)
            return start, next_day
        if timezone.is_naive(moment):
            moment = timezone.make_aware(moment)
        moment.astimezone(UTC)
    except (OverflowError, ValueError):
        raise error(value.position, f"the date is out of range, got {value.text}") from None
    return moment, None


def datetime_condition(expression, op: str, start: datetime, next_day: datetime | None) -> Q:
    """``expression op moment``; a date alone (``next_day`` given) is its whole day."""
    if next_day is None:
        return compare(expression, op, start)
    return {
        "=": compare(expression, ">=", start) & compare(expression, "<", next_day),
        "!=": compare(expression, "<", start) | compare(expression, ">=", next_day),
        "<": compare(expression, "<", start),
        "<=": compare(expression, "<", next_day),
        ">": compare(expression, ">=", next_day),
        ">=": compare(expression, ">=", start),
    }[op]


# --- the boolean structure -----------------------------------------------------------------


@dataclass(frozen=True)
class BoolOp:
    op: str  # and, or
    operands: tuple


@dataclass(frozen=True)
class Not:
    operand: object


class BooleanParser:
    """``and`` / ``or`` / ``not`` / parentheses (``not`` binds tightest, then ``and``) over
    a language's comparisons: a subclass sets ``lexicon`` and ``max_depth`` and parses one
    comparison in ``comparison()``, counting it in ``comparisons``."""

    lexicon: Lexicon
    max_depth: int

    def __init__(self, text: str):
        self.tokens = tokenize(text, self.lexicon)
        self.index = 0
        self.comparisons = 0

    @property
    def error(self) -> type[FilterSyntaxError]:
        return self.lexicon.error

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        if token.kind != "end":
            self.index += 1
        return token

    def is_word(self, *words: str) -> bool:
        return self.current.kind == "word" and str(self.current.value).lower() in words

    def expect(self, kind: str, what: str) -> Token:
        if self.current.kind != kind:
            raise self.error(self.current.position, f"expected {what}, got {self.current.shown()}")
        return self.advance()

    def parse(self):
        node = self.or_expr(0)
        if self.current.kind != "end":
            raise self.error(self.current.position,
                             f"expected and, or or {self.lexicon.end_name}, got {self.current.shown()}")
        return node

    def or_expr(self, depth: int):
        operands = [self.and_expr(depth)]
        while self.is_word("or"):
            self.advance()
            operands.append(self.and_expr(depth))
        return operands[0] if len(operands) == 1 else BoolOp("or", tuple(operands))

    def and_expr(self, depth: int):
        operands = [self.unary(depth)]
        while self.is_word("and"):
            self.advance()
            operands.append(self.unary(depth))
        return operands[0] if len(operands) == 1 else BoolOp("and", tuple(operands))

    def unary(self, depth: int):
        if depth >= self.max_depth:
            raise self.error(self.current.position, f"nested more than {self.max_depth} deep")
        if self.is_word("not"):
            self.advance()
            return Not(self.unary(depth + 1))
        if self.current.kind == "(":
            opening = self.advance()
            node = self.or_expr(depth + 1)
            if self.current.kind != ")":
                raise self.error(
                    self.current.position,
                    f"expected ) closing the ( at position {opening.position}, got {self.current.shown()}",
                )
            self.advance()
            return node
        return self.comparison()

    def comparison(self):
        raise NotImplementedError
