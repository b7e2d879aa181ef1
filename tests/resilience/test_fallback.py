"""``@with_fallback`` (src/jupiter/resilience/_fallback.py)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect

import pytest

from jupiter.resilience import CircuitOpenError, with_fallback


def fail(exc: BaseException):
    """A function that raises ``exc``."""

    def raiser(*args: object, **kwargs: object) -> object:
        raise exc

    return raiser


def test_value_is_returned_when_the_call_raises():
    """A plain fallback value replaces the exception."""
    assert with_fallback("offline")(fail(ConnectionError()))() == "offline"


def test_success_returns_the_real_result():
    """No failure, no fallback."""
    assert with_fallback("offline")(lambda x: x * 3)(2) == 6


def test_mutable_fallback_values_are_copied_for_every_use():
    """Mutating one returned fallback does not change the next one."""
    wrapped = with_fallback({"data": []})(fail(OSError()))
    first = wrapped()
    first["data"].append("polluted")
    assert wrapped() == {"data": []}


def test_callable_taking_an_argument_gets_the_exception():
    """A one-parameter callable is called with the exception."""
    wrapped = with_fallback(lambda exc: f"failed: {type(exc).__name__}")(fail(TimeoutError()))
    assert wrapped() == "failed: TimeoutError"


def test_callable_taking_no_argument_is_called_bare():
    """A zero-parameter callable (or a builtin like list) is called with no arguments."""
    assert with_fallback(lambda: "computed")(fail(OSError()))() == "computed"
    assert with_fallback(list)(fail(OSError()))() == []


def test_only_the_configured_exceptions_trigger_the_fallback():
    """Other exceptions propagate."""
    wrapped = with_fallback("x", exceptions=(ConnectionError,))(fail(KeyError("k")))
    with pytest.raises(KeyError):
        wrapped()
    assert with_fallback("x", exceptions=ConnectionError)(fail(ConnectionResetError()))() == "x"


def test_a_predicate_selects_the_exceptions():
    """``exceptions`` may be a predicate over the exception."""
    only_5xx = with_fallback("x", exceptions=lambda exc: getattr(exc, "status", 0) >= 500)
    error = RuntimeError()
    error.status = 503  # type: ignore[attr-defined]
    assert only_5xx(fail(error))() == "x"
    with pytest.raises(RuntimeError):
        only_5xx(fail(RuntimeError()))()


def test_circuit_open_error_gets_the_fallback():
    """An open breaker is exactly when a fallback is wanted."""
    assert with_fallback("cached")(fail(CircuitOpenError("grok", 10.0)))() == "cached"


@pytest.mark.parametrize(
    "error",
    [
        KeyboardInterrupt(),
        SystemExit(2),
        asyncio.CancelledError(),
        concurrent.futures.CancelledError(),
    ],
)
def test_cancellation_and_exit_always_propagate(error):
    """Even with exceptions=BaseException, stop signals are never swallowed."""
    with pytest.raises(type(error)):
        with_fallback("x", exceptions=BaseException)(fail(error))()


def test_on_fallback_hook_sees_the_exception():
    """on_fallback is called once with the exception before the fallback is returned."""
    seen: list[BaseException] = []
    error = OSError("boom")
    assert with_fallback(0, on_fallback=seen.append)(fail(error))() == 0
    assert seen == [error]


def test_async_fallback_in_a_sync_function_is_refused():
    """A sync caller cannot await an async fallback: clear TypeError."""

    async def later(exc: BaseException) -> str:
        return "x"

    with pytest.raises(TypeError, match="async fallback"):
        with_fallback(later)(fail(OSError()))()


async def test_async_function_gets_value_and_async_factory_fallbacks():
    """On async functions the fallback may be a value, a sync or an async callable."""

    async def broken() -> str:
        await asyncio.sleep(0)
        raise ConnectionError("down")

    async def from_cache(exc: BaseException) -> str:
        await asyncio.sleep(0)
        return f"cache after {type(exc).__name__}"

    assert await with_fallback("v")(broken)() == "v"
    assert await with_fallback(lambda: "sync")(broken)() == "sync"
    assert await with_fallback(from_cache)(broken)() == "cache after ConnectionError"


async def test_async_task_cancellation_is_not_turned_into_a_fallback():
    """Cancelling the task propagates CancelledError through the async wrapper."""
    entered = asyncio.Event()

    @with_fallback("x", exceptions=BaseException)
    async def hang() -> str:
        entered.set()
        await asyncio.Event().wait()
        return "never"

    task = asyncio.create_task(hang())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_async_on_fallback_hook_is_awaited():
    """An async on_fallback hook is awaited in async functions."""
    seen: list[str] = []

    async def record(exc: BaseException) -> None:
        await asyncio.sleep(0)
        seen.append(str(exc))

    async def broken() -> None:
        raise OSError("gone")

    assert await with_fallback(None, on_fallback=record)(broken)() is None
    assert seen == ["gone"]


def test_signatures_are_preserved():
    """Sync and async wrappers keep name, signature and coroutine-ness."""

    def get(path: str, *, retries: int = 1) -> str:
        """Get."""
        return path

    async def aget(path: str) -> str:
        return path

    wrapped = with_fallback("x")(get)
    assert inspect.signature(wrapped) == inspect.signature(get)
    assert wrapped.__name__ == "get"
    assert wrapped.__doc__ == "Get."
    assert inspect.iscoroutinefunction(with_fallback("x")(aget))


def test_bad_exception_filters_are_rejected():
    """An empty tuple or a non-type is a clear ValueError."""
    with pytest.raises(ValueError, match="exceptions"):
        with_fallback("x", exceptions=())
    with pytest.raises(ValueError, match="exceptions"):
        with_fallback("x", exceptions=(ValueError, 3))  # type: ignore[arg-type]
