"""The run search language: a filter expression over a run's params, metrics, tags and
attributes, parsed by hand (a tokenizer and a recursive-descent parser) into Django
``Q`` / ``Exists`` expressions whose values are all query parameters. Nothing of the
text is evaluated or pasted into SQL: a key or a value is only ever a parameter.

Grammar (keywords are case-insensitive)::

    filter     := or_expr
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := unary ("and" unary)*
    unary      := "not" unary | "(" or_expr ")" | comparison
    comparison := ref op value
                | ref ["not"] "in" "(" value ("," value)* ")"
                | ref ["not"] ("like" | "ilike") string
    ref        := ("params" | "tags") "." key
                | "metrics" "." key ["." aggregate]
                | ["attributes" "."] attribute
    op         := "=" | "!=" | "<" | "<=" | ">" | ">="
    value      := number | string | "true" | "false"
    key        := a word (letters, digits, _ - /) or any text in `backticks`
    aggregate  := "latest" | "final" | "best" | "min" | "max"

``not`` binds tighter than ``and``, which binds tighter than ``or``. A comparison holds
only for runs that have the value (a param, a metric, a tag, a start time): a run
without ``params.lr`` matches neither ``params.lr = 1`` nor ``params.lr != 1``, and
``not`` takes the complement (``not params.lr = 1`` includes it).

- ``metrics.<key>`` is the latest value (= ``final``); ``min`` / ``max`` the lowest /
  highest of the run; ``best`` is ``min`` when the key is the run's experiment's metric
  and the experiment minimizes it, ``max`` otherwise (for any other key, say
  ``metrics.val_loss.min`` rather than ``best``). Read from the per-run summaries.
- Params and tags are text. Compared with a number, only values that read as a number
  (``0.01``, ``1e-2``, ``.5``) are compared, as numbers (so ``params.lr = 0.01`` matches
  ``1e-2`` too); compared with a string, as text; ``true`` / ``false`` match the text
  ``true`` / ``false`` in any case.
- ``like`` / ``ilike`` (case-insensitive) take SQL patterns: ``%`` any text, ``_`` one
  character, ``\\`` escapes them.
- Attributes: ``id``, ``name``, ``status``, ``architecture``, ``seed``, ``experiment``
  (a number: its id; a string: its name), ``dataset_version`` (its id, a UUID),
  ``created`` / ``started`` / ``finished`` (``"2026-11-28"``: that whole day in the
  server's time zone for ``=``; or ``"2026-11-28T10:00"``) and ``duration`` (seconds).

A bad expression raises ``FilterSyntaxError``, a ``ValidationError`` keyed ``filter``
whose message names the position (1 = the first character) and what was expected.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Union

from django.core.exceptions import ValidationError
from django.db.models import (
    Case,
    DecimalField,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    FloatField,
    Func,
    OuterRef,
    Q,
    When,
)
from django.db.models.fields.json import KeyTextTransform
from django.db.models.lookups import (
    Exact,
    GreaterThan,
    GreaterThanOrEqual,
    IExact,
    IRegex,
    IsNull,
    LessThan,
    LessThanOrEqual,
    Regex,
)
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from core.api.bounds import MAX_BIGINT, MIN_BIGINT
from experiments.models import FLOAT_MAX, MetricDirection, Param, RunMetricSummary, RunStatus
from experiments.selectors import NUMERIC_TEXT_PATTERN
from experiments.services.validation import clean_key

#: Longer filters are refused before parsing (a query string, not a program).
MAX_FILTER_LENGTH = 4000
#: Comparisons in one filter, values in one ``in (...)``, nesting of ``not`` / parentheses:
#: bounds on the SQL one request can build.
MAX_COMPARISONS = 100
MAX_IN_VALUES = 1000
MAX_DEPTH = 50

AGGREGATES = ("latest", "final", "best", "min", "max")
#: The summary column of each aggregate (``best`` depends on the run's experiment).
AGGREGATE_FIELDS = {"latest": "latest_value", "final": "latest_value", "min": "min_value", "max": "max_value"}
COMPARISON_OPERATORS = ("=", "!=", "<", "<=", ">", ">=")
OPERATORS_TEXT = "=, !=, <, <=, >, >=, in, not in, like, ilike"
NAMESPACES = {
    "params": "param", "param": "param",
    "metrics": "metric", "metric": "metric",
    "tags": "tag", "tag": "tag",
    "attributes": "attribute", "attribute": "attribute", "attr": "attribute",
}


class AttributeKind:
    TEXT = "text"
    INTEGER = "integer"
    DATETIME = "datetime"
    SECONDS = "seconds"
    EXPERIMENT = "experiment"
    STATUS = "status"
    UUID = "uuid"


#: Attribute → (kind, the run's field).
ATTRIBUTES: dict[str, tuple[str, str]] = {
    "id": (AttributeKind.INTEGER, "id"),
    "name": (AttributeKind.TEXT, "name"),
    "status": (AttributeKind.STATUS, "status"),
    "architecture": (AttributeKind.TEXT, "architecture_key"),
    "seed": (AttributeKind.INTEGER, "seed"),
    "experiment": (AttributeKind.EXPERIMENT, "experiment"),
    "dataset_version": (AttributeKind.UUID, "dataset_version_id"),
    "created": (AttributeKind.DATETIME, "created_at"),
    "started": (AttributeKind.DATETIME, "started_at"),
    "finished": (AttributeKind.DATETIME, "finished_at"),
    "duration": (AttributeKind.SECONDS, "duration"),
}

_LOOKUPS = {"=": Exact, "<": LessThan, "<=": LessThanOrEqual, ">": GreaterThan, ">=": GreaterThanOrEqual}


class FilterSyntaxError(ValidationError):
    """A filter that cannot be searched: ``position`` (1-based) is where the problem starts."""

    def __init__(self, position: int, problem: str, field: str = "filter"):
        self.position = position
        self.problem = problem
        super().__init__({field: f"at position {position}: {problem}"})


# --- tokens ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    kind: str  # word, key (backticks), number, string, op, "(", ")", ",", ".", end
    text: str  # the source text
    value: object  # a word's or key's text, a string's content, a number as Decimal
    position: int  # 1-based

    def shown(self) -> str:
        return "the end of the filter" if self.kind == "end" else repr(self.text)


_NUMBER = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_\-/]*")
_OPERATORS = ("!=", "<>", "<=", ">=", "==", "=", "<", ">")
_OPERATOR_SPELLING = {"<>": "!=", "==": "="}


def _quoted(text: str, start: int, quote: str) -> tuple[str, int]:
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
    what = "key" if quote == "`" else "string"
    raise FilterSyntaxError(start + 1, f"unclosed {what}: expected a closing {quote}")


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char.isspace():
            index += 1
            continue
        position = index + 1
        if char in "()," or (char == "." and not text[index + 1:index + 2].isdigit()):
            tokens.append(Token(char, char, char, position))
            index += 1
            continue
        if char in "\"'`":
            content, end = _quoted(text, index, char)
            tokens.append(Token("key" if char == "`" else "string", text[index:end], content, position))
            index = end
            continue
        operator = next((op for op in _OPERATORS if text.startswith(op, index)), None)
        if operator is not None:
            tokens.append(Token("op", operator, _OPERATOR_SPELLING.get(operator, operator), position))
            index += len(operator)
            continue
        number = _NUMBER.match(text, index)
        if number and (char not in "+-" or not tokens or tokens[-1].kind in ("op", "(", ",")):
            tokens.append(Token("number", number.group(), number.group(), position))
            index = number.end()
            continue
        word = _WORD.match(text, index)
        if word:
            tokens.append(Token("word", word.group(), word.group(), position))
            index = word.end()
            continue
        raise FilterSyntaxError(position, f"unexpected character {char!r}")
    tokens.append(Token("end", "", None, len(text) + 1))
    return tokens


# --- syntax tree -------------------------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    """What a comparison (or a sort) reads: ``kind`` param, metric, tag or attribute."""

    kind: str
    key: str
    aggregate: str = "latest"
    position: int = 1

    @property
    def text(self) -> str:
        """The canonical spelling (what a sort link carries)."""
        if self.kind == "attribute":
            return self.key
        key = self.key if _WORD.fullmatch(self.key) else "`" + self.key.replace("\\", "\\\\").replace("`", "\\`") + "`"
        spelled = f"{self.kind}s.{key}"
        return f"{spelled}.{self.aggregate}" if self.kind == "metric" and self.aggregate != "latest" else spelled


@dataclass(frozen=True)
class Value:
    kind: str  # number, string, bool
    value: object  # Decimal, str, bool
    text: str
    position: int


@dataclass(frozen=True)
class Comparison:
    ref: Ref
    op: str  # = != < <= > >= in like ilike
    values: tuple[Value, ...]
    negated: bool  # not in / not like
    position: int  # of the operator


@dataclass(frozen=True)
class BoolOp:
    op: str  # and, or
    operands: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    operand: Node


Node = Union[Comparison, BoolOp, Not]


class _Parser:
    def __init__(self, text: str):
        self.tokens = tokenize(text)
        self.index = 0
        self.comparisons = 0

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
            raise FilterSyntaxError(self.current.position, f"expected {what}, got {self.current.shown()}")
        return self.advance()

    def parse(self) -> Node:
        node = self.or_expr(0)
        if self.current.kind != "end":
            raise FilterSyntaxError(self.current.position,
                                    f"expected and, or or the end of the filter, got {self.current.shown()}")
        return node

    def or_expr(self, depth: int) -> Node:
        operands = [self.and_expr(depth)]
        while self.is_word("or"):
            self.advance()
            operands.append(self.and_expr(depth))
        return operands[0] if len(operands) == 1 else BoolOp("or", tuple(operands))

    def and_expr(self, depth: int) -> Node:
        operands = [self.unary(depth)]
        while self.is_word("and"):
            self.advance()
            operands.append(self.unary(depth))
        return operands[0] if len(operands) == 1 else BoolOp("and", tuple(operands))

    def unary(self, depth: int) -> Node:
        if depth >= MAX_DEPTH:
            raise FilterSyntaxError(self.current.position, f"nested more than {MAX_DEPTH} deep")
        if self.is_word("not"):
            self.advance()
            return Not(self.unary(depth + 1))
        if self.current.kind == "(":
            opening = self.advance()
            node = self.or_expr(depth + 1)
            if self.current.kind != ")":
                raise FilterSyntaxError(
                    self.current.position,
                    f"expected ) closing the ( at position {opening.position}, got {self.current.shown()}",
                )
            self.advance()
            return node
        return self.comparison()

    def comparison(self) -> Comparison:
        if self.current.kind == "end":
            raise FilterSyntaxError(self.current.position, "expected a comparison such as params.lr < 0.01")
        ref = parse_ref_tokens(self)
        self.comparisons += 1
        if self.comparisons > MAX_COMPARISONS:
            raise FilterSyntaxError(ref.position, f"more than {MAX_COMPARISONS} comparisons")
        operator = self.current
        negated = False
        if self.is_word("not"):
            self.advance()
            negated = True
            if not self.is_word("in", "like", "ilike"):
                raise FilterSyntaxError(self.current.position,
                                        f"expected in, like or ilike after not, got {self.current.shown()}")
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
            return Comparison(ref, "in", tuple(values), negated, operator.position)
        if self.is_word("like", "ilike"):
            op = str(self.advance().value).lower()
            value = self.value()
            if value.kind != "string":
                raise FilterSyntaxError(value.position, f"{op} takes a quoted pattern, got {value.text!r}")
            return Comparison(ref, op, (value,), negated, operator.position)
        if operator.kind != "op":
            raise FilterSyntaxError(operator.position, f"expected an operator ({OPERATORS_TEXT}), "
                                                       f"got {operator.shown()}")
        self.advance()
        return Comparison(ref, str(operator.value), (self.value(),), False, operator.position)

    def value(self) -> Value:
        token = self.current
        if token.kind == "number":
            self.advance()
            return Value("number", _number(token), token.text, token.position)
        if token.kind == "string":
            self.advance()
            return Value("string", token.value, token.text, token.position)
        if self.is_word("true", "false"):
            self.advance()
            return Value("bool", str(token.value).lower() == "true", token.text, token.position)
        hint = " (quote text: \"...\")" if token.kind == "word" else ""
        raise FilterSyntaxError(token.position, f"expected a value (a number, a quoted string, true or false), "
                                                f"got {token.shown()}{hint}")


def _number(token: Token) -> Decimal:
    try:
        number = Decimal(token.text)
    except InvalidOperation:
        raise FilterSyntaxError(token.position, f"{token.text!r} is not a number") from None
    if not number.is_finite() or abs(number) > Decimal(FLOAT_MAX) or abs(number.adjusted()) > 400:
        raise FilterSyntaxError(token.position, f"{token.text!r} is out of range")
    return number


def _key(parser: _Parser, namespace: str) -> tuple[str, int]:
    token = parser.current
    if token.kind not in ("word", "key"):
        raise FilterSyntaxError(token.position, f"expected a {namespace} key after {namespace}s. "
                                                f"(a name, or any text in `backticks`), got {token.shown()}")
    parser.advance()
    try:
        return clean_key(token.value, "key"), token.position
    except ValidationError as error:
        raise FilterSyntaxError(token.position, f"no {namespace} can have the key {token.value!r}: "
                                                f"{error.message_dict['key'][0]}") from None


def parse_ref_tokens(parser: _Parser) -> Ref:
    token = parser.current
    if token.kind != "word":
        raise FilterSyntaxError(token.position, "expected params.<key>, metrics.<key>, tags.<key> or an attribute "
                                                f"({', '.join(ATTRIBUTES)}), got {token.shown()}")
    word = str(token.value)
    namespace = NAMESPACES.get(word.lower())
    if namespace is None or parser.tokens[parser.index + 1].kind != ".":
        if word.lower() in ATTRIBUTES:
            parser.advance()
            return Ref("attribute", word.lower(), position=token.position)
        if namespace is not None:
            raise FilterSyntaxError(parser.tokens[parser.index + 1].position, f"expected . after {word}")
        raise FilterSyntaxError(token.position, f"unknown attribute {word!r} (attributes: {', '.join(ATTRIBUTES)}; "
                                                "or params., metrics., tags.)")
    parser.advance()
    parser.advance()  # the dot
    if namespace == "attribute":
        name = parser.current
        if name.kind != "word" or str(name.value).lower() not in ATTRIBUTES:
            raise FilterSyntaxError(name.position, f"unknown attribute {name.shown()} "
                                                   f"(attributes: {', '.join(ATTRIBUTES)})")
        parser.advance()
        return Ref("attribute", str(name.value).lower(), position=token.position)
    key, _key_position = _key(parser, namespace)
    aggregate = "latest"
    if parser.current.kind == ".":
        dot = parser.advance()
        if namespace != "metric":
            raise FilterSyntaxError(dot.position, f"a {namespace} has no aggregate: quote a key holding dots "
                                                  f"in backticks ({word}.`{key}.…`)")
        name = parser.current
        if name.kind != "word" or str(name.value).lower() not in AGGREGATES:
            raise FilterSyntaxError(name.position, f"expected an aggregate ({', '.join(AGGREGATES)}), "
                                                   f"got {name.shown()}")
        parser.advance()
        aggregate = str(name.value).lower()
    return Ref(namespace, key, aggregate, token.position)


def _check_length(text: str, field: str) -> None:
    if len(text) > MAX_FILTER_LENGTH:
        raise FilterSyntaxError(MAX_FILTER_LENGTH + 1, f"longer than {MAX_FILTER_LENGTH} characters", field)
    if "\x00" in text:
        raise FilterSyntaxError(text.index("\x00") + 1, "unexpected NUL character", field)


def parse_filter(text: str) -> Node | None:
    """The syntax tree of a filter; None for an empty one. ``FilterSyntaxError`` when bad."""
    if not isinstance(text, str):
        raise FilterSyntaxError(1, "must be text")
    _check_length(text, "filter")
    if not text.strip():
        return None
    return _Parser(text).parse()


def parse_ref(text: str, field: str = "sort") -> Ref:
    """One ref alone (a sort column): ``metrics.val_f1.best``, ``params.lr``, ``created``."""
    _check_length(text, field)
    try:
        parser = _Parser(text)
        ref = parse_ref_tokens(parser)
        if parser.current.kind != "end":
            raise FilterSyntaxError(parser.current.position, f"expected the end after the column, "
                                                             f"got {parser.current.shown()}")
    except FilterSyntaxError as error:
        raise FilterSyntaxError(error.position, error.problem, field) from None
    return ref


def referenced(node: Node | None) -> list[Ref]:
    """The refs a filter reads, in order (the columns a result page shows first)."""
    if node is None:
        return []
    if isinstance(node, Comparison):
        return [node.ref]
    if isinstance(node, Not):
        return referenced(node.operand)
    return [ref for operand in node.operands for ref in referenced(operand)]


# --- to SQL --------------------------------------------------------------------------------


def with_best(summaries, key: str):
    """Summaries of an outer run annotated with ``best``: the column picked by the run's
    experiment (one subquery, not one per column)."""
    return summaries.annotate(best=Case(
        When(Q(Exact(OuterRef("experiment__metric_key"), key))
             & Q(Exact(OuterRef("experiment__metric_direction"), MetricDirection.MINIMIZE)), then=F("min_value")),
        default=F("max_value"), output_field=FloatField(),
    ))


def numeric_text(text) -> Case:
    """A text expression as ``numeric`` where it reads as a number, else NULL (the CASE
    guards the cast, so no text ever fails it)."""
    return Case(
        When(Regex(text, NUMERIC_TEXT_PATTERN),
             then=Func(text, template="(%(expressions)s)::numeric", output_field=DecimalField())),
        default=None, output_field=DecimalField(),
    )


def _like_regex(pattern: str) -> str:
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


def _compare(expression, op: str, value) -> Q:
    """``expression op value``, true only where the expression is not NULL (so that
    ``not`` is the complement)."""
    if op == "!=":
        return ~Q(Exact(expression, value)) & Q(IsNull(expression, False))
    return Q(_LOOKUPS[op](expression, value)) & Q(IsNull(expression, False))


def _any(conditions: list[Q]) -> Q:
    combined = Q()
    for condition in conditions:
        combined |= condition
    return combined


def _single_op(comparison: Comparison) -> list[tuple[str, Value]]:
    """(op, value) pairs whose OR is the comparison (``in`` is a list of ``=``)."""
    if comparison.op == "in":
        return [("=", value) for value in comparison.values]
    return [(comparison.op, comparison.values[0])]


def _text_condition(text, comparison: Comparison) -> Q:
    """A comparison on a text expression (a param's value, a tag): numbers against the
    values that read as numbers, strings as text, booleans as ``true``/``false``."""
    conditions = []
    for op, value in _single_op(comparison):
        if op in ("like", "ilike"):
            lookup = Regex if op == "like" else IRegex
            conditions.append(Q(lookup(text, _like_regex(value.value))) & Q(IsNull(text, False)))
        elif value.kind == "number":
            conditions.append(_compare(numeric_text(text), op, value.value))
        elif value.kind == "bool":
            if op not in ("=", "!="):
                raise FilterSyntaxError(comparison.position, f"true and false compare with = or !=, not {op}")
            matches = Q(IExact(text, "true" if value.value else "false"))
            conditions.append((matches if op == "=" else ~matches) & Q(IsNull(text, False)))
        else:
            conditions.append(_compare(text, op, value.value))
    return _any(conditions)


def _number_condition(field: str, comparison: Comparison) -> Q:
    conditions = []
    for op, value in _single_op(comparison):
        if op in ("like", "ilike"):
            raise FilterSyntaxError(comparison.position, f"{op} compares text; metrics are numbers")
        if value.kind != "number":
            raise FilterSyntaxError(value.position, f"metrics compare with numbers, got {value.text}")
        conditions.append(_compare(F(field), op, float(value.value)))
    return _any(conditions)


def _metric_q(comparison: Comparison) -> Q:
    ref = comparison.ref
    summaries = RunMetricSummary.objects.filter(run=OuterRef("pk"), key=ref.key)
    if ref.aggregate != "best":
        return Q(Exists(summaries.filter(_number_condition(AGGREGATE_FIELDS[ref.aggregate], comparison))))
    return Q(Exists(with_best(summaries, ref.key).filter(_number_condition("best", comparison))))


def _param_q(comparison: Comparison) -> Q:
    params = Param.objects.filter(run=OuterRef("pk"), key=comparison.ref.key)
    return Q(Exists(params.filter(_text_condition(F("value"), comparison))))


def _tag_q(comparison: Comparison) -> Q:
    key = comparison.ref.key
    if comparison.op in ("=", "in") and all(value.kind == "string" for value in comparison.values):
        # Text equality as containment: the tags' GIN index answers it.
        return _any([Q(tags__contains={key: value.value}) for value in comparison.values])
    return _text_condition(KeyTextTransform(key, "tags"), comparison)


def _when(value: Value, problem: str) -> FilterSyntaxError:
    return FilterSyntaxError(value.position, f"{problem}, got {value.text}")


def _datetime_bounds(value: Value) -> tuple[datetime, datetime | None]:
    """A date or datetime value: (its start, the next day's start for a date alone)."""
    if value.kind != "string":
        raise _when(value, 'expected a quoted date or time such as "2026-11-28" or "2026-11-28T10:00"')
    text = value.value.strip()
    try:
        day = parse_date(text)
        moment = None if day is not None else parse_datetime(text)
    except ValueError:
        day = moment = None
    if day is None and moment is None:
        raise _when(value, 'expected a quoted date or time such as "2026-11-28" or "2026-11-28T10:00"')
    try:
        if day is not None:
            start = timezone.make_aware(datetime.combine(day, time.min))
            next_day = timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min))
            start.astimezone(UTC)
            return start, next_day
        if timezone.is_naive(moment):
            moment = timezone.make_aware(moment)
        moment.astimezone(UTC)  # representable in UTC too (as the database compares it)
    except (OverflowError, ValueError):
        raise _when(value, "the date is out of range") from None
    return moment, None


