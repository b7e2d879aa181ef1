"""Exceptions shared by several strategies (kept apart so no strategy imports another's module)."""

from __future__ import annotations

import asyncio
import concurrent.futures

#: Not a failure of the dependency: the caller gave up (a task *or* a
#: ``concurrent.futures.Future`` was cancelled; the two CancelledErrors are distinct classes, and
#: the second is an ordinary ``Exception``) or the process is stopping. No strategy counts,
#: retries or replaces them, whatever its options say.
STOP_SIGNALS: tuple[type[BaseException], ...] = (
    asyncio.CancelledError,
    concurrent.futures.CancelledError,
    KeyboardInterrupt,
    SystemExit,
    GeneratorExit,
)


class ResilienceError(Exception):
    """Base class of the errors that ``jupiter.resilience`` raises itself."""


class CircuitOpenError(ResilienceError):
    """A call was refused without running: its breaker is open (or half-open with no free slot).

    ``retry_after`` is the number of seconds until the breaker will allow a trial call
    (0.0 when a trial is already allowed but all trial slots are taken).
    """

    def __init__(self, name: str, retry_after: float) -> None:
        self.name = name
        self.retry_after = max(0.0, retry_after)
        super().__init__(f"circuit breaker {name!r} is open; next trial in {self.retry_after:.1f}s")

    def __reduce__(self) -> tuple[type[CircuitOpenError], tuple[str, float]]:
        return (type(self), (self.name, self.retry_after))
