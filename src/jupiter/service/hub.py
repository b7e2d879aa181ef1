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
from dataclasses import dataclass
from typing import Any

from starlette.websockets import WebSocket, WebSocketState

from jupiter.storage.journal import before_acknowledge

from .ratelimit import TokenBucket

__all__ = [
    "CLOSE_POLICY_VIOLATION",
    "Connection",
    "SendBudget",
    "SocketStats",
    "WebSocketHub",
]

log = logging.getLogger("jupiter.ws")

_ids = itertools.count(1)


#: WebSocket close code 1008, "policy violation": the flood and slow-reader closes.
CLOSE_POLICY_VIOLATION = 1008


@dataclass(frozen=True, slots=True)
class SendBudget:
    """How much one socket may have waiting to go out: ``messages`` and ``bytes``."""

    messages: int = 256
    bytes: int = 1024 * 1024


@dataclass(slots=True)
class SocketStats:
    """What the socket budgets did, for metrics (counted on the loop, read from anywhere)."""

    #: Broadcasts dropped from the queue of a socket whose reader fell behind.
    dropped_broadcasts: int = 0
    #: Sockets closed with 1008 because a direct reply did not fit in their queue.
    slow_closes: int = 0
    #: Incoming frames dropped by the flood guard.
    dropped_frames: int = 0
    #: Sockets closed with 1008 for a sustained flood.
    flood_closes: int = 0


@dataclass(slots=True)
class _Outgoing:
    text: str
    #: A broadcast (dropped, oldest first, to make room); a direct reply is never dropped.
    broadcast: bool


