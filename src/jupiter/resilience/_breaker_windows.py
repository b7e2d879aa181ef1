"""Sliding windows for the failure-rate opening policy. Fixed-size, so memory never grows.

Both are plain data structures: the breaker's lock protects them, the clock reading is passed in.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["CountWindow", "OutcomeWindow", "TimeWindow"]


class OutcomeWindow(Protocol):
    """Records call outcomes and reports how many calls and failures it currently holds."""

    def record(self, failed: bool, now: float) -> None: ...

    def totals(self, now: float) -> tuple[int, int]:
        """``(calls, failures)`` inside the window at ``now``."""
        ...

    def clear(self) -> None: ...


class CountWindow:
    """The last ``size`` outcomes (resilience4j's COUNT_BASED window), as a ring of flags."""

    __slots__ = ("_failures", "_filled", "_outcomes", "_position", "_size")

    def __init__(self, size: int) -> None:
        self._size = size
        self._outcomes = [False] * size
        self._position = 0
        self._filled = 0
        self._failures = 0

    def record(self, failed: bool, now: float) -> None:
        position = self._position
        if self._filled == self._size:
            self._failures -= self._outcomes[position]
        else:
            self._filled += 1
        self._outcomes[position] = failed
        self._failures += failed
        self._position = (position + 1) % self._size

    def totals(self, now: float) -> tuple[int, int]:
        return self._filled, self._failures

    def clear(self) -> None:
        self._outcomes = [False] * self._size
        self._position = 0
        self._filled = 0
        self._failures = 0


class TimeWindow:
    """Outcomes of the last ``duration`` seconds, in ``buckets`` time buckets (Polly style).

    A bucket covers ``duration / buckets`` seconds; a bucket leaves the window whole, so the
    window's edge is accurate to one bucket. Reading costs ``O(buckets)`` whatever the traffic.
    """

    __slots__ = ("_bucket_ids", "_bucket_seconds", "_buckets", "_calls", "_failures")

    def __init__(self, duration: float, buckets: int) -> None:
        self._buckets = buckets
        self._bucket_seconds = duration / buckets
        self._bucket_ids = [-1] * buckets
        self._calls = [0] * buckets
        self._failures = [0] * buckets

    def record(self, failed: bool, now: float) -> None:
        bucket_id = int(now // self._bucket_seconds)
        slot = bucket_id % self._buckets
        if self._bucket_ids[slot] != bucket_id:
            self._bucket_ids[slot] = bucket_id
            self._calls[slot] = 0
            self._failures[slot] = 0
        self._calls[slot] += 1
        self._failures[slot] += failed

    def totals(self, now: float) -> tuple[int, int]:
        current = int(now // self._bucket_seconds)
        oldest = current - self._buckets + 1
        calls = failures = 0
        for slot, bucket_id in enumerate(self._bucket_ids):
            if oldest <= bucket_id <= current:
                calls += self._calls[slot]
                failures += self._failures[slot]
        return calls, failures

    def clear(self) -> None:
        self._bucket_ids = [-1] * self._buckets
        self._calls = [0] * self._buckets
        self._failures = [0] * self._buckets
