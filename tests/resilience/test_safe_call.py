"""``safe_api_call`` / ``safe_api_call_async`` (src/jupiter/resilience/_safe_call.py)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from jupiter.resilience import (
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    ErrorAggregator,
    safe_api_call,
    safe_api_call_async,
)
from jupiter.resilience.testing import FakeClock

SECRET = "sk-proj-abcdefghijklmnop1234567890"


class Upstream:
    """A dependency that fails ``failures`` times, then answers ``{"data": [1]}``."""

    def __init__(self, failures: int, error: type[Exception] = ConnectionError) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self, *args: object, **kwargs: object) -> dict[str, list[int]]:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error(f"upstream refused key {SECRET}")
        return {"data": [1]}

    async def fetch(self, *args: object, **kwargs: object) -> dict[str, list[int]]:
        await asyncio.sleep(0)
        return self(*args, **kwargs)


def test_success_returns_the_result_without_logging(caplog):
    """A working dependency: its result, one call, no warnings."""
    caplog.set_level(logging.WARNING, logger="jupiter.resilience")
    upstream = Upstream(0)
    assert safe_api_call(upstream, fallback={"data": []}, clock=FakeClock()) == {"data": [1]}
    assert upstream.calls == 1
    assert caplog.records == []


def test_transient_failures_are_retried_before_succeeding():
    """Two failures, then success within max_retries=3 attempts."""
    clock = FakeClock()
    upstream = Upstream(2)
    assert safe_api_call(upstream, fallback={"data": []}, max_retries=3, clock=clock) == {
        "data": [1]
    }
    assert upstream.calls == 3
    assert clock.sleeps == [1.0, 2.0]


def test_persistent_failure_returns_the_fallback_after_max_retries(caplog):
    """max_retries attempts, then the fallback; the log names log_name and hides the key."""
    caplog.set_level(logging.WARNING, logger="jupiter.resilience")
    clock = FakeClock()
    upstream = Upstream(10)
    result = safe_api_call(
        func=upstream, fallback={"data": []}, max_retries=3, log_name="KEV feed", clock=clock
    )
    assert result == {"data": []}
    assert upstream.calls == 3
    assert clock.sleeps == [1.0, 2.0]
    text = caplog.text
    assert "KEV feed failed after 3 attempt(s)" in text
    assert "KEV feed: attempt 1 failed" in text
    assert SECRET not in text
    assert "[REDACTED]" in text
    assert [r.levelname for r in caplog.records] == ["WARNING", "WARNING", "ERROR"]


def test_arguments_are_passed_to_every_attempt():
    """args and kwargs reach the function on each attempt."""
    seen = []

    def fetch(url: str, *, page: int) -> str:
        seen.append((url, page))
        if len(seen) < 2:
            raise TimeoutError
        return "ok"

    result = safe_api_call(fetch, args=("/x",), kwargs={"page": 2}, clock=FakeClock())
    assert result == "ok"
    assert seen == [("/x", 2), ("/x", 2)]


def test_on_error_reports_the_final_failure_to_an_aggregator():
    """on_error is called once, with the last exception, e.g. to record it in ErrorAggregator."""
    aggregator = ErrorAggregator(window_minutes=60, clock=FakeClock())
    errors: list[BaseException] = []

    def record(exc: BaseException) -> None:
        errors.append(exc)
        aggregator.record_error("api_failure", type(exc).__name__, {"endpoint": "/kev"})

    safe_api_call(Upstream(10), fallback=None, on_error=record, clock=FakeClock())
    assert len(errors) == 1
    assert isinstance(errors[0], ConnectionError)
    assert aggregator.get_error_stats()["total_errors"] == 1


def test_a_failing_on_error_hook_does_not_lose_the_fallback(caplog):
    """An exception inside on_error is logged (type only) and the fallback still returned."""
    caplog.set_level(logging.ERROR, logger="jupiter.resilience")

    def broken_hook(exc: BaseException) -> None:
        raise RuntimeError(f"hook has {SECRET}")

    result = safe_api_call(
        Upstream(10), fallback="cached", on_error=broken_hook, max_retries=1, clock=FakeClock()
    )
    assert result == "cached"
    assert "on_error hook failed (RuntimeError)" in caplog.text
    assert SECRET not in caplog.text


def test_callable_fallback_gets_the_exception():
    """A fallback callable receives the final exception."""
    result = safe_api_call(
        Upstream(10, error=TimeoutError),
        fallback=lambda exc: {"error": type(exc).__name__},
        max_retries=2,
        clock=FakeClock(),
    )
    assert result == {"error": "TimeoutError"}


def test_keyboard_interrupt_is_not_swallowed():
    """Only Exception ends in the fallback; KeyboardInterrupt propagates."""

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        safe_api_call(interrupted, fallback="x", clock=FakeClock())


def test_calls_go_through_the_breaker_and_an_open_circuit_skips_retries(caplog):
    """With a real breaker: failures open it; then CircuitOpenError goes straight to fallback."""
    caplog.set_level(logging.WARNING, logger="jupiter.resilience")
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, timeout=30, clock=clock, name="kev")
    upstream = Upstream(100)
    first = safe_api_call(upstream, fallback="fb", max_retries=3, breaker=breaker, clock=clock)
    assert first == "fb"
    # Attempt 1 and 2 fail and open the breaker; attempt 3 is refused by the breaker.
    assert upstream.calls == 2
    assert breaker.state is CircuitState.OPEN
    sleeps_before = list(clock.sleeps)
    second = safe_api_call(upstream, fallback="fb", max_retries=3, breaker=breaker, clock=clock)
    assert second == "fb"
    assert upstream.calls == 2
    assert clock.sleeps == sleeps_before  # no retry, no sleep for an open circuit
    assert "circuit kev open" in caplog.text


def test_any_object_with_call_is_accepted_as_breaker():
    """The breaker is duck-typed: anything with call(fn, *args, **kwargs)."""

    class Gate:
        def __init__(self) -> None:
            self.routed = 0

        def call(self, fn, *args, **kwargs):
            self.routed += 1
            return fn(*args, **kwargs)

    gate = Gate()
    assert safe_api_call(Upstream(1), breaker=gate, clock=FakeClock()) == {"data": [1]}
    assert gate.routed == 2


def test_a_breaker_without_call_is_rejected():
    """A breaker that cannot route calls is a clear error, not a silent bypass."""
    with pytest.raises(ValueError, match="breaker"):
        safe_api_call(Upstream(0), breaker=object(), clock=FakeClock())


# -- async twin -------------------------------------------------------------------------------


async def test_async_retries_then_returns_the_fallback(caplog):
    """The async twin retries on the clock and returns the fallback, logging without secrets."""
    caplog.set_level(logging.WARNING, logger="jupiter.resilience")
    clock = FakeClock()
    upstream = Upstream(10)
    result = await safe_api_call_async(
        upstream.fetch, fallback={"data": []}, max_retries=3, log_name="Grok", clock=clock
    )
    assert result == {"data": []}
    assert upstream.calls == 3
    assert clock.sleeps == [1.0, 2.0]
    assert "Grok failed after 3 attempt(s)" in caplog.text
    assert SECRET not in caplog.text


async def test_async_success_and_async_fallback_and_hook():
    """Async function, async fallback factory and async on_error all work."""
    clock = FakeClock()
    assert await safe_api_call_async(Upstream(1).fetch, fallback=None, clock=clock) == {"data": [1]}
    reported: list[str] = []

    async def on_error(exc: BaseException) -> None:
        await asyncio.sleep(0)
        reported.append(type(exc).__name__)

    async def from_cache(exc: BaseException) -> str:
        await asyncio.sleep(0)
        return "cached"

    result = await safe_api_call_async(
        Upstream(10).fetch, fallback=from_cache, on_error=on_error, max_retries=2, clock=clock
    )
    assert result == "cached"
    assert reported == ["ConnectionError"]


async def test_async_calls_go_through_breaker_call_async():
    """With a breaker, each async attempt runs through breaker.call_async."""
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, timeout=30, clock=clock, name="grok")
    upstream = Upstream(100)
    assert (
        await safe_api_call_async(upstream.fetch, fallback="fb", breaker=breaker, clock=clock)
        == "fb"
    )
    assert upstream.calls == 1
    assert breaker.state is CircuitState.OPEN


async def test_async_circuit_open_error_is_not_retried():
    """A CircuitOpenError from the call itself goes straight to the fallback."""
    clock = FakeClock()
    calls = 0

    async def refused() -> None:
        nonlocal calls
        calls += 1
        raise CircuitOpenError("grok", 12.0)

    assert await safe_api_call_async(refused, fallback="fb", clock=clock) == "fb"
    assert calls == 1
    assert clock.sleeps == []


async def test_safe_api_call_awaits_an_async_function_with_retry_and_fallback():
    """safe_api_call given an async function returns an awaitable that retries, then falls back."""
    clock = FakeClock()
    attempts = 0

    async def flaky() -> dict[str, list[int]]:
        nonlocal attempts
        attempts += 1
        raise ConnectionError("upstream down")

    result = await safe_api_call(
        func=flaky, fallback={"data": []}, max_retries=3, log_name="Feed", clock=clock
    )
    assert result == {"data": []}
    assert attempts == 3
    assert clock.sleeps == [1.0, 2.0]


async def test_safe_api_call_returns_an_async_success_unchanged():
    """An async function that succeeds gives its value through safe_api_call."""

    async def fine() -> str:
        return "ok"

    assert await safe_api_call(func=fine, fallback="fallback", clock=FakeClock()) == "ok"
