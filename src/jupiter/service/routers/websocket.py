"""The socket at /ws: chat, threats, pulse and status events; bad input gets an ``error`` event.

Each incoming message gets its own request ID (on every log line it causes). Chat, threats and
pulse run as tasks of the connection, so a slow upstream never stops the socket from reading:
a ``request_status`` is answered while a chat is still thinking.

Budgets (docs/security.md#budgets): every frame first passes the connection's
:class:`~jupiter.service.ratelimit.FloodGuard` (dropped frames are not even parsed; a sustained
flood closes with 1008), then is parsed within :func:`~jupiter.service.protocol.frame_limits`;
at most ``ws_max_pending_requests`` handlers run at once; the send queue is bounded in bytes
(:class:`~jupiter.service.hub.Connection`). The frame size itself is the server's
(``ws_max_size``, close 1009).

Access (docs/security.md#access-control): ``ViewerDep`` checks the handshake's credential (a
session cookie with its CSRF token in the subprotocols, or ``Authorization: Bearer``) before
the socket is accepted, and the access guard middleware its Origin and Host. The credential is
checked again on every admitted message, so a rotation or revocation closes the socket (4401);
chat that reaches an LLM needs the analyst role.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from jupiter.limits import JsonLimits
from jupiter.resilience import build_error_response
from jupiter.text import clean_text

from ..auth import (
    CLOSE_UNAUTHENTICATED,
    AccessControl,
    AccessDenied,
    Principal,
    socket_subprotocol,
)
from ..dashboard import JupiterDashboard
from ..deps import ViewerDep
from ..hub import CLOSE_POLICY_VIOLATION, Connection, SendBudget
from ..logs import new_request_id, request_id_var
from ..protocol import ProtocolError, error_event_data, frame_limits, parse_client_message
from ..ratelimit import FloodGuard, FrameVerdict, TokenBucket
from ..tokens import Role

router = APIRouter()
log = logging.getLogger("jupiter.ws")


async def _handle_chat(dashboard: JupiterDashboard, conn: Connection, data: dict[str, Any]) -> None:
    extra: dict[str, Any] = {"reply_to": data["id"]} if "id" in data else {}
    # A lone surrogate or NUL would break the echoed reply and the database row: clean first.
    message = clean_text(data["message"]).strip()
    settings = dashboard.settings
    if not message:
        await conn.send(
            "chat_error",
            error_event_data(
                "empty_message",
                "the message is empty",
                "Type a question before sending.",
                clock=dashboard.clock,
                **extra,
            ),
        )
        return
    if len(message) > settings.chat_max_message_chars:
        await conn.send(
            "chat_error",
            error_event_data(
                "message_too_long",
                f"the message is {len(message)} characters; the limit is "
                f"{settings.chat_max_message_chars}",
                "Shorten the question.",
                clock=dashboard.clock,
                **extra,
            ),
        )
        return
    allowed, wait = conn.rate_limit.try_acquire()
    if not allowed:
        seconds = max(1, round(wait))
        await conn.send(
            "chat_error",
            error_event_data(
                "rate_limited",
                "too many chat messages on this connection",
                f"Wait {seconds} second(s) before sending another message.",
                clock=dashboard.clock,
                retry_after=seconds,
                **extra,
            ),
        )
        return
    await conn.send("chat_thinking", {"timestamp": _now(dashboard), **extra})
    reply = await dashboard.chat_with_jupiter(
        message, conn.history, conversation_id=conn.conversation_id, channel="ws"
    )
    error = reply.pop("error", None)
    if error is not None:
        error = dict(error)
        error.pop("status", None)
        error.update(
            {"fallback": reply["response"], "feature_status": reply["feature_status"], **extra}
        )
        await conn.send("chat_error", error)
    else:
        await conn.send("chat_response", {**reply, **extra})


async def _handle_threats(
    dashboard: JupiterDashboard, conn: Connection, data: dict[str, Any]
) -> None:
    # Filters are checked before anything else: a client's bad input is answered with an
    # ``error`` event naming the filter, and never reaches (or counts against) the component.
    from jupiter.intel import ThreatFilters  # lazily, as the dashboard loads components

    try:
        filters = ThreatFilters.from_value(data.get("filters"))
    except ValueError as exc:
        field = getattr(exc, "field", "filters")
        await conn.send(
            "error",
            error_event_data(
                "validation_error",
                str(exc),
                f"Fix {field!r} and send request_threats again.",
                clock=dashboard.clock,
                field=field,
                event="request_threats",
            ),
        )
        return
    await conn.send("threats_loading", {"timestamp": _now(dashboard)})
    ok, payload = await dashboard.fetch_threats(filters)
    if ok:
        payload.setdefault("count", len(payload.get("items") or []))
        payload.setdefault("success", True)
        await conn.send("threats_update", payload)
    else:
        payload.pop("status", None)
        await conn.send("threats_error", payload)


async def _handle_pulse(dashboard: JupiterDashboard, conn: Connection) -> None:
    ok, payload = await dashboard.get_pulse()
    if ok:
        await conn.send("pulse_update", payload)
    else:
        payload.pop("status", None)
        await conn.send("pulse_error", payload)


def _now(dashboard: JupiterDashboard) -> str:
    return build_error_response("", clock=dashboard.clock)["error"]["timestamp"]


async def _guarded(coro: Any, conn: Connection, dashboard: JupiterDashboard, what: str) -> None:
    """Run a handler; an unexpected exception becomes an ``error`` event, never a closed socket."""
    try:
        await coro
    except Exception as exc:
        log.error("❌ socket handler %s failed: %s", what, type(exc).__name__)
        dashboard.record_error("websocket_handler", f"{what} failed", {"error": type(exc).__name__})
        body = build_error_response(exc, clock=dashboard.clock)["error"]
        body.pop("status", None)
        await conn.send("error", body)


def _new_connection(websocket: WebSocket, dashboard: JupiterDashboard) -> Connection:
    """A connection with this socket's budgets: chat bucket, send queue, pending requests."""
    settings = dashboard.settings
    return Connection(
        websocket,
        rate_limit=TokenBucket(
            settings.ws_chat_burst, settings.ws_chat_refill_per_second, clock=dashboard.clock
        ),
        budget=SendBudget(
            messages=settings.ws_send_queue_messages, bytes=settings.ws_send_queue_bytes
        ),
        max_pending=settings.ws_max_pending_requests,
        stats=dashboard.hub.stats,
    )


