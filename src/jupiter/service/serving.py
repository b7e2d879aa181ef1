"""The server's own budgets: how ``jupiter serve`` (and the tests' servers) configure uvicorn.

:func:`uvicorn_options` turns the settings into uvicorn keyword arguments. Most are uvicorn's
(``ws_max_size``, pings, keep-alive, h11's limit on the request head); two things uvicorn does
not do are added by small subclasses of its protocols:

* **A request-head deadline (slowloris).** uvicorn times out an idle keep-alive connection but
  not one that sends its head a byte at a time, nor one that connects and sends nothing: such a
  connection would hold a socket and a file descriptor for ever. :class:`BudgetedH11Protocol`
  gives the head ``http_header_timeout_seconds`` from the connection's start (or from the first
  byte of the next request on a keep-alive connection); past it the connection is answered 408
  (if anything arrived) and closed.
* **A write-stall deadline.** A peer that reads nothing keeps our unsent data in the transport's
  buffer; uvicorn then waits for it for ever (a closing transport waits to flush, so not even
  its ping timeout frees it). Both protocols abort the connection when the transport has been
  paused for writing (its buffer over the high-water mark) for ``write_stall_timeout_seconds``
  without the peer taking anything.
* **A fixed kernel send buffer.** Linux grows a connection's send buffer up to 4 MB for a peer
  that does not read; ``socket_send_buffer_bytes`` fixes it (SO_SNDBUF), so what one connection
  can park in the kernel is bounded too, and backpressure reaches the app sooner.

The h11 implementation is chosen explicitly (not httptools) because its limit on the size of an
incomplete request head, ``h11_max_incomplete_event_size``, is what bounds header bytes; the
request middleware bounds the header count (:mod:`jupiter.service.budgets`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from jupiter.resilience import build_error_response

__all__ = [
    "BudgetedH11Protocol",
    "BudgetedWebSocketProtocol",
    "uvicorn_options",
]

log = logging.getLogger("jupiter.http")


def _error_bytes(status: int, reason: str, error_type: str, message: str, suggestion: str) -> bytes:
    """A whole HTTP/1.1 response with the standard JSON error body, for answers given before
    any request reached the app (so no middleware adds headers to them)."""
    body = json.dumps(
        build_error_response(
            message,
            status_code=status,
            message=message,
            error_type=error_type,
            suggestion=suggestion,
            recoverable=True,
        )
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "x-content-type-options: nosniff\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


class _WriteStallGuard(asyncio.Protocol):
    """Aborts the connection once writing has been paused for ``stall_timeout`` seconds without
    the peer taking anything (a slow reader that makes progress is left alone). Mixed in before
    a uvicorn protocol, whose flow control it extends."""

    stall_timeout: float = 30.0
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    _stall_timer: asyncio.TimerHandle | None = None
    _stall_buffered: int = 0

    def _arm_stall(self) -> None:
        if self._stall_timer is None:
            self._stall_buffered = self.transport.get_write_buffer_size()
            self._stall_timer = self.loop.call_later(self.stall_timeout, self._stalled)

    def _disarm_stall(self) -> None:
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None

    def _stalled(self) -> None:
        self._stall_timer = None
        buffered = self.transport.get_write_buffer_size()
        if buffered == 0:
            return
        if buffered < self._stall_buffered:  # the peer took some: still paused, but reading
            self._arm_stall()
            return
        peer = self.transport.get_extra_info("peername")
        log.warning(
            "⚠️ %s read nothing for %gs; connection dropped",
            peer[0] if isinstance(peer, tuple) else "a client",
            self.stall_timeout,
        )
        # abort(), not close(): close() would wait to flush to a peer that does not read.
        self.transport.abort()

    def pause_writing(self) -> None:
        super().pause_writing()
        self._arm_stall()

    def resume_writing(self) -> None:
        super().resume_writing()
        self._disarm_stall()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_stall()
        super().connection_lost(exc)


class BudgetedH11Protocol(_WriteStallGuard, H11Protocol):
    """uvicorn's h11 protocol plus a deadline for the request head and the write-stall guard.

    :func:`uvicorn_options` makes a subclass with the configured values as class attributes
    (uvicorn builds one protocol instance per connection from the class).
    """

    header_timeout: float = 10.0
    max_header_bytes: int = 16 * 1024
    #: SO_SNDBUF for every connection (kept by the socket after an upgrade); 0: the kernel's.
    send_buffer_bytes: int = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._stall_timer = None

    # -- the request head's deadline ---------------------------------------------------------

    def _arm_head(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _disarm_head(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self._head_bytes = 0

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self._head_bytes:
            # A partial head: say why the connection ends.
            self.transport.write(
                _error_bytes(
                    408,
                    "Request Timeout",
                    "request_timeout",
                    f"the request head did not arrive within {self.header_timeout:g} seconds",
                    "Send the request line and headers at once.",
                )
            )
        self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        sock = transport.get_extra_info("socket")
        if sock is not None and self.send_buffer_bytes:
            # A fixed size also turns off the kernel's growing of it (to 4 MB on Linux).
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer_bytes)
        self._arm_head()

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:
            # Bytes of a request head (a keep-alive connection's next request starts its clock).
            self._head_bytes += len(data)
            self._arm_head()
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm_head()

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        # The socket's protocol takes the transport over: nothing of ours may fire on it.
        self._disarm_head()
        self._disarm_stall()
        super().handle_websocket_upgrade(event)

    def send_400_response(self, msg: str) -> None:
        # uvicorn's answer to a request h11 cannot parse is plain text; ours is the standard JSON
        # body, 431 when the head outgrew its limit (h11 refused it for that).
        if self._head_bytes > self.max_header_bytes:
            response = _error_bytes(
                431,
                "Request Header Fields Too Large",
                "input_limit_exceeded",
                f"the request head is over the limit of {self.max_header_bytes} bytes",
                "Send fewer or shorter headers (cookies included).",
            )
        else:
            response = _error_bytes(
                400,
                "Bad Request",
                "bad_request",
                "the request is not valid HTTP/1.1",
                "Check the request line and headers.",
            )
        self.transport.write(response)
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head()
        super().connection_lost(exc)


class BudgetedWebSocketProtocol(_WriteStallGuard, WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol plus the write-stall guard: a socket whose peer stopped
    reading is dropped instead of holding its unsent frames for ever."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stall_timer = None


def uvicorn_options(settings: Any) -> dict[str, Any]:
    """``uvicorn.Config`` keywords for ``settings``' server budgets (see docs/security.md)."""
    http = type(
        "JupiterH11Protocol",
        (BudgetedH11Protocol,),
        {
            "header_timeout": float(settings.http_header_timeout_seconds),
            "max_header_bytes": int(settings.http_max_header_bytes),
            "send_buffer_bytes": int(settings.socket_send_buffer_bytes),
            "stall_timeout": float(settings.write_stall_timeout_seconds),
        },
    )
    ws = type(
        "JupiterWebSocketProtocol",
        (BudgetedWebSocketProtocol,),
        {"stall_timeout": float(settings.write_stall_timeout_seconds)},
    )
    return {
        "http": http,
        "ws": ws,
        "h11_max_incomplete_event_size": int(settings.http_max_header_bytes),
        "timeout_keep_alive": int(settings.http_keep_alive_seconds),
        "ws_max_size": int(settings.ws_max_frame_bytes),
        "ws_ping_interval": float(settings.ws_ping_interval_seconds),
        "ws_ping_timeout": float(settings.ws_ping_timeout_seconds),
    }
