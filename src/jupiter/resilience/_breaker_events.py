"""Delivery of state changes to listeners and to the state store, outside the breaker's lock.

Transitions are queued while the breaker's lock is held (so the queue is in transition order)
and delivered after it is released, by whichever thread gets the delivery lock; the others leave
their events to it. Listeners therefore see changes in order, never run under the breaker's lock,
and may call back into the breaker (``reset()`` from a listener works).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections import deque
from collections.abc import Awaitable
from typing import Any

from ._breaker_options import StateChange, StateListener
from ._breaker_store import BreakerStateRecord, BreakerStateStore
from ._clock import running_loop

__all__ = ["EventDispatcher"]

logger = logging.getLogger("jupiter.resilience.breaker")


class EventDispatcher:
    """Ordered, exception-proof delivery of :class:`StateChange` events."""

    __slots__ = ("_delivery_lock", "_listeners", "_listeners_lock", "_pending", "_store", "_tasks")

    def __init__(self, store: BreakerStateStore) -> None:
        self._store = store
        # Copy-on-write tuple: delivery iterates a snapshot while others add or remove.
        self._listeners: tuple[tuple[StateListener, asyncio.AbstractEventLoop | None], ...] = ()
        self._listeners_lock = threading.Lock()
        self._pending: deque[tuple[StateChange | None, str, BreakerStateRecord]] = deque()
        self._delivery_lock = threading.Lock()
        # Strong references to scheduled listener tasks, so the loop cannot drop them mid-flight.
        self._tasks: set[asyncio.Task[None]] = set()

    def add(self, listener: StateListener) -> None:
        loop = running_loop()
        with self._listeners_lock:
            self._listeners = (*self._listeners, (listener, loop))

    def remove(self, listener: StateListener) -> None:
        with self._listeners_lock:
            self._listeners = tuple(entry for entry in self._listeners if entry[0] != listener)

    def queue(self, change: StateChange | None, name: str, record: BreakerStateRecord) -> None:
        """Queue a transition (call with the breaker's lock held, to keep the order)."""
        self._pending.append((change, name, record))

    def deliver(self) -> None:
        """Deliver every queued event (call without the breaker's lock)."""
        while self._pending:
            if not self._delivery_lock.acquire(blocking=False):
                return  # the thread holding it delivers ours too: it re-checks after releasing
            try:
                while True:
                    try:
                        change, name, record = self._pending.popleft()
                    except IndexError:
                        break
                    self._save(name, record)
                    if change is not None:
                        for listener, loop in self._listeners:
                            self._notify(listener, loop, change)
            finally:
                self._delivery_lock.release()

    def _save(self, name: str, record: BreakerStateRecord) -> None:
        try:
            self._store.save(name, record)
        except Exception:
            logger.exception("circuit breaker %r: the state store failed to save", name)

    def _notify(
        self,
        listener: StateListener,
        loop: asyncio.AbstractEventLoop | None,
        change: StateChange,
    ) -> None:
        try:
            outcome = listener(change)
        except Exception:
            logger.exception("circuit breaker %r: a state listener failed", change.name)
            return
        if inspect.isawaitable(outcome):
            self._schedule(outcome, loop, change)

    def _schedule(
        self,
        awaitable: Awaitable[Any],
        home_loop: asyncio.AbstractEventLoop | None,
        change: StateChange,
    ) -> None:
        coroutine = _guarded(awaitable, change)
        running = running_loop()
        if running is not None:
            task = running.create_task(coroutine)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif home_loop is not None and home_loop.is_running() and not home_loop.is_closed():
            asyncio.run_coroutine_threadsafe(coroutine, home_loop)
        else:
            asyncio.run(coroutine)


async def _guarded(awaitable: Awaitable[Any], change: StateChange) -> None:
    try:
        await awaitable
    except Exception:
        logger.exception("circuit breaker %r: an async state listener failed", change.name)
