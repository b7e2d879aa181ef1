"""The socket protocol: ``{"event": "...", "data": {...}}`` both ways. See docs/websocket.md.

:func:`parse_client_message` turns raw text into ``(event, data)`` or raises
:class:`ProtocolError`, which the socket answers with an ``error`` event (never a close).
"""

from __future__ import annotations

import json
from typing import Any

from jupiter.resilience import Clock, build_error_response
from jupiter.resilience._clock import SYSTEM_CLOCK

__all__ = [
    "CLIENT_EVENTS",
    "SERVER_EVENTS",
    "ProtocolError",
    "error_event_data",
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

    def __init__(self, code: str, message: str, suggestion: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.suggestion = suggestion


def error_event_data(
    code: str, message: str, suggestion: str, *, clock: Clock = SYSTEM_CLOCK, **extra: Any
) -> dict[str, Any]:
    """The ``data`` of an ``error`` or ``chat_error`` event, from ``build_error_response``."""
    body = build_error_response(
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


def parse_client_message(raw: str | bytes | None, max_bytes: int) -> tuple[str, dict[str, Any]]:
    """Validate one incoming frame. Raises :class:`ProtocolError` naming what is wrong."""
    if raw is None:
        raise ProtocolError("invalid_message", "empty frame", "Send a JSON text frame.")
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8"))
    if size > max_bytes:
        raise ProtocolError(
            "message_too_large",
            f"message is {size} bytes; the limit is {max_bytes}",
            f"Keep each message under {max_bytes} bytes.",
        )
    if isinstance(raw, bytes):
        raise ProtocolError(
            "invalid_message", "binary frames are not supported", "Send JSON as a text frame."
        )
    try:
        message = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as exc:
        detail = (
            f" at line {exc.lineno} column {exc.colno}"
            if isinstance(exc, json.JSONDecodeError)
            else ""
        )
        raise ProtocolError(
            "malformed_json",
            f"the message is not valid JSON{detail}",
            'Send {"event": "...", "data": {...}}.',
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
