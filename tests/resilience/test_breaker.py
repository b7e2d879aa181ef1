"""The circuit breaker's state machine on a fake clock: the seed's checklist and beyond."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import pickle
from collections.abc import Callable
from typing import Any

import pytest

from jupiter.resilience import (
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    StateChange,
)
from jupiter.resilience.testing import FakeClock


class Boom(Exception):
    """The guarded dependency failed."""


def fail() -> None:
    raise Boom("down")


def ok() -> str:
    return "ok"


def trip(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        with pytest.raises(Boom):
            breaker.call(fail)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# --------------------------------------------------------------------------- seed checklist


def test_opens_at_the_threshold(clock: FakeClock) -> None:
    """The breaker stays closed below failure_threshold and opens exactly at it."""
    breaker = CircuitBreaker(failure_threshold=3, timeout=30, clock=clock)
    trip(breaker, 2)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.consecutive_failures == 2
    trip(breaker, 1)
    assert breaker.state is CircuitState.OPEN
    calls: list[int] = []
    with pytest.raises(CircuitOpenError):
        breaker.call(lambda: calls.append(1))
    assert calls == []


def test_failures_while_open_are_those_that_opened_it(clock: FakeClock) -> None:
    """Open never reads 0 failures: it shows what opened it, and each failed trial adds one."""
    breaker = CircuitBreaker(failure_threshold=3, timeout=30, clock=clock)
    trip(breaker, 2)
    assert breaker.failures == 2
    trip(breaker, 1)
    assert breaker.state is CircuitState.OPEN
    assert (breaker.failures, breaker.snapshot()["failures"]) == (3, 3)
    assert breaker.consecutive_failures == 0  # the count toward opening starts again
    clock.advance(30)
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.failures == 0  # half-open counts its trials afresh
    trip(breaker, 1)
    assert breaker.state is CircuitState.OPEN
    assert breaker.failures == 4
    breaker.reset()
    assert breaker.failures == 0
    breaker.force_open()
    assert breaker.failures == 0  # isolated by hand, nothing failed: is_forced_open says why


def test_failures_while_open_on_a_failure_rate_window(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        failure_rate_threshold=0.5, window_size=10, minimum_calls=4, clock=clock
    )
    breaker.call(ok)
    trip(breaker, 2)
    assert breaker.failures == 2
    trip(breaker, 1)
    assert breaker.state is CircuitState.OPEN
    assert breaker.failures == 3


def test_goes_half_open_after_the_timeout(clock: FakeClock) -> None:
    """Reading the state once timeout has elapsed reports HALF_OPEN, not a moment before."""
    breaker = CircuitBreaker(failure_threshold=1, timeout=30, clock=clock)
    trip(breaker, 1)
    clock.advance(29.9)
    assert breaker.state is CircuitState.OPEN
    clock.advance(0.1)
    assert breaker.state is CircuitState.HALF_OPEN


def test_presets_are_expressible_directly() -> None:
    """The seed's strict, moderate and lenient presets are plain constructor arguments."""
    for threshold, timeout in ((3, 30), (5, 60), (10, 120)):
        breaker = CircuitBreaker(failure_threshold=threshold, timeout=timeout)
        assert breaker.options.failure_threshold == threshold
        assert breaker.options.timeout == timeout
        positional = CircuitBreaker(threshold, timeout)
        assert positional.options == breaker.options


def test_defaults_match_the_seed() -> None:
    """CircuitBreaker() opens after 5 failures and waits 60 seconds."""
    breaker = CircuitBreaker()
    assert (breaker.options.failure_threshold, breaker.options.timeout) == (5, 60.0)
    assert breaker.state is CircuitState.CLOSED


def test_state_values_are_the_api_strings() -> None:
    """CircuitState values are exactly "closed", "open" and "half_open"."""
    assert [s.value for s in CircuitState] == ["closed", "open", "half_open"]
    assert CircuitState("half_open") is CircuitState.HALF_OPEN
    assert CircuitState.OPEN == "open"


