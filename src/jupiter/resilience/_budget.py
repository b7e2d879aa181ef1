"""A retry budget: one token bucket shared by every caller of a dependency (Finagle / gRPC style).

Every first attempt deposits ``ratio`` tokens; every retry must withdraw one whole token.
Tokens also trickle in at ``refill_per_second`` so that a quiet service can still retry a
little. With ``ratio=0.2`` retries add at most ~20% extra load on top of real traffic, however
many callers fail at once: a failing dependency sees a bounded trickle, not a storm.
"""

from __future__ import annotations

import math
import threading

from ._clock import SYSTEM_CLOCK, Clock

__all__ = ["RetryBudget"]


def _check_non_negative(name: str, value: float) -> float:
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


class RetryBudget:
    """A thread-safe token bucket that decides whether one more retry is affordable.

    * ``ratio``: tokens deposited by each first attempt (0.2 = retries may add 20% load).
    * ``capacity``: the most tokens the bucket holds, i.e. the largest burst of retries.
    * ``refill_per_second``: tokens added per second of the injected clock (a floor, so rare
      callers can still retry); 0 disables it.
    * ``initial_tokens``: the starting balance (default: ``capacity``).
    """

    __slots__ = ("_clock", "_lock", "_tokens", "_updated", "capacity", "ratio", "refill_per_second")

    def __init__(
        self,
        ratio: float = 0.2,
        capacity: float = 10.0,
        refill_per_second: float = 1.0,
        *,
        initial_tokens: float | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.ratio = _check_non_negative("ratio", ratio)
        self.capacity = _check_non_negative("capacity", capacity)
        if self.capacity < 1.0:
            raise ValueError(f"capacity must be >= 1 (one retry costs one token), got {capacity!r}")
        self.refill_per_second = _check_non_negative("refill_per_second", refill_per_second)
        start = self.capacity if initial_tokens is None else initial_tokens
        start = _check_non_negative("initial_tokens", start)
        if start > self.capacity:
            raise ValueError(f"initial_tokens ({start}) cannot exceed capacity ({self.capacity})")
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = start
        self._updated = clock.monotonic()

    def _refill_locked(self) -> None:
        now = self._clock.monotonic()
        elapsed = now - self._updated
        self._updated = now
        if elapsed > 0.0 and self.refill_per_second > 0.0:
            self._tokens = min(self.capacity, self._tokens + elapsed * self.refill_per_second)

    def deposit(self) -> None:
        """Record a first attempt: it earns ``ratio`` tokens (never beyond ``capacity``)."""
        with self._lock:
            self._refill_locked()
            self._tokens = min(self.capacity, self._tokens + self.ratio)

    def try_withdraw(self) -> bool:
        """Spend one token for a retry; False (and nothing spent) when the budget is exhausted."""
        with self._lock:
            self._refill_locked()
            # A tiny tolerance so that 5 deposits of 0.2 pay for one retry despite float rounding.
            if self._tokens >= 1.0 - 1e-9:
                self._tokens = max(0.0, self._tokens - 1.0)
                return True
            return False

    @property
    def available(self) -> float:
        """The current balance, after refill."""
        with self._lock:
            self._refill_locked()
            return self._tokens

    def __repr__(self) -> str:
        return (
            f"RetryBudget(ratio={self.ratio}, capacity={self.capacity}, "
            f"refill_per_second={self.refill_per_second}, available={self.available:.2f})"
        )