class Connection:
    """One socket: its send queue, chat history, chat rate limit and in-flight tasks.

    The send queue is bounded in messages and in bytes (:class:`SendBudget`) and never makes a
    caller wait. When something does not fit, the oldest queued *broadcasts* are dropped to make
    room (a newer status supersedes an older one); if that is not enough, the socket's reader is
    too slow for what it asked for, and rather than drop a direct reply silently the socket is
    closed with 1008 "too slow". A message always fits in an empty queue, so the memory bound
    is the budget plus one message (and the transport's buffer, which the server bounds).
    """

    def __init__(
        self,
        websocket: WebSocket,
        *,
        rate_limit: TokenBucket,
        history_size: int = 10,
        budget: SendBudget = SendBudget(),
        max_pending: int | None = None,
        stats: SocketStats | None = None,
    ) -> None:
        self.id = f"ws-{next(_ids)}"
        self.websocket = websocket
        self.rate_limit = rate_limit
        self.history: deque[dict[str, str]] = deque(maxlen=history_size)
        self.conversation_id = f"ws-{id(self):x}-{next(_ids)}"
        self.tasks: set[asyncio.Task[Any]] = set()
        self.budget = budget
        #: Requests (spawned handlers) allowed in progress at once; None: no limit.
        self.max_pending = max_pending
        self._queue: deque[_Outgoing] = deque()
        self._queued_bytes = 0
        self._wakeup = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        #: (code, reason) once a close was asked for; the sender sends it after what is queued.
        self.close_request: tuple[int, str] | None = None
        #: Broadcasts dropped because this socket's reader fell behind.
        self.dropped_broadcasts = 0
        #: Shared with the hub (for metrics); a connection of its own in tests.
        self.stats = stats if stats is not None else SocketStats()
        self.closed = False

    @property
    def queued(self) -> tuple[int, int]:
        """Messages and bytes waiting to be sent."""
        return len(self._queue), self._queued_bytes

    @property
    def closing(self) -> bool:
        return self.closed or self.close_request is not None

    def start(self) -> None:
        self._sender = asyncio.create_task(self._send_loop(), name=f"{self.id}-sender")

    async def send(self, event: str, data: dict[str, Any]) -> None:
        """Queue a direct reply for this socket. Never waits: a reply that does not fit in the
        budget (after dropping queued broadcasts) closes the socket with 1008 "too slow"."""
        if self.closing:
            return
        self._enqueue(json.dumps({"event": event, "data": data}, default=str), broadcast=False)

    def send_nowait(self, event: str, data: dict[str, Any]) -> None:
        """Queue a broadcast event; on a slow socket the oldest queued broadcasts are dropped."""
        self.send_text_nowait(json.dumps({"event": event, "data": data}, default=str))

    def send_text_nowait(self, text: str) -> None:
        """Queue an already-encoded broadcast (the hub encodes each broadcast once)."""
        if self.closing:
            return
        self._enqueue(text, broadcast=True)

    def _enqueue(self, text: str, *, broadcast: bool) -> None:
        size = len(text)  # json.dumps escapes to ASCII: characters are bytes
        if self._queue and not self._fits(size):
            self._drop_broadcasts(size)
            if self._queue and not self._fits(size):
                messages, waiting = self.queued
                log.warning(
                    "⚠️ socket %s is too slow: %d messages (%d bytes) waiting",
                    self.id,
                    messages,
                    waiting,
                )
                self.stats.slow_closes += 1
                self.request_close(
                    CLOSE_POLICY_VIOLATION,
                    f"too slow: {waiting + size} bytes waiting to be read "
                    f"(limit {self.budget.bytes})",
                    discard_queued=True,
                )
                return
        self._queue.append(_Outgoing(text, broadcast))
        self._queued_bytes += size
        self._wakeup.set()

    def _fits(self, size: int) -> bool:
        return (
            len(self._queue) < self.budget.messages
            and self._queued_bytes + size <= self.budget.bytes
        )

    def _drop_broadcasts(self, size: int) -> None:
        """Drop queued broadcasts, oldest first, until ``size`` more bytes fit (or none is left)."""
        budget = self.budget
        count = len(self._queue)
        kept: deque[_Outgoing] = deque()
        for item in self._queue:
            over = count >= budget.messages or self._queued_bytes + size > budget.bytes
            if over and item.broadcast:
                count -= 1
                self._queued_bytes -= len(item.text)
                self.dropped_broadcasts += 1
                self.stats.dropped_broadcasts += 1
            else:
                kept.append(item)
        self._queue = kept

    def request_close(self, code: int, reason: str, *, discard_queued: bool = False) -> None:
        """Close the socket with ``code`` and ``reason`` after what is queued (or, with
        ``discard_queued``, instead of it). Never waits; later sends are ignored."""
        if self.closing:
            return
        if discard_queued:
            self._queue.clear()
            self._queued_bytes = 0
        self.close_request = (code, reason[:120])  # a close reason is at most 123 bytes
        self._wakeup.set()

    @property
    def has_room(self) -> bool:
        """Whether another handler may start (fewer than ``max_pending`` are running)."""
        return self.max_pending is None or len(self.tasks) < self.max_pending

    def spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        """Run a handler in the background so the socket keeps reading; cancelled on close.
        Callers check :attr:`has_room` first."""
        task = asyncio.ensure_future(coro)
        task.set_name(f"{self.id}-{name}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _send_loop(self) -> None:
        websocket = self.websocket
        while True:
            while not self._queue:
                if self.close_request is not None:
                    code, reason = self.close_request
                    with contextlib.suppress(Exception):  # the peer may be gone already
                        await websocket.close(code, reason)
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
            item = self._queue.popleft()
            self._queued_bytes -= len(item.text)
            if websocket.client_state != WebSocketState.CONNECTED:
                return
            # Durability: what this event reports on is journaled before the client sees it.
            before_acknowledge()
            try:
                await websocket.send_text(item.text)
            except Exception:  # the peer went away; the receive loop will notice
                return

    async def close(self, grace_seconds: float = 2.0) -> None:
        """Stop the sender and cancel in-flight handlers. A requested close frame is given
        ``grace_seconds`` to go out first (a peer that reads nothing is dropped by the server's
        write-stall guard, see jupiter.service.serving)."""
        self.closed = True
        for task in list(self.tasks):
            task.cancel()
        sender = self._sender
        if sender is None:
            return
        if self.close_request is not None and not sender.done():
            self._wakeup.set()
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(sender), grace_seconds)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender


class WebSocketHub:
    """All connections of one app; broadcasts from any thread."""

    def __init__(self) -> None:
        self.stats = SocketStats()
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
        if targets:
            text = json.dumps({"event": event, "data": data}, default=str)  # once for all
            for connection in targets:
                connection.send_text_nowait(text)
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