def _flood_guard(dashboard: JupiterDashboard) -> FloodGuard:
    settings = dashboard.settings
    return FloodGuard(
        burst=settings.ws_frame_burst,
        per_second=settings.ws_frames_per_second,
        notice_interval=settings.ws_flood_notice_interval_seconds,
        close_after_drops=settings.ws_flood_close_drops,
        close_window=settings.ws_flood_close_window_seconds,
        clock=dashboard.clock,
    )


async def _accept(websocket: WebSocket, dashboard: JupiterDashboard) -> Connection:
    """The accept step: the socket is accepted, registered with the hub and told the status.
    (Checks that decide whether to accept at all belong before ``websocket.accept()``: the
    credential is checked by the route's ``ViewerDep``.)"""
    await websocket.accept(subprotocol=socket_subprotocol(websocket.scope.get("subprotocols", ())))
    conn = _new_connection(websocket, dashboard)
    conn.start()
    dashboard.hub.add(conn)
    log.info("📡 socket %s connected (%d open)", conn.id, dashboard.hub.count)
    await conn.send("status_update", dashboard.status_payload())
    return conn


async def _rate_limited(
    conn: Connection, dashboard: JupiterDashboard, flood: FloodGuard, verdict: FrameVerdict
) -> None:
    """A dropped frame: the first of each interval is answered; a sustained flood closes."""
    settings = dashboard.settings
    rate = settings.ws_frames_per_second
    conn.stats.dropped_frames += 1
    if verdict.close:
        conn.stats.flood_closes += 1
        log.warning("⚠️ socket %s flooded: %d frames dropped; closing", conn.id, flood.dropped)
        conn.request_close(
            CLOSE_POLICY_VIOLATION,
            f"too many messages: {flood.dropped} dropped (limit {rate:g} per second)",
        )
        return
    if verdict.notify:
        seconds = max(1, math.ceil(verdict.retry_after))
        log.warning("⚠️ socket %s is over its frame budget (%d dropped)", conn.id, flood.dropped)
        await conn.send(
            "error",
            error_event_data(
                "rate_limited",
                f"too many messages on this connection: messages are being dropped "
                f"({flood.dropped} so far)",
                f"Send at most {rate:g} messages per second (bursts of "
                f"{settings.ws_frame_burst}); a sustained flood closes the socket.",
                clock=dashboard.clock,
                retry_after=seconds,
                dropped=flood.dropped,
                limit="ws_frames_per_second",
                maximum=rate,
            ),
        )


