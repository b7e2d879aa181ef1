"""Opening policies (failure rate over count and time windows), growing open durations, the
validated options object and the state store."""

from __future__ import annotations

import dataclasses

import pytest

from jupiter.resilience import (
    BreakerStateRecord,
    BreakerStateStore,
    CircuitBreaker,
    CircuitBreakerOptions,
    CircuitOpenError,
    CircuitState,
    InMemoryBreakerStateStore,
)
from jupiter.resilience._breaker_options import OptionOverrides
from jupiter.resilience.testing import FakeClock


class Boom(Exception):
    """The guarded dependency failed."""


def fail() -> None:
    raise Boom()


def ok() -> str:
    return "ok"


def run(breaker: CircuitBreaker, outcomes: str) -> None:
    """Drive calls: 'f' a failure, 's' a success."""
    for outcome in outcomes:
        if outcome == "f":
            with pytest.raises(Boom):
                breaker.call(fail)
        else:
            breaker.call(ok)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# --------------------------------------------------------------------------- rate windows


def test_count_window_opens_on_failure_rate_after_minimum_calls(clock: FakeClock) -> None:
    """Rate policy: half of the last 10 calls failing opens it, but not before minimum_calls."""
    breaker = CircuitBreaker(
        failure_rate_threshold=0.5, window_size=10, minimum_calls=6, clock=clock
    )
    run(breaker, "fffff")  # 100% failures but only 5 calls
    assert breaker.state is CircuitState.CLOSED
    run(breaker, "f")
    assert breaker.state is CircuitState.OPEN
    assert breaker.snapshot()["policy"] == "failure_rate_count_window"


def test_count_window_ignores_consecutive_runs_below_the_rate(clock: FakeClock) -> None:
    """Interleaved failures under the threshold never open a rate-policy breaker."""
    breaker = CircuitBreaker(
        failure_threshold=2,
        failure_rate_threshold=0.6,
        window_size=10,
        minimum_calls=4,
        clock=clock,
    )
    run(breaker, "sff" + "ssf" * 10)
    assert breaker.state is CircuitState.CLOSED
    metrics = breaker.metrics
    assert metrics.window_calls == 10
    assert metrics.failure_rate == pytest.approx(metrics.window_failures / 10)


def test_count_window_slides(clock: FakeClock) -> None:
    """Only the last window_size outcomes count: old failures fall out of the window."""
    breaker = CircuitBreaker(
        failure_rate_threshold=0.6, window_size=5, minimum_calls=5, clock=clock
    )
    run(breaker, "ffsss")  # 40%
    run(breaker, "sss")  # window now s s s s s -> 0%
    assert breaker.metrics.window_failures == 0
    run(breaker, "ff")  # window s s s f f -> 40%
    assert breaker.state is CircuitState.CLOSED
    run(breaker, "f")  # window s s f f f -> 60%
    assert breaker.state is CircuitState.OPEN


def test_time_window_forgets_old_buckets(clock: FakeClock) -> None:
    """Time policy: failures older than window_duration no longer count."""
    breaker = CircuitBreaker(
        failure_rate_threshold=0.5,
        window_type="time",
        window_duration=10,
        window_buckets=10,
        minimum_calls=4,
        clock=clock,
    )
    run(breaker, "fff")
    clock.advance(11)
    run(breaker, "sss")
    assert breaker.metrics.window_calls == 3
    run(breaker, "f")  # 1 of 4 in the window
    assert breaker.state is CircuitState.CLOSED
    run(breaker, "f")  # 2 of 5
    run(breaker, "f")  # 3 of 6 = 50%
    assert breaker.state is CircuitState.OPEN
    assert breaker.snapshot()["policy"] == "failure_rate_time_window"


def test_time_window_counts_everything_inside_it(clock: FakeClock) -> None:
    """Calls spread over the window all count until their bucket leaves it."""
    breaker = CircuitBreaker(
        failure_rate_threshold=0.9,
        window_type="time",
        window_duration=10,
        window_buckets=5,
        minimum_calls=100,
        clock=clock,
    )
    for _ in range(9):
        run(breaker, "sf")
        clock.advance(1)
    assert breaker.metrics.window_calls == 18
    clock.advance(10)
    assert breaker.metrics.window_calls == 0


def test_rate_breaker_half_open_and_close_clears_the_window(clock: FakeClock) -> None:
    """After closing again, a rate breaker starts from an empty window."""
    breaker = CircuitBreaker(
        failure_rate_threshold=0.5, window_size=4, minimum_calls=2, timeout=5, clock=clock
    )
    run(breaker, "ff")
    assert breaker.state is CircuitState.OPEN
    clock.advance(5)
    run(breaker, "s")
    assert breaker.state is CircuitState.CLOSED
    assert breaker.metrics.window_calls == 0
    run(breaker, "f")
    assert breaker.state is CircuitState.CLOSED


