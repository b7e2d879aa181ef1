"""Logging for the service: a request ID on every line, emoji markers, text or JSON, no secrets.

The seed's markers: 💬 chat, 🔍 threat intel, 📊 status and stats, 📡 socket and HTTP traffic,
✅ success, ❌ error, ⚠️ warning. Code puts the marker at the start of the message; the JSON
format moves it into its own ``marker`` field so log processors can filter on it.

Every record passes :class:`SecretScrubber`, which replaces the configured secrets (API keys,
the admin token) and anything that looks like a bearer token or provider key with ``[REDACTED]``.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Iterable
from typing import Any

__all__ = [
    "MARKERS",
    "JsonFormatter",
    "RequestIdFilter",
    "SecretScrubber",
    "TextFormatter",
    "configure_logging",
    "new_request_id",
    "request_id_var",
]

#: The request (or socket message) being handled; "-" outside of any.
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar(
    "jupiter_request_id", default="-"
)

MARKERS = ("💬", "🔍", "📊", "📡", "✅", "❌", "⚠️")

_KEY_PATTERNS = [
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"\b(sk|xai|sk-proj)-[A-Za-z0-9_-]{8,}|\bjpt_[A-Za-z0-9_-]{16,}"),
    re.compile(r"(?i)((?:api[_-]?key|token|secret|password)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]{4,}"),
]

_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


def new_request_id() -> str:
    """A fresh request ID (32 hex characters)."""
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Stamps ``record.request_id`` from the context variable."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


class SecretScrubber(logging.Filter):
    """Replaces known secrets and key-shaped strings in a record's final message."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "[REDACTED]")
        text = _KEY_PATTERNS[0].sub(r"\1[REDACTED]", text)
        text = _KEY_PATTERNS[1].sub("[REDACTED]", text)
        return _KEY_PATTERNS[2].sub(r"\1[REDACTED]", text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not break logging
            message = str(record.msg)
        record.msg = self.scrub(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            # Render now so that secrets inside exception text are scrubbed as well.
            record.exc_text = self.scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def _split_marker(message: str) -> tuple[str | None, str]:
    for marker in MARKERS:
        if message.startswith(marker):
            return marker, message[len(marker) :].lstrip()
    return None, message


class TextFormatter(logging.Formatter):
    """``2025-01-01 12:00:00 INFO [req-id] jupiter.chat: 💬 message``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, request_id, marker, message and extras."""

    def format(self, record: logging.LogRecord) -> str:
        marker, message = _split_marker(record.getMessage())
        payload: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", request_id_var.get()),
            "message": message,
        }
        if marker:
            payload["marker"] = marker
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and key not in payload and not key.startswith("_"):
                payload[key] = value if isinstance(value, str | int | float | bool) else repr(value)
        if record.exc_text:
            payload["exception"] = record.exc_text
        elif record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False)


_HANDLER_NAME = "jupiter-handler"


def configure_logging(
    log_format: str = "text",
    level: str = "INFO",
    secrets: Iterable[str] = (),
    stream: Any = None,
) -> logging.Handler:
    """Install one handler on the root logger (replacing a previous Jupiter handler).

    uvicorn's own loggers are routed through it too, so every line carries a request ID
    field and the same format.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.addFilter(RequestIdFilter())
    handler.addFilter(SecretScrubber(secrets))
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == _HANDLER_NAME:
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uv_logger = logging.getLogger(name)
        uv_logger.handlers = []
        uv_logger.propagate = True
    return handler
