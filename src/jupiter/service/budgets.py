"""Per-request and per-connection budgets for HTTP and the socket: concurrency, headers, time.

:class:`RequestBudgetMiddleware` (pure ASGI) runs outside the routes and:

* refuses a request with more than ``http_max_headers`` headers, or headers of more than
  ``http_max_header_bytes`` (431); the server bounds a head still arriving to the same size
  (:mod:`jupiter.service.serving`);
* admits at most ``max_concurrent_requests`` requests at once (503 beyond) and
  ``max_concurrent_requests_per_client`` from one client address (429 beyond), and likewise
  ``max_websockets`` / ``max_websockets_per_client`` open sockets (accepted, then closed with
  1013 "try again later" and a reason, so a browser can see why);
* gives every API request ``http_request_timeout_seconds`` on the injected clock: past it the
  handler is cancelled and the client gets a JSON 504. The scan upload (its body has its own
  time budget, see :mod:`jupiter.service.bodies`) and the socket (pings, frame and queue
  budgets) are not timed here.

The socket's own budgets live in :mod:`jupiter.service.hub` (outgoing queue) and
:mod:`jupiter.service.ratelimit` (frames).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from jupiter.resilience import Clock, with_timeout
from jupiter.resilience._clock import SYSTEM_CLOCK

from .errors import message_error
from .middleware import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "UNTIMED_ROUTES",
    "ConcurrencyLimiter",
    "RequestBudgetMiddleware",
    "StartTracker",
    "client_address",
]

log = logging.getLogger("jupiter.http")

#: (method, path) of routes that stream a request body and run for as long as the body takes:
#: no per-request time budget (the body's own rate budget bounds them).
UNTIMED_ROUTES: frozenset[tuple[str, str]] = frozenset({("POST", "/api/scans")})

#: WebSocket close code 1013, "try again later" (RFC 6455 §7.4.1 via the IANA registry).
CLOSE_TRY_AGAIN_LATER = 1013


def client_address(scope: Scope) -> str:
    """The client's address as the server saw it (after uvicorn's trusted proxy headers)."""
    client = scope.get("client")
    if client:
        return str(client[0])
    return "unknown"


class ConcurrencyLimiter:
    """How many things are in progress, in total and per client; thread-safe.

    :meth:`acquire` takes a slot or says which limit refused it; every successful acquire must
    be paired with one :meth:`release` for the same client.
    """

    def __init__(self, total: int, per_client: int) -> None:
        if total < 1 or per_client < 1:
            raise ValueError("total and per_client must be at least 1")
        self.total = total
        self.per_client = per_client
        self._lock = threading.Lock()
        self._in_progress = 0
        self._by_client: dict[str, int] = {}

    @property
    def in_progress(self) -> int:
        return self._in_progress

    def in_progress_for(self, client: str) -> int:
        with self._lock:
            return self._by_client.get(client, 0)

    def acquire(self, client: str) -> str | None:
        """Take a slot: None when taken, else ``"total"`` or ``"client"`` (the limit hit)."""
        with self._lock:
            if self._in_progress >= self.total:
                return "total"
            held = self._by_client.get(client, 0)
            if held >= self.per_client:
                return "client"
            self._in_progress += 1
            self._by_client[client] = held + 1
            return None

    def release(self, client: str) -> None:
        with self._lock:
            held = self._by_client.get(client, 0)
            if held <= 0:
                raise RuntimeError(f"release without acquire for {client!r}")
            self._in_progress -= 1
            if held == 1:
                del self._by_client[client]  # the map only holds clients with work in progress
            else:
                self._by_client[client] = held - 1


class StartTracker:
    """Wraps an ASGI ``send``; :attr:`started` says whether the response has begun (after
    which an error can no longer be answered with a response of its own)."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


class _AppTimeoutError(Exception):
    """The app's own ``TimeoutError``, carried past our deadline's handling unchanged."""

    def __init__(self, error: TimeoutError) -> None:
        super().__init__(str(error))
        self.error = error


