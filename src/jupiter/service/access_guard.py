"""Pure ASGI middleware that refuses, before any route runs, what no route may see:

* a credential in the query string (``?token=``, ``access_token``, ``api_key``...): **400**.
  URLs end up in logs, proxies, browser history and ``Referer`` headers; a token there is
  leaked. The value is never logged or echoed;
* a ``Host`` header this deployment does not answer to (DNS rebinding): **400**;
* a state-changing request (POST, PUT, PATCH, DELETE) or a socket handshake from another
  origin: **403** when ``Sec-Fetch-Site`` is present and not ``same-origin``/``none``, or when
  ``Origin`` is present and is neither this server's origin nor a trusted one. This holds for
  unauthenticated requests too (offline chat, sign-in): a page on another origin (another
  port of 127.0.0.1 is another origin, though the same *site* for SameSite cookies) cannot make
  the browser change anything here, whatever the content type or form encoding it picks.

The role checks themselves are route dependencies (:mod:`jupiter.service.auth`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .auth import SAFE_METHODS, AccessDenied, AccessPolicy, close_reason, origin_key

__all__ = ["CREDENTIAL_QUERY_NAMES", "AccessGuardMiddleware", "check_scope"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Query parameter names that carry credentials somewhere (compared lower-cased, ``-`` as
#: ``_``). No Jupiter route has a parameter by any of these names.
CREDENTIAL_QUERY_NAMES = frozenset(
    {
        "token",
        "access_token",
        "auth_token",
        "admin_token",
        "id_token",
        "refresh_token",
        "bearer",
        "api_key",
        "apikey",
        "key",
        "auth",
        "authorization",
        "password",
        "passwd",
        "secret",
        "client_secret",
        "session",
        "session_id",
        "sessionid",
        "jupiter_session",
        "csrf_token",
        "x_csrf_token",
        "jwt",
        "credential",
        "credentials",
    }
)
_ALLOWED_FETCH_SITES = frozenset({"same-origin", "none"})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _credential_in_query(scope: Scope) -> str | None:
    raw = scope.get("query_string", b"")
    if not raw:
        return None
    text = raw.decode("latin-1")
    for name, _value in parse_qsl(text, keep_blank_values=True):
        normalised = name.strip().lower().replace("-", "_")
        if normalised in CREDENTIAL_QUERY_NAMES:
            return str(name.strip()[:40])
    return None


def _split_host(host: str) -> tuple[str, int | None] | None:
    """``("::1", 8000)`` from ``[::1]:8000``; None if it is not a host[:port]."""
    try:
        parts = urlsplit("//" + host.strip())
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or parts.path or parts.query or parts.username is not None:
        return None
    return parts.hostname.lower().rstrip("."), port


def _own_origin(scope: Scope, host: str | None) -> tuple[str, str, int] | None:
    if host is None:
        return None
    scheme = str(scope.get("scheme", "http"))
    return origin_key(f"{scheme}://{host.strip()}")


def check_scope(scope: Scope, policy: AccessPolicy) -> AccessDenied | None:
    """The refusal this request gets before routing, or None."""
    name = _credential_in_query(scope)
    if name is not None:
        return AccessDenied(
            400,
            "credential_in_url",
            f"A credential must not be sent in the URL (query parameter {name!r}): URLs are "
            "kept in logs, proxies, browser history and Referer headers.",
            "Send the token in the Authorization header with the scheme Bearer, or sign in "
            "with POST /api/session. Rotate a token that was sent in a URL.",
        )
    host = _header(scope, b"host")
    if host is not None:
        split = _split_host(host)
        if split is None or not policy.host_allowed(split[0]):
            return AccessDenied(
                400,
                "host_not_allowed",
                "This Jupiter does not answer to that Host name.",
                "Open Jupiter by the address it printed at start (127.0.0.1, localhost or "
                "[::1] when it listens on loopback), or add the name to JUPITER_ALLOWED_HOSTS.",
            )
    websocket = scope["type"] == "websocket"
    if not websocket and str(scope.get("method", "GET")).upper() in SAFE_METHODS:
        return None
    what = "A socket" if websocket else "A request that changes something"
    fetch_site = _header(scope, b"sec-fetch-site")
    if fetch_site is not None and fetch_site.strip().lower() not in _ALLOWED_FETCH_SITES:
        return AccessDenied(
            403,
            "cross_origin_refused",
            f"{what} must come from Jupiter's own pages (Sec-Fetch-Site: "
            f"{fetch_site.strip()[:20]}).",
            "Use the dashboard or the Admin Console, or call the API from a script with a "
            "Bearer token.",
        )
    origin = _header(scope, b"origin")
    if origin is not None:
        given = origin_key(origin)
        own = _own_origin(scope, host)
        if given is None or (given != own and given not in policy.trusted_origins):
            return AccessDenied(
                403,
                "cross_origin_refused",
                f"{what} must come from Jupiter's own origin; this one came from another origin.",
                "Use the dashboard or the Admin Console. Behind a proxy that changes the "
                "origin, add it to JUPITER_TRUSTED_ORIGINS.",
            )
    return None


class AccessGuardMiddleware:
    """Applies :func:`check_scope` to every HTTP request and socket handshake."""

    def __init__(self, app: ASGIApp, *, policy: AccessPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            refusal = check_scope(scope, self.policy)
            if refusal is not None:
                await _refuse(scope, receive, send, refusal)
                return
        await self.app(scope, receive, send)


async def _refuse(scope: Scope, receive: Receive, send: Send, refusal: AccessDenied) -> None:
    if scope["type"] == "http":
        await refusal.response()(scope, receive, send)
        return
    # A socket from another origin, or with a token in its URL: refused before the handshake
    # completes (the client sees HTTP 403), so not one frame is exchanged.
    await send({"type": "websocket.close", "code": 1008, "reason": close_reason(refusal.message)})
