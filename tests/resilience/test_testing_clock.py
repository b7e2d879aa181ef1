"""FakeClock (src/jupiter/resilience/testing.py): waiting for a deadline never moves the time."""

from __future__ import annotations

import asyncio
import threading

import pytest

from jupiter.resilience import SystemClock
from jupiter.resilience._clock import DeadlineClock
from jupiter.resilience.testing import FakeClock


async def settle(steps: int = 10) -> None:
    """Let the event loop run a few steps (ordering only: no real time is waited for)."""
    for _ in range(steps):
        await asyncio.sleep(0)


def test_fake_clock_offers_the_deadline_capability_and_the_system_clock_does_not():
    """FakeClock is a DeadlineClock; the system clock (the loop's timer is used) is not."""
    assert isinstance(FakeClock(), DeadlineClock)
    assert not isinstance(SystemClock(), DeadlineClock)


async def test_wait_until_async_returns_at_once_when_the_deadline_has_passed():
    """A deadline already reached returns without registering anything."""
    clock = FakeClock(start=10.0)
    await clock.wait_until_async(10.0)
    await clock.wait_until_async(3.0)
    assert clock.pending_alarms == 0
    assert clock.monotonic() == 10.0


async def test_wait_until_async_waits_for_advance_and_never_moves_time():
    """The waiter returns only once advance() reaches the deadline; it adds no time itself."""
    clock = FakeClock(start=0.0)
    waiter = asyncio.create_task(clock.wait_until_async(5.0))
    await settle()
    assert not waiter.done()
    clock.advance(4.5)
    await settle()
    assert not waiter.done()
    clock.advance(0.5)
    await waiter
    assert clock.monotonic() == 5.0
    assert clock.sleeps == []


async def test_sleep_and_sleep_async_wake_the_waiters_they_move_past():
    """Time moved by sleep() or another task's sleep_async() wakes due waiters, not others."""
    clock = FakeClock(start=0.0)
    early = asyncio.create_task(clock.wait_until_async(2.0))
    late = asyncio.create_task(clock.wait_until_async(8.0))
    await settle()
    clock.sleep(3.0)
    await settle()
    assert early.done()
    assert not late.done()
    await clock.sleep_async(5.0)
    await late
    assert clock.monotonic() == 8.0
    assert clock.sleeps == [3.0, 5.0]


async def test_wait_until_async_wakes_when_another_thread_advances():
    """advance() from a plain thread resolves the waiter on its own loop."""
    clock = FakeClock(start=0.0)
    waiter = asyncio.create_task(clock.wait_until_async(1.0))
    await settle()
    thread = threading.Thread(target=clock.advance, args=(1.0,))
    thread.start()
    await waiter
    thread.join()
    assert clock.pending_alarms == 0


async def test_cancelled_waits_leave_nothing_registered():
    """Cancelling waits (in any order) empties the alarm heap."""
    clock = FakeClock(start=0.0)
    waiters = [asyncio.create_task(clock.wait_until_async(float(i + 1))) for i in range(100)]
    await settle()
    assert clock.pending_alarms == 100
    for waiter in waiters[1::2] + waiters[::2]:
        waiter.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
    assert clock.pending_alarms == 0
    assert len(clock._alarms) == 0  # the heap itself, not only the live count


def test_call_at_deadline_fires_once_in_deadline_order_and_can_be_cancelled():
    """Callbacks run in deadline order, once; a cancelled one never; a due one at once."""
    clock = FakeClock(start=0.0)
    fired: list[str] = []
    clock.call_at_deadline(3.0, lambda: fired.append("c"))
    clock.call_at_deadline(1.0, lambda: fired.append("a"))
    cancel_b = clock.call_at_deadline(2.0, lambda: fired.append("b"))
    clock.call_at_deadline(1.0, lambda: fired.append("a2"))
    cancel_b()
    cancel_b()
    clock.advance(2.5)
    assert fired == ["a", "a2"]
    clock.advance(10.0)
    assert fired == ["a", "a2", "c"]
    clock.call_at_deadline(5.0, lambda: fired.append("now"))
    assert fired[-1] == "now"
    assert clock.pending_alarms == 0


def test_a_failing_callback_does_not_stop_the_others():
    """Every due callback runs; the first error reaches whoever moved the time."""
    clock = FakeClock(start=0.0)
    fired: list[int] = []

    def boom() -> None:
        raise RuntimeError("boom")

    clock.call_at_deadline(1.0, boom)
    clock.call_at_deadline(2.0, lambda: fired.append(2))
    with pytest.raises(RuntimeError, match="boom"):
        clock.advance(5.0)
    assert fired == [2]
    assert clock.monotonic() == 5.0


def test_alarms_fire_exactly_once_when_many_threads_move_the_time():
    """8 threads sleeping and advancing at once: each of 400 alarms fires exactly once."""
    clock = FakeClock(start=0.0)
    counts = [0] * 400
    lock = threading.Lock()

    def make(i: int):
        def fire() -> None:
            with lock:
                counts[i] += 1

        return fire

    for i in range(400):
        clock.call_at_deadline(i * 0.5, make(i))  # 0.0 fires at once
    barrier = threading.Barrier(8)

    def mover(n: int) -> None:
        barrier.wait()
        for _ in range(50):
            if n % 2:
                clock.advance(0.5)
            else:
                clock.sleep(0.5)

    threads = [threading.Thread(target=mover, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert clock.monotonic() == 200.0
    assert counts == [1] * 400
    assert clock.pending_alarms == 0
