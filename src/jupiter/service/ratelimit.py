"""A token bucket on the injected clock, for the per-connection chat limit."""

from __future__ import annotations

import threading

from jupiter.resilience import Clock
from jupiter.resilience._clock import SYSTEM_CLOCK

__all__ = ["TokenBucket"]


class TokenBucket:
    """``capacity`` tokens, refilled at ``refill_per_second``; one token per chat message."""

    def __init__(
        self, capacity: int, refill_per_second: float, *, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        if capacity < 1 or refill_per_second <= 0:
            raise ValueError("capacity must be >= 1 and refill_per_second > 0")
        self.capacity = capacity
        self.refill_per_second = refill_per_second
        self._clock = clock
        self._tokens = float(capacity)
        self._updated = clock.monotonic()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock.monotonic()
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self.capacity, self._tokens + elapsed * self.refill_per_second)
        self._updated = now

    def try_acquire(self) -> tuple[bool, float]:
        """Take a token if one is there; otherwise say how many seconds until one will be."""
        with self._lock:
            self._refill()
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True, 0.0
            return False, (1.0 - self._tokens) / self.refill_per_second