class RequestBudgetMiddleware:
    """Header count, concurrency and time budgets for every HTTP request and socket."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: Any,
        clock: Clock = SYSTEM_CLOCK,
        untimed_routes: frozenset[tuple[str, str]] = UNTIMED_ROUTES,
    ) -> None:
        self.app = app
        self.max_headers = int(settings.http_max_headers)
        self.max_header_bytes = int(settings.http_max_header_bytes)
        self.requests = ConcurrencyLimiter(
            settings.max_concurrent_requests, settings.max_concurrent_requests_per_client
        )
        self.sockets = ConcurrencyLimiter(
            settings.max_websockets, settings.max_websockets_per_client
        )
        self.timeout_seconds = float(settings.http_request_timeout_seconds)
        self._timeout = with_timeout(self.timeout_seconds, clock=clock)
        self.untimed_routes = untimed_routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _head_problem(self, scope: Scope) -> tuple[str, str, int, int] | None:
        """(message, limit, maximum, actual) when the head has too many or too big headers.

        h11 refuses an *incomplete* head over ``http_max_header_bytes`` (so a trickled head
        cannot grow); a complete head that arrived in one read is measured here."""
        headers = scope.get("headers") or ()
        if len(headers) > self.max_headers:
            return (
                f"the request has {len(headers)} headers; the limit is {self.max_headers}",
                "max_headers",
                self.max_headers,
                len(headers),
            )
        size = sum(len(name) + len(value) + 4 for name, value in headers)
        if size > self.max_header_bytes:
            return (
                f"the request headers are {size} bytes; the limit is {self.max_header_bytes}",
                "max_header_bytes",
                self.max_header_bytes,
                size,
            )
        return None

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        problem = self._head_problem(scope)
        if problem is not None:
            message, limit, maximum, actual = problem
            response = message_error(
                431,
                message,
                error_type="input_limit_exceeded",
                suggestion="Send fewer or shorter headers (cookies included).",
                headers={"connection": "close"},
                extra={"limit": limit, "maximum": maximum, "actual": actual},
            )
            await response(scope, receive, send)
            return
        client = client_address(scope)
        refused = self.requests.acquire(client)
        if refused is not None:
            await self._busy(refused, scope, receive, send)
            return
        try:
            if (scope.get("method", ""), scope.get("path", "")) in self.untimed_routes:
                await self.app(scope, receive, send)
            else:
                await self._timed(scope, receive, send)
        finally:
            self.requests.release(client)

    async def _busy(self, refused: str, scope: Scope, receive: Receive, send: Send) -> None:
        if refused == "client":
            status, limit = 429, self.requests.per_client
            message = f"this client already has {limit} requests in progress, the limit"
        else:
            status, limit = 503, self.requests.total
            message = f"the server already has {limit} requests in progress, the limit"
        log.warning("⚠️ request refused: %s", message)
        response = message_error(
            status,
            message,
            error_type="too_many_requests" if refused == "client" else "server_busy",
            suggestion="Wait for earlier requests to finish, then try again.",
            recoverable=True,
            headers={"retry-after": "1"},
            extra={
                "limit": f"max_concurrent_requests{'_per_client' if refused == 'client' else ''}",
                "maximum": limit,
                "retry_after": 1,
            },
        )
        await response(scope, receive, send)

    async def _timed(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracked = StartTracker(send)

        async def call() -> None:
            try:
                await self.app(scope, receive, tracked)
            except TimeoutError as exc:  # the app's own, not our deadline
                raise _AppTimeoutError(exc) from exc

        try:
            await self._timeout.run_async(call)
        except _AppTimeoutError as wrapped:
            raise wrapped.error from None
        except TimeoutError:
            path = scope.get("path", "")
            log.warning(
                "⚠️ %s %s stopped after %gs", scope.get("method"), path, self.timeout_seconds
            )
            if tracked.started:
                return  # part of the answer is out; the server closes the connection
            response = message_error(
                504,
                f"the request took longer than its budget of {self.timeout_seconds:g} seconds "
                "and was stopped",
                error_type="timeout",
                suggestion="Try again later; if it keeps happening, narrow the request.",
                recoverable=True,
                extra={"limit": "http_request_timeout_seconds", "maximum": self.timeout_seconds},
            )
            await response(scope, receive, send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = client_address(scope)
        refused = self.sockets.acquire(client)
        if refused is None:
            try:
                await self.app(scope, receive, send)
            finally:
                self.sockets.release(client)
            return
        if refused == "client":
            reason = f"too many sockets from your address (limit {self.sockets.per_client})"
        else:
            reason = f"too many sockets open (limit {self.sockets.total})"
        log.warning("⚠️ socket refused: %s", reason)
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        # Accepted, then closed: a browser sees the close code and reason, never a bare failure.
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": CLOSE_TRY_AGAIN_LATER, "reason": reason})
