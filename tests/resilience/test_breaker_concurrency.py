"""Concurrency: the half-open limit as a property, exact accounting under 32 threads and 1,000
tasks, a lock-free success path, and a rejection path that does not leak."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import sys
import threading
import time
import tracemalloc
from collections.abc import Iterator

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from jupiter.resilience import CircuitBreaker, CircuitOpenError, CircuitState
from jupiter.resilience.testing import FakeClock


class Boom(Exception):
    """The guarded dependency failed."""


class Neutral(Exception):
    """An excluded exception: neither success nor failure."""


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Make the interpreter switch threads every few microseconds, to provoke races."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


# --------------------------------------------------------------------------- property: half-open


class HalfOpenLimit(RuleBasedStateMachine):
    """Interleave admissions, outcomes, time and manual control in any order: no more trial
    calls than half_open_max_calls may ever be in flight in one half-open period."""

    @initialize(
        max_calls=st.integers(1, 4),
        success_threshold=st.integers(1, 3),
        failure_threshold=st.integers(1, 2),
    )
    def build(self, max_calls: int, success_threshold: int, failure_threshold: int) -> None:
        self.clock = FakeClock()
        self.max_calls = max_calls
        self.breaker = CircuitBreaker(
            failure_threshold=failure_threshold,
            timeout=5,
            half_open_max_calls=max_calls,
            success_threshold=success_threshold,
            half_open_max_wait=20,
            clock=self.clock,
        )
        # Tickets admitted and not yet reported, each with the state it was admitted in.
        self.outstanding: list[tuple[int, CircuitState]] = []
        self.calls = 0

    @rule()
    def admit(self) -> None:
        self.calls += 1
        try:
            ticket = self.breaker.acquire()
        except CircuitOpenError as exc:
            refusal = exc
        else:
            self.outstanding.append((ticket, self.breaker.state))
            return
        assert refusal.retry_after >= 0.0

    @precondition(lambda self: self.outstanding)
    @rule(index=st.integers(0, 1000), outcome=st.sampled_from(["success", "failure", "neutral"]))
    def finish(self, index: int, outcome: str) -> None:
        ticket, _ = self.outstanding.pop(index % len(self.outstanding))
        if outcome == "success":
            self.breaker.on_success(ticket)
        elif outcome == "failure":
            self.breaker.on_failure(ticket, Boom())
        else:
            self.breaker.on_failure(ticket, asyncio.CancelledError())

    @rule(seconds=st.sampled_from([0.5, 2.5, 5.0, 21.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def failing_call(self) -> None:
        self.calls += 1
        try:
            ticket = self.breaker.acquire()
        except CircuitOpenError:
            return
        self.breaker.on_failure(ticket, Boom())

    # Manual control, drawn rarely so that most runs reach the half-open state.
    @rule(action=st.sampled_from(["reset", "force_open", *["none"] * 8]))
    def manual(self, action: str) -> None:
        if action == "reset":
            self.breaker.reset()
        elif action == "force_open":
            self.breaker.force_open()

    @invariant()
    def trials_within_limit(self) -> None:
        breaker = self.breaker
        in_flight = breaker.half_open_in_flight
        assert 0 <= in_flight <= self.max_calls
        if breaker.state is CircuitState.HALF_OPEN:
            current = sum(1 for t, _ in self.outstanding if t == breaker.generation)
            assert current == in_flight

    @invariant()
    def accounting_is_exact(self) -> None:
        metrics = self.breaker.metrics
        assert metrics.rejected + metrics.permitted + len(self.outstanding) == self.calls


TestHalfOpenLimit = HalfOpenLimit.TestCase
TestHalfOpenLimit.settings = settings(max_examples=120, stateful_step_count=50, deadline=None)


@pytest.mark.usefixtures("fast_switching")
def test_threads_never_exceed_the_half_open_limit() -> None:
    """Many threads racing into one half-open breaker never run more trials than permitted."""
    clock = FakeClock()
    limit = 3
    breaker = CircuitBreaker(
        failure_threshold=1,
        timeout=1,
        half_open_max_calls=limit,
        success_threshold=10**9,  # never closes: every admitted call is a half-open trial
        clock=clock,
    )
    with pytest.raises(Boom):
        breaker.call(_raise_boom)
    gate = threading.Lock()
    running: dict[int, int] = {}  # trials in flight per half-open period (generation)
    peak = 0
    trials = 0
    start = threading.Barrier(16)

    def worker(seed: int) -> None:
        nonlocal peak, trials
        rng = random.Random(seed)
        start.wait()
        for _ in range(300):
            clock.advance(0.25)
            try:
                ticket = breaker.acquire()
            except CircuitOpenError:
                continue
            with gate:
                running[ticket] = running.get(ticket, 0) + 1
                trials += 1
                peak = max(peak, running[ticket])
            time.sleep(0.0002)  # not time logic: only lets other threads overlap this trial
            with gate:
                running[ticket] -= 1
            if rng.random() < 0.2:
                breaker.on_failure(ticket, Boom())
            else:
                breaker.on_success(ticket)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert trials > 50
    assert 2 <= peak <= limit  # trials really overlapped, and never beyond the limit


def _raise_boom() -> None:
    raise Boom()


# --------------------------------------------------------------------------- stress


def _stress_breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker(
        failure_threshold=5,
        timeout=1,
        half_open_max_calls=2,
        success_threshold=2,
        excluded_exceptions=(Neutral,),
        clock=clock,
        name="stress",
    )


@pytest.mark.usefixtures("fast_switching")
def test_thirty_two_threads_exact_accounting() -> None:
    """32 threads hammering one breaker: every call is counted exactly once, by kind."""
    clock = FakeClock()
    breaker = _stress_breaker(clock)
    per_thread = 2_000
    observed = [dict.fromkeys(("succeeded", "failed", "rejected", "ignored"), 0) for _ in range(32)]
    start = threading.Barrier(32)

    def worker(index: int) -> None:
        rng = random.Random(index)
        counts = observed[index]
        start.wait()
        for step in range(per_thread):
            roll = rng.random()
            if step % 50 == 0:
                clock.advance(0.3)
            try:
                if roll < 0.15:
                    breaker.call(_raise_boom)
                elif roll < 0.2:
                    breaker.call(_raise_neutral)
                else:
                    breaker.call(_ok)
            except CircuitOpenError:
                counts["rejected"] += 1
            except Boom:
                counts["failed"] += 1
            except Neutral:
                counts["ignored"] += 1
            else:
                counts["succeeded"] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    totals = {key: sum(counts[key] for counts in observed) for key in observed[0]}
    metrics = breaker.metrics
    assert metrics.calls == 32 * per_thread
    assert {
        "succeeded": metrics.succeeded,
        "failed": metrics.failed,
        "rejected": metrics.rejected,
        "ignored": metrics.ignored,
    } == totals
    assert totals["rejected"] > 0
    assert totals["failed"] > 0
    assert breaker.half_open_in_flight == 0


def _ok() -> str:
    return "ok"


def _raise_neutral() -> None:
    raise Neutral()


async def test_thousand_tasks_exact_accounting() -> None:
    """1,000 asyncio tasks on one breaker: counts match what the tasks observed."""
    clock = FakeClock()
    breaker = _stress_breaker(clock)
    observed = dict.fromkeys(("succeeded", "failed", "rejected", "ignored"), 0)

    async def remote(kind: str) -> str:
        await asyncio.sleep(0)
        if kind == "fail":
            raise Boom()
        if kind == "neutral":
            raise Neutral()
        return "ok"

    async def task(index: int) -> None:
        rng = random.Random(index)
        for step in range(20):
            if step % 5 == 0:
                clock.advance(0.05)
            roll = rng.random()
            kind = "fail" if roll < 0.15 else "neutral" if roll < 0.2 else "ok"
            try:
                if index % 2:
                    await breaker.call_async(remote, kind)
                else:
                    async with breaker:
                        await remote(kind)
            except CircuitOpenError:
                observed["rejected"] += 1
            except Boom:
                observed["failed"] += 1
            except Neutral:
                observed["ignored"] += 1
            else:
                observed["succeeded"] += 1

    await asyncio.gather(*(task(i) for i in range(1_000)))
    metrics = breaker.metrics
    assert metrics.calls == 20_000
    assert {
        "succeeded": metrics.succeeded,
        "failed": metrics.failed,
        "rejected": metrics.rejected,
        "ignored": metrics.ignored,
    } == observed
    assert observed["rejected"] > 0
    assert breaker.half_open_in_flight == 0


@pytest.mark.usefixtures("fast_switching")
async def test_threads_and_tasks_share_one_breaker_with_exact_accounting() -> None:
    """32 threads and 1,000 asyncio tasks hammer one breaker at once; each call counts once."""
    clock = FakeClock()
    breaker = _stress_breaker(clock)
    kinds = ("succeeded", "failed", "rejected", "ignored")
    thread_counts = [dict.fromkeys(kinds, 0) for _ in range(32)]
    task_counts = dict.fromkeys(kinds, 0)
    go = threading.Event()

    def thread_worker(index: int) -> None:
        rng = random.Random(index)
        counts = thread_counts[index]
        go.wait()
        for step in range(500):
            if step % 50 == 0:
                clock.advance(0.3)
            roll = rng.random()
            try:
                if roll < 0.15:
                    breaker.call(_raise_boom)
                elif roll < 0.2:
                    breaker.call(_raise_neutral)
                else:
                    breaker.call(_ok)
            except CircuitOpenError:
                counts["rejected"] += 1
            except Boom:
                counts["failed"] += 1
            except Neutral:
                counts["ignored"] += 1
            else:
                counts["succeeded"] += 1

    async def remote(kind: str) -> str:
        await asyncio.sleep(0)
        if kind == "fail":
            raise Boom()
        if kind == "neutral":
            raise Neutral()
        return "ok"

    async def task(index: int) -> None:
        rng = random.Random(10_000 + index)
        for _ in range(10):
            roll = rng.random()
            kind = "fail" if roll < 0.15 else "neutral" if roll < 0.2 else "ok"
            try:
                await breaker.call_async(remote, kind)
            except CircuitOpenError:
                task_counts["rejected"] += 1
            except Boom:
                task_counts["failed"] += 1
            except Neutral:
                task_counts["ignored"] += 1
            else:
                task_counts["succeeded"] += 1

    threads = [threading.Thread(target=thread_worker, args=(i,)) for i in range(32)]
    for thread in threads:
        thread.start()
    go.set()
    await asyncio.gather(*(task(i) for i in range(1_000)))
    for thread in threads:
        await asyncio.to_thread(thread.join)
    totals = {
        kind: task_counts[kind] + sum(counts[kind] for counts in thread_counts) for kind in kinds
    }
    metrics = breaker.metrics
    assert metrics.calls == 32 * 500 + 1_000 * 10
    assert {kind: getattr(metrics, kind) for kind in kinds} == totals
    assert totals["rejected"] > 0
    assert totals["failed"] > 0
    assert breaker.half_open_in_flight == 0


# --------------------------------------------------------------------------- lock discipline


class CountingLock:
    """A lock that counts acquisitions and knows whether it is held."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.acquisitions = 0

    def __enter__(self) -> CountingLock:
        self._lock.acquire()
        self.acquisitions += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()