# --------------------------------------------------------------------------- closed state


def test_success_resets_consecutive_failures(clock: FakeClock) -> None:
    """Failures must be consecutive: one success in between starts the count again."""
    breaker = CircuitBreaker(failure_threshold=3, timeout=30, clock=clock)
    trip(breaker, 2)
    assert breaker.call(ok) == "ok"
    assert breaker.consecutive_failures == 0
    trip(breaker, 2)
    assert breaker.state is CircuitState.CLOSED


def test_call_returns_value_and_passes_arguments(clock: FakeClock) -> None:
    """call() forwards positional and keyword arguments and returns the result."""
    breaker = CircuitBreaker(clock=clock)

    def add(a: int, b: int, *, scale: int = 1) -> int:
        return (a + b) * scale

    assert breaker.call(add, 2, 3, scale=10) == 50


def test_rejection_carries_name_and_seconds_until_trial(clock: FakeClock) -> None:
    """CircuitOpenError names the breaker and says how long until the next trial."""
    breaker = CircuitBreaker(failure_threshold=1, timeout=30, name="grok_chat", clock=clock)
    trip(breaker, 1)
    clock.advance(10)
    with pytest.raises(CircuitOpenError) as caught:
        breaker.call(ok)
    assert caught.value.name == "grok_chat"
    assert caught.value.retry_after == pytest.approx(20.0)
    assert "grok_chat" in str(caught.value)
    assert "20.0s" in str(caught.value)
    assert breaker.retry_after == pytest.approx(20.0)


def test_rejection_error_pickles_as_the_public_class(clock: FakeClock) -> None:
    """The refusal error round-trips through pickle as a CircuitOpenError with its fields."""
    breaker = CircuitBreaker(failure_threshold=1, timeout=30, name="intel", clock=clock)
    trip(breaker, 1)
    with pytest.raises(CircuitOpenError) as caught:
        breaker.call(ok)
    copy = pickle.loads(pickle.dumps(caught.value))
    assert type(copy) is CircuitOpenError
    assert (copy.name, copy.retry_after) == ("intel", 30.0)
    assert type(caught.value).__name__ == "CircuitOpenError"
    assert caught.value.args == ("intel", 30.0)


def test_rejection_has_no_chained_context(clock: FakeClock) -> None:
    """A refusal raised while handling another error does not chain to it or keep it alive."""
    breaker = CircuitBreaker(failure_threshold=1, timeout=30, clock=clock)
    trip(breaker, 1)
    try:
        raise RuntimeError("unrelated")
    except RuntimeError:
        with pytest.raises(CircuitOpenError) as caught:
            breaker.call(ok)
    assert caught.value.__cause__ is None
    assert not isinstance(caught.value.__context__, Boom)


# --------------------------------------------------------------------------- half-open


def test_successful_trial_closes(clock: FakeClock) -> None:
    """With success_threshold=1 a single good trial closes the breaker."""
    breaker = CircuitBreaker(failure_threshold=1, timeout=5, clock=clock)
    trip(breaker, 1)
    clock.advance(5)
    assert breaker.call(ok) == "ok"
    assert breaker.state is CircuitState.CLOSED
    assert breaker.retry_after == 0.0


def test_failed_trial_reopens_for_a_full_timeout(clock: FakeClock) -> None:
    """A failed trial reopens the breaker and restarts the open period."""
    breaker = CircuitBreaker(failure_threshold=1, timeout=5, clock=clock)
    trip(breaker, 1)
    clock.advance(5)
    trip(breaker, 1)
    assert breaker.state is CircuitState.OPEN
    assert breaker.retry_after == pytest.approx(5.0)


