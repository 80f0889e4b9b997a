"""Waiting on a condition in tests: poll it, never assume how long something takes.

The deadline only ends a real hang; it is never what a test measures.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: Long enough that only a hang, never a slow machine, reaches it.
HANG_DEADLINE_SECONDS = 180.0


def wait_until(
    condition: Callable[[], T], what: str, *, deadline_seconds: float = HANG_DEADLINE_SECONDS, interval: float = 0.05
) -> T:
    """The first truthy value of ``condition()``, polled every ``interval`` seconds;
    ``AssertionError`` naming ``what`` once ``deadline_seconds`` have passed."""
    deadline = time.monotonic() + deadline_seconds
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {deadline_seconds:g} s waiting for {what}")
        time.sleep(interval)
    return result
