"""Access control: who is asking (a Bearer token, a session cookie, or nobody) and whether
their role allows the route. docs/security.md describes the model; this module is its code.

* :class:`AccessPolicy`: what the settings decide (the anonymous role, the accepted Host names
  and origins, the session lifetime, the role chat needs).
* :class:`SessionCodec`: browser sessions, signed with the data dir's session key and bound to
  the credential they were opened with, so rotating or revoking it ends them at once.
* :class:`AccessControl`: turns a request into a :class:`Principal` and checks a role.
* :class:`Access`: the FastAPI dependency a route declares (``ViewerDep``... in
  :mod:`jupiter.service.deps`); :func:`check_route_permissions` refuses to build an app with a
  route that declares none.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import json
import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.requests import HTTPConnection
from starlette.routing import BaseRoute, Route

from jupiter.resilience import Clock

from .tokens import Credential, CredentialStore, Role

__all__ = [
    "ADMIN",
    "ANALYST",
    "BUILTIN_PUBLIC_PATHS",
    "CHAT",
    "CLOSE_FORBIDDEN",
    "CLOSE_UNAUTHENTICATED",
    "LOOPBACK_NAMES",
    "PUBLIC",
    "SAFE_METHODS",
    "SESSION_COOKIE",
    "SOCKET_PROTOCOL",
    "VIEWER",
    "Access",
    "AccessControl",
    "AccessDenied",
    "AccessPolicy",
    "Principal",
    "RoutePermission",
    "Session",
    "SessionCodec",
    "UndeclaredPermissionError",
    "access_denied_handler",
    "chat_role_needed",
    "check_route_permissions",
    "close_reason",
    "is_loopback",
    "iter_routes",
    "origin_key",
    "route_permissions",
    "socket_subprotocol",
]

SESSION_COOKIE = "jupiter_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: The names a browser uses for this machine. Only these reach a loopback-bound Jupiter: a
#: page on evil.example that re-points its DNS name at 127.0.0.1 (DNS rebinding) still sends
#: ``Host: evil.example`` and is refused.
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
#: Routes FastAPI adds itself (no dependencies possible); public, and they carry no data.
BUILTIN_PUBLIC_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
_REALM = 'Bearer realm="jupiter"'


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` reaches this machine only."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def _is_unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_unspecified
    except ValueError:
        return False


def chat_role_needed(settings: Any) -> Role:
    """Viewer when chat answers from the offline knowledge base (a read); analyst when it
    reaches an LLM endpoint, which spends the operator's credits (or compute)."""
    try:
        from jupiter.llm import provider_from_settings

        offline = bool(provider_from_settings(settings).is_offline)
    except Exception:  # a misconfigured provider: assume the costly case
        offline = False
    return Role.VIEWER if offline else Role.ANALYST


# ---------------------------------------------------------------- the policy


@dataclass(frozen=True)
class AccessPolicy:
    """What the settings decide. ``allowed_hosts`` None accepts any Host header."""

    anonymous_role: Role | None
    allowed_hosts: frozenset[str] | None
    trusted_origins: frozenset[tuple[str, str, int]]
    session_max_age: int
    chat_role: Role

    @classmethod
    def from_settings(cls, settings: Any, *, chat_role: Role | None = None) -> AccessPolicy:
        loopback = is_loopback(settings.host)
        configured = settings.anonymous_role
        if configured == "auto":
            anonymous = Role.VIEWER if loopback else None
        else:
            anonymous = Role.VIEWER if configured == "viewer" else None
        hosts: frozenset[str] | None
        listed = list(settings.allowed_hosts)
        if "*" in listed:
            hosts = None
        elif listed:
            hosts = frozenset(listed) | (LOOPBACK_NAMES if loopback else frozenset())
        elif loopback:
            hosts = LOOPBACK_NAMES
        elif _is_unspecified(settings.host):
            hosts = None  # bound to every address: the names are unknowable (a warning says so)
        else:
            hosts = frozenset({settings.host.strip().strip("[]").lower()})
        return cls(
            anonymous_role=anonymous,
            allowed_hosts=hosts,
            trusted_origins=frozenset(
                key for key in map(origin_key, settings.trusted_origins) if key is not None
            ),
            session_max_age=int(settings.session_max_age_seconds),
            chat_role=chat_role if chat_role is not None else chat_role_needed(settings),
        )

    def host_allowed(self, hostname: str) -> bool:
        if self.allowed_hosts is None:
            return True
        name = hostname.lower().rstrip(".")
        for allowed in self.allowed_hosts:
            if allowed.startswith("."):  # ".example.com": the domain and its subdomains
                if name == allowed[1:] or name.endswith(allowed):
                    return True
            elif name == allowed:
                return True
        return False


