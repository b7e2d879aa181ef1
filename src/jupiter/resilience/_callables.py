"""Telling sync from async callables, including objects with an ``async def __call__``."""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ClassVar, ParamSpec, TypeVar, overload

__all__ = ["SyncAsyncDecorator", "is_async_callable", "reject_generators"]

P = ParamSpec("P")
T = TypeVar("T")


def is_async_callable(func: Callable[..., Any]) -> bool:
    """True for ``async def`` functions, methods and partials of them, and for instances whose
    class defines ``async def __call__`` (which ``inspect.iscoroutinefunction`` misses)."""
    if inspect.iscoroutinefunction(func):
        return True
    if inspect.isfunction(func) or inspect.ismethod(func) or inspect.isclass(func):
        return False
    try:
        call = type(func).__call__
    except AttributeError:
        return False
    return inspect.iscoroutinefunction(call)


def reject_generators(func: Callable[..., Any], decorator: str) -> None:
    """Generator functions cannot be retried, timed out or given a fallback: say so."""
    if inspect.isasyncgenfunction(func) or inspect.isgeneratorfunction(func):
        raise TypeError(f"{decorator} cannot wrap a generator function")


class SyncAsyncDecorator(ABC):
    """The base of a decorator for sync *and* async callables: ``__call__`` refuses generator
    functions, then hands ``async`` callables to ``_wrap_async`` and the rest to ``_wrap_sync``
    (each keeping the wrapped signature). Abstract, so a subclass that forgets either wrapper
    fails when it is instantiated, not at the first decorated call."""

    __slots__ = ()

    #: How error messages name the decorator (``"with_timeout"``).
    decorator_name: ClassVar[str]

    @overload
    def __call__(
        self, func: Callable[P, Coroutine[Any, Any, T]]
    ) -> Callable[P, Coroutine[Any, Any, T]]: ...

    @overload
    def __call__(self, func: Callable[P, T]) -> Callable[P, T]: ...

    def __call__(self, func: Callable[P, Any]) -> Callable[P, Any]:
        reject_generators(func, self.decorator_name)
        if is_async_callable(func):
            return self._wrap_async(func)
        return self._wrap_sync(func)

    @abstractmethod
    def _wrap_sync(self, func: Callable[P, T]) -> Callable[P, T]:
        """Wrap a plain callable."""

    @abstractmethod
    def _wrap_async(self, func: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        """Wrap an ``async`` callable."""
