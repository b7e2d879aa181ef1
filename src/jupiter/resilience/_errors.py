"""Standard error bodies and user-friendly messages, with no stack traces and no secrets.

:func:`classify_error` maps an exception (or a message plus an HTTP status) to an
:class:`ErrorInfo`; :func:`build_error_response` renders it as the one JSON error body every
Jupiter endpoint returns, and :func:`handle_api_error` as one friendly sentence.

HTTP facts are read by duck typing (``exc.status_code`` / ``exc.response.status_code`` and the
``Retry-After`` header), so httpx, openai and Starlette exceptions all work without importing them.
An exception that carries an HTTP *response* came from an upstream service; one with only a
``status_code`` (Starlette's ``HTTPException``) is our own answer and keeps its status.
"""

from __future__ import annotations

import errno
import math
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ._clock import SYSTEM_CLOCK, Clock
from ._exceptions import CircuitOpenError
from ._http import hint_to_seconds, retry_after_from_exception, status_code_of, upstream_response_of
from ._redact import redact_text

__all__ = [
    "ErrorInfo",
    "build_error_response",
    "classify_error",
    "handle_api_error",
    "scrub_secrets",
]

_MAX_MESSAGE = 500


def scrub_secrets(text: str, *, max_length: int = _MAX_MESSAGE) -> str:
    """Replace anything that looks like a key, token or password with ``[REDACTED]``.

    The scrubbing is :func:`~jupiter.resilience.redact_text`'s; this also drops any traceback
    text and truncates to ``max_length`` characters, for text shown to users.
    """
    marker = text.find("Traceback (most recent call last)")
    if marker != -1:
        text = text[:marker].rstrip()
    text = redact_text(text)
    if len(text) > max_length:
        text = text[: max_length - 1].rstrip() + "…"
    return text


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """One classified error: what to tell the user and whether trying again can help."""

    type: str
    message: str
    recoverable: bool
    suggestion: str
    status: int
    retry_after: int | None = None


_CONNECTION_ERRNOS = frozenset(
    code
    for code in (
        getattr(errno, name, None)
        for name in (
            "ECONNREFUSED",
            "ECONNRESET",
            "ECONNABORTED",
            "EHOSTUNREACH",
            "EHOSTDOWN",
            "ENETUNREACH",
            "ENETDOWN",
            "EPIPE",
            "ENOTCONN",
        )
    )
    if code is not None
)


def _class_names(exc: BaseException) -> list[str]:
    return [cls.__name__ for cls in type(exc).__mro__]


def _is_timeout(exc: BaseException) -> bool:
    if isinstance(exc, TimeoutError):  # also asyncio.TimeoutError and socket.timeout
        return True
    if isinstance(exc, OSError) and exc.errno == errno.ETIMEDOUT:
        return True
    # httpx.ReadTimeout, openai.APITimeoutError, ...: recognised by name, not imported.
    return any("Timeout" in name for name in _class_names(exc))


def _is_connection_failure(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionError | socket.gaierror | socket.herror):
        return True
    if isinstance(exc, OSError) and exc.errno in _CONNECTION_ERRNOS:
        return True
    # httpx.ConnectError / NetworkError, openai.APIConnectionError, ...
    return any(
        "Connect" in name or "Network" in name or "Connection" in name for name in _class_names(exc)
    )


def _seconds(value: float | None) -> int | None:
    if value is None or not math.isfinite(value):
        return None
    return max(0, math.ceil(value))


def _from_status(status: int, *, upstream: bool, retry_after: int | None) -> ErrorInfo:
    """Map an HTTP status to an ErrorInfo; upstream errors become 502 (429 stays 429)."""
    if status == 429:
        wait = f"Wait {retry_after} seconds before retrying." if retry_after is not None else None
        return ErrorInfo(
            "rate_limited",
            "Too many requests: the rate limit was reached.",
            True,
            wait or "Wait a moment before retrying.",
            429,
            retry_after,
        )
    if status == 408:
        # Request Timeout: the server gave up waiting, which is a timeout, not a bad request.
        return ErrorInfo(
            "timeout",
            f"The {'upstream service' if upstream else 'request'} timed out (HTTP 408).",
            True,
            "This is usually temporary; try again shortly.",
            504 if upstream else 408,
            retry_after,
        )
    if status >= 500:
        return ErrorInfo(
            "upstream_error" if upstream else "server_error",
            f"The {'upstream ' if upstream else ''}service failed (HTTP {status}).",
            True,
            "This is usually temporary; try again shortly.",
            502 if upstream else status,
            retry_after,
        )
    if status in (401, 403):
        return ErrorInfo(
            "authentication_error",
            (
                f"The upstream service rejected our credentials (HTTP {status})."
                if upstream
                else f"Not authorised (HTTP {status})."
            ),
            False,
            (
                "Check that the API key is configured and valid."
                if upstream
                else "Provide valid credentials (an Authorization: Bearer token)."
            ),
            502 if upstream else status,
        )
    if status == 404:
        return ErrorInfo(
            "not_found",
            "The requested resource was not found.",
            False,
            "Check the identifier or the address.",
            502 if upstream else 404,
        )
    if status == 422:
        kind, message = "validation_error", "The request was not valid."
    elif 400 <= status < 500:
        kind, message = "bad_request", "The request was rejected."
    else:
        kind, message = "error", f"Unexpected HTTP status {status}."
    if upstream:
        message = f"The upstream service rejected the request (HTTP {status})."
    return ErrorInfo(
        kind,
        message,
        False,
        "Check the request and try again.",
        502 if upstream else (status if status >= 400 else 500),
    )


