"""Honest timeouts (src/jupiter/resilience/_timeout.py), driven without real waiting.

The deadline is always decided by the test: async timeouts use a clock whose ``sleep_async``
returns when the test says so; sync timeouts use an injected ``wait`` that reports "not done".
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from jupiter.resilience import (
    TimeoutStats,
    abandoned_call_count,
    running_abandoned_call_count,
    with_timeout,
)
from jupiter.resilience._timeout import _wait_for_future
from jupiter.resilience.testing import FakeClock


class DeadlineClock(FakeClock):
    """A clock whose async sleeps end only when the test fires the deadline."""

    def __init__(self) -> None:
        super().__init__()
        self.deadline = asyncio.Event()

    async def sleep_async(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await self.deadline.wait()


def deadline_passed(future: Future, seconds: float) -> bool:
    """An injected wait: the deadline has passed at once."""
    return future.done()


#: Set by each caller; the callee (which runs in a copy of the caller's context) signals it.
CALL_STARTED: contextvars.ContextVar[threading.Event] = contextvars.ContextVar("call_started")


def deadline_after_start(future: Future, seconds: float) -> bool:
    """An injected wait: the deadline passes once the callee has started (so it is running)."""
    CALL_STARTED.get().wait()
    return future.done()


def signal_started() -> None:
    """Called by callees: tell this call's waiter that the call is running."""
    CALL_STARTED.get().set()


def join_worker_threads(name: str) -> None:
    """Wait for the daemon workers of ``name`` to finish (synchronisation, not timing)."""
    for thread in threading.enumerate():
        if thread.name == f"jupiter-timeout:{name}":
            thread.join()


# -- async: real cancellation -----------------------------------------------------------------


async def test_async_timeout_cancels_the_call_and_raises_timeout_error():
    """At the deadline the coroutine sees CancelledError and the caller gets TimeoutError."""
    clock = DeadlineClock()
    stats = TimeoutStats()
    entered = asyncio.Event()
    outcome: list[str] = []

    @with_timeout(5.0, clock=clock, stats=stats)
    async def slow() -> str:
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise
        return "never"

    task = asyncio.create_task(slow())
    await entered.wait()
    assert not task.done()
    clock.deadline.set()
    with pytest.raises(TimeoutError, match="did not finish within 5s"):
        await task
    assert outcome == ["cancelled"]
    assert clock.sleeps == [5.0]
    assert stats.timeouts == 1
    assert stats.abandoned == 0


async def test_async_call_that_finishes_first_returns_its_value():
    """A call finishing before the deadline returns normally; the timer is cancelled."""
    clock = DeadlineClock()

    @with_timeout(5.0, clock=clock)
    async def quick(x: int) -> int:
        await asyncio.sleep(0)
        return x + 1

    assert await quick(1) == 2
    await asyncio.sleep(0)
    assert [t for t in asyncio.all_tasks() if "_expire_later" in repr(t)] == []


async def test_async_callee_timeout_error_passes_through_uncounted():
    """The callee's own TimeoutError is not our deadline: unchanged, not counted."""
    stats = TimeoutStats()
    error = TimeoutError("upstream read timeout")

    @with_timeout(5.0, clock=DeadlineClock(), stats=stats)
    async def raises() -> None:
        raise error

    with pytest.raises(TimeoutError) as caught:
        await raises()
    assert caught.value is error
    assert stats.timeouts == 0


async def test_outer_cancellation_stays_cancellation():
    """Cancelling the caller's task raises CancelledError, not TimeoutError."""
    entered = asyncio.Event()

    @with_timeout(5.0, clock=DeadlineClock())
    async def slow() -> None:
        entered.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(slow())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_async_timeouts_are_independent_across_many_tasks():
    """200 concurrent calls: the ones whose deadline fires time out, the rest return."""
    clocks = [DeadlineClock() for _ in range(200)]
    release = asyncio.Event()

    async def work(i: int) -> int:
        await release.wait()
        return i

    tasks = [asyncio.create_task(with_timeout(1.0, clock=clocks[i])(work)(i)) for i in range(200)]
    await asyncio.sleep(0)
    for clock in clocks[::2]:
        clock.deadline.set()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, TimeoutError) for r in results[::2])
    assert results[1::2] == list(range(1, 200, 2))


async def test_system_clock_path_returns_results_and_keeps_context():
    """On the system clock (asyncio.timeout) a quick call returns in the caller's task."""
    caller = asyncio.current_task()

    @with_timeout(30.0)
    async def which_task() -> asyncio.Task:
        return asyncio.current_task()

    assert await which_task() is caller


# -- sync: worker thread, abandoned and counted ------------------------------------------------


def test_sync_timeout_abandons_the_call_counts_it_and_releases_it():
    """At the deadline TimeoutError is raised; the still-running call is counted until it ends."""
    stats = TimeoutStats()
    release = threading.Event()
    before = abandoned_call_count()
    CALL_STARTED.set(threading.Event())

    @with_timeout(2.0, wait=deadline_after_start, stats=stats)
    def blocked() -> str:
        signal_started()
        release.wait()
        return "late"

    with pytest.raises(TimeoutError, match="abandoned"):
        blocked()
    assert stats.snapshot() == {"timeouts": 1, "abandoned": 1, "running": 1}
    assert abandoned_call_count() == before + 1
    release.set()
    join_worker_threads(blocked.__qualname__)
    assert stats.snapshot() == {"timeouts": 1, "abandoned": 1, "running": 0}


def test_sync_call_finishing_in_time_returns_its_value_in_context():
    """A call done before the deadline returns its value; contextvars reach the worker."""
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")
    request_id.set("req-1")
    stats = TimeoutStats()

    @with_timeout(30.0, stats=stats)
    def read(x: int) -> tuple[int, str]:
        return x * 2, request_id.get()

    assert read(21) == (42, "req-1")
    assert stats.snapshot() == {"timeouts": 0, "abandoned": 0, "running": 0}


def test_sync_exceptions_propagate_unchanged():
    """The callee's exception reaches the caller as itself."""
    error = ValueError("bad")

    @with_timeout(30.0)
    def fails() -> None:
        raise error

    with pytest.raises(ValueError) as caught:
        fails()
    assert caught.value is error


def test_sync_timeout_works_outside_the_main_thread():
    """No SIGALRM: a timeout raised inside a worker thread works."""
    release = threading.Event()
    errors: list[BaseException] = []

    @with_timeout(1.0, wait=deadline_after_start)
    def blocked() -> None:
        signal_started()
        release.wait()

    def in_thread() -> None:
        CALL_STARTED.set(threading.Event())
        try:
            blocked()
        except TimeoutError as exc:
            errors.append(exc)

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join()
    release.set()
    join_worker_threads(blocked.__qualname__)
    assert len(errors) == 1


def test_queued_call_on_an_executor_is_cancelled_not_abandoned():
    """A call still queued at the deadline is cancelled: nothing is left running."""
    stats = TimeoutStats()
    release = threading.Event()
    with ThreadPoolExecutor(max_workers=1) as executor:
        executor.submit(release.wait)  # occupies the only worker
        ran = []

        @with_timeout(1.0, wait=deadline_passed, executor=executor, stats=stats)
        def queued() -> None:
            ran.append(1)

        with pytest.raises(TimeoutError, match="had not started"):
            queued()
        release.set()
    assert ran == []
    assert stats.snapshot() == {"timeouts": 1, "abandoned": 0, "running": 0}


def test_running_call_on_an_executor_is_abandoned_and_released():
    """With an executor the same accounting holds; shutdown(wait) proves the release."""
    stats = TimeoutStats()
    release = threading.Event()
    started = threading.Event()
    executor = ThreadPoolExecutor(max_workers=1)

    def running() -> None:
        started.set()
        release.wait()

    def wait_until_started(future: Future, seconds: float) -> bool:
        started.wait()
        return future.done()

    with pytest.raises(TimeoutError):
        with_timeout(1.0, wait=wait_until_started, executor=executor, stats=stats)(running)()
    assert stats.running == 1
    release.set()
    executor.shutdown(wait=True)
    assert stats.snapshot() == {"timeouts": 1, "abandoned": 1, "running": 0}


def test_many_threads_abandon_exactly_as_many_calls():
    """16 threads time out at once: 16 abandoned, and all released once they finish."""
    stats = TimeoutStats()
    release = threading.Event()
    barrier = threading.Barrier(16)
    running_before = running_abandoned_call_count()

    @with_timeout(1.0, wait=deadline_after_start, stats=stats)
    def blocked() -> None:
        signal_started()
        release.wait()

    def caller() -> None:
        CALL_STARTED.set(threading.Event())
        barrier.wait()
        with pytest.raises(TimeoutError):
            blocked()

    callers = [threading.Thread(target=caller) for _ in range(16)]
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join()
    assert stats.snapshot() == {"timeouts": 16, "abandoned": 16, "running": 16}
    assert running_abandoned_call_count() >= running_before + 16
    release.set()
    join_worker_threads(blocked.__qualname__)
    assert stats.running == 0


def test_default_wait_reports_done_and_pending_without_sleeping():
    """The default wait returns True for a finished future and False at a zero deadline."""
    done: Future[int] = Future()
    done.set_result(1)
    assert _wait_for_future(done, 0.0) is True
    assert _wait_for_future(Future(), 0.0) is False


# -- validation and signatures -----------------------------------------------------------------


@pytest.mark.parametrize("seconds", [0, -1, float("nan"), float("inf"), True])
def test_with_timeout_rejects_bad_durations(seconds):
    """The duration must be a positive finite number."""
    with pytest.raises(ValueError, match="seconds"):
        with_timeout(seconds)


def test_with_timeout_preserves_signatures():
    """Sync and async wrappers keep the wrapped signature; async stays a coroutine function."""

    def read(path: str, *, size: int = 10) -> bytes:
        return b""

    async def aread(path: str) -> bytes:
        return b""

    assert inspect.signature(with_timeout(1.0)(read)) == inspect.signature(read)
    wrapped = with_timeout(1.0)(aread)
    assert inspect.iscoroutinefunction(wrapped)
    assert inspect.signature(wrapped) == inspect.signature(aread)
