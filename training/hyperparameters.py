"""A small declarative hyperparameter schema, and the one validation every entry point uses.

An architecture declares its hyperparameters as a ``Schema`` (an ordered tuple of
``Hyperparameter``). The run form is rendered from it, ``GET /api/v1/architectures``
returns ``schema_as_json(schema)``, and the form, the API and ``manage.py train --set``
all call ``validate(schema, raw)``: strings (a form field, ``--set lr=1e-3``) and native
JSON values are coerced to the declared type, and every bad field is reported at once in
one ``django.core.exceptions.ValidationError`` keyed by field name, so that each caller
can show per-field errors (``core.validation.validation_error_message`` for one line).

Plain Python: no ORM and no torch, so the API and the form can import it cheaply.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from django.core.exceptions import ValidationError


class ParamType(StrEnum):
    INT = "int"
    FLOAT = "float"
    CHOICE = "choice"
    BOOL = "bool"
    # A list of integers, written "256,128" in a form or on the command line (e.g. an
    # MLP's hidden layer sizes): bounds apply to each item, lengths to the list.
    INT_LIST = "int_list"


TRUE_STRINGS = frozenset({"true", "1", "yes", "on"})
FALSE_STRINGS = frozenset({"false", "0", "no", "off"})


# Kept here rather than imported from core.validation: the trainer and its schema load no
# project app at all, so they run standalone (tests/training/test_trainer.py checks it).
def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class Hyperparameter:
    """One hyperparameter: its type, default, bounds (inclusive) and help text.

    ``log_scale`` tells a form (slider) or a sweep to sample the range geometrically;
    it needs a positive ``minimum``. ``aliases`` are accepted names (``lr`` for
    ``learning_rate``); the resolved config always uses ``name``. ``group`` lets a form
    put the architecture's own parameters apart from the shared training ones.
    """

    name: str
    type: ParamType
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    log_scale: bool = False
    choices: tuple[str, ...] = ()
    min_items: int | None = None
    max_items: int | None = None
    aliases: tuple[str, ...] = ()
    group: str = "training"

    def __post_init__(self) -> None:
        # A schema is code: a mistake in one is a programming error, caught at import.
        if self.type == ParamType.CHOICE and not self.choices:
            raise ValueError(f"hyperparameter {self.name!r}: a choice needs choices")
        if self.type != ParamType.CHOICE and self.choices:
            raise ValueError(f"hyperparameter {self.name!r}: only a choice has choices")
        if self.log_scale and (self.minimum is None or self.minimum <= 0):
            raise ValueError(f"hyperparameter {self.name!r}: log scale needs a positive minimum")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(f"hyperparameter {self.name!r}: minimum above maximum")
        try:
            coerced = self.coerce(self.default)
        except ValueError as error:
            raise ValueError(f"hyperparameter {self.name!r}: invalid default: {error}") from None
        object.__setattr__(self, "default", coerced)

    # --- coercion ---------------------------------------------------------------------

    def coerce(self, value: object) -> Any:
        """``value`` (a native JSON value or a string) as this parameter's type, within
        its bounds; raises ``ValueError`` with a message meant for the user."""
        if self.type == ParamType.INT:
            number = self._coerce_int(value)
            self._check_bounds(number)
            return number
        if self.type == ParamType.FLOAT:
            number = self._coerce_float(value)
            self._check_bounds(number)
            return number
        if self.type == ParamType.BOOL:
            return self._coerce_bool(value)
        if self.type == ParamType.CHOICE:
            return self._coerce_choice(value)
        return self._coerce_int_list(value)

    def _coerce_int(self, value: object, *, what: str = "an integer") -> int:
        if _is_int(value):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise ValueError(f"must be {what} (got {value!r})")

    def _coerce_float(self, value: object) -> float:
        number: float | None = None
        if _is_number(value):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                number = None
        if number is None:
            raise ValueError(f"must be a number (got {value!r})")
        if not math.isfinite(number):
            raise ValueError(f"must be a finite number (got {value!r})")
        return number

    def _coerce_bool(self, value: object) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            text = value.strip().lower()
            if text in TRUE_STRINGS:
                return True
            if text in FALSE_STRINGS:
                return False
        raise ValueError(f"must be true or false (got {value!r})")

    def _coerce_choice(self, value: object) -> str:
        if isinstance(value, str) and value.strip() in self.choices:
            return value.strip()
        raise ValueError(f"must be one of: {', '.join(self.choices)} (got {value!r})")

    def _coerce_int_list(self, value: object) -> tuple[int, ...]:
        if isinstance(value, str):
            parts: list[object] = [part for part in value.replace(" ", "").split(",") if part != ""]
        elif isinstance(value, (list, tuple)):
            parts = list(value)
        else:
            raise ValueError(f"must be a list of integers such as \"256,128\" (got {value!r})")
        items = tuple(self._coerce_int(part, what='a list of integers such as "256,128"') for part in parts)
        if self.min_items is not None and len(items) < self.min_items:
            raise ValueError(f"needs at least {self.min_items} item{'s' if self.min_items != 1 else ''} (got {value!r})")
        if self.max_items is not None and len(items) > self.max_items:
            raise ValueError(f"takes at most {self.max_items} items (got {len(items)})")
        for item in items:
            self._check_bounds(item, each=True)
        return items

    def _check_bounds(self, number: float, *, each: bool = False) -> None:
        low, high = self.minimum, self.maximum
        if (low is not None and number < low) or (high is not None and number > high):
            subject = "each item must be" if each else "must be"
            if low is not None and high is not None:
                bounds = f"between {_number_text(low)} and {_number_text(high)}"
            elif low is not None:
                bounds = f"at least {_number_text(low)}"
            else:
                bounds = f"at most {_number_text(high)}"
            raise ValueError(f"{subject} {bounds} (got {_number_text(number)})")

    # --- presentation -----------------------------------------------------------------

    def as_text(self, value: Any) -> str:
        """``value`` as a form field or ``--set`` would write it (``"256,128"``)."""
        if self.type == ParamType.INT_LIST:
            return ",".join(str(item) for item in value)
        if self.type == ParamType.BOOL:
            return "true" if value else "false"
        return str(value)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type.value,
            "default": _json_value(self.default),
            "help": self.help,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "log_scale": self.log_scale,
            "choices": list(self.choices),
            "min_items": self.min_items,
            "max_items": self.max_items,
            "aliases": list(self.aliases),
            "group": self.group,
        }


def _number_text(number: float) -> str:
    return f"{number:g}" if isinstance(number, float) else str(number)


def _json_value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


@dataclass(frozen=True)
class Schema:
    """An ordered set of hyperparameters with unique names and aliases."""

    parameters: tuple[Hyperparameter, ...]
    _by_name: Mapping[str, Hyperparameter] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name: dict[str, Hyperparameter] = {}
        for parameter in self.parameters:
            for name in (parameter.name, *parameter.aliases):
                if name in by_name:
                    raise ValueError(f"hyperparameter name {name!r} is declared twice")
                by_name[name] = parameter
        object.__setattr__(self, "_by_name", MappingProxyType(by_name))

    def __iter__(self) -> Iterator[Hyperparameter]:
        return iter(self.parameters)

    def __len__(self) -> int:
        return len(self.parameters)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __getitem__(self, name: str) -> Hyperparameter:
        """The parameter called ``name`` (or aliased so)."""
        return self._by_name[name]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(parameter.name for parameter in self.parameters)

    def __add__(self, other: Schema) -> Schema:
        return Schema(self.parameters + other.parameters)

    def defaults(self) -> ResolvedConfig:
        return ResolvedConfig({parameter.name: parameter.default for parameter in self.parameters})

    def with_defaults(self, **defaults: Any) -> Schema:
        """The same schema with other defaults for the named parameters (each checked
        against the parameter's own bounds and type)."""
        unknown = sorted(set(defaults) - set(self.names))
        if unknown:
            raise ValueError(f"not in the schema: {', '.join(unknown)}")
        return Schema(tuple(
            replace(parameter, default=parameter.coerce(defaults[parameter.name]))
            if parameter.name in defaults else parameter
            for parameter in self.parameters
        ))


class ResolvedConfig(Mapping[str, Any]):
    """Every hyperparameter of a schema with its validated value (defaults filled in),
    in schema order. Immutable; lists are tuples here and lists in ``as_dict()``."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = MappingProxyType(dict(values))

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"ResolvedConfig({dict(self._values)!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ResolvedConfig):
            return dict(self._values) == dict(other._values)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self._values.items()))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: what a run records as its resolved hyperparameters."""
        return {name: _json_value(value) for name, value in self._values.items()}


def validate(schema: Schema, raw: Mapping[str, object] | None) -> ResolvedConfig:
    """``raw`` checked against ``schema``: values coerced, defaults filled in.

    A key may be a parameter's name or an alias; a missing key or a ``None`` value takes
    the default. Raises one ``ValidationError`` keyed by field that lists every problem:
    unknown keys (with a suggestion), wrong types, values out of range or not a choice,
    and a parameter given twice (by its name and an alias).
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ValidationError({"hyperparameters": f"must be an object of name: value (got {type(raw).__name__})"})
    errors: dict[str, str] = {}
    given: dict[str, tuple[str, object]] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or key not in schema:
            errors[str(key)] = _unknown_key_message(schema, str(key))
            continue
        parameter = schema[key]
        if parameter.name in given:
            first_key = given[parameter.name][0]
            errors[parameter.name] = f"given twice (as {first_key!r} and {key!r})"
            continue
        given[parameter.name] = (key, value)
    values: dict[str, Any] = {}
    for parameter in schema:
        if parameter.name in errors:
            continue
        _, value = given.get(parameter.name, (parameter.name, None))
        if value is None:
            values[parameter.name] = parameter.default
            continue
        try:
            values[parameter.name] = parameter.coerce(value)
        except ValueError as error:
            errors[parameter.name] = str(error)
    if errors:
        raise ValidationError(errors)
    return ResolvedConfig(values)


def _unknown_key_message(schema: Schema, key: str) -> str:
    known = list(schema.names)
    close = difflib.get_close_matches(key, [*known, *(a for p in schema for a in p.aliases)], n=1)
    suggestion = f"; did you mean {schema[close[0]].name!r}?" if close else ""
    return f"unknown hyperparameter{suggestion} (known: {', '.join(known)})"


def parse_assignments(assignments: Iterable[str]) -> dict[str, str]:
    """``["lr=1e-3", "epochs=30"]`` (``manage.py train --set``) as ``{"lr": "1e-3", ...}``
    for ``validate``; a malformed or repeated assignment raises ``ValidationError``."""
    parsed: dict[str, str] = {}
    errors: dict[str, str] = {}
    for assignment in assignments:
        name, separator, value = assignment.partition("=")
        name = name.strip()
        if not separator or not name:
            errors.setdefault("set", f"expected name=value (got {assignment!r})")
        elif name in parsed:
            errors[name] = f"set twice ({parsed[name]!r} and {value!r})"
        else:
            parsed[name] = value
    if errors:
        raise ValidationError(errors)
    return parsed


def schema_as_json(schema: Schema) -> list[dict[str, Any]]:
    """The schema for ``GET /api/v1/architectures`` and the run form, in order."""
    return [parameter.as_json() for parameter in schema]


__all__ = [
    "Hyperparameter",
    "ParamType",
    "ResolvedConfig",
    "Schema",
    "parse_assignments",
    "schema_as_json",
    "validate",
]