def test_closed_success_path_takes_no_lock() -> None:
    """In the default policy, successful calls in the closed state never touch the lock."""
    breaker = CircuitBreaker(failure_threshold=3, timeout=5, clock=FakeClock())
    lock = CountingLock()
    breaker._lock = lock  # type: ignore[assignment]
    for _ in range(1_000):
        breaker.call(_ok)
    with breaker:
        pass
    decorated = breaker(_ok)
    decorated()
    assert lock.acquisitions == 0
    with pytest.raises(Boom):
        breaker.call(_raise_boom)
    assert lock.acquisitions == 1  # failures do take it


def test_result_predicate_success_path_takes_no_lock() -> None:
    """With failure_result set, a success with no failure pending still takes no lock."""
    breaker = CircuitBreaker(failure_threshold=3, failure_result=lambda r: r == "bad")
    lock = CountingLock()
    breaker._lock = lock  # type: ignore[assignment]
    for _ in range(100):
        assert breaker.call(_ok) == "ok"
    assert lock.acquisitions == 0
    assert breaker.call(lambda: "bad") == "bad"
    assert breaker.call(_ok) == "ok"  # resets the pending failure, under the lock
    assert lock.acquisitions == 2
    assert breaker.consecutive_failures == 0
    breaker.call(_ok)
    assert lock.acquisitions == 2