# --------------------------------------------------------------------------- open duration


def test_open_duration_grows_exponentially_up_to_the_cap(clock: FakeClock) -> None:
    """Each failed trial doubles the open period until max_timeout."""
    breaker = CircuitBreaker(
        failure_threshold=1, timeout=10, timeout_multiplier=2, max_timeout=45, clock=clock
    )
    durations = []
    run(breaker, "f")
    for _ in range(5):
        durations.append(breaker.retry_after)
        clock.advance(breaker.retry_after)
        run(breaker, "f")
    assert durations == [10, 20, 40, 45, 45]
    clock.advance(45)
    run(breaker, "s")
    run(breaker, "f")
    assert breaker.retry_after == 10


def test_open_duration_cannot_overflow(clock: FakeClock) -> None:
    """Thousands of openings keep the duration at the cap, never inf or an error."""
    breaker = CircuitBreaker(
        failure_threshold=1, timeout=1, timeout_multiplier=10, max_timeout=300, clock=clock
    )
    run(breaker, "f")
    for _ in range(2000):
        clock.advance(breaker.retry_after)
        run(breaker, "f")
    assert breaker.retry_after == 300


def test_jitter_shortens_within_bounds_using_injected_random(clock: FakeClock) -> None:
    """Jitter draws from the injected random source and never exceeds the cap."""
    draws = iter([0.0, 1.0, 0.5, 0.999])
    breaker = CircuitBreaker(
        failure_threshold=1,
        timeout=10,
        timeout_multiplier=2,
        max_timeout=40,
        timeout_jitter=0.5,
        random=lambda: next(draws),
        clock=clock,
    )
    seen = []
    run(breaker, "f")
    for _ in range(3):
        seen.append(breaker.retry_after)
        clock.advance(breaker.retry_after)
        run(breaker, "f")
    seen.append(breaker.retry_after)
    assert seen == pytest.approx([10.0, 10.0, 30.0, 40 * (1 - 0.5 * 0.999)])
    assert all(0 < value <= 40 for value in seen)


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"failure_threshold": 0}, "failure_threshold must be >= 1"),
        ({"failure_threshold": 2.5}, "failure_threshold must be an integer"),
        ({"failure_threshold": True}, "failure_threshold must be an integer"),
        ({"timeout": -1}, "timeout must be >= 0"),
        ({"timeout": float("nan")}, "timeout must be a finite"),
        ({"timeout": "60"}, "timeout must be a number"),
        ({"name": ""}, "name must be a non-empty string"),
        ({"failure_rate_threshold": 50}, "fraction in \\(0, 1\\]"),
        ({"window_type": "calls"}, "window_type must be 'count' or 'time'"),
        ({"window_size": 0}, "window_size must be >= 1"),
        ({"window_duration": 0}, "window_duration must be > 0"),
        ({"minimum_calls": 0}, "minimum_calls must be >= 1"),
        ({"slow_call_duration": 0}, "slow_call_duration must be > 0"),
        ({"success_threshold": 0}, "success_threshold must be >= 1"),
        ({"half_open_max_calls": 0}, "half_open_max_calls must be >= 1"),
        ({"half_open_max_wait": 0}, "half_open_max_wait must be > 0"),
        ({"timeout_multiplier": 0.5}, "timeout_multiplier must be >= 1"),
        ({"timeout_multiplier": 2}, "needs max_timeout"),
        ({"max_timeout": 10, "timeout": 60}, "must not be below timeout"),
        ({"timeout_jitter": 1.0}, "timeout_jitter must be a fraction"),
        ({"failure_exceptions": (42,)}, "exception types or predicates"),
        ({"failure_result": "yes"}, "failure_result must be a predicate"),
        ({"clock": object()}, "clock must provide"),
    ],
)
def test_invalid_options_raise_clear_value_errors(kwargs: dict[str, object], message: str) -> None:
    """Every invalid option is refused with a ValueError that names it."""
    with pytest.raises(ValueError, match=message):
        CircuitBreaker(**kwargs)  # type: ignore[arg-type]


def test_options_object_is_frozen_and_accepted(clock: FakeClock) -> None:
    """A whole options object can be passed; keywords next to it override fields."""
    options = CircuitBreakerOptions(failure_threshold=2, timeout=7, name="base", clock=clock)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.timeout = 1  # type: ignore[misc]
    breaker = CircuitBreaker(options=options)
    assert breaker.options is options
    renamed = CircuitBreaker(options=options, name="other")
    assert (renamed.name, renamed.options.failure_threshold) == ("other", 2)
    with pytest.raises(TypeError, match="options object"):
        CircuitBreaker(3, options=options)


