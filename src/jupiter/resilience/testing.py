"""Test helpers for users of ``jupiter.resilience``: a fake clock whose sleeps return at once.

>>> clock = FakeClock()
>>> breaker = CircuitBreaker(failure_threshold=1, timeout=30, clock=clock)
>>> clock.advance(30)   # the breaker now allows a trial call, no real waiting involved
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import itertools
import threading
from collections.abc import Callable

from ._clock import running_loop

__all__ = ["FakeClock"]


class _Alarm:
    """One ``call_at_deadline`` registration, ordered by deadline then by registration."""

    __slots__ = ("callback", "deadline", "order", "pending")

    def __init__(self, deadline: float, order: int, callback: Callable[[], object]) -> None:
        self.deadline = deadline
        self.order = order
        self.callback = callback
        self.pending = True  # False once fired or cancelled

    def __lt__(self, other: _Alarm) -> bool:
        return (self.deadline, self.order) < (other.deadline, other.order)


def _do_nothing() -> None:
    return None


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _call_all(callbacks: list[Callable[[], object]]) -> None:
    """Call every callback even if one raises; then re-raise the first error."""
    error: Exception | None = None
    for callback in callbacks:
        try:
            callback()
        except Exception as exc:
            if error is None:
                error = exc
    if error is not None:
        raise error


class FakeClock:
    """A manually driven clock. ``sleep`` and ``sleep_async`` advance time instead of waiting.

    Every requested sleep is recorded in :attr:`sleeps`, so tests can assert backoff delays
    exactly. It is thread-safe: many threads may sleep, advance and read it at once.

    Waiting *without* moving time: :meth:`wait_until_async` (and the lower-level
    :meth:`call_at_deadline`, the :class:`~jupiter.resilience._clock.DeadlineClock` capability
    that ``with_timeout`` uses) return only once something else moves the time to the deadline:
    :meth:`advance` (from any thread), :meth:`sleep` or :meth:`sleep_async`.
    """

    def __init__(self, start: float = 1_000.0, wall_start: float = 1_700_000_000.0) -> None:
        self._lock = threading.Lock()
        self._now = float(start)
        self._wall_offset = float(wall_start) - float(start)
        self._alarms: list[_Alarm] = []  # a heap; may hold cancelled alarms, see _cancel
        self._cancelled = 0  # how many alarms in the heap are cancelled
        self._order = itertools.count()
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self._wall_offset

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (must not be negative); wake what became due."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        with self._lock:
            self._now += seconds
            due = self._pop_due()
        _call_all(due)

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self._now += max(seconds, 0.0)
            due = self._pop_due()
        _call_all(due)

    async def sleep_async(self, seconds: float) -> None:
        self.sleep(seconds)
        # Still yield once so that concurrency between tasks stays realistic (and a timer that
        # this sleep made due acts before the sleeper resumes).
        await asyncio.sleep(0)

    # -- waiting for a deadline without moving time ------------------------------------------

    def call_at_deadline(
        self, deadline: float, callback: Callable[[], object]
    ) -> Callable[[], None]:
        """Call ``callback()`` once, when the time reaches ``deadline``; return a canceller.

        The callback runs in the thread that moves the time (inside :meth:`advance` /
        :meth:`sleep`, after the clock's lock is released), or at once if ``deadline`` has
        already been reached. Cancelling forgets it (a no-op once it has run).
        """
        with self._lock:
            if self._now < deadline:
                alarm = _Alarm(float(deadline), next(self._order), callback)
                heapq.heappush(self._alarms, alarm)
                return functools.partial(self._cancel, alarm)
        callback()
        return _do_nothing

    async def wait_until_async(self, deadline: float) -> None:
        """Return once the time reaches ``deadline`` (at once if it has); never moves time.

        Safe to cancel: a cancelled wait leaves nothing registered. The time may be moved from
        the loop's thread or from any other thread.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if running_loop() is loop:
                _resolve(future)  # on the loop's own thread: no extra loop step
            else:
                with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                    loop.call_soon_threadsafe(_resolve, future)

        cancel = self.call_at_deadline(deadline, wake)
        try:
            await future
        finally:
            cancel()

    @property
    def pending_alarms(self) -> int:
        """How many deadline waits (``call_at_deadline`` / ``wait_until_async``) are pending."""
        with self._lock:
            return len(self._alarms) - self._cancelled

    def _pop_due(self) -> list[Callable[[], object]]:
        """Under the lock: take every pending alarm whose deadline has been reached, in order."""
        due: list[Callable[[], object]] = []
        alarms = self._alarms
        while alarms and alarms[0].deadline <= self._now:
            alarm = heapq.heappop(alarms)
            if alarm.pending:
                alarm.pending = False
                due.append(alarm.callback)
            else:
                self._cancelled -= 1
        return due

    def _cancel(self, alarm: _Alarm) -> None:
        with self._lock:
            if not alarm.pending:
                return
            alarm.pending = False
            self._cancelled += 1
            alarms = self._alarms
            while alarms and not alarms[0].pending:
                heapq.heappop(alarms)
                self._cancelled -= 1
            # Cancelled alarms deeper in the heap are dropped once they are the majority, so the
            # heap stays within twice the live alarms (and empty once none is live).
            if self._cancelled * 2 > len(alarms):
                self._alarms = [a for a in alarms if a.pending]
                heapq.heapify(self._alarms)
                self._cancelled = 0