def _datetime_q(field: str, op: str, value: Value) -> Q:
    start, next_day = _datetime_bounds(value)
    if next_day is None:
        return _compare(F(field), op, start)
    # A date alone is its whole day.
    expression = F(field)
    day = _compare(expression, ">=", start) & _compare(expression, "<", next_day)
    return {
        "=": day,
        "!=": (_compare(expression, "<", start) | _compare(expression, ">=", next_day)),
        "<": _compare(expression, "<", start),
        "<=": _compare(expression, "<", next_day),
        ">": _compare(expression, ">=", next_day),
        ">=": _compare(expression, ">=", start),
    }[op]


def _integer(value: Value, what: str) -> int:
    if value.kind != "number" or value.value != value.value.to_integral_value():
        raise _when(value, f"{what} takes a whole number")
    number = int(value.value)
    if not MIN_BIGINT <= number <= MAX_BIGINT:
        raise _when(value, f"{what} takes a number between {MIN_BIGINT} and {MAX_BIGINT}")
    return number


def _text_value(value: Value, what: str) -> str:
    if value.kind == "bool":
        raise _when(value, f"{what} takes text")
    return value.value if value.kind == "string" else value.text


def _attribute_q(comparison: Comparison) -> Q:
    name = comparison.ref.key
    kind, field = ATTRIBUTES[name]
    conditions = []
    for op, value in _single_op(comparison):
        like = op in ("like", "ilike")
        if like and kind not in (AttributeKind.TEXT, AttributeKind.STATUS, AttributeKind.EXPERIMENT):
            raise FilterSyntaxError(comparison.position, f"{op} compares text; {name} is not text")
        if kind == AttributeKind.STATUS and not like:
            status = _text_value(value, name)
            if status not in RunStatus.values:
                raise _when(value, f"expected a status ({', '.join(RunStatus.values)})")
            conditions.append(_compare(F(field), op, status))
        elif kind == AttributeKind.EXPERIMENT and value.kind == "number" and not like:
            conditions.append(_compare(F("experiment_id"), op, _integer(value, name)))
        elif kind in (AttributeKind.TEXT, AttributeKind.STATUS, AttributeKind.EXPERIMENT):
            column = "experiment__name" if kind == AttributeKind.EXPERIMENT else field
            if like:
                lookup = Regex if op == "like" else IRegex
                conditions.append(Q(lookup(F(column), _like_regex(value.value))))
            else:
                conditions.append(_compare(F(column), op, _text_value(value, name)))
        elif kind == AttributeKind.INTEGER:
            conditions.append(_compare(F(field), op, _integer(value, name)))
        elif kind == AttributeKind.UUID:
            if op not in ("=", "!="):
                raise FilterSyntaxError(comparison.position, f"{name} compares with =, != or in, not {op}")
            try:
                version = uuid.UUID(str(value.value)) if value.kind == "string" else None
            except ValueError:
                version = None
            if version is None:
                raise _when(value, "expected a dataset version's id (a quoted UUID)")
            conditions.append(_compare(F(field), op, version))
        elif kind == AttributeKind.DATETIME:
            conditions.append(_datetime_q(field, op, value))
        else:  # seconds
            if value.kind != "number":
                raise _when(value, f"{name} takes a number of seconds")
            try:
                seconds = timedelta(seconds=float(value.value))
            except OverflowError:
                raise _when(value, f"{name} is out of range") from None
            duration = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
            conditions.append(_compare(duration, op, seconds))
    return _any(conditions)


_COMPILERS = {"metric": _metric_q, "param": _param_q, "tag": _tag_q, "attribute": _attribute_q}


def _node_q(node: Node) -> Q:
    if isinstance(node, Not):
        return ~_node_q(node.operand)
    if isinstance(node, BoolOp):
        combined = _node_q(node.operands[0])
        for operand in node.operands[1:]:
            combined = combined & _node_q(operand) if node.op == "and" else combined | _node_q(operand)
        return combined
    condition = _COMPILERS[node.ref.kind](node)
    return ~condition if node.negated else condition


def filter_q(text: str) -> Q:
    """The filter as a condition on runs (``Run.objects.filter(filter_q(text))``); an
    empty filter is every run. ``FilterSyntaxError`` (a ``ValidationError`` keyed
    ``filter``, naming the position) when the text is not a valid filter."""
    node = parse_filter(text)
    return Q() if node is None else _node_q(node)
