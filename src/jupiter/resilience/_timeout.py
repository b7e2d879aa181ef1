"""Honest timeouts for sync and async callables.

Async: real cancellation. The wrapped coroutine runs in the caller's task under
``asyncio.timeout``; at the deadline it is cancelled (it sees ``CancelledError`` at its current
``await``) and the caller gets ``TimeoutError``.

Injected clocks decide the deadline by *waiting* for it, never by sleeping on the clock: a fake
clock whose sleeps advance time must not have its time moved by the timer. A clock that offers
``call_at_deadline`` (:class:`~._clock.DeadlineClock`, e.g. ``testing.FakeClock``) is told the
deadline, computed when the call starts; a clock with only the four ``Clock`` methods gets a timer
task that sleeps on it until ``monotonic()`` reaches the deadline.

Sync: no SIGALRM (which only works in the main thread and interrupts arbitrary code). The call
runs in a daemon worker thread (or an executor you pass) and the caller waits for it until the
deadline, then raises ``TimeoutError``. **Python cannot kill a running thread**: the call goes on
in the background until it returns on its own. Such calls are *abandoned*, counted in
:class:`TimeoutStats` (``abandoned`` ever, ``running`` still going), and released from the
``running`` count when they finally finish. Give the callee its own timeout (a socket or HTTP
client timeout) so abandoned threads do not pile up.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import math
import threading
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Executor, Future
from concurrent.futures import wait as wait_futures
from typing import Any, ParamSpec, TypeAlias, TypeVar

from ._callables import SyncAsyncDecorator
from ._clock import SYSTEM_CLOCK, Clock, DeadlineClock, SystemClock, running_loop

__all__ = [
    "TimeoutDecorator",
    "TimeoutStats",
    "Waiter",
    "abandoned_call_count",
    "running_abandoned_call_count",
    "timeout_stats",
    "with_timeout",
]

P = ParamSpec("P")
T = TypeVar("T")

#: ``wait(future, seconds) -> bool``: block until ``future`` is done or ``seconds`` have passed;
#: return whether it is done. Injected in tests to decide the deadline deterministically.
Waiter: TypeAlias = Callable[["Future[Any]", float], bool]


def _wait_for_future(future: Future[Any], seconds: float) -> bool:
    done, _ = wait_futures([future], timeout=seconds)
    return bool(done)


def _wait_on_clock(clock: DeadlineClock, future: Future[Any], deadline: float) -> bool:
    """Block until ``future`` is done or ``clock`` reaches ``deadline``; whichever came first.

    Returns whether the call finished first. The decision is final: a callee that moves the fake
    time past the deadline and then returns has still missed it.
    """
    lock = threading.Lock()
    decided = threading.Event()
    outcome: list[bool] = []

    def settle(in_time: bool) -> None:
        with lock:
            if not outcome:
                outcome.append(in_time)
        decided.set()

    cancel = clock.call_at_deadline(deadline, lambda: settle(False))
    future.add_done_callback(lambda _: settle(True))
    try:
        decided.wait()
    finally:
        cancel()
    return outcome[0]


class _Expiry:
    """Expires one ``asyncio.timeout`` scope when an injected clock reaches the deadline.

    ``expire`` runs on the scope's loop; ``expire_from_any_thread`` is the clock's callback. Once
    the call has finished (``close``), nothing is expired any more.
    """

    __slots__ = ("_live", "_loop", "_scope")

    def __init__(self, scope: asyncio.Timeout, loop: asyncio.AbstractEventLoop) -> None:
        self._scope = scope
        self._loop = loop
        self._live = True

    def expire(self) -> None:
        if self._live and not self._scope.expired():
            self._live = False
            # Cancels the task on the next loop step, exactly as the loop's own timer would.
            self._scope.reschedule(self._loop.time())

    def expire_from_any_thread(self) -> None:
        if running_loop() is self._loop:
            # Time moved on the loop's thread (a test's advance, or the callee's own sleep):
            # expire now, so the callee is cancelled before it resumes.
            self.expire()
        else:
            with contextlib.suppress(RuntimeError):  # a closed loop: the call is long gone
                self._loop.call_soon_threadsafe(self.expire)

    def close(self) -> None:
        self._live = False


class TimeoutStats:
    """Thread-safe counters of timeouts.

    * ``timeouts``: calls that hit their deadline (sync and async).
    * ``abandoned``: sync calls left running in a worker thread at their deadline (ever).
    * ``running``: abandoned calls that have not finished yet (goes back down as they finish).
    """

    __slots__ = ("_abandoned", "_lock", "_running", "_timeouts")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._timeouts = 0
        self._abandoned = 0
        self._running = 0

    @property
    def timeouts(self) -> int:
        return self._timeouts

    @property
    def abandoned(self) -> int:
        return self._abandoned

    @property
    def running(self) -> int:
        return self._running

    def _timed_out(self) -> None:
        with self._lock:
            self._timeouts += 1

    def _abandon(self) -> None:
        with self._lock:
            self._abandoned += 1
            self._running += 1

    def _release(self) -> None:
        with self._lock:
            self._running -= 1

    def snapshot(self) -> dict[str, int]:
        """The three counters, read together."""
        with self._lock:
            return {
                "timeouts": self._timeouts,
                "abandoned": self._abandoned,
                "running": self._running,
            }

    def __repr__(self) -> str:
        return f"TimeoutStats({self.snapshot()})"


_PROCESS_STATS = TimeoutStats()


def timeout_stats() -> TimeoutStats:
    """The process-wide counters (every ``with_timeout`` records here, and in its own ``stats``)."""
    return _PROCESS_STATS


def abandoned_call_count() -> int:
    """How many sync calls, process-wide, were abandoned at their deadline (ever)."""
    return _PROCESS_STATS.abandoned


def running_abandoned_call_count() -> int:
    """How many abandoned sync calls are still running in their worker threads right now."""
    return _PROCESS_STATS.running


class TimeoutDecorator(SyncAsyncDecorator):
    """What ``with_timeout(seconds)`` returns: a decorator for sync and async callables."""

    decorator_name = "with_timeout"
    __slots__ = ("_stats", "clock", "executor", "seconds", "wait")

    def __init__(
        self,
        seconds: float,
        *,
        clock: Clock = SYSTEM_CLOCK,
        wait: Waiter | None = None,
        executor: Executor | None = None,
        stats: TimeoutStats | None = None,
    ) -> None:
        if (
            not isinstance(seconds, int | float)
            or isinstance(seconds, bool)
            or not math.isfinite(seconds)
            or seconds <= 0
        ):
            raise ValueError(f"seconds must be a finite number > 0, got {seconds!r}")
        if not isinstance(clock, Clock):
            raise ValueError(f"clock must implement the Clock protocol, got {clock!r}")
        if wait is not None and not callable(wait):
            raise ValueError(f"wait must be callable(future, seconds) -> bool, got {wait!r}")
        self.seconds = float(seconds)
        self.clock = clock
        self.wait: Waiter = wait if wait is not None else _wait_for_future
        self.executor = executor
        self._stats = (_PROCESS_STATS,) if stats is None else (_PROCESS_STATS, stats)

    def _message(self, func: object) -> str:
        name = getattr(func, "__qualname__", None) or repr(func)
        return f"{name} did not finish within {self.seconds:g}s"

    # -- async: real cancellation ------------------------------------------------------------

    def _wrap_async(self, func: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        @functools.wraps(func)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            return await self.run_async(func, *args, **kwargs)

        return wrapper

    async def run_async(
        self, func: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Await ``func(*args, **kwargs)``, cancelling it at the deadline (-> TimeoutError)."""
        clock = self.clock
        on_system_clock = isinstance(clock, SystemClock)
        # The system clock uses the loop's own timer (no extra task). Any other clock decides
        # when the deadline is: it expires the otherwise unbounded asyncio timeout, which cancels
        # this task exactly as the loop's timer would.
        scope = asyncio.timeout(self.seconds if on_system_clock else None)
        try:
            async with scope:
                stop_timer = None if on_system_clock else self._start_timer(clock, scope)
                try:
                    return await func(*args, **kwargs)
                finally:
                    if stop_timer is not None:
                        stop_timer()
        except TimeoutError as exc:
            if not scope.expired():
                raise  # the callee's own TimeoutError, not our deadline
            for stats in self._stats:
                stats._timed_out()
            raise TimeoutError(self._message(func)) from exc

    def _start_timer(self, clock: Clock, scope: asyncio.Timeout) -> Callable[[], None]:
        """Arm the deadline on ``clock`` (read now, when the call starts); return its stopper."""
        loop = asyncio.get_running_loop()
        deadline = clock.monotonic() + self.seconds
        expiry = _Expiry(scope, loop)
        if isinstance(clock, DeadlineClock):
            cancel = clock.call_at_deadline(deadline, expiry.expire_from_any_thread)

            def stop_alarm() -> None:
                expiry.close()
                cancel()

            return stop_alarm
        timer = loop.create_task(self._expire_later(clock, deadline, expiry))

        def stop_task() -> None:
            expiry.close()
            timer.cancel()

        return stop_task

    @staticmethod
    async def _expire_later(clock: Clock, deadline: float, expiry: _Expiry) -> None:
        # A clock with only the four Clock methods: sleep until its time reaches the deadline.
        # A sleep that ends early (or a clock moved by someone else) is simply slept again.
        while (remaining := deadline - clock.monotonic()) > 0:
            await clock.sleep_async(remaining)
        expiry.expire()

    # -- sync: a worker thread, abandoned (and counted) at the deadline ------------------------

    def _wrap_sync(self, func: Callable[P, T]) -> Callable[P, T]:
        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            return self.run(func, *args, **kwargs)

        return wrapper

    def run(self, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``func(*args, **kwargs)`` in a worker; TimeoutError at the deadline."""
        # A clock that can report its deadline decides it, unless a ``wait`` was injected. The
        # deadline is read before the worker starts: the callee may move a fake clock at once.
        clock: DeadlineClock | None = None
        deadline = 0.0
        if (
            self.wait is _wait_for_future
            and type(self.clock) is not SystemClock  # the protocol check costs microseconds
            and isinstance(self.clock, DeadlineClock)
        ):
            clock = self.clock
            deadline = clock.monotonic() + self.seconds
        context = contextvars.copy_context()

        def call_in_context() -> T:
            return context.run(func, *args, **kwargs)

        future: Future[T]
        if self.executor is not None:
            future = self.executor.submit(call_in_context)
        else:
            future = Future()

            def work() -> None:
                if not future.set_running_or_notify_cancel():
                    return
                try:
                    result = call_in_context()
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(result)

            name = f"jupiter-timeout:{getattr(func, '__qualname__', 'call')}"
            threading.Thread(target=work, name=name, daemon=True).start()
        if clock is not None:
            if _wait_on_clock(clock, future, deadline):
                return future.result()
        elif self.wait(future, self.seconds) or future.done():
            return future.result()
        for stats in self._stats:
            stats._timed_out()
        if future.cancel():
            # It never started (an executor queue): nothing is left running.
            raise TimeoutError(self._message(func) + "; it had not started and was cancelled")
        if future.done():
            # It missed its deadline but has ended since (e.g. it moved a fake clock past it).
            raise TimeoutError(self._message(func) + "; it finished only after the deadline")
        for stats in self._stats:
            stats._abandon()
        # Runs at once if the call finished in the meantime, so the count is always released.
        future.add_done_callback(lambda _: self._release())
        raise TimeoutError(
            self._message(func) + "; it was abandoned and may still be running in a worker thread"
        )

    def _release(self) -> None:
        for stats in self._stats:
            stats._release()


def with_timeout(
    seconds: float,
    *,
    clock: Clock = SYSTEM_CLOCK,
    wait: Waiter | None = None,
    executor: Executor | None = None,
    stats: TimeoutStats | None = None,
) -> TimeoutDecorator:
    """Limit a sync or async callable to ``seconds``; raise ``TimeoutError`` at the deadline.

    * async functions are cancelled at the deadline (``clock`` decides when: the system clock
      uses the loop's timer; a clock with ``call_at_deadline`` such as ``FakeClock`` is told the
      deadline and never moved; any other clock is slept on by a timer task until its
      ``monotonic()`` reaches the deadline);
    * sync functions run in a daemon thread per call, or on ``executor`` when given; ``wait``
      decides how the caller waits for the result (default: until the deadline on a clock with
      ``call_at_deadline``, else ``concurrent.futures.wait`` in real time);
      ``stats`` gets its own copy of the counters (the process-wide ones always count).
    """
    return TimeoutDecorator(seconds, clock=clock, wait=wait, executor=executor, stats=stats)
