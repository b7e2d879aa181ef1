"""Request bodies: JSON only, bounded in bytes, structure and time before any route sees them.

:class:`JsonBodyMiddleware` (pure ASGI) handles every HTTP request that has a body:

* **Content type.** Routes take ``application/json`` (UTF-8) only; anything else, or no
  ``Content-Type`` at all, is answered 415 and never parsed. A ``text/plain`` body is what a
  cross-site ``fetch`` or form can send without a CORS preflight, so refusing it is also a CSRF
  defence (docs/security.md). Compressed bodies (``Content-Encoding``) are refused too.
* **Bytes.** ``Content-Length`` over ``http_max_body_bytes`` is answered 413 before anything is
  read; the body is also counted while it is read, so a chunked body (no length) cannot bring
  more in either. At most the limit is ever buffered.
* **Time.** The body must keep arriving (:class:`BodyDeadline`): after a grace period, at a
  minimum average rate, and within a total; else 408.
* **Structure.** The buffered body is parsed with :func:`jupiter.limits.parse_json` within the
  ``http_json_*`` limits: over one is 413 ``input_limit_exceeded`` naming the limit and the JSON
  path; malformed JSON is 422 ``malformed_json`` with the line and column. Only then is the body
  replayed to the route (which parses it again, now known to be small and tame).

The scan upload (:data:`STREAMING_ROUTES`) streams to disk under its own size limit and format
checks; it gets only the time budget here, applied to every chunk it reads.

Requests without a body (most GETs) pass through after a glance at two headers.
"""

from __future__ import annotations

import logging
from typing import Any

from jupiter.limits import InputLimitError, InvalidJsonError, JsonLimits, parse_json
from jupiter.resilience import Clock, with_timeout
from jupiter.resilience._clock import SYSTEM_CLOCK

from .budgets import UNTIMED_ROUTES, StartTracker
from .errors import message_error
from .middleware import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "STREAMING_ROUTES",
    "BodyDeadline",
    "BodyTimeoutError",
    "JsonBodyMiddleware",
    "json_body_limits",
]

log = logging.getLogger("jupiter.http")

#: Routes that read their own (non-JSON) body as a stream: the scan upload.
STREAMING_ROUTES: frozenset[tuple[str, str]] = UNTIMED_ROUTES

_WHAT = "the request body"
#: The methods whose body a route may read.
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def json_body_limits(settings: Any) -> JsonLimits:
    """The :class:`JsonLimits` for request bodies, from the settings."""
    return JsonLimits(
        max_bytes=int(settings.http_max_body_bytes),
        max_depth=int(settings.http_json_max_depth),
        max_string_chars=int(settings.http_json_max_string_chars),
        max_number_chars=int(settings.http_json_max_number_chars),
        max_values=int(settings.http_json_max_values),
    )


class BodyTimeoutError(Exception):
    """The request body did not arrive within its time budget."""

    def __init__(self, message: str, limit: str) -> None:
        super().__init__(message)
        self.message = message
        #: The setting whose budget ran out.
        self.limit = limit