def test_single_exception_type_is_accepted_where_a_tuple_is_expected() -> None:
    """failure_exceptions=ConnectionError is normalised to a one-element tuple."""
    options = CircuitBreakerOptions(failure_exceptions=ConnectionError)  # type: ignore[arg-type]
    assert options.failure_exceptions == (ConnectionError,)


def test_keyword_arguments_cover_every_option() -> None:
    """The typed keyword arguments of CircuitBreaker are exactly the options' fields."""
    fields = {f.name for f in dataclasses.fields(CircuitBreakerOptions)}
    keywords = set(OptionOverrides.__annotations__) | {"failure_threshold", "timeout"}
    assert keywords == fields


# --------------------------------------------------------------------------- store


def test_transitions_are_saved_to_the_store(clock: FakeClock) -> None:
    """Every transition writes a record with wall-clock times to the store."""
    store = InMemoryBreakerStateStore()
    assert isinstance(store, BreakerStateStore)
    breaker = CircuitBreaker(
        failure_threshold=1, timeout=30, name="intel", store=store, clock=clock
    )
    run(breaker, "f")
    record = store.load("intel")
    assert record is not None
    assert record.state is CircuitState.OPEN
    assert record.open_until == pytest.approx(clock.wall() + 30)
    assert record.openings == 1
    breaker.reset()
    record = store.load("intel")
    assert record is not None
    assert record.state is CircuitState.CLOSED
    assert store.names() == ["intel"]


def test_a_resumed_open_circuit_keeps_the_failures_that_opened_it(clock: FakeClock) -> None:
    store = InMemoryBreakerStateStore()
    first = CircuitBreaker(failure_threshold=2, timeout=30, name="chat", store=store, clock=clock)
    run(first, "ff")
    record = store.load("chat")
    assert record is not None
    assert record.failures == 2
    second = CircuitBreaker(failure_threshold=2, timeout=30, name="chat", store=store, clock=clock)
    assert second.state is CircuitState.OPEN
    assert second.failures == 2


def test_a_new_breaker_resumes_an_open_circuit_from_the_store(clock: FakeClock) -> None:
    """A breaker built on a store that says OPEN starts open with the remaining time."""
    store = InMemoryBreakerStateStore()
    first = CircuitBreaker(failure_threshold=1, timeout=30, name="pulse", store=store, clock=clock)
    run(first, "f")
    clock.advance(10)
    second = CircuitBreaker(failure_threshold=1, timeout=30, name="pulse", store=store, clock=clock)
    assert second.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError) as caught:
        second.call(ok)
    assert caught.value.retry_after == pytest.approx(20)
    clock.advance(20)
    assert second.call(ok) == "ok"
    assert second.state is CircuitState.CLOSED


def test_forced_open_is_resumed_from_the_store(clock: FakeClock) -> None:
    """A forced-open record keeps a new breaker open until reset."""
    store = InMemoryBreakerStateStore()
    store.save(
        "chat",
        BreakerStateRecord(
            state=CircuitState.OPEN, reason="forced open", changed_at=0, forced=True
        ),
    )
    breaker = CircuitBreaker(name="chat", store=store, clock=clock)
    clock.advance(1e6)
    assert breaker.state is CircuitState.OPEN
    assert breaker.is_forced_open


def test_a_failing_store_does_not_break_the_breaker(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Store errors are logged; transitions still happen."""

    class BrokenStore:
        def load(self, name: str) -> BreakerStateRecord | None:
            return None

        def save(self, name: str, record: BreakerStateRecord) -> None:
            raise ConnectionError("store down")

    breaker = CircuitBreaker(failure_threshold=1, timeout=5, store=BrokenStore(), clock=clock)
    run(breaker, "f")
    assert breaker.state is CircuitState.OPEN
    assert "state store failed" in caplog.text


def test_the_success_path_never_touches_the_store(clock: FakeClock) -> None:
    """Closed-state calls do not read or write the store; only transitions do."""

    class CountingStore(InMemoryBreakerStateStore):
        def __init__(self) -> None:
            super().__init__()
            self.operations = 0

        def load(self, name: str) -> BreakerStateRecord | None:
            self.operations += 1
            return super().load(name)

        def save(self, name: str, record: BreakerStateRecord) -> None:
            self.operations += 1
            super().save(name, record)

    store = CountingStore()
    breaker = CircuitBreaker(store=store, clock=clock)
    assert store.operations == 1  # the initial load
    run(breaker, "s" * 100 + "ff" + "s" * 10)
    assert store.operations == 1