def test_half_open_admits_one_trial_and_rejects_the_rest_at_once(clock: FakeClock) -> None:
    """While a trial runs, other callers are refused with retry_after 0.0."""
    breaker = CircuitBreaker(failure_threshold=1, timeout=5, clock=clock)
    trip(breaker, 1)
    clock.advance(5)
    refusals: list[CircuitOpenError] = []

    def trial() -> str:
        try:
            breaker.call(ok)
        except CircuitOpenError as exc:
            refusals.append(exc)
        return "trial done"

    assert breaker.call(trial) == "trial done"
    assert len(refusals) == 1
    assert refusals[0].retry_after == 0.0
    assert breaker.state is CircuitState.CLOSED


def test_half_open_max_calls_allows_that_many_concurrent_trials(clock: FakeClock) -> None:
    """half_open_max_calls=3 admits three overlapping trials and refuses the fourth."""
    breaker = CircuitBreaker(
        failure_threshold=1, timeout=5, half_open_max_calls=3, success_threshold=3, clock=clock
    )
    trip(breaker, 1)
    clock.advance(5)
    tickets = [breaker.acquire() for _ in range(3)]
    assert breaker.half_open_in_flight == 3
    with pytest.raises(CircuitOpenError):
        breaker.acquire()
    for ticket in tickets:
        breaker.on_success(ticket)
    assert breaker.state is CircuitState.CLOSED


def test_success_threshold_needs_that_many_trial_successes(clock: FakeClock) -> None:
    """With success_threshold=3 the breaker closes only after the third good trial."""
    breaker = CircuitBreaker(failure_threshold=1, timeout=5, success_threshold=3, clock=clock)
    trip(breaker, 1)
    clock.advance(5)
    breaker.call(ok)
    breaker.call(ok)
    assert breaker.state is CircuitState.HALF_OPEN
    breaker.call(ok)
    assert breaker.state is CircuitState.CLOSED


def test_hung_trial_reopens_after_half_open_max_wait(clock: FakeClock) -> None:
    """A trial that never reports cannot wedge the breaker: after the wait it reopens."""
    changes: list[StateChange] = []
    breaker = CircuitBreaker(
        failure_threshold=1,
        timeout=5,
        half_open_max_wait=10,
        clock=clock,
        listeners=(changes.append,),
    )
    trip(breaker, 1)
    clock.advance(5)
    hung = breaker.acquire()
    clock.advance(9.9)
    with pytest.raises(CircuitOpenError) as caught:
        breaker.acquire()
    assert caught.value.retry_after == 0.0
    clock.advance(0.1)
    assert breaker.state is CircuitState.OPEN
    assert "half_open_max_wait" in changes[-1].reason
    # After a further timeout a new trial is admitted, and the hung trial's late result is stale.
    clock.advance(5)
    fresh = breaker.acquire()
    breaker.on_failure(hung, Boom())
    assert breaker.state is CircuitState.HALF_OPEN
    breaker.on_success(fresh)
    assert breaker.state is CircuitState.CLOSED


def test_half_open_wait_counts_from_the_last_progress(clock: FakeClock) -> None:
    """Sequential slow-but-finishing trials never trip the hung-trial rule."""
    breaker = CircuitBreaker(
        failure_threshold=1, timeout=5, success_threshold=3, half_open_max_wait=10, clock=clock
    )
    trip(breaker, 1)
    clock.advance(5)
    for _ in range(3):
        ticket = breaker.acquire()
        clock.advance(8)
        breaker.on_success(ticket)
    assert breaker.state is CircuitState.CLOSED


def test_idle_half_open_does_not_reopen(clock: FakeClock) -> None:
    """With no trial in flight, time alone never moves HALF_OPEN back to OPEN."""
    breaker = CircuitBreaker(failure_threshold=1, timeout=5, half_open_max_wait=1, clock=clock)
    trip(breaker, 1)
    clock.advance(5)
    assert breaker.state is CircuitState.HALF_OPEN
    clock.advance(100)
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.call(ok) == "ok"


# --------------------------------------------------------------------------- generations