def _current_principal(access: AccessControl, websocket: WebSocket) -> Principal | None:
    """The handshake's credential as it is now (rotation and revocation reach an open socket
    on its next message); None once it may no longer read."""
    try:
        principal = access.identify(websocket.headers)
    except AccessDenied:
        return None
    return principal if principal.allows(Role.VIEWER) else None


async def _chat_refused(
    access: AccessControl, principal: Principal, conn: Connection, data: Any, clock: Any
) -> bool:
    """Send a ``chat_error`` and return True when this caller's role cannot chat here (chat
    that reaches an LLM needs analyst)."""
    needed = access.policy.chat_role
    if principal.allows(needed):
        return False
    extra: dict[str, Any] = {"reply_to": data["id"]} if "id" in data else {}
    anonymous = principal.via == "anonymous"
    await conn.send(
        "chat_error",
        error_event_data(
            "authentication_required" if anonymous else "insufficient_role",
            f"chat here reaches an LLM and needs the {needed.label} role"
            + ("" if anonymous else f"; {principal.name!r} has the {principal.role_label} role"),
            "Sign in with a token of that role (the Sign in button), then ask again.",
            clock=clock,
            recoverable=False,
            required_role=needed.label,
            **extra,
        ),
    )
    return True


async def _dispatch(
    raw: str | bytes | None,
    conn: Connection,
    dashboard: JupiterDashboard,
    limits: JsonLimits,
    principal: Principal,
    access: AccessControl,
) -> None:
    """Parse one admitted frame and act on it; bad input gets an ``error`` event."""
    settings = dashboard.settings
    try:
        event, data = parse_client_message(raw, settings.ws_max_message_bytes, limits)
    except ProtocolError as exc:
        log.warning("⚠️ socket %s sent a bad message: %s", conn.id, exc.code)
        await conn.send(
            "error",
            error_event_data(
                exc.code, exc.message, exc.suggestion, clock=dashboard.clock, **exc.extra
            ),
        )
        return
    log.info("📡 socket %s: %s", conn.id, event)
    if event == "request_status":
        await conn.send("status_update", dashboard.status_payload())
        return
    if not conn.has_room:
        limit = settings.ws_max_pending_requests
        await conn.send(
            "error",
            error_event_data(
                "too_many_pending",
                f"{limit} requests are already in progress on this connection",
                "Wait for an answer before sending more requests.",
                clock=dashboard.clock,
                event=event,
                limit="ws_max_pending_requests",
                maximum=limit,
            ),
        )
        return
    if event == "chat_message":
        if await _chat_refused(access, principal, conn, data, dashboard.clock):
            return
        coro = _handle_chat(dashboard, conn, data)
    elif event == "request_threats":
        coro = _handle_threats(dashboard, conn, data)
    else:
        coro = _handle_pulse(dashboard, conn)
    conn.spawn(_guarded(coro, conn, dashboard, event), event)


@router.websocket("/ws")
async def websocket_endpoint(websocket: WebSocket, principal: ViewerDep) -> None:
    dashboard: JupiterDashboard = websocket.app.state.dashboard
    access: AccessControl = websocket.app.state.access
    settings = dashboard.settings
    conn = await _accept(websocket, dashboard)
    flood = _flood_guard(dashboard)
    limits = frame_limits(
        settings.ws_max_message_bytes,
        max_depth=settings.ws_json_max_depth,
        max_values=settings.ws_json_max_values,
    )
    try:
        while not conn.closing:
            frame = await websocket.receive()
            if frame["type"] == "websocket.disconnect":
                break
            verdict = flood.admit()  # before anything else: a dropped frame costs nothing more
            if not verdict.admitted:
                await _rate_limited(conn, dashboard, flood, verdict)
                continue
            raw = frame.get("text")
            if raw is None:
                raw = frame.get("bytes")
            current = _current_principal(access, websocket)
            if current is None:
                log.info("📡 socket %s: its credential ended; closing", conn.id)
                conn.request_close(
                    CLOSE_UNAUTHENTICATED,
                    "credential rotated, revoked or expired: sign in again",
                    discard_queued=True,
                )
                break
            principal = current
            token = request_id_var.set(new_request_id())
            try:
                await _dispatch(raw, conn, dashboard, limits, principal, access)
            finally:
                request_id_var.reset(token)
    except WebSocketDisconnect:
        pass
    finally:
        dashboard.hub.remove(conn)
        await conn.close()
        log.info("📡 socket %s closed (%d open)", conn.id, dashboard.hub.count)
