"""A provider clock for tests: time stands still, waits are recorded, nothing sleeps."""

from __future__ import annotations

import threading

from datasets.embedding_providers import Clock


class RecordingClock(Clock):
    """`now()` moves only when the test calls `advance`; `wait` returns at once.

    With time standing still, the schedule a rate limiter computes does not depend on
    how the threads that ask for slots interleave: `waits` is the same on any machine.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.waits: list[float] = []

    def now(self) -> float:
        with self._lock:
            return self._now

    def wait(self, seconds: float, cancelled: threading.Event | None = None) -> bool:
        with self._lock:
            self.waits.append(seconds)
        return cancelled is not None and cancelled.is_set()

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds
