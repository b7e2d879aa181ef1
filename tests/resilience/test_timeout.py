"""Honest timeouts (src/jupiter/resilience/_timeout.py), driven without real waiting.

The deadline is always decided by the test: async (and clock-driven sync) timeouts run on the
shipped ``FakeClock``, whose time only moves when the test or the callee moves it; other sync
timeouts use an injected ``wait`` that reports "not done".
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
from concurrent.futures import Executor, Future, ThreadPoolExecutor

import pytest

from jupiter.resilience import (
    Clock,
    TimeoutStats,
    abandoned_call_count,
    running_abandoned_call_count,
    with_timeout,
)
from jupiter.resilience._clock import DeadlineClock
from jupiter.resilience._timeout import _wait_for_future
from jupiter.resilience.testing import FakeClock


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


async def settle(steps: int = 10) -> None:
    """Let the event loop run a few steps (ordering only: no real time is waited for)."""
    for _ in range(steps):
        await asyncio.sleep(0)


def timer_tasks() -> list[asyncio.Task]:
    """The fallback timer tasks still alive on this loop."""
    return [t for t in asyncio.all_tasks() if "_expire_later" in repr(t)]


class FourMethodClock:
    """A user clock with only monotonic, wall, sleep and sleep_async (no deadline capability).

    Its async sleeps end at *every* ``advance``, even before they are due (like a polling clock),
    so the timer must check the time and sleep again for the rest.
    """

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self._moved = asyncio.Event()

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return 1_700_000_000.0 + self.now

    def sleep(self, seconds: float) -> None:
        self.advance(max(seconds, 0.0))

    async def sleep_async(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await self._moved.wait()

    def advance(self, seconds: float) -> None:
        self.now += seconds
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()


# -- async: real cancellation -----------------------------------------------------------------


async def test_async_timeout_cancels_the_call_and_raises_timeout_error():
    """At the deadline the coroutine sees CancelledError and the caller gets TimeoutError."""
    clock = FakeClock()
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
    clock.advance(5.0)  # exactly the deadline
    with pytest.raises(TimeoutError, match="did not finish within 5s"):
        await task
    assert outcome == ["cancelled"]
    assert clock.sleeps == []  # the timer waited; it never slept on the clock
    assert clock.monotonic() == 1_005.0
    assert stats.timeouts == 1
    assert stats.abandoned == 0


async def test_async_call_that_finishes_first_returns_its_value():
    """A call finishing before the deadline returns normally; its alarm is removed."""
    clock = FakeClock()

    @with_timeout(5.0, clock=clock)
    async def quick(x: int) -> int:
        await asyncio.sleep(0)
        return x + 1

    assert await quick(1) == 2
    await asyncio.sleep(0)
    assert clock.pending_alarms == 0
    assert timer_tasks() == []


async def test_async_callee_timeout_error_passes_through_uncounted():
    """The callee's own TimeoutError is not our deadline: unchanged, not counted."""
    stats = TimeoutStats()
    error = TimeoutError("upstream read timeout")

    @with_timeout(5.0, clock=FakeClock(), stats=stats)
    async def raises() -> None:
        raise error

    with pytest.raises(TimeoutError) as caught:
        await raises()
    assert caught.value is error
    assert stats.timeouts == 0


async def test_outer_cancellation_stays_cancellation():
    """Cancelling the caller's task raises CancelledError, not TimeoutError."""
    entered = asyncio.Event()
    clock = FakeClock()

    @with_timeout(5.0, clock=clock)
    async def slow() -> None:
        entered.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(slow())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert clock.pending_alarms == 0


async def test_yielding_without_fake_time_passing_never_times_out():
    """A coroutine that only yields to the loop completes: no fake time passed, clock unmoved."""
    clock = FakeClock()
    stats = TimeoutStats()

    @with_timeout(5.0, clock=clock, stats=stats)
    async def busy() -> str:
        for _ in range(500):
            await asyncio.sleep(0)
        return "done"

    assert await busy() == "done"
    assert clock.monotonic() == 1_000.0
    assert clock.sleeps == []
    assert stats.timeouts == 0


async def test_fake_sleep_within_the_deadline_returns_and_moves_time_only_by_the_sleep():
    """Sleeping 2 fake seconds under a 5 s timeout returns; the clock moved exactly 2."""
    clock = FakeClock()

    @with_timeout(5.0, clock=clock)
    async def nap() -> str:
        await clock.sleep_async(2)
        return "rested"

    assert await nap() == "rested"
    assert clock.monotonic() == 1_002.0
    assert clock.sleeps == [2]
    assert clock.pending_alarms == 0


