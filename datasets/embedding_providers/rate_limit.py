"""Client-side request pacing for remote embedding APIs, and the clock it runs on."""

from __future__ import annotations

import threading
import time


class Clock:
    """The time the providers pace and back off by.

    Injected so tests replace it with one that records the waits asked of it instead
    of sleeping: what they assert is the schedule, never how long the machine took.
    """

    def now(self) -> float:
        return time.monotonic()

    def wait(self, seconds: float, cancelled: threading.Event | None = None) -> bool:
        """Let `seconds` pass; True as soon as `cancelled` is set (then it returns early)."""
        if cancelled is None:
            time.sleep(seconds)
            return False
        return cancelled.wait(seconds)


SYSTEM_CLOCK = Clock()


class RequestRateLimiter:
    """Spaces request starts at least 60/requests_per_minute seconds apart.

    Even spacing rather than a burst-then-wait window: providers that count per
    second (as several do under the hood of a per-minute quota) still see an even
    load. Shared by all the threads of one provider, i.e. the limit holds per
    process; run one embedding job per model at a time, or lower the limit, when
    several workers share one quota.
    """

    def __init__(self, requests_per_minute: int | None, *, clock: Clock = SYSTEM_CLOCK) -> None:
        if requests_per_minute is not None and requests_per_minute <= 0:
            raise ValueError(f"requests_per_minute must be positive (got {requests_per_minute})")
        self._interval = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self._clock = clock
        self._lock = threading.Lock()
        self._next_start: float | None = None

    def wait_for_slot(self, cancelled: threading.Event | None = None) -> bool:
        """Block until this caller may start a request; False if cancelled meanwhile."""
        if cancelled is not None and cancelled.is_set():
            return False
        if not self._interval:
            return True
        with self._lock:
            now = self._clock.now()
            start = now if self._next_start is None else max(now, self._next_start)
            self._next_start = start + self._interval
        delay = start - now
        if delay > 0:
            return not self._clock.wait(delay, cancelled)
        return not (cancelled is not None and cancelled.is_set())
