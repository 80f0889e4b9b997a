"""The custom cleaning rule: a filter expression over a video's fields, parsed by hand
(a tokenizer and a recursive-descent parser, in the manner of ``experiments.run_search``)
into a Django ``Q`` on ``labeling.Video``. Nothing of the text is evaluated or pasted into
SQL: every value is a query parameter, every field comes from a fixed table.

Grammar (keywords are case-insensitive)::

    filter     := or_expr
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := unary ("and" unary)*
    unary      := "not" unary | "(" or_expr ")" | comparison
    comparison := operand op value
                | field ["not"] "in" "(" value ("," value)* ")"
                | text_field ["not"] ("contains" | "icontains" | "like" | "ilike") string
                | field "is" ["not"] "empty"
    operand    := field | "length" "(" text_field ")"
    op         := "=" | "!=" | "<" | "<=" | ">" | ">="
    value      := number | string

Fields: ``title``, ``description``, ``tags``, ``uploader_name`` (text), ``duration``
(seconds, a number) and ``published_at`` (a quoted date ``"2024-01-31"`` — that whole
day for ``=`` — or date and time). ``not`` binds tighter than ``and``, which binds
tighter than ``or``. A comparison on ``duration`` / ``published_at`` holds only for
videos that have the value; ``is empty`` is true for a missing one, and for text that
is only white space. ``like`` / ``ilike`` take SQL patterns (``%`` any text, ``_`` one
character, ``\\`` escapes them); ``contains`` / ``icontains`` a plain substring.
Examples::

    length(title) < 4 and duration < 30
    tags icontains "广告" or description like "%加群%"
    uploader_name in ("spam1", "spam2") and published_at < "2020-01-01"

A bad expression raises ``FilterSyntaxError``, a ``ValidationError`` keyed ``expression``
whose message names the position (1 = the first character) and what was expected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Union

from django.db.models import F, Q
from django.db.models.functions import Length
from django.db.models.lookups import IRegex, IsNull, Regex

from core import filter_language
from core.filter_language import (
    BoolOp,
    BooleanParser,
    Lexicon,
    Not,
    Token,
    any_of,
    compare,
    datetime_bounds,
    datetime_condition,
    like_regex,
)

MAX_EXPRESSION_LENGTH = 2000
MAX_COMPARISONS = 50
MAX_IN_VALUES = 500
MAX_DEPTH = 30
#: Numbers a comparison may hold (duration is a 32-bit integer column; lengths fit too).
MAX_NUMBER = 2_147_483_647

TEXT_FIELDS = ("title", "description", "tags", "uploader_name")
NUMBER_FIELDS = ("duration",)
DATETIME_FIELDS = ("published_at",)
FIELDS = TEXT_FIELDS + NUMBER_FIELDS + DATETIME_FIELDS
TEXT_OPERATORS = ("contains", "icontains", "like", "ilike")
OPERATORS_TEXT = "=, !=, <, <=, >, >=, in, contains, icontains, like, ilike, is empty"



class FilterSyntaxError(filter_language.FilterSyntaxError):
    """An expression that cannot be compiled: ``position`` (1-based) is where the problem starts."""

    field = "expression"




_LEXICON = Lexicon(
    word=re.compile(r"[A-Za-z_][A-Za-z0-9_]*"),
    number=re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"),
    error=FilterSyntaxError, end_name="the end of the expression",
)


def tokenize(text: str) -> list[Token]:
    return filter_language.tokenize(text, _LEXICON)


@dataclass(frozen=True)
class Operand:
    field: str
    length: bool  # length(field)
    position: int

    @property
    def is_text(self) -> bool:
        return self.field in TEXT_FIELDS and not self.length


@dataclass(frozen=True)
class Value:
    kind: str  # number, string
    value: object  # Decimal or str
    text: str
    position: int


@dataclass(frozen=True)
class Comparison:
    operand: Operand
    op: str  # = != < <= > >= in contains icontains like ilike empty
    values: tuple[Value, ...]
    negated: bool
    position: int


Node = Union[Comparison, BoolOp, Not]


class _Parser(BooleanParser):
    lexicon = _LEXICON
    max_depth = MAX_DEPTH

    def field(self) -> str:
        token = self.current
        if token.kind != "word" or str(token.value).lower() not in FIELDS:
            raise FilterSyntaxError(token.position, f"expected a field ({', '.join(FIELDS)}), got {token.shown()}")
        self.advance()
        return str(token.value).lower()

    def operand(self) -> Operand:
        start = self.current
        if start.kind == "end":
            raise FilterSyntaxError(start.position, "expected a comparison such as length(title) < 4")
        if self.is_word("length") and self.tokens[self.index + 1].kind == "(":
            self.advance()
            self.advance()
            field_token = self.current
            field = self.field()
            if field not in TEXT_FIELDS:
                raise FilterSyntaxError(field_token.position, f"length() takes a text field "
                                                              f"({', '.join(TEXT_FIELDS)}), not {field}")
            self.expect(")", ") closing length(")
            return Operand(field, True, start.position)
        return Operand(self.field(), False, start.position)

    def comparison(self) -> Comparison:
        operand = self.operand()
        self.comparisons += 1
        if self.comparisons > MAX_COMPARISONS:
            raise FilterSyntaxError(operand.position, f"more than {MAX_COMPARISONS} comparisons")
        operator = self.current
        if self.is_word("is"):
            self.advance()
            negated = False
            if self.is_word("not"):
                self.advance()
                negated = True
            if not self.is_word("empty"):
                raise FilterSyntaxError(self.current.position, f"expected empty after is, got {self.current.shown()}")
            self.advance()
            if operand.length:
                raise FilterSyntaxError(operator.position, "length() compares with numbers, not is empty")
            return Comparison(operand, "empty", (), negated, operator.position)
        negated = False
        if self.is_word("not"):
            self.advance()
            negated = True
            if not self.is_word("in", *TEXT_OPERATORS):
                raise FilterSyntaxError(self.current.position,
                                        f"expected in, contains, icontains, like or ilike after not, "
                                        f"got {self.current.shown()}")
        if self.is_word("in"):
            self.advance()
            self.expect("(", "( opening the list of values")
            values = [self.value()]
            while self.current.kind == ",":
                self.advance()
                values.append(self.value())
                if len(values) > MAX_IN_VALUES:
                    raise FilterSyntaxError(values[-1].position, f"more than {MAX_IN_VALUES} values in a list")
            self.expect(")", ", or ) closing the list of values")
            return _checked(Comparison(operand, "in", tuple(values), negated, operator.position))
        if self.is_word(*TEXT_OPERATORS):
            op = str(self.advance().value).lower()
            value = self.value()
            if not operand.is_text:
                raise FilterSyntaxError(operator.position, f"{op} compares text; "
                                                           f"{_operand_text(operand)} is not text")
            if value.kind != "string":
                raise FilterSyntaxError(value.position, f"{op} takes a quoted string, got {value.text}")
            return Comparison(operand, op, (value,), negated, operator.position)
        if operator.kind != "op":
            raise FilterSyntaxError(operator.position, f"expected an operator ({OPERATORS_TEXT}), "
                                                       f"got {operator.shown()}")
        self.advance()
        return _checked(Comparison(operand, str(operator.value), (self.value(),), False, operator.position))

    def value(self) -> Value:
        token = self.current
        if token.kind == "number":
            self.advance()
            try:
                number = Decimal(token.text)
            except InvalidOperation:
                raise FilterSyntaxError(token.position, f"not a number: {token.text}") from None
            return Value("number", number, token.text, token.position)
        if token.kind == "string":
            self.advance()
            return Value("string", token.value, token.text, token.position)
        raise FilterSyntaxError(token.position, f"expected a value (a number or a quoted string), got {token.shown()}")


def _operand_text(operand: Operand) -> str:
    return f"length({operand.field})" if operand.length else operand.field


def _checked(comparison: Comparison) -> Comparison:
    """Value kinds against the operand's kind, checked while parsing (positions known)."""
    operand = comparison.operand
    for value in comparison.values:
        if operand.is_text and value.kind != "string":
            raise FilterSyntaxError(value.position, f"{operand.field} is text: quote the value ({value.text!r} "
                                                    f"→ \"{value.text}\")")
        if (operand.length or operand.field in NUMBER_FIELDS):
            if value.kind != "number" or value.value != value.value.to_integral_value():
                raise FilterSyntaxError(value.position, f"{_operand_text(operand)} takes a whole number, "
                                                        f"got {value.text}")
            if abs(value.value) > MAX_NUMBER:
                raise FilterSyntaxError(value.position, f"{_operand_text(operand)} takes a number up to "
                                                        f"{MAX_NUMBER}")
        if operand.field in DATETIME_FIELDS and not operand.length:
            _datetime_bounds(value)
    return comparison


# --- to a Q on labeling.Video ---------------------------------------------------------------


def _datetime_bounds(value: Value) -> tuple[datetime, datetime | None]:
    return datetime_bounds(value, example='"2024-01-31" or "2024-01-31T10:00"', error=FilterSyntaxError)


def _datetime_q(field: str, op: str, value: Value) -> Q:
    start, next_day = _datetime_bounds(value)
    return datetime_condition(F(field), op, start, next_day)


def _comparison_q(node: Comparison) -> Q:
    operand = node.operand
    field = operand.field
    if node.op == "empty":
        if field in TEXT_FIELDS:
            condition = Q(Regex(F(field), r"^\s*$"))
        else:
            condition = Q(IsNull(F(field), True))
        return ~condition if node.negated else condition
    if node.op in TEXT_OPERATORS:
        pattern = str(node.values[0].value)
        if node.op == "contains":
            condition = Q(**{f"{field}__contains": pattern})
        elif node.op == "icontains":
            condition = Q(**{f"{field}__icontains": pattern})
        else:
            lookup = Regex if node.op == "like" else IRegex
            condition = Q(lookup(F(field), like_regex(pattern)))
        return ~condition if node.negated else condition
    pairs = [("=", value) for value in node.values] if node.op == "in" else [(node.op, node.values[0])]
    expression = Length(F(field)) if operand.length else F(field)
    conditions = []
    for op, value in pairs:
        if field in DATETIME_FIELDS and not operand.length:
            conditions.append(_datetime_q(field, op, value))
        elif operand.length or field in NUMBER_FIELDS:
            conditions.append(compare(expression, op, int(value.value)))
        else:
            conditions.append(compare(expression, op, str(value.value)))
    condition = any_of(conditions)
    return ~condition if node.negated else condition


def _node_q(node: Node) -> Q:
    if isinstance(node, Not):
        return ~_node_q(node.operand)
    if isinstance(node, BoolOp):
        combined = _node_q(node.operands[0])
        for operand in node.operands[1:]:
            combined = combined & _node_q(operand) if node.op == "and" else combined | _node_q(operand)
        return combined
    return _comparison_q(node)


def parse_expression(text: object) -> Node:
    """The syntax tree of an expression; ``FilterSyntaxError`` when bad or empty."""
    if not isinstance(text, str):
        raise FilterSyntaxError(1, "must be text")
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise FilterSyntaxError(MAX_EXPRESSION_LENGTH + 1, f"longer than {MAX_EXPRESSION_LENGTH} characters")
    if "\x00" in text:
        raise FilterSyntaxError(text.index("\x00") + 1, "unexpected NUL character")
    if not text.strip():
        raise FilterSyntaxError(1, "expected a comparison such as length(title) < 4 (the expression is empty)")
    return _Parser(text).parse()


def expression_q(text: object) -> Q:
    """The expression as a condition on videos (``Video.objects.filter(expression_q(text))``)."""
    return _node_q(parse_expression(text))