_GENERIC = ErrorInfo(
    "internal_error",
    "An unexpected error occurred.",
    False,
    "Try again; if the problem persists, check the service logs.",
    500,
)


def classify_error(
    error: BaseException | str, *, status_code: int | None = None, clock: Clock = SYSTEM_CLOCK
) -> ErrorInfo:
    """Classify ``error``. A string (with an optional ``status_code``) keeps its own message."""
    if isinstance(error, str):
        base = (
            _GENERIC
            if status_code is None
            else _from_status(status_code, upstream=False, retry_after=None)
        )
        message = scrub_secrets(error) or base.message
        return ErrorInfo(base.type, message, base.recoverable, base.suggestion, base.status)
    if isinstance(error, CircuitOpenError):
        wait = _seconds(error.retry_after)
        return ErrorInfo(
            "circuit_open",
            scrub_secrets(f"The {error.name} service is temporarily unavailable."),
            True,
            f"It will be tried again in about {wait} seconds." if wait else "Try again shortly.",
            503,
            wait,
        )
    status = status_code_of(error)
    if status is not None:
        upstream = upstream_response_of(error) is not None
        hint = retry_after_from_exception(error) if status == 429 or status >= 500 else None
        retry_after = _seconds(hint_to_seconds(hint, clock.wall()))
        info = _from_status(status, upstream=upstream, retry_after=retry_after)
        detail = getattr(error, "detail", None)
        if not upstream and isinstance(detail, str) and detail:
            # Our own HTTPException-style errors: their detail was written for the user.
            info = ErrorInfo(
                info.type,
                scrub_secrets(detail),
                info.recoverable,
                info.suggestion,
                info.status,
                info.retry_after,
            )
        return info
    if _is_timeout(error):
        return ErrorInfo(
            "timeout",
            "The request timed out.",
            True,
            "Try again in a moment; the service may be slow or overloaded.",
            504,
        )
    if _is_connection_failure(error):
        return ErrorInfo(
            "connection_error",
            "Could not connect to the service.",
            True,
            "Check the network connection, or try again shortly.",
            503,
        )
    return _GENERIC


def build_error_response(
    error: BaseException | str,
    *,
    status_code: int | None = None,
    request_id: str | None = None,
    message: str | None = None,
    error_type: str | None = None,
    suggestion: str | None = None,
    recoverable: bool | None = None,
    include_timestamp: bool = True,
    clock: Clock = SYSTEM_CLOCK,
) -> dict[str, Any]:
    """The standard error body::

        {"error": {"type", "message", "recoverable", "suggestion", "status",
                   "timestamp"?, "retry_after"?, "request_id"?}}

    ``status_code`` sets the response status (and, for a string ``error``, the classification);
    ``message``, ``error_type``, ``suggestion`` and ``recoverable`` override the classification.
    Every string is scrubbed of secrets; no traceback is ever included.
    """
    info = classify_error(error, status_code=status_code, clock=clock)
    body: dict[str, Any] = {
        "type": scrub_secrets(error_type, max_length=128) if error_type else info.type,
        "message": scrub_secrets(message) if message is not None else info.message,
        "recoverable": info.recoverable if recoverable is None else recoverable,
        "suggestion": scrub_secrets(suggestion) if suggestion is not None else info.suggestion,
        "status": status_code if status_code is not None else info.status,
    }
    if include_timestamp:
        stamp = datetime.fromtimestamp(clock.wall(), tz=UTC).isoformat(timespec="seconds")
        body["timestamp"] = stamp.replace("+00:00", "Z")
    if info.retry_after is not None:
        body["retry_after"] = info.retry_after
    if request_id is not None:
        body["request_id"] = scrub_secrets(str(request_id), max_length=128)
    return {"error": body}


def handle_api_error(exc: BaseException | str) -> str:
    """One user-friendly sentence (message and suggestion) for ``exc``; never secrets."""
    info = classify_error(exc)
    return f"{info.message} {info.suggestion}"
