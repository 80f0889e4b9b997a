"""Client-side request pacing for remote embedding APIs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RequestRateLimiter:
    """Spaces request starts at least 60/requests_per_minute seconds apart.

    Even spacing rather than a burst-then-wait window: providers that count per
    second (as several do under the hood of a per-minute quota) still see an even
    load. Shared by all the threads of one provider, i.e. the limit holds per
    process; run one embedding job per model at a time, or lower the limit, when
    several workers share one quota.
    """

    def __init__(
        self,
        requests_per_minute: int | None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if requests_per_minute is not None and requests_per_minute <= 0:
            raise ValueError(f"requests_per_minute must be positive (got {requests_per_minute})")
        self._interval = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self._clock = clock
        self._lock = threading.Lock()
        self._next_start = 0.0

    def wait_for_slot(self, cancelled: threading.Event | None = None) -> bool:
        """Block until this caller may start a request; False if cancelled meanwhile."""
        if not self._interval:
            return not (cancelled is not None and cancelled.is_set())
        with self._lock:
            now = self._clock()
            start = max(now, self._next_start)
            self._next_start = start + self._interval
        delay = start - now
        if cancelled is None:
            if delay > 0:
                time.sleep(delay)
            return True
        return not cancelled.wait(delay) if delay > 0 else not cancelled.is_set()
