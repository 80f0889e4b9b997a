"""Template filters of the experiments pages: a run's params and metrics by key, metric
values and durations as short text."""

from __future__ import annotations

import math
from datetime import timedelta

from django import template
from django.utils import timezone

register = template.Library()


@register.filter
def lookup(mapping, key):
    """``mapping[key]``, or None (a run without that param or metric)."""
    return mapping.get(key) if mapping else None


@register.filter
def metric(value) -> str:
    """A metric value as short text: integers as integers (a confusion-matrix count),
    others with four significant digits."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "—"  # no such metric ("" from a missing summary's attribute)
    if not math.isfinite(value):
        return str(value)
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if 1e-3 <= abs(value) < 1e4:
        return f"{value:.4f}".rstrip("0").rstrip(".")
    return f"{value:.4g}"


@register.filter
def best(summary, direction: str):
    """The best value of a ``RunMetricSummary`` by ``direction`` (None without a summary)."""
    return summary.best(direction)[0] if summary is not None else None


@register.filter
def best_step(summary, direction: str):
    return summary.best(direction)[1] if summary is not None else None


def _duration_text(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {seconds:02d}s"
    return f"{seconds}s"


@register.filter
def run_duration(run) -> str:
    """How long the run ran (so far, while running); "—" when it never started."""
    if run.started_at is None:
        return "—"
    end = run.finished_at or timezone.now()
    return _duration_text((end - run.started_at) / timedelta(seconds=1))