def origin_key(origin: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of an origin or a URL; None if it is not one (``null``...)."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme.lower(), parts.scheme.lower())
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    return scheme, parts.hostname.lower().rstrip("."), port or (443 if scheme == "https" else 80)


# ---------------------------------------------------------------- who is asking


@dataclass(frozen=True)
class Session:
    """A verified browser session."""

    name: str
    role: Role
    expires: float
    csrf_token: str

    def to_dict(self) -> dict[str, Any]:
        """What ``/api/session`` shows of it (the CSRF token only at sign-in)."""
        return {
            "role": self.role.label,
            "name": self.name,
            "expires": datetime.fromtimestamp(self.expires, UTC)
            .isoformat(timespec="seconds")
            .replace("+00:00", "Z"),
        }


@dataclass(frozen=True)
class Principal:
    """The caller: a role (None: anonymous with no access), how they proved it, and the
    credential's name (never the credential)."""

    role: Role | None
    via: Literal["bearer", "session", "anonymous", "public"]
    name: str | None = None
    session: Session | None = None
    #: A session cookie came with the request but is no longer valid (expired, or its
    #: credential was rotated or revoked); the 401 then says so.
    session_ended: bool = False
    #: A valid session cookie came without its CSRF token, so it does not count (see
    #: :meth:`AccessControl.identify`).
    session_unproven: bool = False

    def allows(self, needed: Role) -> bool:
        return self.role is not None and self.role >= needed

    @property
    def role_label(self) -> str:
        return self.role.label if self.role is not None else "none"


ANONYMOUS_PUBLIC = Principal(role=None, via="public")


class AccessDenied(Exception):
    """A refusal with its status (400, 401 or 403), error type, message and suggestion."""

    def __init__(
        self,
        status_code: int,
        error_type: str,
        message: str,
        suggestion: str,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
        clear_session: bool = False,
    ) -> None:
        super().__init__(message)
        self.clear_session = clear_session
        self.status_code = status_code
        self.error_type = error_type
        self.message = message
        self.suggestion = suggestion
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def response(self) -> JSONResponse:
        from .errors import message_error

        response = message_error(
            self.status_code,
            self.message,
            error_type=self.error_type,
            suggestion=self.suggestion,
            headers=self.headers or None,
            extra=self.extra,
        )
        if self.clear_session:
            # The browser drops the dead cookie, so its next request is simply anonymous.
            response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        return response


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionCodec:
    """Signed, expiring session values bound to their credential.

    A value is ``base64(payload).base64(HMAC-SHA256(key, base64(payload)))`` with the payload
    ``{"sub": credential name, "bind": HMAC(key, credential digest), "exp", "sid"}``. Nothing is
    stored server-side: the signature proves the value is ours, ``exp`` ends it, and ``bind``
    stops matching as soon as the credential's token changes (rotation) or goes (revocation).
    The CSRF token is derived from the session's random ``sid``.
    """

    def __init__(self, store: CredentialStore, clock: Clock, max_age: int) -> None:
        self.store = store
        self.clock = clock
        self.max_age = max_age

    def _mac(self, key: bytes, label: bytes, data: bytes) -> bytes:
        return hmac.digest(key, label + b"\x00" + data, "sha256")  # the one-shot C path

    def issue(self, credential: Credential) -> tuple[str, Session]:
        key = self.store.session_key()
        expires = int(self.clock.wall()) + self.max_age
        sid = secrets.token_urlsafe(16)
        payload = {
            "v": 1,
            "sub": credential.name,
            "bind": _b64(self._mac(key, b"bind", credential.digest)[:18]),
            "exp": expires,
            "sid": sid,
        }
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        signature = _b64(self._mac(key, b"session", body.encode()))
        csrf = _b64(self._mac(key, b"csrf", sid.encode())[:24])
        return f"{body}.{signature}", Session(credential.name, credential.role, expires, csrf)

    def verify(self, value: str) -> Session | None:
        """The session ``value`` carries, or None (forged, expired, credential changed)."""
        if not value or len(value) > 1024 or value.count(".") != 1:
            return None
        body, signature = value.split(".")
        key = self.store.session_key()
        try:
            given = _unb64(signature)
        except (binascii.Error, ValueError):
            return None
        if not hmac.compare_digest(given, self._mac(key, b"session", body.encode())):
            return None
        try:
            payload = json.loads(_unb64(body))
            name, bind = payload["sub"], payload["bind"]
            expires, sid = payload["exp"], payload["sid"]
        except (binascii.Error, ValueError, KeyError, TypeError):
            return None
        if not (isinstance(expires, int) and isinstance(name, str) and isinstance(sid, str)):
            return None
        if expires <= self.clock.wall():
            return None
        credential = self.store.by_name(name)
        if credential is None:
            return None
        expected = _b64(self._mac(key, b"bind", credential.digest)[:18])
        if not hmac.compare_digest(str(bind).encode(), expected.encode()):
            return None
        csrf = _b64(self._mac(key, b"csrf", sid.encode())[:24])
        return Session(credential.name, credential.role, float(expires), csrf)


#: The socket's subprotocols: pages offer ``jupiter.v1`` and ``jupiter.csrf.<token>``; the
#: server answers with ``jupiter.v1`` (the token is never echoed back).
SOCKET_PROTOCOL = "jupiter.v1"
_CSRF_PROTOCOL = "jupiter.csrf."


def _socket_proof(offered: str | None) -> str | None:
    for item in (offered or "").split(","):
        name = item.strip()
        if name.startswith(_CSRF_PROTOCOL):
            return name[len(_CSRF_PROTOCOL) :]
    return None


def socket_subprotocol(offered: Iterable[str]) -> str | None:
    """The subprotocol to accept a socket with: ``jupiter.v1`` if the client offered it."""
    return SOCKET_PROTOCOL if SOCKET_PROTOCOL in offered else None


def _cookies(header: str | None) -> list[str]:
    """The session cookie's values in a ``Cookie`` header (``a=1; jupiter_session=...``).

    A plain split rather than ``http.cookies``: the value is base64url and a dot, never
    quoted, and this runs on every request. There can be several: any server on another port
    of the same host can set a cookie of that name for the host (cookie tossing); a tossed
    value never verifies, so it must not hide the real one (at most 4 are looked at)."""
    if not header:
        return []
    values = []
    for part in header.split(";"):
        name, found, value = part.partition("=")
        if found and name.strip() == SESSION_COOKIE and value.strip():
            values.append(value.strip())
    return values[:4]


class AccessControl:
    """The app's access control: ``app.state.access``."""

    def __init__(self, policy: AccessPolicy, store: CredentialStore, clock: Clock) -> None:
        self.policy = policy
        self.store = store
        self.sessions = SessionCodec(store, clock, policy.session_max_age)

    def identify(self, headers: Mapping[str, str], *, ended_session_ok: bool = False) -> Principal:
        """Who sent these headers. A wrong or malformed ``Authorization`` is a 401, never
        silently anonymous; so is a session cookie that no longer holds (expired, or its
        credential rotated or revoked: the session "stops working", and the 401 deletes the
        cookie). With ``ended_session_ok`` such a cookie makes an anonymous principal with
        ``session_ended`` instead (``GET /api/session`` reports it that way).

        A valid session cookie counts only with its CSRF token: the ``X-CSRF-Token`` header,
        or on a socket handshake the ``jupiter.csrf.<token>`` subprotocol (a browser cannot
        set headers there). Cookies are scoped by host, not port, so the browser also sends
        Jupiter's cookie to any other server on 127.0.0.1; the token, kept by Jupiter's pages
        in their origin's storage, is what such a server (or a page on it) lacks."""
        authorization = headers.get("authorization")
        if authorization is not None:
            scheme, _, value = authorization.strip().partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise AccessDenied(
                    401,
                    "invalid_credential",
                    "The Authorization header must use the scheme Bearer followed by a token.",
                    "Send the header as: Authorization, then the word Bearer and the token.",
                    headers={"WWW-Authenticate": f'{_REALM}, error="invalid_request"'},
                )
            credential = self.store.authenticate(value.strip())
            if credential is None:
                raise AccessDenied(
                    401,
                    "invalid_credential",
                    "The token is not valid (it may have been rotated or revoked).",
                    "Check the token: `jupiter token` shows the admin token and "
                    "`jupiter token list` the named ones.",
                    headers={"WWW-Authenticate": f'{_REALM}, error="invalid_token"'},
                )
            return Principal(credential.role, "bearer", credential.name)
        cookies = _cookies(headers.get("cookie"))
        if cookies:
            session = next(filter(None, map(self.sessions.verify, cookies)), None)
            if session is not None:
                proof = headers.get(CSRF_HEADER) or _socket_proof(
                    headers.get("sec-websocket-protocol")
                )
                if proof and hmac.compare_digest(proof.encode(), session.csrf_token.encode()):
                    return Principal(session.role, "session", session.name, session)
                return Principal(self.policy.anonymous_role, "anonymous", session_unproven=True)
            if not ended_session_ok:
                raise AccessDenied(
                    401,
                    "session_ended",
                    "Your session has ended: it expired, or its token was rotated or revoked.",
                    "Sign in again with a current token.",
                    headers={"WWW-Authenticate": f'{_REALM}, error="invalid_token"'},
                    clear_session=True,
                )
        return Principal(self.policy.anonymous_role, "anonymous", session_ended=bool(cookies))

    def authorize(
        self, principal: Principal, needed: Role, *, method: str, headers: Mapping[str, str]
    ) -> None:
        """Refuse unless ``principal`` may do something that needs ``needed``."""
        if principal.session_unproven and method.upper() not in SAFE_METHODS:
            raise AccessDenied(
                403,
                "csrf_token_invalid",
                "A signed-in browser request that changes something must carry the "
                "X-CSRF-Token header of its session.",
                "Sign in again on this page: it keeps the session's CSRF token.",
            )
        if principal.allows(needed):
            return
        if principal.via == "anonymous":
            ended = " Your session has ended." if principal.session_ended else ""
            if principal.session_unproven:
                ended = " The session cookie came without its X-CSRF-Token."
            raise AccessDenied(
                401,
                "authentication_required",
                f"This needs a credential with the {needed.label} role: sign in, or send a "
                f"token in the Authorization header.{ended}",
                "Sign in on the dashboard or the Admin Console, or send the header with the "
                "scheme Bearer. `jupiter token` shows the admin token; `jupiter token create` "
                "makes one with a lesser role.",
                headers={"WWW-Authenticate": _REALM},
                extra={"required_role": needed.label},
            )
        have = principal.role_label
        raise AccessDenied(
            403,
            "insufficient_role",
            f"This needs the {needed.label} role; the credential {principal.name!r} has the "
            f"{have} role.",
            f"Use a credential with the {needed.label} role (`jupiter token create --role "
            f"{needed.label} NAME`).",
            headers={"WWW-Authenticate": f'{_REALM}, error="insufficient_scope"'},
            extra={"required_role": needed.label, "role": have},
        )


# ---------------------------------------------------------------- the route dependency

Needed = Role | Literal["public", "chat"]


class Access:
    """A route's permission; ``access.dependency`` is what a route declares (through the
    aliases in :mod:`jupiter.service.deps`).

    ``needed`` is a role, ``"public"`` (no check at all: a credential sent is not even read) or
    ``"chat"`` (viewer for the offline knowledge base, analyst when chat reaches an LLM).
    """

    def __init__(self, label: str, needed: Needed, description: str) -> None:
        self.label = label
        self.needed = needed
        self.description = description
        access = self

        # A plain function (not this object's __call__): FastAPI resolves the annotation
        # through the function's module globals.
        async def dependency(connection: HTTPConnection) -> Principal:
            return access.check(connection)

        dependency.__name__ = f"require_{label}"
        dependency.__qualname__ = dependency.__name__
        self.dependency = dependency

    def __repr__(self) -> str:
        return f"Access({self.label!r})"

    def role_for(self, control: AccessControl) -> Role | None:
        if self.needed == "public":
            return None
        if self.needed == "chat":
            return control.policy.chat_role
        return self.needed

    def check(self, connection: HTTPConnection) -> Principal:
        """The caller, if they may use the route; :class:`AccessDenied` otherwise."""
        control: AccessControl = connection.app.state.access
        needed = self.role_for(control)
        if needed is None:
            return ANONYMOUS_PUBLIC
        headers = connection.headers
        principal = control.identify(headers)
        method = str(connection.scope.get("method", "GET"))
        control.authorize(principal, needed, method=method, headers=headers)
        return principal


PUBLIC = Access("public", "public", "anyone, no credential read")
VIEWER = Access("viewer", Role.VIEWER, "viewer or above (anonymous too, where allowed)")
ANALYST = Access("analyst", Role.ANALYST, "analyst or admin credential")
ADMIN = Access("admin", Role.ADMIN, "admin credential")
CHAT = Access("chat", "chat", "viewer for the offline knowledge base, analyst for an LLM")
_PERMISSIONS = (PUBLIC, VIEWER, ANALYST, ADMIN, CHAT)


#: Socket close codes for a refused credential: the 4000s are the application's, and these
#: read as HTTP's 401 (no or invalid credential) and 403 (role too low).
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


def close_reason(message: str) -> str:
    """``message`` cut to what a close frame can carry (123 bytes of UTF-8)."""
    data = message.encode("utf-8")[:123]
    return data.decode("utf-8", "ignore")


async def access_denied_handler(connection: HTTPConnection, exc: Exception) -> JSONResponse | None:
    """Exception handler: the JSON refusal; on a socket, a close with a code and a reason."""
    assert isinstance(exc, AccessDenied)
    if connection.scope["type"] == "websocket":
        from starlette.websockets import WebSocket

        assert isinstance(connection, WebSocket)
        await deny_websocket(connection, exc)
        return None
    return exc.response()


async def deny_websocket(websocket: Any, exc: AccessDenied) -> None:
    """Refuse a socket whose credential does not hold: accepted, then closed at once with
    4401 or 4403 and the reason, which a browser page can read (an HTTP refusal of the
    handshake is invisible to page scripts). Nothing else is sent before the close."""
    code = CLOSE_FORBIDDEN if exc.status_code == 403 else CLOSE_UNAUTHENTICATED
    await websocket.accept(subprotocol=socket_subprotocol(websocket.scope.get("subprotocols", ())))
    await websocket.close(code=code, reason=close_reason(exc.message))


# ---------------------------------------------------------------- every route declares one


@dataclass(frozen=True)
class RoutePermission:
    """One route and the permission it declares."""

    path: str
    methods: tuple[str, ...]  # ("WEBSOCKET",) for the socket
    access: Access


class UndeclaredPermissionError(RuntimeError):
    """A route declares no permission (or more than one): the app is not built."""


def _declared(route: Any) -> list[Access]:
    found: list[Access] = []
    dependant = getattr(route, "dependant", None)
    stack = list(getattr(dependant, "dependencies", []))
    while stack:
        dep = stack.pop()
        for access in _PERMISSIONS:
            if dep.call is access.dependency:
                found.append(access)
        stack.extend(dep.dependencies)
    return found


def iter_routes(routes: Iterable[BaseRoute]) -> Iterator[tuple[BaseRoute, Any]]:
    """``(the route as declared, the route as served)`` for every route, included routers
    flattened (newer FastAPI keeps an included router as one entry of ``app.routes``)."""
    from fastapi import routing

    contexts = getattr(routing, "iter_route_contexts", None)
    if contexts is None:  # older FastAPI: app.routes is already flat
        for route in routes:
            yield route, route
        return
    for context in contexts(list(routes)):
        yield context.original_route, context


def route_path(declared: Any, served: Any) -> str:
    """The path as documented (``/api/findings/{finding_id}``), without Starlette's convertor
    suffixes (``{finding_id:int}``)."""
    for route in (served, declared):
        for name in ("path_format", "path"):
            value = getattr(route, name, None)
            if value:
                return str(value)
    return "?"


def route_permissions(routes: Iterable[BaseRoute]) -> list[RoutePermission]:
    """The permission of every route; :class:`UndeclaredPermissionError` for a route with
    none (or several), so a route cannot be added without saying who may use it."""
    table: list[RoutePermission] = []
    for declared, served in iter_routes(routes):
        path = route_path(declared, served)
        if isinstance(declared, APIRoute | APIWebSocketRoute):
            methods = (
                ("WEBSOCKET",)
                if isinstance(declared, APIWebSocketRoute)
                else tuple(sorted(getattr(served, "methods", None) or declared.methods or ()))
            )
            found = _declared(served) or _declared(declared)
            if len(found) != 1:
                raise UndeclaredPermissionError(
                    f"{'/'.join(methods)} {path} declares {len(found)} permissions; give it "
                    "exactly one of PublicDep, ViewerDep, AnalystDep, AdminDep or ChatDep "
                    "(jupiter.service.deps)"
                )
            table.append(RoutePermission(path, methods, found[0]))
        elif isinstance(declared, Route) and path in BUILTIN_PUBLIC_PATHS:
            table.append(RoutePermission(path, tuple(sorted(declared.methods or ())), PUBLIC))
        else:
            raise UndeclaredPermissionError(
                f"{path} ({type(declared).__name__}) cannot declare a permission; serve it "
                "from an APIRouter route with one of the permission dependencies"
            )
    return table


def check_route_permissions(app: FastAPI) -> list[RoutePermission]:
    """Run :func:`route_permissions` over the app (``create_app`` does, before serving)."""
    return route_permissions(app.routes)
