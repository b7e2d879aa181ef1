"""Pure ASGI middleware: a request ID for every request and the security headers on every response.

Pure ASGI (not ``BaseHTTPMiddleware``) so the request ID context variable is visible to the
endpoint, to background work it starts, and to every log line in between.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from jupiter.storage.journal import before_acknowledge

from .logs import new_request_id, request_id_var

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "DOCS_CONTENT_SECURITY_POLICY",
    "RequestContextMiddleware",
    "security_headers",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("jupiter.http")

#: No inline script, no third-party origin, no framing. The pages are static ES modules.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
#: FastAPI's /docs and /redoc pages load Swagger UI / ReDoc from a CDN with an inline
#: bootstrap script; only those two pages get this looser policy (they show no data).
DOCS_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "img-src 'self' data: https://fastapi.tiangolo.com; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
_DOCS_PATHS = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def security_headers(path: str) -> list[tuple[bytes, bytes]]:
    """The headers every HTTP response carries."""
    csp = DOCS_CONTENT_SECURITY_POLICY if path in _DOCS_PATHS else CONTENT_SECURITY_POLICY
    return [
        (b"content-security-policy", csp.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-frame-options", b"DENY"),
        (b"cross-origin-opener-policy", b"same-origin"),
    ]


def _incoming_request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate = value.decode("latin-1").strip()
            # Accept a caller's ID only if it is short and plain, so it cannot inject log lines.
            if _VALID_REQUEST_ID.match(candidate):
                return candidate
    return new_request_id()


class RequestContextMiddleware:
    """Sets the request ID (``X-Request-ID`` in and out), security headers and an access line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope)
        token = request_id_var.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        try:
            if scope["type"] == "websocket":
                await self.app(scope, receive, send)
                return
            await self._http(scope, receive, send, request_id)
        finally:
            request_id_var.reset(token)

    async def _http(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        started = time.perf_counter()
        status = {"code": 500}
        path = scope.get("path", "")

        async def send_with_headers(message: Message) -> None:
            # Durability: what this request recorded is journaled before the client hears of it.
            before_acknowledge()
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"
                ]
                present = {k.lower() for k, _ in headers}
                headers += [h for h in security_headers(path) if h[0] not in present]
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            code = status["code"]
            marker = "❌" if code >= 500 else ("⚠️" if code >= 400 else "📡")
            log.info("%s %s %s %d %.1fms", marker, scope.get("method", "-"), path, code, elapsed_ms)
