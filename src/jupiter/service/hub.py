"""The WebSocket hub: every open socket, a send queue per socket, and thread-safe broadcasts.

Sends to one socket go through its own queue and sender task, because a Starlette WebSocket
must not be written by two tasks at once. Broadcasts may come from any thread (breaker
listeners run wherever the failing call ran): :meth:`WebSocketHub.broadcast_threadsafe` hands
them to the event loop with ``loop.call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.websockets import WebSocket, WebSocketState

from jupiter.storage.journal import before_acknowledge

from .ratelimit import TokenBucket

__all__ = ["Connection", "WebSocketHub"]

log = logging.getLogger("jupiter.ws")

_ids = itertools.count(1)


class Connection:
    """One socket: its send queue, chat history, chat rate limit and in-flight tasks."""

    def __init__(
        self,
        websocket: WebSocket,
        *,
        rate_limit: TokenBucket,
        history_size: int = 10,
        queue_size: int = 256,
    ) -> None:
        self.id = f"ws-{next(_ids)}"
        self.websocket = websocket
        self.rate_limit = rate_limit
        self.history: deque[dict[str, str]] = deque(maxlen=history_size)
        self.conversation_id = f"ws-{id(self):x}-{next(_ids)}"
        self.tasks: set[asyncio.Task[Any]] = set()
        self._queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=queue_size)
        self._sender: asyncio.Task[None] | None = None
        self.closed = False

    def start(self) -> None:
        self._sender = asyncio.create_task(self._send_loop(), name=f"{self.id}-sender")

    async def send(self, event: str, data: dict[str, Any]) -> None:
        """Queue an event for this socket (waits if the queue is full)."""
        if self.closed:
            return
        await self._queue.put(json.dumps({"event": event, "data": data}, default=str))

    def send_nowait(self, event: str, data: dict[str, Any]) -> None:
        """Queue a broadcast event; on a slow socket the oldest queued event is dropped."""
        if self.closed:
            return
        text = json.dumps({"event": event, "data": data}, default=str)
        if self._queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self._queue.get_nowait()
        self._queue.put_nowait(text)

    def spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        """Run a handler in the background so the socket keeps reading; cancelled on close."""
        task = asyncio.ensure_future(coro)
        task.set_name(f"{self.id}-{name}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _send_loop(self) -> None:
        while True:
            text = await self._queue.get()
            if text is None:
                return
            if self.websocket.client_state != WebSocketState.CONNECTED:
                return
            # Durability: what this event reports on is journaled before the client sees it.
            before_acknowledge()
            try:
                await self.websocket.send_text(text)
            except Exception:  # the peer went away; the receive loop will notice
                return

    async def close(self) -> None:
        """Stop the sender and cancel in-flight handlers."""
        self.closed = True
        for task in list(self.tasks):
            task.cancel()
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._sender


class WebSocketHub:
    """All connections of one app; broadcasts from any thread."""

    def __init__(self) -> None:
        self._connections: dict[str, Connection] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._status_push_pending = False
        self._status_builder: Callable[[], dict[str, Any]] | None = None

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Remember the loop that owns the sockets (set in the app's lifespan)."""
        self._loop = loop

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop that owns the sockets, once bound."""
        return self._loop

    def set_status_builder(self, builder: Callable[[], dict[str, Any]]) -> None:
        """What :meth:`notify_status_changed` pushes: the ``status_update`` payload."""
        self._status_builder = builder

    @property
    def count(self) -> int:
        return len(self._connections)

    def add(self, connection: Connection) -> None:
        with self._lock:
            self._connections[connection.id] = connection

    def remove(self, connection: Connection) -> None:
        with self._lock:
            self._connections.pop(connection.id, None)

    def connections(self) -> list[Connection]:
        with self._lock:
            return list(self._connections.values())

    def broadcast(self, event: str, data: dict[str, Any]) -> int:
        """Queue an event on every socket (call on the loop). Returns how many were sent to."""
        targets = self.connections()
        for connection in targets:
            connection.send_nowait(event, data)
        return len(targets)

    def broadcast_threadsafe(self, event: str, data: dict[str, Any]) -> None:
        """Broadcast from any thread (or from the loop itself)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self.broadcast(event, data)
        else:
            with contextlib.suppress(RuntimeError):  # loop closing during shutdown
                loop.call_soon_threadsafe(self.broadcast, event, data)

    def notify_status_changed(self) -> None:
        """Push a fresh ``status_update`` to everyone, soon; many changes at once push once."""
        loop = self._loop
        if loop is None or loop.is_closed() or self._status_builder is None:
            return
        with self._lock:
            if self._status_push_pending:
                return
            self._status_push_pending = True
        try:
            loop.call_soon_threadsafe(self._push_status)
        except RuntimeError:
            with self._lock:
                self._status_push_pending = False

    def _push_status(self) -> None:
        with self._lock:
            self._status_push_pending = False
        if self._status_builder is None:
            return
        try:
            payload = self._status_builder()
        except Exception:
            log.exception("❌ could not build the status update")
            return
        sent = self.broadcast("status_update", payload)
        if sent:
            log.info("📊 status_update pushed to %d socket(s)", sent)