class BodyDeadline:
    """When a body must have arrived by, given how much of it has: the time budget for bodies.

    ``grace_seconds`` from the start, plus one second per ``min_bytes_per_second`` received,
    but never more than ``max_seconds`` in all. A client that keeps sending at the minimum rate
    keeps its deadline ahead of it; one that stalls or trickles meets it.
    """

    def __init__(
        self,
        *,
        grace_seconds: float,
        min_bytes_per_second: float,
        max_seconds: float,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.grace_seconds = grace_seconds
        self.min_bytes_per_second = min_bytes_per_second
        self.max_seconds = max_seconds
        self.clock = clock
        self.started = clock.monotonic()

    def deadline(self, received: int) -> float:
        allowed = self.grace_seconds + received / self.min_bytes_per_second
        return self.started + min(self.max_seconds, allowed)

    def remaining(self, received: int) -> float:
        return self.deadline(received) - self.clock.monotonic()

    def expired(self, received: int) -> BodyTimeoutError:
        """The error for a body that met its deadline with ``received`` bytes."""
        elapsed = self.clock.monotonic() - self.started
        if elapsed >= self.max_seconds:
            return BodyTimeoutError(
                f"{_WHAT} took more than {self.max_seconds:g} seconds "
                f"({received} bytes had arrived)",
                "http_body_max_seconds",
            )
        return BodyTimeoutError(
            f"{_WHAT} arrived too slowly: {received} bytes in {elapsed:.1f} seconds; after "
            f"{self.grace_seconds:g} seconds it must average at least "
            f"{self.min_bytes_per_second:g} bytes per second",
            "http_body_min_bytes_per_second",
        )

    async def receive(self, receive: Receive, received: int) -> Message:
        """The next message from ``receive``, or :class:`BodyTimeoutError` at the deadline."""
        remaining = self.remaining(received)
        if remaining <= 0:
            raise self.expired(received)
        try:
            return await with_timeout(remaining, clock=self.clock).run_async(receive)
        except TimeoutError:
            raise self.expired(received) from None


def _header_values(scope: Scope) -> tuple[str | None, str | None, str | None, bool]:
    """content-length, content-type, content-encoding and whether the body is chunked."""
    length = content_type = encoding = None
    chunked = False
    for name, value in scope.get("headers") or ():
        if name == b"content-length":
            length = value.decode("latin-1")
        elif name == b"content-type":
            content_type = value.decode("latin-1")
        elif name == b"content-encoding":
            encoding = value.decode("latin-1")
        elif name == b"transfer-encoding":
            chunked = True
    return length, content_type, encoding, chunked


def _is_json(content_type: str | None) -> bool:
    """``application/json``, with at most a UTF-8 charset parameter."""
    if content_type is None:
        return False
    media, _, params = content_type.partition(";")
    if media.strip().lower() != "application/json":
        return False
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            return False
    return True


def _shown(value: str | None) -> str:
    if value is None:
        return "none"
    printable = "".join(c if c.isprintable() else "?" for c in value[:60])
    return repr(printable + ("…" if len(value) > 60 else ""))


class JsonBodyMiddleware:
    """Content type, size, time and JSON-structure limits for request bodies."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: Any,
        clock: Clock = SYSTEM_CLOCK,
        streaming_routes: frozenset[tuple[str, str]] = STREAMING_ROUTES,
    ) -> None:
        self.app = app
        self.limits = json_body_limits(settings)
        self.clock = clock
        self.grace_seconds = float(settings.http_body_grace_seconds)
        self.min_bytes_per_second = float(settings.http_body_min_bytes_per_second)
        self.max_seconds = float(settings.http_body_max_seconds)
        self.streaming_routes = streaming_routes

    def _deadline(self) -> BodyDeadline:
        return BodyDeadline(
            grace_seconds=self.grace_seconds,
            min_bytes_per_second=self.min_bytes_per_second,
            max_seconds=self.max_seconds,
            clock=self.clock,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope.get("method", "") not in _BODY_METHODS:
            # No route reads a GET/OPTIONS/TRACE body: routing answers it (a 405 for TRACE),
            # and the body is never read, so it cannot cost memory.
            await self.app(scope, receive, send)
            return
        length_text, content_type, encoding, chunked = _header_values(scope)
        if length_text is None and not chunked:
            await self.app(scope, receive, send)  # no body: nothing to check
            return
        try:
            length = int(length_text) if length_text is not None else None
        except ValueError:  # the server refuses these first; kept for other servers
            length = None
        if length == 0 and not chunked:
            await self.app(scope, receive, send)
            return
        if (scope.get("method", ""), scope.get("path", "")) in self.streaming_routes:
            await self._streamed(scope, receive, send)
            return
        await self._json(scope, receive, send, length, content_type, encoding)

    async def _streamed(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The route reads the body itself; every read is held to the body's time budget."""
        deadline = self._deadline()
        received = 0
        tracked = StartTracker(send)

        async def timed_receive() -> Message:
            nonlocal received
            message = await deadline.receive(receive, received)
            received += len(message.get("body", b""))
            return message

        try:
            await self.app(scope, timed_receive, tracked)
        except BodyTimeoutError as exc:
            log.warning("⚠️ %s", exc.message)
            if not tracked.started:
                await self._too_slow(exc, scope, receive, send)

    async def _json(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        length: int | None,
        content_type: str | None,
        encoding: str | None,
    ) -> None:
        if not _is_json(content_type):
            await self._refuse(
                415,
                f"this endpoint takes a JSON body (Content-Type: application/json); the "
                f"request's Content-Type is {_shown(content_type)}",
                "unsupported_media_type",
                "Send the body as JSON with Content-Type: application/json.",
                scope,
                receive,
                send,
            )
            return
        if encoding is not None and encoding.strip().lower() != "identity":
            await self._refuse(
                415,
                "compressed request bodies are not accepted "
                f"(Content-Encoding: {_shown(encoding)})",
                "unsupported_media_type",
                "Send the body uncompressed.",
                scope,
                receive,
                send,
            )
            return
        maximum = self.limits.max_bytes
        if length is not None and length > maximum:
            await self._over_limit(
                InputLimitError("max_bytes", maximum, what=_WHAT, actual=length),
                scope,
                receive,
                send,
            )
            return
        deadline = self._deadline()
        chunks: list[bytes] = []
        received = 0
        more = True
        try:
            while more:
                message = await deadline.receive(receive, received)
                if message["type"] == "http.disconnect":
                    return  # the client is gone: nobody to answer
                chunk = message.get("body", b"")
                received += len(chunk)
                if received > maximum:
                    # Nothing past the limit is kept: the rest is never read.
                    chunks.clear()
                    await self._over_limit(
                        InputLimitError("max_bytes", maximum, what=_WHAT), scope, receive, send
                    )
                    return
                if chunk:
                    chunks.append(chunk)
                more = bool(message.get("more_body", False))
        except BodyTimeoutError as exc:
            log.warning("⚠️ %s", exc.message)
            await self._too_slow(exc, scope, receive, send)
            return
        body = b"".join(chunks)
        del chunks
        try:
            parse_json(body, self.limits, what=_WHAT)
        except InputLimitError as exc:
            await self._over_limit(exc, scope, receive, send, close=False)
            return
        except InvalidJsonError as exc:
            extra: dict[str, Any] = {}
            if exc.line is not None:
                extra["location"] = {"line": exc.line, "column": exc.column}
            await self._refuse(
                422,
                str(exc),
                "malformed_json",
                "Send one valid JSON document (UTF-8, no NaN or Infinity).",
                scope,
                receive,
                send,
                extra=extra,
                close=False,
            )
            return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: the disconnect, when it comes

        await self.app(scope, replay, send)

    async def _over_limit(
        self,
        exc: InputLimitError,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        close: bool = True,
    ) -> None:
        suggestion = (
            f"Keep the body under {self.limits.max_bytes} bytes."
            if exc.limit == "max_bytes"
            else "Simplify the JSON document: see the named limit and place."
        )
        await self._refuse(
            413,
            str(exc),
            "input_limit_exceeded",
            suggestion,
            scope,
            receive,
            send,
            extra=exc.to_dict(),
            close=close,
        )

    async def _too_slow(
        self, exc: BodyTimeoutError, scope: Scope, receive: Receive, send: Send
    ) -> None:
        await self._refuse(
            408,
            exc.message,
            "request_timeout",
            "Send the request body at once, or over a faster connection.",
            scope,
            receive,
            send,
            extra={"limit": exc.limit},
        )

    async def _refuse(
        self,
        status: int,
        message: str,
        error_type: str,
        suggestion: str,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        extra: dict[str, Any] | None = None,
        close: bool = True,
    ) -> None:
        # ``connection: close`` when the body was not read whole: the server must not try to
        # read the rest as the next request, nor wait for it.
        response = message_error(
            status,
            message,
            error_type=error_type,
            suggestion=suggestion,
            recoverable=status == 408,
            headers={"connection": "close"} if close else None,
            extra=extra,
        )
        await response(scope, receive, send)