async def test_fake_sleep_past_the_deadline_cancels_the_call_and_counts_it():
    """Sleeping 6 fake seconds under 5 s: cancelled inside the sleep, TimeoutError, counted."""
    clock = FakeClock()
    stats = TimeoutStats()
    outcome: list[str] = []

    @with_timeout(5.0, clock=clock, stats=stats)
    async def oversleeps() -> str:
        try:
            await clock.sleep_async(6)
            outcome.append("woke up")
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise
        finally:
            outcome.append("finally")
        return "never"

    with pytest.raises(TimeoutError, match="did not finish within 5s") as caught:
        await oversleeps()
    assert type(caught.value) is TimeoutError
    assert outcome == ["cancelled", "finally"]
    assert clock.monotonic() == 1_006.0  # only the callee's own sleep moved the time
    assert stats.snapshot() == {"timeouts": 1, "abandoned": 0, "running": 0}
    assert clock.pending_alarms == 0


async def test_blocking_fake_sleep_before_the_first_await_times_out_at_that_await():
    """The deadline is read when the call starts, so time moved before any await still counts."""
    clock = FakeClock()
    reached: list[str] = []

    @with_timeout(5.0, clock=clock)
    async def blocks_then_awaits() -> None:
        clock.sleep(6)  # a synchronous overrun: cannot be interrupted, as with real time
        reached.append("after sleep")
        await asyncio.sleep(0)
        reached.append("after await")

    with pytest.raises(TimeoutError):
        await blocks_then_awaits()
    assert reached == ["after sleep"]


async def start_a_hanging_call(clock: Clock) -> asyncio.Task[None]:
    """A task running a call that never ends by itself, under with_timeout(5, clock=clock)."""
    entered = asyncio.Event()

    @with_timeout(5.0, clock=clock)
    async def waits() -> None:
        entered.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(waits())
    await entered.wait()
    return task


def advance_here(clock: FakeClock, seconds: float) -> None:
    clock.advance(seconds)


def advance_from_a_thread(clock: FakeClock, seconds: float) -> None:
    mover = threading.Thread(target=clock.advance, args=(seconds,))
    mover.start()
    mover.join()


@pytest.mark.parametrize("advance", [advance_here, advance_from_a_thread])
async def test_advancing_the_fake_clock_fires_exactly_when_the_deadline_is_passed(advance):
    """Waiting on an Event: advance(4.9) leaves it running, advance(0.2) times it out, whether
    the loop's thread or another thread moves the clock."""
    clock = FakeClock()
    task = await start_a_hanging_call(clock)
    assert clock.pending_alarms == 1
    advance(clock, 4.9)
    await settle()
    assert not task.done()
    advance(clock, 0.2)
    with pytest.raises(TimeoutError):
        await task
    assert clock.monotonic() == pytest.approx(1_005.1)
    assert clock.pending_alarms == 0


async def test_many_calls_on_one_fake_clock_each_time_out_at_their_own_deadline():
    """200 calls, one clock, 40 deadlines: after each advance exactly the due ones timed out."""
    clock = FakeClock(start=0.0)
    release = asyncio.Event()
    seconds = [(i % 40 + 1) * 0.25 for i in range(200)]  # 0.25 s .. 10 s, exact in binary

    async def work(i: int) -> int:
        await release.wait()
        return i

    tasks = [
        asyncio.create_task(with_timeout(seconds[i], clock=clock)(work)(i)) for i in range(200)
    ]
    await settle()
    assert clock.pending_alarms == 200
    for step in range(1, 61):  # half steps: a deadline is crossed every other advance
        clock.advance(0.125)
        elapsed = step * 0.125
        await settle()
        timed_out = {i for i, task in enumerate(tasks) if task.done()}
        assert timed_out == {i for i in range(200) if seconds[i] <= elapsed}, elapsed
    release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for i, result in enumerate(results):
        if seconds[i] <= 7.5:
            assert isinstance(result, TimeoutError)
        else:
            assert result == i
    assert clock.monotonic() == 7.5
    assert clock.sleeps == []
    assert clock.pending_alarms == 0


async def test_a_clock_with_only_the_four_clock_methods_still_times_out_correctly():
    """A user's 4-method clock: the timer sleeps on it, re-sleeps after early wake-ups."""
    clock = FourMethodClock()
    assert isinstance(clock, Clock)
    assert not isinstance(clock, DeadlineClock)
    task = await start_a_hanging_call(clock)
    await settle()
    assert clock.sleeps == [5.0]
    clock.advance(3.0)  # wakes the timer's sleep early: it must sleep again for the rest
    await settle()
    assert not task.done()
    assert clock.sleeps == [5.0, 2.0]
    clock.advance(2.0)
    with pytest.raises(TimeoutError):
        await task
    assert clock.now == 5.0

    @with_timeout(5.0, clock=clock)
    async def quick() -> str:
        await asyncio.sleep(0)
        return "ok"

    assert await quick() == "ok"
    await asyncio.sleep(0)
    assert timer_tasks() == []