def test_lock_is_never_held_while_the_guarded_call_runs() -> None:
    """In every state that takes the lock, the guarded function runs with it released."""
    clock = FakeClock()
    breaker = CircuitBreaker(
        failure_threshold=1, timeout=1, failure_rate_threshold=None, clock=clock
    )
    rate = CircuitBreaker(failure_rate_threshold=0.5, minimum_calls=100, clock=clock)
    held: list[bool] = []
    for subject in (breaker, rate):
        lock = CountingLock()
        subject._lock = lock  # type: ignore[assignment]

        def probe(lock: CountingLock = lock) -> None:
            held.append(lock.locked())

        subject.call(probe)
    with pytest.raises(Boom):
        breaker.call(_raise_boom)
    clock.advance(1)
    breaker.call(lambda: held.append(breaker._lock.locked()))  # the half-open trial
    assert held == [False, False, False]


# --------------------------------------------------------------------------- memory


def _refuse_many(breaker: CircuitBreaker, count: int, payload: object) -> None:
    for _ in range(count):
        with contextlib.suppress(CircuitOpenError):
            breaker.call(_ok, payload)
        with contextlib.suppress(CircuitOpenError), breaker:
            pass
        with contextlib.suppress(CircuitOpenError):
            breaker.acquire()


def test_rejection_path_does_not_leak() -> None:
    """100k refused calls leave nothing behind, even with the cycle collector switched off:
    no growing structure, no retained traceback, no reference cycle per refusal."""
    breaker = CircuitBreaker(failure_threshold=1, timeout=3600, name="leak")
    with pytest.raises(Boom):
        breaker.call(_raise_boom)
    payload = bytearray(1024)  # arguments must not be retained by the refusals either
    _refuse_many(breaker, 1_000, payload)
    gc.collect()
    gc.disable()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        _refuse_many(breaker, 100_000 // 3, payload)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
        gc.enable()
    growth = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert growth < 64 * 1024
    assert breaker.metrics.rejected == 3 * (1_000 + 100_000 // 3)


def test_refusal_error_is_not_in_a_reference_cycle() -> None:
    """A caught refusal is freed by reference counting alone, the moment it is dropped."""
    breaker = CircuitBreaker(failure_threshold=1, timeout=3600, name="cycle-probe")
    with pytest.raises(Boom):
        breaker.call(_raise_boom)
    gc.collect()
    gc.disable()
    try:
        for attempt in (lambda: breaker.call(_ok), breaker.acquire, breaker.__enter__):
            with contextlib.suppress(CircuitOpenError):
                attempt()
            alive = [
                obj
                for obj in gc.get_objects()
                if isinstance(obj, CircuitOpenError) and obj.name == "cycle-probe"
            ]
            assert alive == []
    finally:
        gc.enable()
