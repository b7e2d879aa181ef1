"""Every way of calling through a breaker drives the same core: call, call_async, the decorator
on sync and async functions and methods, and the sync and async context managers."""

from __future__ import annotations

import asyncio
import contextlib
import inspect

import pytest

from jupiter.resilience import CircuitBreaker, CircuitOpenError, CircuitState
from jupiter.resilience.testing import FakeClock


class Boom(Exception):
    """The guarded dependency failed."""


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def test_call_async_counts_failures_and_opens(clock: FakeClock) -> None:
    """call_async awaits the coroutine function and feeds its outcome to the breaker."""
    breaker = CircuitBreaker(failure_threshold=2, timeout=10, clock=clock)

    async def fetch(value: int, *, double: bool = False) -> int:
        await asyncio.sleep(0)
        return value * 2 if double else value

    async def failing() -> None:
        await asyncio.sleep(0)
        raise Boom()

    assert await breaker.call_async(fetch, 21, double=True) == 42
    for _ in range(2):
        with pytest.raises(Boom):
            await breaker.call_async(failing)
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError):
        await breaker.call_async(fetch, 1)
    clock.advance(10)
    assert await breaker.call_async(fetch, 5) == 5
    assert breaker.state is CircuitState.CLOSED


async def test_cancelled_task_is_neutral_and_frees_the_trial(clock: FakeClock) -> None:
    """Cancelling a task inside call_async counts nothing and releases its half-open permit."""
    breaker = CircuitBreaker(failure_threshold=1, timeout=5, clock=clock)
    with pytest.raises(Boom):
        breaker.call(_raise_boom)
    clock.advance(5)
    started = asyncio.Event()

    async def hang() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(breaker.call_async(hang))
    await started.wait()
    assert breaker.half_open_in_flight == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.half_open_in_flight == 0
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.metrics.ignored == 1


def _raise_boom() -> None:
    raise Boom()


def test_decorator_on_sync_function_preserves_signature(clock: FakeClock) -> None:
    """@breaker keeps name, docstring and signature, and guards every call."""
    breaker = CircuitBreaker(failure_threshold=1, timeout=5, clock=clock)

    def plain(cve: str, *, verbose: bool = False) -> str:
        """Look a CVE up."""
        if cve == "bad":
            raise Boom()
        return cve.upper() if verbose else cve

    lookup = breaker(plain)
    assert lookup.__name__ == "plain"
    assert lookup.__doc__ == "Look a CVE up."
    assert inspect.signature(lookup) == inspect.signature(plain)
    assert list(inspect.signature(lookup).parameters) == ["cve", "verbose"]
    assert not inspect.iscoroutinefunction(lookup)
    assert lookup("cve-1", verbose=True) == "CVE-1"
    with pytest.raises(Boom):
        lookup("bad")
    with pytest.raises(CircuitOpenError):
        lookup("cve-2")


async def test_decorator_on_async_function_is_detected(clock: FakeClock) -> None:
    """@breaker on an async def returns a coroutine function guarded by the breaker."""
    breaker = CircuitBreaker(failure_threshold=1, timeout=5, clock=clock)

    async def ask(message: str) -> str:
        """Ask the model."""
        await asyncio.sleep(0)
        if message == "bad":
            raise Boom()
        return f"reply to {message}"

    chat = breaker(ask)
    assert inspect.iscoroutinefunction(chat)
    assert asyncio.iscoroutinefunction(chat)
    assert chat.__name__ == "ask"
    assert inspect.signature(chat) == inspect.signature(ask)
    assert await chat("hi") == "reply to hi"
    with pytest.raises(Boom):
        await chat("bad")
    with pytest.raises(CircuitOpenError):
        await chat("hi")


async def test_decorator_on_methods_binds_self(clock: FakeClock) -> None:
    """Decorated sync and async methods receive self and share the one breaker."""
    breaker = CircuitBreaker(failure_threshold=2, timeout=5, clock=clock)

    class Client:
        def __init__(self, prefix: str) -> None:
            self.prefix = prefix

        @breaker
        def get(self, path: str) -> str:
            if path == "bad":
                raise Boom()
            return self.prefix + path

        @breaker
        async def aget(self, path: str) -> str:
            if path == "bad":
                raise Boom()
            return self.prefix + path

    client = Client("https://x/")
    assert client.get("a") == "https://x/a"
    assert await client.aget("b") == "https://x/b"
    with pytest.raises(Boom):
        client.get("bad")
    with pytest.raises(Boom):
        await client.aget("bad")
    assert breaker.state is CircuitState.OPEN
    assert Client.get.__name__ == "get"


def test_context_manager_reports_outcome(clock: FakeClock) -> None:
    """`with breaker:` counts an exception leaving the block as a failure, else a success."""
    breaker = CircuitBreaker(failure_threshold=2, timeout=5, clock=clock)
    with pytest.raises(Boom), breaker:
        raise Boom()
    with breaker:
        pass
    assert breaker.consecutive_failures == 0
    for _ in range(2):
        with pytest.raises(Boom), breaker:
            raise Boom()
    ran = []
    with pytest.raises(CircuitOpenError), breaker:
        ran.append(True)
    assert ran == []
    assert breaker.metrics.succeeded == 1


def test_nested_context_managers_keep_their_own_tickets(clock: FakeClock) -> None:
    """Nested blocks on one breaker each report with the ticket they entered with."""
    breaker = CircuitBreaker(failure_threshold=1, timeout=5, clock=clock)

    def nested() -> None:
        with breaker:
            with breaker:
                pass
            raise Boom()

    with pytest.raises(Boom):
        nested()
    assert breaker.state is CircuitState.OPEN
    assert breaker.metrics.succeeded == 1
    assert breaker.metrics.failed == 1