async def test_finished_calls_leave_no_alarms_on_the_fake_clock():
    """1,000 calls finishing in time (in turn, then at once) leave the alarm heap empty."""
    clock = FakeClock()

    @with_timeout(5.0, clock=clock)
    async def quick(i: int) -> int:
        await asyncio.sleep(0)
        return i

    for i in range(1_000):
        assert await quick(i) == i
    assert clock.pending_alarms == 0
    assert len(clock._alarms) == 0  # the heap itself, not only the live count
    assert await asyncio.gather(*(quick(i) for i in range(1_000))) == list(range(1_000))
    assert clock.pending_alarms == 0
    assert len(clock._alarms) == 0


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


# -- sync on the fake clock: the clock decides the deadline -------------------------------------


class ArmedClock(FakeClock):
    """A FakeClock that tells the test when a deadline has been armed on it."""

    def __init__(self) -> None:
        super().__init__()
        self.armed = threading.Event()

    def call_at_deadline(self, deadline, callback):
        cancel = super().call_at_deadline(deadline, callback)
        self.armed.set()
        return cancel


def test_sync_timeout_on_fake_clock_fires_when_another_thread_reaches_the_deadline():
    """The caller waits on fake time: 4.9 s keeps it waiting, 0.2 s more times it out."""
    clock = ArmedClock()
    stats = TimeoutStats()
    release = threading.Event()
    started = threading.Event()
    errors: list[BaseException] = []

    @with_timeout(5.0, clock=clock, stats=stats)
    def blocked() -> str:
        started.set()
        release.wait()
        return "late"

    def caller() -> None:
        try:
            blocked()
        except TimeoutError as exc:
            errors.append(exc)

    thread = threading.Thread(target=caller, daemon=True)
    thread.start()
    started.wait()
    clock.armed.wait()
    clock.advance(4.9)
    assert clock.pending_alarms == 1  # the caller's deadline is still armed: it is waiting
    clock.advance(0.2)
    thread.join()
    assert len(errors) == 1
    assert "abandoned" in str(errors[0])
    assert stats.snapshot() == {"timeouts": 1, "abandoned": 1, "running": 1}
    assert clock.sleeps == []
    release.set()
    join_worker_threads(blocked.__qualname__)
    assert stats.running == 0
    assert clock.pending_alarms == 0


def test_sync_call_sleeping_past_the_deadline_on_fake_clock_times_out():
    """A worker sleeping 6 fake seconds under 5 s: TimeoutError, only the callee moved time."""
    clock = FakeClock()
    stats = TimeoutStats()
    release = threading.Event()

    @with_timeout(5.0, clock=clock, stats=stats)
    def oversleeps() -> str:
        clock.sleep(6)
        release.wait()
        return "late"

    with pytest.raises(TimeoutError, match="abandoned"):
        oversleeps()
    assert clock.monotonic() == 1_006.0
    assert stats.snapshot() == {"timeouts": 1, "abandoned": 1, "running": 1}
    release.set()
    join_worker_threads(oversleeps.__qualname__)
    assert stats.running == 0


class InlineExecutor(Executor):
    """Runs each call in the submitting thread: the call is over when ``submit`` returns."""

    def submit(self, fn, /, *args, **kwargs):
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


def test_sync_call_that_ended_after_its_fake_deadline_is_not_abandoned():
    """A call that overslept its fake deadline and has ended is a timeout, not abandoned."""
    clock = FakeClock()
    stats = TimeoutStats()

    @with_timeout(5.0, clock=clock, executor=InlineExecutor(), stats=stats)
    def oversleeps() -> str:
        clock.sleep(6)
        return "late"

    with pytest.raises(TimeoutError, match="finished only after the deadline"):
        oversleeps()
    assert stats.snapshot() == {"timeouts": 1, "abandoned": 0, "running": 0}

    @with_timeout(5.0, clock=clock, executor=InlineExecutor(), stats=stats)
    def in_time() -> str:
        clock.sleep(4.5)
        return "ok"

    assert in_time() == "ok"
    assert clock.pending_alarms == 0


def test_sync_call_sleeping_within_the_deadline_on_fake_clock_returns():
    """A worker sleeping 2 fake seconds under 5 s returns its value; the clock moved exactly 2."""
    clock = FakeClock()

    @with_timeout(5.0, clock=clock)
    def nap(x: int) -> int:
        clock.sleep(2)
        return x * 2

    assert nap(21) == 42
    assert clock.monotonic() == 1_002.0
    assert clock.pending_alarms == 0


def test_injected_wait_takes_precedence_over_the_fake_clock():
    """With wait= given, the injected wait decides even on a FakeClock."""
    clock = FakeClock()
    seen: list[float] = []

    def deadline_now(future: Future, seconds: float) -> bool:
        seen.append(seconds)
        return False

    release = threading.Event()
    with pytest.raises(TimeoutError):
        with_timeout(3.0, clock=clock, wait=deadline_now)(release.wait)()
    release.set()
    assert seen == [3.0]
    assert clock.pending_alarms == 0


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
