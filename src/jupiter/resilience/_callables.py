"""Telling sync from async callables, including objects with an ``async def __call__``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

__all__ = ["is_async_callable", "reject_generators"]


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
