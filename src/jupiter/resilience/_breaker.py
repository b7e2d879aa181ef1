"""``CircuitBreaker``: thin sync and async drivers over the shared decision core.

Every way of calling through the breaker does the same four things — ask the core for a ticket,
run the call with no lock held, report the outcome with the ticket — and nothing else. The
decisions themselves live in :mod:`._breaker_core`.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import types
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from types import TracebackType
from typing import Any, ParamSpec, Self, TypeAlias, TypeVar, Unpack, cast

from ._breaker_core import BreakerCore, RefusedCall
from ._breaker_options import (
    DEFAULT_FAILURE_THRESHOLD,
    DEFAULT_TIMEOUT,
    CircuitBreakerOptions,
    OptionOverrides,
)

__all__ = ["CircuitBreaker"]

P = ParamSpec("P")
R = TypeVar("R")


#: The active ``with breaker:`` blocks of the current thread or task, innermost first, as a
#: linked stack of ``(ticket, start, outer)`` tuples (tuples: the cheapest thing to build).
_Entered: TypeAlias = "tuple[int, float, _Entered] | None"


class CircuitBreaker(BreakerCore):
    """Stops calling a failing dependency for a while, then lets trial calls test it.

    ``CircuitBreaker(failure_threshold=5, timeout=60)`` opens after five consecutive failures and
    admits a trial call once it has been open for ``timeout`` seconds. Every other option is a
    keyword (see :class:`CircuitBreakerOptions`), or pass a whole ``options=`` object; keywords
    given next to ``options=`` override its fields.

    Use it as ``breaker.call(fn, *args)``, ``await breaker.call_async(coro_fn, *args)``, as a
    decorator on sync or async functions, or as ``with breaker:`` / ``async with breaker:``.
    Refused calls raise :class:`CircuitOpenError` without running.
    """

    __slots__ = ("__weakref__", "_entered")

    def __init__(
        self,
        failure_threshold: int = DEFAULT_FAILURE_THRESHOLD,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        options: CircuitBreakerOptions | None = None,
        **overrides: Unpack[OptionOverrides],
    ) -> None:
        if options is None:
            options = CircuitBreakerOptions(
                failure_threshold=failure_threshold, timeout=timeout, **overrides
            )
        else:
            if failure_threshold != DEFAULT_FAILURE_THRESHOLD or timeout != DEFAULT_TIMEOUT:
                raise TypeError(
                    "with options=, set failure_threshold and timeout in the options object"
                )
            if overrides:
                options = dataclasses.replace(options, **overrides)
        super().__init__(options)
        self._entered: ContextVar[_Entered | None] = ContextVar(
            f"circuit_breaker_{options.name}_entered", default=None
        )

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self._name!r} {self.state.value}>"

    # ------------------------------------------------------------------ drivers

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``fn(*args, **kwargs)`` through the breaker and return (or raise) what it does."""
        ticket = self._generation
        if self._closed_fast:
            start = 0.0
        else:
            admitted = self._admit()
            if type(admitted) is float:
                raise RefusedCall(self._name, admitted)  # see BreakerCore._admit
            ticket = admitted  # type: ignore[assignment]  # an int once not a float
            start = self._monotonic() if self._timed else 0.0
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self.on_failure(ticket, exc, self._elapsed(start))
            raise
        if self._clean:
            next(self._succeeded)
            return result
        self.on_result(ticket, result, self._elapsed(start))
        return result

    async def call_async(
        self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Await ``fn(*args, **kwargs)`` through the breaker (the async twin of :meth:`call`)."""
        ticket = self._generation
        if self._closed_fast:
            start = 0.0
        else:
            admitted = self._admit()
            if type(admitted) is float:
                raise RefusedCall(self._name, admitted)  # see BreakerCore._admit
            ticket = admitted  # type: ignore[assignment]  # an int once not a float
            start = self._monotonic() if self._timed else 0.0
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self.on_failure(ticket, exc, self._elapsed(start))
            raise
        if self._clean:
            next(self._succeeded)
            return result
        self.on_result(ticket, result, self._elapsed(start))
        return result

    def _elapsed(self, start: float) -> float:
        return self._monotonic() - start if self._timed else 0.0

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        """Decorate ``func`` (sync or ``async def``); the result keeps its name and signature."""
        guarded: Any = (
            self._async_guard(func) if inspect.iscoroutinefunction(func) else self._sync_guard(func)
        )
        globals_of_func = getattr(func, "__globals__", None)
        if isinstance(globals_of_func, dict):
            # Frameworks that evaluate string annotations (FastAPI) read ``__globals__`` of the
            # wrapper itself; the wrapper's code reads only its cells and builtins, so it can run
            # in the wrapped function's module namespace.
            guarded = types.FunctionType(
                guarded.__code__, globals_of_func, guarded.__name__, None, guarded.__closure__
            )
        functools.update_wrapper(guarded, func)
        return cast("Callable[P, R]", guarded)

    def _sync_guard(self, func: Callable[P, R]) -> Callable[P, R]:
        """The ``@breaker`` wrapper of a sync function: :meth:`call`'s body with ``fn`` bound.

        Deliberately the same lines as :meth:`call` (the decisions stay in the core): one Python
        frame instead of a partial plus the method is an eighth of a decorated call's cost, and
        a refusal unwinds through one frame fewer. ``test_breaker_drivers`` runs both forms
        through the same outcomes. :meth:`_async_guard` is the same for ``call_async``.
        """
        breaker, refused = self, RefusedCall  # cells, not globals: see __call__

        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            ticket = breaker._generation
            if breaker._closed_fast:
                start = 0.0
            else:
                admitted = breaker._admit()
                if type(admitted) is float:
                    raise refused(breaker._name, admitted)  # see BreakerCore._admit
                ticket = admitted  # type: ignore[assignment]  # an int once not a float
                start = breaker._monotonic() if breaker._timed else 0.0
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                breaker.on_failure(ticket, exc, breaker._elapsed(start))
                raise
            if breaker._clean:
                next(breaker._succeeded)
                return result
            breaker.on_result(ticket, result, breaker._elapsed(start))
            return result

        return guarded

    def _async_guard(self, func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        """The ``@breaker`` wrapper of an ``async def``: :meth:`call_async`'s body, ``fn`` bound."""
        breaker, refused = self, RefusedCall  # cells, not globals: see __call__

        async def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            ticket = breaker._generation
            if breaker._closed_fast:
                start = 0.0
            else:
                admitted = breaker._admit()
                if type(admitted) is float:
                    raise refused(breaker._name, admitted)  # see BreakerCore._admit
                ticket = admitted  # type: ignore[assignment]  # an int once not a float
                start = breaker._monotonic() if breaker._timed else 0.0
            try:
                result = await func(*args, **kwargs)
            except BaseException as exc:
                breaker.on_failure(ticket, exc, breaker._elapsed(start))
                raise
            if breaker._clean:
                next(breaker._succeeded)
                return result
            breaker.on_result(ticket, result, breaker._elapsed(start))
            return result

        return guarded

    # ------------------------------------------------------------------ context managers

    def __enter__(self) -> Self:
        ticket = self._generation
        if self._closed_fast:
            start = 0.0
        else:
            admitted = self._admit()
            if type(admitted) is float:
                raise RefusedCall(self._name, admitted)  # see BreakerCore._admit
            ticket = admitted  # type: ignore[assignment]  # an int once not a float
            start = self._monotonic() if self._timed else 0.0
        entered = self._entered
        entered.set((ticket, start, entered.get()))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        entered = self._entered
        top = entered.get()
        if top is None:
            raise RuntimeError("CircuitBreaker.__exit__ without a matching __enter__")
        ticket, start, outer = top
        entered.set(outer)
        if exc is not None:
            self.on_failure(ticket, exc, self._elapsed(start))
        elif self._clean:
            next(self._succeeded)
        else:
            self.on_success(ticket, self._elapsed(start))

    async def __aenter__(self) -> Self:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, traceback)
