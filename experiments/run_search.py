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
  highest of the run; ``best`` follows the run's experiment's direction when the key is
  its ranking metric, else it is ``min`` for a loss (``loss``, ``val_loss``, …) and
  ``max`` for any other key. Read from the per-run summaries.
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
from datetime import timedelta
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
from django.db.models.lookups import Exact, IExact, IRegex, IsNull, Regex

from core import filter_language
from core.api.bounds import MAX_BIGINT, MIN_BIGINT
from core.filter_language import (
    BoolOp,
    BooleanParser,
    FilterSyntaxError,
    Lexicon,
    Not,
    Token,
    any_of,
    compare,
    datetime_bounds,
    datetime_condition,
    like_regex,
)
from experiments.models import FLOAT_MAX, MetricDirection, Param, RunMetricSummary, RunStatus, metric_key_direction
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



# --- tokens ------------------------------------------------------------------------------


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_\-/]*")


_LEXICON = Lexicon(
    word=_WORD,
    number=re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"),
    error=FilterSyntaxError, end_name="the end of the filter", key_quote="`", dot_is_punctuation=True,
)


def tokenize(text: str) -> list[Token]:
    return filter_language.tokenize(text, _LEXICON)


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


Node = Union[Comparison, BoolOp, Not]


class _Parser(BooleanParser):
    lexicon = _LEXICON
    max_depth = MAX_DEPTH

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
    experiment for its ranking metric, else by the key (``metric_key_direction``); one
    subquery, not one per column."""
    is_ranking_metric = Q(Exact(OuterRef("experiment__metric_key"), key))
    other_direction = metric_key_direction(key)
    return summaries.annotate(best=Case(
        When(is_ranking_metric & Q(Exact(OuterRef("experiment__metric_direction"), MetricDirection.MINIMIZE)),
             then=F("min_value")),
        When(is_ranking_metric, then=F("max_value")),
        default=F("min_value" if other_direction == MetricDirection.MINIMIZE else "max_value"),
        output_field=FloatField(),
    ))


def numeric_text(text) -> Case:
    """A text expression as ``numeric`` where it reads as a number, else NULL (the CASE
    guards the cast, so no text ever fails it)."""
    return Case(
        When(Regex(text, NUMERIC_TEXT_PATTERN),
             then=Func(text, template="(%(expressions)s)::numeric", output_field=DecimalField())),
        default=None, output_field=DecimalField(),
    )


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
            conditions.append(Q(lookup(text, like_regex(value.value))) & Q(IsNull(text, False)))
        elif value.kind == "number":
            conditions.append(compare(numeric_text(text), op, value.value))
        elif value.kind == "bool":
            if op not in ("=", "!="):
                raise FilterSyntaxError(comparison.position, f"true and false compare with = or !=, not {op}")
            matches = Q(IExact(text, "true" if value.value else "false"))
            conditions.append((matches if op == "=" else ~matches) & Q(IsNull(text, False)))
        else:
            conditions.append(compare(text, op, value.value))
    return any_of(conditions)


def _number_condition(field: str, comparison: Comparison) -> Q:
    conditions = []
    for op, value in _single_op(comparison):
        if op in ("like", "ilike"):
            raise FilterSyntaxError(comparison.position, f"{op} compares text; metrics are numbers")
        if value.kind != "number":
            raise FilterSyntaxError(value.position, f"metrics compare with numbers, got {value.text}")
        conditions.append(compare(F(field), op, float(value.value)))
    return any_of(conditions)


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
        return any_of([Q(tags__contains={key: value.value}) for value in comparison.values])
    return _text_condition(KeyTextTransform(key, "tags"), comparison)


def _when(value: Value, problem: str) -> FilterSyntaxError:
    return FilterSyntaxError(value.position, f"{problem}, got {value.text}")


def _datetime_q(field: str, op: str, value: Value) -> Q:
    start, next_day = datetime_bounds(value, example='"2026-11-28" or "2026-11-28T10:00"', error=FilterSyntaxError)
    return datetime_condition(F(field), op, start, next_day)


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
            conditions.append(compare(F(field), op, status))
        elif kind == AttributeKind.EXPERIMENT and value.kind == "number" and not like:
            conditions.append(compare(F("experiment_id"), op, _integer(value, name)))
        elif kind in (AttributeKind.TEXT, AttributeKind.STATUS, AttributeKind.EXPERIMENT):
            column = "experiment__name" if kind == AttributeKind.EXPERIMENT else field
            if like:
                lookup = Regex if op == "like" else IRegex
                conditions.append(Q(lookup(F(column), like_regex(value.value))))
            else:
                conditions.append(compare(F(column), op, _text_value(value, name)))
        elif kind == AttributeKind.INTEGER:
            conditions.append(compare(F(field), op, _integer(value, name)))
        elif kind == AttributeKind.UUID:
            if op not in ("=", "!="):
                raise FilterSyntaxError(comparison.position, f"{name} compares with =, != or in, not {op}")
            try:
                version = uuid.UUID(str(value.value)) if value.kind == "string" else None
            except ValueError:
                version = None
            if version is None:
                raise _when(value, "expected a dataset version's id (a quoted UUID)")
            conditions.append(compare(F(field), op, version))
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
            conditions.append(compare(duration, op, seconds))
    return any_of(conditions)


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
