"""``@with_fallback(value)``: return a fallback instead of raising, for sync and async callables.

The fallback is a value or a callable:

* a plain value is returned as is, except that ``dict``, ``list``, ``set`` and ``bytearray``
  values are deep-copied for every use, so a caller mutating one fallback cannot change the next;
* a callable is called: with the exception when it has a required positional parameter or
  ``*args`` (``lambda exc: ...``), with no arguments otherwise (``list``, ``lambda: ...``).
  In an async function the callable may be async (its awaitable is awaited). To return a
  callable itself as the value, wrap it: ``with_fallback(lambda: my_function)``.

Cancellation, ``KeyboardInterrupt``, ``SystemExit`` and ``GeneratorExit`` always propagate.
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Generic, ParamSpec, TypeAlias, TypeVar, cast, overload

from ._callables import is_async_callable, reject_generators
from ._exceptions import STOP_SIGNALS

__all__ = [
    "NEVER_HANDLED",
    "FallbackDecorator",
    "FallbackSource",
    "HandledExceptions",
    "with_fallback",
]

P = ParamSpec("P")
T = TypeVar("T")
F = TypeVar("F")

#: Never turned into a fallback: they mean "stop", not "the dependency failed".
NEVER_HANDLED = STOP_SIGNALS

HandledExceptions: TypeAlias = (
    type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]
)

_COPIED_TYPES = (dict, list, set, bytearray)


def _wants_exception(factory: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # some builtins have no signature: call them bare
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return any(
        parameter.kind is inspect.Parameter.VAR_POSITIONAL
        or (parameter.kind in positional and parameter.default is inspect.Parameter.empty)
        for parameter in parameters
    )


class FallbackSource(Generic[F]):
    """A fallback value or factory, resolved for one failure by :meth:`resolve`."""

    __slots__ = ("_factory", "_value", "_wants_exception")

    def __init__(self, value: F | Callable[..., F] | Callable[..., Awaitable[F]]) -> None:
        if callable(value):
            self._factory: Callable[..., Any] | None = value
            self._wants_exception = _wants_exception(value)
            self._value: Any = None
        else:
            self._factory = None
            self._wants_exception = False
            self._value = value

    def resolve(self, exc: BaseException) -> F | Awaitable[F]:
        """The fallback for ``exc``: a (copied) value, or what the factory returns."""
        factory = self._factory
        if factory is None:
            value = self._value
            return cast(F, copy.deepcopy(value) if isinstance(value, _COPIED_TYPES) else value)
        result = factory(exc) if self._wants_exception else factory()
        return cast("F | Awaitable[F]", result)

    def resolve_sync(self, exc: BaseException) -> F:
        """Like :meth:`resolve`, refusing an awaitable (an async factory in sync code)."""
        result = self.resolve(exc)
        if inspect.isawaitable(result):
            if inspect.iscoroutine(result):
                result.close()
            raise TypeError("an async fallback cannot be used by a sync function")
        return result

    async def resolve_async(self, exc: BaseException) -> F:
        """Like :meth:`resolve`, awaiting an async factory's result."""
        result = self.resolve(exc)
        if inspect.isawaitable(result):
            return await result
        return result


def _exception_matcher(exceptions: HandledExceptions) -> Callable[[BaseException], bool]:
    if isinstance(exceptions, tuple):
        if not exceptions or not all(
            isinstance(e, type) and issubclass(e, BaseException) for e in exceptions
        ):
            raise ValueError(
                f"exceptions must be a non-empty tuple of exception types, got {exceptions!r}"
            )
        types = exceptions
        return lambda exc: isinstance(exc, types)
    if isinstance(exceptions, type) and issubclass(exceptions, BaseException):
        single = exceptions
        return lambda exc: isinstance(exc, single)
    if callable(exceptions):
        return cast(Callable[[BaseException], bool], exceptions)
    raise ValueError(
        f"exceptions must be an exception type, a tuple of them or a predicate, got {exceptions!r}"
    )


class FallbackDecorator(Generic[F]):
    """What ``with_fallback(value)`` returns: a decorator for sync and async callables."""

    __slots__ = ("_matches", "on_fallback", "source")

    def __init__(
        self,
        value: F | Callable[..., F] | Callable[..., Awaitable[F]],
        *,
        exceptions: HandledExceptions = (Exception,),
        on_fallback: Callable[[BaseException], object] | None = None,
    ) -> None:
        if on_fallback is not None and not callable(on_fallback):
            raise ValueError(f"on_fallback must be callable or None, got {on_fallback!r}")
        self.source: FallbackSource[F] = FallbackSource(value)
        self._matches = _exception_matcher(exceptions)
        self.on_fallback = on_fallback

    def handles(self, exc: BaseException) -> bool:
        """Whether ``exc`` is replaced by the fallback (cancellation never is)."""
        return not isinstance(exc, NEVER_HANDLED) and bool(self._matches(exc))

    @overload
    def __call__(
        self, func: Callable[P, Coroutine[Any, Any, T]]
    ) -> Callable[P, Coroutine[Any, Any, T | F]]: ...

    @overload
    def __call__(self, func: Callable[P, T]) -> Callable[P, T | F]: ...

    def __call__(self, func: Callable[P, Any]) -> Callable[P, Any]:
        reject_generators(func, "with_fallback")
        if is_async_callable(func):
            return self._wrap_async(func)
        return self._wrap_sync(func)

    def _wrap_sync(self, func: Callable[P, T]) -> Callable[P, T | F]:
        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> T | F:
            try:
                return func(*args, **kwargs)
            except BaseException as exc:
                if not self.handles(exc):
                    raise
                if self.on_fallback is not None:
                    self.on_fallback(exc)
                return self.source.resolve_sync(exc)

        return wrapper

    def _wrap_async(
        self, func: Callable[P, Awaitable[T]]
    ) -> Callable[P, Coroutine[Any, Any, T | F]]:
        @functools.wraps(func)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T | F:
            try:
                return await func(*args, **kwargs)
            except BaseException as exc:
                if not self.handles(exc):
                    raise
                if self.on_fallback is not None:
                    outcome = self.on_fallback(exc)
                    if inspect.isawaitable(outcome):
                        await outcome
                return await self.source.resolve_async(exc)

        return wrapper


@overload
def with_fallback(
    value: Callable[..., Awaitable[F]],
    *,
    exceptions: HandledExceptions = ...,
    on_fallback: Callable[[BaseException], object] | None = ...,
) -> FallbackDecorator[F]: ...


@overload
def with_fallback(
    value: Callable[..., F],
    *,
    exceptions: HandledExceptions = ...,
    on_fallback: Callable[[BaseException], object] | None = ...,
) -> FallbackDecorator[F]: ...


@overload
def with_fallback(
    value: F,
    *,
    exceptions: HandledExceptions = ...,
    on_fallback: Callable[[BaseException], object] | None = ...,
) -> FallbackDecorator[F]: ...


def with_fallback(
    value: Any,
    *,
    exceptions: HandledExceptions = (Exception,),
    on_fallback: Callable[[BaseException], object] | None = None,
) -> FallbackDecorator[Any]:
    """Return ``value`` (or what it computes) when the wrapped callable raises ``exceptions``.

    ``exceptions`` is a type, a tuple of types or a predicate; ``on_fallback(exc)`` is called
    (and awaited, in async functions, if it is async) before the fallback is produced.
    """
    return FallbackDecorator(value, exceptions=exceptions, on_fallback=on_fallback)