def test_outcome_from_before_a_state_change_does_not_count(clock: FakeClock) -> None:
    """A failure of a call admitted before a reset does not count against the new closed state."""
    breaker = CircuitBreaker(failure_threshold=1, timeout=5, clock=clock)
    old_ticket = breaker.acquire()
    breaker.force_open()
    breaker.reset()
    breaker.on_failure(old_ticket, Boom())
    assert breaker.state is CircuitState.CLOSED
    assert breaker.metrics.failed == 1  # still counted as a failed call in the metrics


def test_stale_success_does_not_close_a_half_open_breaker(clock: FakeClock) -> None:
    """A success from a call admitted while closed is no trial: half-open stays half-open."""
    breaker = CircuitBreaker(failure_threshold=1, timeout=5, clock=clock)
    early = breaker.acquire()
    trip(breaker, 1)
    clock.advance(5)
    assert breaker.state is CircuitState.HALF_OPEN
    breaker.on_success(early)
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.half_open_in_flight == 0


def test_slow_call_straddling_a_transition_is_stale(clock: FakeClock) -> None:
    """A guarded call whose breaker opens while it runs cannot fail the next half-open trial."""
    breaker = CircuitBreaker(failure_threshold=1, timeout=5, clock=clock)

    def long_call() -> None:
        trip(breaker, 1)  # another caller trips the breaker meanwhile
        clock.advance(5)
        assert breaker.state is CircuitState.HALF_OPEN
        raise Boom("late")

    with pytest.raises(Boom):
        breaker.call(long_call)
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.generation == 2


# --------------------------------------------------------------------------- classification


def test_failure_exceptions_limit_what_counts(clock: FakeClock) -> None:
    """Only the listed exception types count; others are neutral and do not reset the count."""
    breaker = CircuitBreaker(
        failure_threshold=2, timeout=5, failure_exceptions=(ConnectionError,), clock=clock
    )

    def refuse() -> None:
        raise ConnectionError("refused")

    with pytest.raises(ConnectionError):
        breaker.call(refuse)
    with pytest.raises(ValueError):
        breaker.call(lambda: int("x"))
    assert breaker.consecutive_failures == 1
    with pytest.raises(ConnectionError):
        breaker.call(refuse)
    assert breaker.state is CircuitState.OPEN
    assert breaker.metrics.ignored == 1


def test_predicate_classifies_exceptions(clock: FakeClock) -> None:
    """A predicate in failure_exceptions decides per exception instance."""

    class HttpError(Exception):
        def __init__(self, status: int) -> None:
            super().__init__(status)
            self.status = status

    def server_side(exc: BaseException) -> bool:
        return isinstance(exc, HttpError) and exc.status >= 500

    breaker = CircuitBreaker(
        failure_threshold=1, timeout=5, failure_exceptions=(server_side,), clock=clock
    )

    def raise_status(status: int) -> None:
        raise HttpError(status)

    with pytest.raises(HttpError):
        breaker.call(raise_status, 404)
    assert breaker.state is CircuitState.CLOSED
    with pytest.raises(HttpError):
        breaker.call(raise_status, 503)
    assert breaker.state is CircuitState.OPEN


def test_excluded_exceptions_neither_count_nor_reset(clock: FakeClock) -> None:
    """An excluded exception leaves the consecutive count exactly where it was."""
    breaker = CircuitBreaker(
        failure_threshold=3, timeout=5, excluded_exceptions=(KeyError,), clock=clock
    )
    trip(breaker, 2)

    def missing() -> None:
        raise KeyError("k")

    with pytest.raises(KeyError):
        breaker.call(missing)
    assert breaker.consecutive_failures == 2
    trip(breaker, 1)
    assert breaker.state is CircuitState.OPEN


def test_excluded_wins_over_failure_exceptions(clock: FakeClock) -> None:
    """A subclass excluded explicitly stays neutral even though its base class is a failure."""
    breaker = CircuitBreaker(
        failure_threshold=1,
        timeout=5,
        failure_exceptions=(OSError,),
        excluded_exceptions=(FileNotFoundError,),
        clock=clock,
    )

    def not_found() -> None:
        raise FileNotFoundError("x")

    with pytest.raises(FileNotFoundError):
        breaker.call(not_found)
    assert breaker.state is CircuitState.CLOSED


def test_failure_result_counts_but_still_returns(clock: FakeClock) -> None:
    """A result matched by failure_result counts as a failure yet reaches the caller."""

    class Response:
        def __init__(self, status: int) -> None:
            self.status = status

    def bad_status(response: Any) -> bool:
        return response.status >= 500 or response.status == 429

    breaker = CircuitBreaker(failure_threshold=2, timeout=5, failure_result=bad_status, clock=clock)
    assert breaker.call(Response, 503).status == 503
    assert breaker.call(Response, 200).status == 200
    assert breaker.consecutive_failures == 0
    assert breaker.call(Response, 429).status == 429
    assert breaker.call(Response, 500).status == 500
    assert breaker.state is CircuitState.OPEN
    assert breaker.metrics.failed == 3


@pytest.mark.parametrize(
    "exc_type",
    [KeyboardInterrupt, SystemExit, asyncio.CancelledError, concurrent.futures.CancelledError],
)
def test_process_and_cancellation_exceptions_are_never_counted(
    clock: FakeClock, exc_type: type[BaseException]
) -> None:
    """CancelledError, KeyboardInterrupt and SystemExit are neutral even if listed as failures."""
    breaker = CircuitBreaker(
        failure_threshold=1, timeout=5, failure_exceptions=(BaseException,), clock=clock
    )

    def stop() -> None:
        raise exc_type()

    with pytest.raises(exc_type):
        breaker.call(stop)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.metrics.ignored == 1


def test_neutral_outcome_releases_the_half_open_permit(clock: FakeClock) -> None:
    """A cancelled trial frees its slot at once, so the next caller can try."""
    breaker = CircuitBreaker(failure_threshold=1, timeout=5, clock=clock)
    trip(breaker, 1)
    clock.advance(5)

    def cancelled() -> None:
        raise asyncio.CancelledError()

    with pytest.raises(asyncio.CancelledError):
        breaker.call(cancelled)
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.half_open_in_flight == 0
    assert breaker.call(ok) == "ok"
    assert breaker.state is CircuitState.CLOSED


def test_failing_result_predicate_propagates_and_frees_the_permit(clock: FakeClock) -> None:
    """If failure_result itself raises, the caller sees it and the trial slot is released."""

    def broken(result: object) -> bool:
        raise RuntimeError("bad predicate")

    breaker = CircuitBreaker(failure_threshold=1, timeout=5, failure_result=broken, clock=clock)
    trip(breaker, 1)
    clock.advance(5)
    with pytest.raises(RuntimeError, match="bad predicate"):
        breaker.call(ok)
    assert breaker.half_open_in_flight == 0
    assert breaker.metrics.ignored == 1


# --------------------------------------------------------------------------- manual control


def test_force_open_stays_open_until_reset(clock: FakeClock) -> None:
    """force_open() refuses calls however long we wait; reset() closes it."""
    breaker = CircuitBreaker(failure_threshold=5, timeout=30, clock=clock)
    breaker.force_open()
    clock.advance(10_000)
    assert breaker.state is CircuitState.OPEN
    assert breaker.is_forced_open
    with pytest.raises(CircuitOpenError) as caught:
        breaker.call(ok)
    assert caught.value.retry_after == 30.0  # a finite hint: the base timeout
    snapshot = breaker.snapshot()
    assert snapshot["retry_after"] is None
    assert snapshot["forced_open"] is True
    json.dumps(snapshot, allow_nan=False)  # strict JSON, as web frameworks render it
    breaker.reset()
    assert breaker.state is CircuitState.CLOSED
    assert not breaker.is_forced_open
    assert breaker.call(ok) == "ok"


