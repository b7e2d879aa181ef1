"""Test helpers for users of ``jupiter.resilience``: a fake clock whose sleeps return at once.

>>> clock = FakeClock()
>>> breaker = CircuitBreaker(failure_threshold=1, timeout=30, clock=clock)
>>> clock.advance(30)   # the breaker now allows a trial call, no real waiting involved
"""

from __future__ import annotations

import asyncio
import threading

__all__ = ["FakeClock"]


class FakeClock:
    """A manually driven clock. ``sleep`` and ``sleep_async`` advance time instead of waiting.

    Every requested sleep is recorded in :attr:`sleeps`, so tests can assert backoff delays
    exactly. It is thread-safe: many threads may sleep and read it at once.
    """

    def __init__(self, start: float = 1_000.0, wall_start: float = 1_700_000_000.0) -> None:
        self._lock = threading.Lock()
        self._now = float(start)
        self._wall_offset = float(wall_start) - float(start)
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self._wall_offset

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (must not be negative)."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        with self._lock:
            self._now += seconds

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self._now += max(seconds, 0.0)

    async def sleep_async(self, seconds: float) -> None:
        self.sleep(seconds)
        # Still yield once so that concurrency between tasks stays realistic.
        await asyncio.sleep(0)
