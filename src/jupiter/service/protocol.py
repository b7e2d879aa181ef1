"""The socket protocol: ``{"event": "...", "data": {...}}`` both ways. See docs/websocket.md.

:func:`parse_client_message` turns raw text into ``(event, data)`` or raises
:class:`ProtocolError`, which the socket answers with an ``error`` event (never a close).
Frames are parsed with :func:`jupiter.limits.parse_json` within :class:`JsonLimits`
(:func:`frame_limits` builds them from the settings).
"""

from __future__ import annotations

from typing import Any

from jupiter.limits import InputLimitError, InvalidJsonError, JsonLimits, parse_json
from jupiter.resilience import Clock, build_error_response
from jupiter.resilience._clock import SYSTEM_CLOCK

__all__ = [
    "CLIENT_EVENTS",
    "SERVER_EVENTS",
    "ProtocolError",
    "error_event_data",
    "frame_limits",
    "parse_client_message",
]

#: What a client may send, and the ``data`` fields each takes.
CLIENT_EVENTS: dict[str, str] = {
    "chat_message": "data.message: string (the question); optional data.id echoed as reply_to",
    "request_threats": "optional data.filters: {source, severity, query, limit, offset}",
    "request_pulse": "no data",
    "request_status": "no data",
}

#: What the server sends.
SERVER_EVENTS = (
    "chat_thinking",
    "chat_response",
    "chat_error",
    "threats_loading",
    "threats_update",
    "threats_error",
    "pulse_update",
    "pulse_error",
    "status_update",
    "error",
    # Added by the scans area:
    "scan_progress",
    "scan_complete",
    "scan_error",
    "scan_deleted",
    "scan_kev_refreshed",
)


class ProtocolError(Exception):
    """A message the server cannot act on. ``code`` becomes the error event's ``type``."""

    def __init__(
        self, code: str, message: str, suggestion: str, extra: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.suggestion = suggestion
        #: More fields for the error event (the limit and where it was hit, say).
        self.extra = extra or {}


def error_event_data(
    code: str, message: str, suggestion: str, *, clock: Clock = SYSTEM_CLOCK, **extra: Any
) -> dict[str, Any]:
    """The ``data`` of an ``error`` or ``chat_error`` event, from ``build_error_response``."""
    body: dict[str, Any] = build_error_response(
        message,
        status_code=400,
        message=message,
        error_type=code,
        suggestion=suggestion,
        recoverable=True,
        clock=clock,
    )["error"]
    body.pop("status", None)  # a socket event has no HTTP status
    body.update(extra)
    return body


def frame_limits(max_bytes: int, *, max_depth: int = 16, max_values: int = 2000) -> JsonLimits:
    """The parsing limits of one socket message (no string may be longer than the message)."""
    return JsonLimits(
        max_bytes=max_bytes,
        max_depth=max_depth,
        max_string_chars=max_bytes,
        max_values=max_values,
    )


def parse_client_message(
    raw: str | bytes | None, max_bytes: int, limits: JsonLimits | None = None
) -> tuple[str, dict[str, Any]]:
    """Validate one incoming frame. Raises :class:`ProtocolError` naming what is wrong.

    ``limits`` bound the JSON (depth, values, numbers, strings); by default
    :func:`frame_limits` of ``max_bytes``.
    """
    if raw is None:
        raise ProtocolError("invalid_message", "empty frame", "Send a JSON text frame.")
    # Characters never outnumber UTF-8 bytes, so a text longer than the limit in characters is
    # refused without copying it to count its bytes (then the size given is a lower bound).
    if isinstance(raw, bytes) or raw.isascii():
        size, exact = len(raw), True
    elif len(raw) > max_bytes:
        size, exact = len(raw), False
    else:
        size, exact = len(raw.encode("utf-8", "surrogatepass")), True
    if size > max_bytes:
        raise ProtocolError(
            "message_too_large",
            f"message is {'' if exact else 'at least '}{size} bytes; the limit is {max_bytes}",
            f"Keep each message under {max_bytes} bytes.",
            {"limit": "max_bytes", "maximum": max_bytes, "actual": size},
        )
    if isinstance(raw, bytes):
        raise ProtocolError(
            "invalid_message", "binary frames are not supported", "Send JSON as a text frame."
        )
    try:
        message = parse_json(raw, limits or frame_limits(max_bytes), what="the message")
    except InputLimitError as exc:
        raise ProtocolError(
            "input_limit_exceeded",
            str(exc),
            "Send a smaller, flatter message: see the named limit and place.",
            exc.to_dict(),
        ) from None
    except InvalidJsonError as exc:
        where = {"location": {"line": exc.line, "column": exc.column}} if exc.line else {}
        raise ProtocolError(
            "malformed_json",
            str(exc),
            'Send {"event": "...", "data": {...}}.',
            where,
        ) from None
    if not isinstance(message, dict):
        raise ProtocolError(
            "invalid_message",
            f"the message must be a JSON object, not {type(message).__name__}",
            'Send {"event": "...", "data": {...}}.',
        )
    event = message.get("event")
    if not isinstance(event, str):
        raise ProtocolError(
            "invalid_message",
            "'event' must be a string" if "event" in message else "'event' is missing",
            'Send {"event": "...", "data": {...}}.',
        )
    if event not in CLIENT_EVENTS:
        shown = event if len(event) <= 40 else event[:40] + "…"
        raise ProtocolError(
            "unknown_event",
            f"unknown event {shown!r}",
            "Known events: " + ", ".join(CLIENT_EVENTS) + ".",
        )
    data = message.get("data", {})
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ProtocolError(
            "invalid_message",
            f"'data' must be an object, not {type(data).__name__}",
            'Send {"event": "...", "data": {...}}.',
        )
    if event == "chat_message":
        text = data.get("message")
        if not isinstance(text, str):
            raise ProtocolError(
                "invalid_message",
                "'data.message' must be a string"
                if "message" in data
                else "'data.message' is missing",
                'Send {"event": "chat_message", "data": {"message": "your question"}}.',
            )
        reply_to = data.get("id")
        if reply_to is not None and not isinstance(reply_to, str | int):
            raise ProtocolError(
                "invalid_message",
                "'data.id' must be a string or number",
                "Omit it or send a string.",
            )
    return event, data