def test_reset_forgets_failures_and_open_growth(clock: FakeClock) -> None:
    """reset() clears the consecutive count and the growing open duration."""
    breaker = CircuitBreaker(
        failure_threshold=2, timeout=10, timeout_multiplier=2, max_timeout=100, clock=clock
    )
    trip(breaker, 1)
    breaker.reset()
    assert breaker.consecutive_failures == 0
    trip(breaker, 1)
    assert breaker.state is CircuitState.CLOSED
    trip(breaker, 1)
    clock.advance(10)
    trip(breaker, 1)  # failed trial: second opening lasts 20 s
    assert breaker.retry_after == pytest.approx(20)
    breaker.reset()
    trip(breaker, 2)
    assert breaker.retry_after == pytest.approx(10)


# --------------------------------------------------------------------------- listeners


def test_listeners_see_every_state_change_in_order(clock: FakeClock) -> None:
    """A sync listener gets each transition with name, old, new, reason and wall time."""
    seen: list[StateChange] = []
    breaker = CircuitBreaker(failure_threshold=1, timeout=5, name="pulse", clock=clock)
    breaker.add_listener(seen.append)
    trip(breaker, 1)
    clock.advance(5)
    breaker.call(ok)
    breaker.force_open()
    breaker.reset()
    assert [(c.old.value, c.new.value) for c in seen] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
        ("closed", "open"),
        ("open", "closed"),
    ]
    assert all(c.name == "pulse" for c in seen)
    assert seen[0].at == clock.wall() - 5
    assert "consecutive failures" in seen[0].reason
    assert seen[3].reason == "forced open"
    assert seen[4].reason == "reset"


