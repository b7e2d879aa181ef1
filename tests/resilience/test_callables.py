"""SyncAsyncDecorator: an abstract base whose subclasses must supply both wrappers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest

from jupiter.resilience import RetryOptions, RetryPolicy, with_timeout
from jupiter.resilience._callables import SyncAsyncDecorator


class SyncOnly(SyncAsyncDecorator):
    """Forgets ``_wrap_async``."""

    decorator_name = "sync_only"
    __slots__ = ()

    def _wrap_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        return func


class Tagging(SyncAsyncDecorator):
    """Complete, with a slot: wraps each callable so its result is tagged."""

    decorator_name = "tagging"
    __slots__ = ("tag",)

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def _wrap_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        return lambda *a, **k: (self.tag, func(*a, **k))

    def _wrap_async(
        self, func: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Coroutine[Any, Any, Any]]:
        async def wrapper(*a: Any, **k: Any) -> Any:
            return (self.tag, await func(*a, **k))

        return wrapper


def test_a_subclass_missing_a_wrapper_fails_at_instantiation():
    """Forgetting ``_wrap_async`` is a TypeError when the decorator is built, naming it."""
    with pytest.raises(TypeError, match="_wrap_async"):
        SyncOnly()
    with pytest.raises(TypeError, match="abstract"):
        SyncAsyncDecorator()  # type: ignore[abstract]


async def test_a_complete_slotted_subclass_routes_sync_and_async_callables():
    """With __slots__ and both wrappers, sync goes to _wrap_sync and async to _wrap_async."""
    tagging = Tagging("t")
    assert not hasattr(tagging, "__dict__")

    def double(x: int) -> int:
        return 2 * x

    async def triple(x: int) -> int:
        return 3 * x

    assert tagging(double)(2) == ("t", 4)
    assert await tagging(triple)(2) == ("t", 6)
    with pytest.raises(TypeError, match="tagging cannot wrap a generator"):
        tagging(lambda: (yield))


def test_the_library_decorators_still_instantiate_with_slots():
    """RetryPolicy and with_timeout's decorator are concrete and keep their __slots__."""
    for decorator in (RetryPolicy(RetryOptions()), with_timeout(1.0)):
        assert isinstance(decorator, SyncAsyncDecorator)
        assert not hasattr(decorator, "__dict__")