def test_exit_without_enter_is_an_error(clock: FakeClock) -> None:
    """Calling __exit__ without __enter__ raises a clear RuntimeError."""
    breaker = CircuitBreaker(clock=clock)
    with pytest.raises(RuntimeError, match="without a matching __enter__"):
        breaker.__exit__(None, None, None)


async def test_async_context_manager_and_concurrent_tasks(clock: FakeClock) -> None:
    """`async with` keeps a separate ticket per task, so interleaved tasks report correctly."""
    breaker = CircuitBreaker(failure_threshold=3, timeout=5, clock=clock)

    async def guarded(fail: bool) -> None:
        async with breaker:
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            if fail:
                raise Boom()

    results = await asyncio.gather(
        *(guarded(fail=i % 2 == 0) for i in range(6)), return_exceptions=True
    )
    assert sum(isinstance(r, Boom) for r in results) == 3
    metrics = breaker.metrics
    assert (metrics.succeeded, metrics.failed) == (3, 3)


async def test_async_context_manager_cancellation_is_neutral(clock: FakeClock) -> None:
    """A task cancelled inside `async with` is neither a failure nor a success."""
    breaker = CircuitBreaker(failure_threshold=1, timeout=5, clock=clock)
    entered = asyncio.Event()

    async def guarded() -> None:
        async with breaker:
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(guarded())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.state is CircuitState.CLOSED
    assert breaker.metrics.ignored == 1


def test_slow_call_timing_uses_the_injected_clock(clock: FakeClock) -> None:
    """With slow_call_duration set, a call that takes that long counts as a failure."""
    breaker = CircuitBreaker(failure_threshold=2, timeout=5, slow_call_duration=2.0, clock=clock)

    def slow() -> str:
        clock.advance(2.5)
        return "late"

    def quick() -> str:
        clock.advance(0.5)
        return "fast"

    assert breaker.call(slow) == "late"
    assert breaker.consecutive_failures == 1
    assert breaker.call(quick) == "fast"
    assert breaker.consecutive_failures == 0
    breaker.call(slow)
    with breaker:
        clock.advance(3)
    assert breaker.state is CircuitState.OPEN
    metrics = breaker.metrics
    assert (metrics.slow, metrics.failed, metrics.succeeded) == (3, 3, 1)


async def test_async_slow_call_counts_as_failure(clock: FakeClock) -> None:
    """call_async measures duration on the injected clock too."""
    breaker = CircuitBreaker(failure_threshold=1, timeout=5, slow_call_duration=1.0, clock=clock)

    async def slow() -> str:
        await clock.sleep_async(1.0)
        return "late"

    assert await breaker.call_async(slow) == "late"
    assert breaker.state is CircuitState.OPEN


def test_decorated_function_resolves_its_annotations_like_the_original() -> None:
    """Frameworks that resolve string annotations (FastAPI) see the original's hints and globals."""
    import typing

    breaker = CircuitBreaker()

    async def endpoint(limit: int = 10) -> dict[str, int]:
        return {"limit": limit}

    guarded = breaker(endpoint)
    assert typing.get_type_hints(guarded) == typing.get_type_hints(endpoint)
    assert guarded.__globals__ is endpoint.__globals__  # type: ignore[attr-defined]


def test_decorated_call_straddling_a_reset_does_not_count(clock: FakeClock) -> None:
    """A decorated call that began before reset() fails without counting against the new state."""
    breaker = CircuitBreaker(failure_threshold=1, timeout=30, clock=clock)

    @breaker
    def fails_after_a_reset() -> None:
        breaker.reset()
        raise RuntimeError("late failure")

    with pytest.raises(RuntimeError):
        fails_after_a_reset()
    assert breaker.state is CircuitState.CLOSED
    assert breaker.metrics.failed == 1  # counted as an outcome, but not against the new generation

    @breaker
    def fails_now() -> None:
        raise RuntimeError("current failure")

    with pytest.raises(RuntimeError):
        fails_now()
    assert breaker.state is CircuitState.OPEN


def test_decorated_sync_function_counts_every_outcome(clock: FakeClock) -> None:
    """The decorator's closed-state path counts successes and failures exactly like call()."""
    breaker = CircuitBreaker(failure_threshold=3, timeout=30, clock=clock)
    outcomes = iter([True, False, True, False, False, True])

    @breaker
    def maybe() -> str:
        if next(outcomes):
            return "ok"
        raise ValueError("boom")

    for _ in range(6):
        with contextlib.suppress(ValueError):
            maybe()
    assert (breaker.metrics.succeeded, breaker.metrics.failed) == (3, 3)
    assert breaker.state is CircuitState.CLOSED  # successes reset the consecutive count


async def test_decorated_wrappers_run_in_the_wrapped_functions_namespace() -> None:
    """Sync and async wrappers carry the original's __globals__ and still refuse when open."""
    breaker = CircuitBreaker(failure_threshold=1, timeout=30, clock=FakeClock())

    def sync_endpoint() -> str:
        return "sync"

    async def async_endpoint() -> str:
        return "async"

    guarded_sync = breaker(sync_endpoint)
    guarded_async = breaker(async_endpoint)
    assert guarded_sync.__globals__ is sync_endpoint.__globals__  # type: ignore[attr-defined]
    assert guarded_async.__globals__ is async_endpoint.__globals__  # type: ignore[attr-defined]
    assert guarded_sync() == "sync"
    assert await guarded_async() == "async"
    breaker.force_open()
    with pytest.raises(CircuitOpenError):
        guarded_sync()
    with pytest.raises(CircuitOpenError):
        await guarded_async()