def test_a_failing_listener_never_breaks_the_breaker(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A listener that raises is logged; the breaker and the other listeners carry on."""
    seen: list[StateChange] = []

    def broken(change: StateChange) -> None:
        raise RuntimeError("listener bug")

    breaker = CircuitBreaker(
        failure_threshold=1, timeout=5, clock=clock, listeners=(broken, seen.append)
    )
    trip(breaker, 1)
    assert breaker.state is CircuitState.OPEN
    assert len(seen) == 1
    assert "listener" in caplog.text


def test_removed_listener_hears_nothing(clock: FakeClock) -> None:
    """remove_listener stops delivery to that listener."""
    seen: list[StateChange] = []
    breaker = CircuitBreaker(failure_threshold=1, timeout=5, clock=clock)
    breaker.add_listener(seen.append)
    breaker.remove_listener(seen.append)
    trip(breaker, 1)
    assert seen == []


def test_listener_may_call_back_into_the_breaker(clock: FakeClock) -> None:
    """A listener that resets the breaker on open does not deadlock and its change is delivered."""
    seen: list[tuple[str, str]] = []
    breaker = CircuitBreaker(failure_threshold=1, timeout=5, clock=clock)

    def auto_reset(change: StateChange) -> None:
        seen.append((change.old.value, change.new.value))
        if change.new is CircuitState.OPEN:
            breaker.reset()

    breaker.add_listener(auto_reset)
    trip(breaker, 1)
    assert breaker.state is CircuitState.CLOSED
    assert seen == [("closed", "open"), ("open", "closed")]


async def test_async_listener_runs_on_the_running_loop(clock: FakeClock) -> None:
    """An async listener is scheduled as a task on the loop that is running the transition."""
    seen: list[StateChange] = []
    done = asyncio.Event()

    async def listener(change: StateChange) -> None:
        await asyncio.sleep(0)
        seen.append(change)
        done.set()

    breaker = CircuitBreaker(failure_threshold=1, timeout=5, clock=clock, listeners=(listener,))

    async def failing() -> None:
        raise Boom()

    with pytest.raises(Boom):
        await breaker.call_async(failing)
    await asyncio.wait_for(done.wait(), timeout=5)
    assert [c.new for c in seen] == [CircuitState.OPEN]


async def test_sync_and_async_listeners_see_every_change_in_order(clock: FakeClock) -> None:
    """Trip, trial, close, force_open and reset: both kinds of listener hear all five, in order."""
    heard_sync: list[tuple[str, str]] = []
    heard_async: list[tuple[str, str]] = []
    all_heard = asyncio.Event()

    async def async_listener(change: StateChange) -> None:
        await asyncio.sleep(0)
        heard_async.append((change.old.value, change.new.value))
        if len(heard_async) == 5:
            all_heard.set()

    breaker = CircuitBreaker(
        failure_threshold=1,
        timeout=5,
        clock=clock,
        listeners=(lambda c: heard_sync.append((c.old.value, c.new.value)), async_listener),
    )

    async def failing() -> None:
        raise Boom()

    async def fine() -> str:
        return "ok"

    with pytest.raises(Boom):
        await breaker.call_async(failing)
    clock.advance(5)
    assert await breaker.call_async(fine) == "ok"
    breaker.force_open()
    breaker.reset()
    await asyncio.wait_for(all_heard.wait(), timeout=5)
    expected = [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
        ("closed", "open"),
        ("open", "closed"),
    ]
    assert heard_sync == expected
    assert heard_async == expected


def test_async_listener_without_a_loop_runs_to_completion(clock: FakeClock) -> None:
    """With no event loop anywhere, an async listener is run to completion in the caller."""
    seen: list[StateChange] = []

    async def listener(change: StateChange) -> None:
        await asyncio.sleep(0)
        seen.append(change)

    breaker = CircuitBreaker(failure_threshold=1, timeout=5, clock=clock)
    breaker.add_listener(listener)
    trip(breaker, 1)
    assert [c.new for c in seen] == [CircuitState.OPEN]


async def test_async_listener_from_a_worker_thread_runs_on_its_home_loop(clock: FakeClock) -> None:
    """A transition in a worker thread schedules the async listener on the loop it came from."""
    loop = asyncio.get_running_loop()
    seen: list[tuple[StateChange, asyncio.AbstractEventLoop]] = []
    done = asyncio.Event()

    async def listener(change: StateChange) -> None:
        seen.append((change, asyncio.get_running_loop()))
        done.set()

    breaker = CircuitBreaker(failure_threshold=1, timeout=5, clock=clock)
    breaker.add_listener(listener)  # added while this loop runs: it is the listener's home
    await asyncio.to_thread(trip, breaker, 1)
    await asyncio.wait_for(done.wait(), timeout=5)
    assert seen[0][1] is loop


async def test_failing_async_listener_is_logged(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """An async listener's exception is logged and swallowed."""
    finished = asyncio.Event()

    async def listener(change: StateChange) -> None:
        finished.set()
        raise RuntimeError("async listener bug")

    breaker = CircuitBreaker(failure_threshold=1, timeout=5, clock=clock, listeners=(listener,))
    trip(breaker, 1)
    await asyncio.wait_for(finished.wait(), timeout=5)
    for _ in range(3):
        await asyncio.sleep(0)
    assert "async state listener failed" in caplog.text
    assert breaker.state is CircuitState.OPEN


# --------------------------------------------------------------------------- metrics / snapshot


def test_metrics_count_every_kind_of_call(clock: FakeClock) -> None:
    """succeeded, failed, rejected and ignored add up to every call made."""
    breaker = CircuitBreaker(
        failure_threshold=2, timeout=5, excluded_exceptions=(KeyError,), clock=clock
    )
    breaker.call(ok)
    breaker.call(ok)

    def missing() -> None:
        raise KeyError("k")

    with pytest.raises(KeyError):
        breaker.call(missing)
    trip(breaker, 2)
    for _ in range(3):
        with pytest.raises(CircuitOpenError):
            breaker.call(ok)
    metrics = breaker.metrics
    assert (metrics.succeeded, metrics.failed, metrics.ignored, metrics.rejected) == (2, 2, 1, 3)
    assert metrics.calls == 8
    assert metrics.permitted == 5
    assert metrics.failure_rate == pytest.approx(0.5)


def test_snapshot_is_json_ready(clock: FakeClock) -> None:
    """snapshot() gives the status API name, state, failures, opened_at and retry_after."""
    breaker = CircuitBreaker(failure_threshold=2, timeout=30, name="scans", clock=clock)
    trip(breaker, 2)
    clock.advance(12)
    snapshot = breaker.snapshot()
    json.dumps(snapshot, allow_nan=False)
    assert snapshot["name"] == "scans"
    assert snapshot["state"] == "open"
    assert snapshot["opened_at"] == clock.wall() - 12
    assert snapshot["retry_after"] == pytest.approx(18)
    assert snapshot["calls"]["failed"] == 2
    assert snapshot["policy"] == "consecutive_failures"
    breaker.reset()
    closed = breaker.snapshot()
    assert (closed["state"], closed["opened_at"], closed["retry_after"]) == ("closed", None, 0.0)


def make_breaker(clock: FakeClock, **kwargs: Any) -> CircuitBreaker:
    return CircuitBreaker(clock=clock, **kwargs)


def test_repr_names_breaker_and_state(clock: FakeClock) -> None:
    """repr shows the name and the current state."""
    breaker: Callable[..., CircuitBreaker] = make_breaker
    assert repr(breaker(clock, name="chat")) == "<CircuitBreaker 'chat' closed>"


def test_integer_clock_and_timeout_still_refuse() -> None:
    """A clock that returns whole seconds and an int timeout refuse calls like any other."""

    class WholeSecondClock:
        def __init__(self) -> None:
            self.now = 100

        def monotonic(self) -> float:
            return self.now

        def wall(self) -> float:
            return self.now

        def sleep(self, seconds: float) -> None:
            self.now += int(seconds)

        async def sleep_async(self, seconds: float) -> None:
            self.sleep(seconds)

    clock = WholeSecondClock()
    breaker = CircuitBreaker(failure_threshold=1, timeout=30, clock=clock)
    trip(breaker, 1)
    clock.now += 10
    with pytest.raises(CircuitOpenError) as caught:
        breaker.call(ok)
    assert caught.value.retry_after == 20.0
    breaker.force_open()
    with pytest.raises(CircuitOpenError):
        breaker.call(ok)


def test_listeners_added_from_many_threads_are_all_kept(clock: FakeClock) -> None:
    """Concurrent add_listener calls lose no listener; each one hears the next change."""
    import threading

    breaker = CircuitBreaker(failure_threshold=1, timeout=5, clock=clock)
    heard: list[int] = []
    start = threading.Barrier(16)

    def register(index: int) -> None:
        start.wait()
        for offset in range(20):
            breaker.add_listener(lambda change, n=index * 100 + offset: heard.append(n))

    threads = [threading.Thread(target=register, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    trip(breaker, 1)
    assert sorted(heard) == sorted(i * 100 + o for i in range(16) for o in range(20))


def test_add_listener_works_as_a_decorator_and_checks_its_argument(clock: FakeClock) -> None:
    """add_listener returns the listener, and refuses something that cannot be called."""
    breaker = CircuitBreaker(failure_threshold=1, timeout=5, clock=clock)
    seen: list[CircuitState] = []

    @breaker.add_listener
    def on_change(change: StateChange) -> None:
        seen.append(change.new)

    trip(breaker, 1)
    assert seen == [CircuitState.OPEN]
    assert callable(on_change)
    with pytest.raises(TypeError, match="callable"):
        breaker.add_listener("not a function")  # type: ignore[arg-type]
