"""Duck-typed reading of HTTP facts carried by exceptions, with no third-party imports.

httpx's ``HTTPStatusError`` and openai's ``APIStatusError`` carry ``.response`` (with
``.status_code`` and case-insensitive ``.headers``); openai's also has ``.status_code`` itself;
Starlette's ``HTTPException`` has only ``.status_code``. These helpers read all of them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

__all__ = [
    "header_value",
    "hint_to_seconds",
    "parse_retry_after",
    "retry_after_from_exception",
    "retry_after_from_headers",
    "status_code_of",
    "upstream_response_of",
]


def _as_status(value: object) -> int | None:
    # bool is an int; a True status code is certainly a bug, not a status.
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
        return value
    return None


def upstream_response_of(exc: BaseException) -> Any | None:
    """The HTTP response an exception carries (httpx / openai style), or None."""
    try:
        response = getattr(exc, "response", None)
    except Exception:  # a property that raises (httpx raises when no response is set)
        return None
    if response is None or _as_status(getattr(response, "status_code", None)) is None:
        return None
    return response


def status_code_of(exc: BaseException) -> int | None:
    """The HTTP status an exception reports: ``exc.status_code`` or ``exc.response.status_code``."""
    status = _as_status(getattr(exc, "status_code", None))
    if status is not None:
        return status
    response = upstream_response_of(exc)
    return None if response is None else _as_status(getattr(response, "status_code", None))


def header_value(headers: object, name: str) -> str | None:
    """Read a header case-insensitively from httpx Headers, a dict, or a list of pairs."""
    if headers is None:
        return None
    getter = getattr(headers, "get", None)
    if callable(getter):
        for candidate in (name, name.lower(), name.title()):
            value = getter(candidate)
            if value is not None:
                return str(value)
    items: Any = headers.items() if isinstance(headers, Mapping) else headers
    try:
        for key, value in items:
            if str(key).lower() == name.lower():
                return str(value)
    except (TypeError, ValueError):
        return None
    return None


def _parse_header(raw: str) -> float | datetime | None:
    """A ``Retry-After`` value: delta-seconds, or an HTTP-date (RFC 9110) as an aware datetime."""
    text = raw.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    return max(0.0, seconds) if math.isfinite(seconds) else None


def parse_retry_after(value: str | None, now_wall: float) -> float | None:
    """Seconds to wait from one ``Retry-After`` value at wall time ``now_wall``, or None.

    The value is delta-seconds (a negative one counts as 0) or an HTTP-date (RFC 9110; one
    without a zone is UTC). None, junk and non-finite numbers give None.

    >>> parse_retry_after("7", now_wall=0.0)
    7.0
    >>> parse_retry_after("Thu, 01 Jan 1970 00:01:40 GMT", now_wall=40.0)
    60.0
    """
    return None if value is None else hint_to_seconds(_parse_header(value), now_wall)


def _hint_from_headers(headers: object) -> float | datetime | None:
    """``retry-after-ms`` (OpenAI's finer variant, which wins), else ``retry-after``."""
    millis = header_value(headers, "retry-after-ms")
    if millis is not None:
        try:
            parsed = float(millis)
        except ValueError:
            parsed = math.nan
        if math.isfinite(parsed):
            return max(0.0, parsed / 1000.0)
    raw = header_value(headers, "retry-after")
    return None if raw is None else _parse_header(raw)


def retry_after_from_headers(headers: object, now_wall: float) -> float | None:
    """Seconds to wait that response ``headers`` ask for at wall time ``now_wall``, or None.

    Reads ``retry-after-ms`` first, then ``Retry-After`` (as :func:`parse_retry_after`), from
    httpx/requests headers, a dict (any key case) or a list of pairs.
    """
    return hint_to_seconds(_hint_from_headers(headers), now_wall)


def retry_after_from_exception(exc: BaseException) -> float | datetime | None:
    """The default Retry-After extractor: what the server (or the exception) asked us to wait.

    Looks, in order, at a numeric ``exc.retry_after`` attribute (seconds), then at the headers
    of ``exc.response``: ``retry-after-ms`` (OpenAI), then ``retry-after`` as delta-seconds or
    an HTTP-date. An HTTP-date comes back as an aware ``datetime``; the retry core turns it into
    seconds against its injected clock's wall time.
    """
    hint = getattr(exc, "retry_after", None)
    if isinstance(hint, int | float) and not isinstance(hint, bool) and math.isfinite(hint):
        return max(0.0, float(hint))
    response = upstream_response_of(exc)
    if response is None:
        return None
    return _hint_from_headers(getattr(response, "headers", None))


def hint_to_seconds(hint: float | datetime | None, now_wall: float) -> float | None:
    """Normalise an extractor's answer to non-negative finite seconds (None when unusable)."""
    if hint is None:
        return None
    if isinstance(hint, datetime):
        when = hint if hint.tzinfo is not None else hint.replace(tzinfo=UTC)
        seconds = when.timestamp() - now_wall
    else:
        seconds = float(hint)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)
