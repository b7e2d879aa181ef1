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
DEFAULT_RANDOM: RandomSource = random.random
