"""Promotion gates: the rules a model version's evaluation must pass before it may be
promoted to production, and their verdict. Pure functions over evaluations' metrics; the
registry service runs them (``training.services.registry``).

A model's ``gate_rules`` is a list of rules, each on one metric of the test split:

- ``{"metric": "f1", "min": 0.8}``: the candidate's value is at least 0.8 (``"max"``
  for a metric where lower is better, i.e. ``loss``);
- ``{"metric": "roc_auc", "max_drop": 0.02}``: the candidate's value is at most 0.02
  below the current production version's on the same dataset version and split (above,
  for ``loss``). Passes when nothing is in production yet.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError

#: Metrics an evaluation stores, with whether higher is better.
GATE_METRICS: dict[str, bool] = {
    "accuracy": True, "precision": True, "recall": True, "f1": True, "roc_auc": True, "pr_auc": True, "loss": False,
}
RULE_KINDS = ("min", "max", "max_drop")
MAX_GATE_RULES = 20


def _clean_rule(position: int, raw: object) -> dict[str, Any]:
    prefix = f"rule {position}"
    if not isinstance(raw, Mapping):
        raise ValidationError({"gate_rules": f"{prefix}: must be an object like {{\"metric\": \"f1\", \"min\": 0.8}}"})
    metric = raw.get("metric")
    if metric not in GATE_METRICS:
        raise ValidationError({"gate_rules": f"{prefix}: metric must be one of {', '.join(GATE_METRICS)} (got {metric!r})"})
    kinds = [kind for kind in RULE_KINDS if kind in raw]
    unknown = sorted(set(raw) - {"metric", *RULE_KINDS})
    if unknown:
        raise ValidationError({"gate_rules": f"{prefix}: unknown key(s) {', '.join(unknown)}"})
    if len(kinds) != 1:
        raise ValidationError({"gate_rules": f"{prefix}: give exactly one of min, max, max_drop"})
    kind = kinds[0]
    higher_is_better = GATE_METRICS[metric]
    if kind == "min" and not higher_is_better:
        raise ValidationError({"gate_rules": f"{prefix}: {metric} is better when lower: use max, not min"})
    if kind == "max" and higher_is_better:
        raise ValidationError({"gate_rules": f"{prefix}: {metric} is better when higher: use min, not max"})
    value = raw[kind]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError({"gate_rules": f"{prefix}: {kind} must be a number (got {value!r})"})
    if kind == "max_drop" and value < 0:
        raise ValidationError({"gate_rules": f"{prefix}: max_drop must be 0 or more (got {value})"})
    if kind != "max_drop" and metric != "loss" and not 0 <= value <= 1:
        raise ValidationError({"gate_rules": f"{prefix}: {metric} lies between 0 and 1 (got {value})"})
    return {"metric": metric, kind: float(value)}


def gate_rules_clean(raw: object) -> list[dict[str, Any]]:
    """``raw`` as a list of valid rules; ``ValidationError`` on ``gate_rules`` naming
    the first bad rule (1-based) otherwise."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ValidationError({"gate_rules": "must be a list of rules"})
    if len(raw) > MAX_GATE_RULES:
        raise ValidationError({"gate_rules": f"at most {MAX_GATE_RULES} rules (got {len(raw)})"})
    return [_clean_rule(position, rule) for position, rule in enumerate(raw, start=1)]


def _number(value: float) -> str:
    return f"{value:.4g}"


def describe_rule(rule: Mapping[str, Any]) -> str:
    """A rule as a person reads it, e.g. ``f1 ≥ 0.8`` or ``roc_auc ≥ production − 0.02``."""
    metric = rule["metric"]
    if "min" in rule:
        return f"{metric} ≥ {_number(rule['min'])}"
    if "max" in rule:
        return f"{metric} ≤ {_number(rule['max'])}"
    sign = "−" if GATE_METRICS[metric] else "+"
    comparison = "≥" if GATE_METRICS[metric] else "≤"
    return f"{metric} {comparison} production {sign} {_number(rule['max_drop'])}"


@dataclass(frozen=True)
class RuleResult:
    rule: dict[str, Any]
    passed: bool
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "description": describe_rule(self.rule), "passed": self.passed,
                "message": self.message}


@dataclass(frozen=True)
class GateReport:
    """The verdict of a model's rules on a candidate's evaluation (and production's)."""

    results: list[RuleResult]
    candidate_metrics: dict[str, Any] = field(default_factory=dict)
    production_metrics: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        return all(result.passed for result in self.results)

    @property
    def failures(self) -> list[RuleResult]:
        return [result for result in self.results if not result.passed]

    def failure_message(self) -> str:
        return "; ".join(f"gate rule {describe_rule(result.rule)} failed: {result.message}" for result in self.failures)

    def as_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "results": [result.as_json() for result in self.results],
            "candidate_metrics": self.candidate_metrics,
            "production_metrics": self.production_metrics,
        }


def _value(metrics: Mapping[str, Any], metric: str) -> float | None:
    value = metrics.get(metric)
    return None if value is None else float(value)


def _check(rule: dict[str, Any], candidate: Mapping[str, Any], production: Mapping[str, Any] | None) -> RuleResult:
    metric = rule["metric"]
    value = _value(candidate, metric)
    if value is None:
        return RuleResult(rule, False, f"the candidate's evaluation has no {metric} (e.g. a split with one class)")
    if "min" in rule:
        passed = value >= rule["min"]
        return RuleResult(rule, passed, f"{metric} {_number(value)} {'≥' if passed else '<'} {_number(rule['min'])}")
    if "max" in rule:
        passed = value <= rule["max"]
        return RuleResult(rule, passed, f"{metric} {_number(value)} {'≤' if passed else '>'} {_number(rule['max'])}")
    if production is None:
        return RuleResult(rule, True, "nothing in production to compare with")
    reference = _value(production, metric)
    if reference is None:
        return RuleResult(rule, True, f"the production version's evaluation has no {metric}")
    higher_is_better = GATE_METRICS[metric]
    drop = reference - value if higher_is_better else value - reference
    passed = drop <= rule["max_drop"] + 1e-12
    relation = "below" if higher_is_better else "above"
    return RuleResult(
        rule, passed,
        f"{metric} {_number(value)} is {_number(max(drop, 0.0))} {relation} production's {_number(reference)} "
        f"({'within' if passed else 'more than'} {_number(rule['max_drop'])})",
    )


def gate_evaluate(rules: list[dict[str, Any]], candidate_metrics: Mapping[str, Any],
                  production_metrics: Mapping[str, Any] | None) -> GateReport:
    """Every rule's verdict on the candidate's metrics (and production's, for the
    relative rules: ``None`` when nothing is in production)."""
    return GateReport(
        results=[_check(rule, candidate_metrics, production_metrics) for rule in rules],
        candidate_metrics=dict(candidate_metrics),
        production_metrics=None if production_metrics is None else dict(production_metrics),
    )
