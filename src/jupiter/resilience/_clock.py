"""Time and randomness, injected so every time-based decision can be tested without sleeping."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

#: A source of uniform floats in [0, 1). ``random.random`` is the default everywhere.
RandomSource = Callable[[], float]


@runtime_checkable
class Clock(Protocol):
    """What the toolkit needs from time: two readings and two ways to wait.

    ``monotonic`` drives every interval (open durations, windows, deadlines) so that
    wall-clock jumps cannot open or close a breaker. ``wall`` is only used for the
    timestamps that humans read.
    """

    def monotonic(self) -> float: ...

    def wall(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...

    async def sleep_async(self, seconds: float) -> None: ...


@runtime_checkable
class DeadlineClock(Clock, Protocol):
    """Optional extra for a :class:`Clock`: be told when its time reaches a deadline.

    ``with_timeout`` uses it when a clock offers it (checked with ``isinstance``), so that its
    timer *waits* for the deadline instead of sleeping on the clock: a fake clock whose sleeps
    advance time would otherwise have its time moved by the timer itself. A clock with only the
    four :class:`Clock` methods keeps working (the async timer then sleeps until ``monotonic()``
    reaches the deadline; the sync path waits in real time).

    ``call_at_deadline(deadline, callback)`` calls ``callback()`` exactly once, as soon as
    ``monotonic() >= deadline`` (at once, before returning, if that is already so), from whatever
    thread moved the time and without holding any lock of the clock, and never before. It returns
    a function that cancels the call (harmless once it has run). ``callback`` must be cheap,
    thread-safe and must not raise. :class:`jupiter.resilience.testing.FakeClock` implements it.
    """

    def call_at_deadline(
        self, deadline: float, callback: Callable[[], object]
    ) -> Callable[[], None]: ...


class SystemClock:
    """The real clock: ``time.monotonic``, ``time.time``, ``time.sleep`` and ``asyncio.sleep``."""

    __slots__ = ()

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    async def sleep_async(self, seconds: float) -> None:
        # Always yield to the loop, even for 0, so a retry loop cannot starve other tasks.
        await asyncio.sleep(max(seconds, 0.0))


SYSTEM_CLOCK: Clock = SystemClock()


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread, or None (deadline callbacks may come from any
    thread, and must then hand over to the waiter's loop)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


DEFAULT_RANDOM: RandomSource = random.random
