"""Standard error bodies and friendly messages (src/jupiter/resilience/_errors.py)."""

from __future__ import annotations

import errno
import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jupiter.resilience import (
    CircuitOpenError,
    build_error_response,
    classify_error,
    handle_api_error,
    scrub_secrets,
)
from jupiter.resilience.testing import FakeClock

KEY = "sk-proj-AbCdEfGhIjKlMnOpQrStUv123456"
XAI_KEY = "xai-0123456789abcdefABCDEF"


class Response:
    """The shape of an httpx.Response, as far as the mapping reads it."""

    def __init__(self, status_code: int, headers: dict[str, str] | None = None) -> None:
        self.status_code = status_code
        self.headers = headers or {}


class UpstreamHTTPError(Exception):
    """Shaped like httpx.HTTPStatusError / openai.APIStatusError: carries ``.response``."""

    def __init__(
        self, status_code: int, headers: dict[str, str] | None = None, message: str = ""
    ) -> None:
        super().__init__(message or f"HTTP {status_code}")
        self.response = Response(status_code, headers)


class OwnHTTPError(Exception):
    """Shaped like Starlette's HTTPException: ``status_code`` and ``detail``, no response."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


class ReadTimeout(Exception):
    """Named like httpx.ReadTimeout (not a TimeoutError subclass)."""


class APIConnectionError(Exception):
    """Named like openai.APIConnectionError."""


def error_of(error, **kwargs) -> dict:
    """The ``error`` object of a response body, on a fake clock."""
    return build_error_response(error, clock=FakeClock(), **kwargs)["error"]


@pytest.mark.parametrize(
    "error",
    [
        TimeoutError("read"),
        OSError(errno.ETIMEDOUT, "timed out"),
        ReadTimeout("slow"),
    ],
)
def test_timeouts_map_to_a_recoverable_504(error):
    """Every flavour of timeout is 'timeout', recoverable, HTTP 504."""
    body = error_of(error)
    assert (body["type"], body["recoverable"], body["status"]) == ("timeout", True, 504)
    assert "try again" in body["suggestion"].lower()


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(),
        ConnectionResetError(),
        socket.gaierror(-2, "Name unknown"),
        OSError(errno.EHOSTUNREACH, "no route"),
        APIConnectionError("boom"),
    ],
)
def test_connection_failures_map_to_a_recoverable_503(error):
    """Refused, reset, DNS and unreachable errors are 'connection_error', HTTP 503."""
    body = error_of(error)
    assert (body["type"], body["recoverable"], body["status"]) == ("connection_error", True, 503)


def test_unrelated_os_errors_are_not_connection_errors():
    """A missing file is an internal error, not a network problem."""
    assert error_of(FileNotFoundError(errno.ENOENT, "x"))["type"] == "internal_error"


def test_rate_limit_carries_retry_after_seconds():
    """HTTP 429 with Retry-After: 30 -> rate_limited, 429, retry_after 30."""
    body = error_of(UpstreamHTTPError(429, {"Retry-After": "30"}))
    assert body["type"] == "rate_limited"
    assert body["status"] == 429
    assert body["recoverable"] is True
    assert body["retry_after"] == 30
    assert "30 seconds" in body["suggestion"]


def test_rate_limit_retry_after_http_date_uses_the_clock():
    """An HTTP-date Retry-After becomes whole seconds from the injected clock's wall time."""
    clock = FakeClock()
    when = datetime.fromtimestamp(clock.wall(), tz=UTC) + timedelta(seconds=90)
    error = UpstreamHTTPError(429, {"retry-after": format_datetime(when, usegmt=True)})
    assert build_error_response(error, clock=clock)["error"]["retry_after"] == 90


def test_rate_limit_without_hint_has_no_retry_after():
    """No header, no retry_after key; a generic wait suggestion instead."""
    body = error_of(UpstreamHTTPError(429))
    assert "retry_after" not in body
    assert body["suggestion"] == "Wait a moment before retrying."


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_upstream_5xx_is_a_recoverable_bad_gateway(status):
    """Upstream server errors become 'upstream_error', HTTP 502, recoverable."""
    body = error_of(UpstreamHTTPError(status))
    assert (body["type"], body["status"], body["recoverable"]) == ("upstream_error", 502, True)
    assert f"HTTP {status}" in body["message"]


@pytest.mark.parametrize("status", [401, 403])
def test_upstream_credentials_rejection_never_shows_the_key(status):
    """401/403 say to check the API key, without including it."""
    error = UpstreamHTTPError(status, message=f"Incorrect API key provided: {KEY}")
    body = error_of(error)
    assert body["type"] == "authentication_error"
    assert body["recoverable"] is False
    assert "API key" in body["suggestion"]
    assert KEY not in str(body)
    assert KEY not in handle_api_error(error)


def test_status_code_attribute_is_read_too():
    """openai-style errors carry status_code on the exception itself."""
    error = Exception("rate limited")
    error.status_code = 429  # type: ignore[attr-defined]
    assert error_of(error)["type"] == "rate_limited"


@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, "bad_request"), (404, "not_found"), (409, "bad_request"), (422, "validation_error")],
)
def test_upstream_4xx_is_not_recoverable(status, kind):
    """Client errors from upstream are not worth retrying; they surface as 502."""
    body = error_of(UpstreamHTTPError(status))
    assert (body["type"], body["recoverable"], body["status"]) == (kind, False, 502)


def test_http_408_is_a_recoverable_timeout():
    """Request Timeout is a timeout: upstream it is a 504, our own stays a 408."""
    upstream = error_of(UpstreamHTTPError(408))
    assert (upstream["type"], upstream["recoverable"], upstream["status"]) == (
        "timeout",
        True,
        504,
    )
    own = error_of(OwnHTTPError(408, "request body arrived too slowly"))
    assert (own["type"], own["recoverable"], own["status"]) == ("timeout", True, 408)


def test_own_http_errors_keep_their_status_and_detail():
    """Starlette-style errors are our own answers: their status and (scrubbed) detail."""
    body = error_of(OwnHTTPError(404, f"scan 42 not found (token={KEY})"))
    assert body["status"] == 404
    assert body["type"] == "not_found"
    assert body["message"] == "scan 42 not found (token=[REDACTED])"


def test_circuit_open_reports_seconds_until_the_next_trial():
    """CircuitOpenError -> 503 circuit_open with retry_after rounded up."""
    body = error_of(CircuitOpenError("grok_chat", 12.2))
    assert body["type"] == "circuit_open"
    assert body["status"] == 503
    assert body["recoverable"] is True
    assert body["retry_after"] == 13
    assert "grok_chat" in body["message"]
    assert "13 seconds" in body["suggestion"]


def test_generic_errors_hide_their_message():
    """An unexpected exception's text (which may hold internals) is not shown."""
    body = error_of(ValueError(f"db password=hunter2 key {KEY}"))
    assert body == {
        "type": "internal_error",
        "message": "An unexpected error occurred.",
        "recoverable": False,
        "suggestion": "Try again; if the problem persists, check the service logs.",
        "status": 500,
        "timestamp": "2023-11-14T22:13:20Z",
    }


def test_string_errors_use_the_status_for_classification():
    """A message with status_code=422 is a validation error with that (scrubbed) message."""
    body = error_of(f"field 'message' is required; api_key={KEY}", status_code=422)
    assert body["type"] == "validation_error"
    assert body["status"] == 422
    assert body["message"] == "field 'message' is required; api_key=[REDACTED]"


def test_overrides_and_request_id():
    """type, message, suggestion, recoverable and request_id can be set by the caller."""
    body = error_of(
        TimeoutError(),
        error_type="llm_timeout",
        message="Grok is slow",
        suggestion="Use the offline assistant.",
        recoverable=False,
        status_code=503,
        request_id="req-7",
        include_timestamp=False,
    )
    assert body == {
        "type": "llm_timeout",
        "message": "Grok is slow",
        "recoverable": False,
        "suggestion": "Use the offline assistant.",
        "status": 503,
        "request_id": "req-7",
    }


def test_an_error_type_override_is_scrubbed_too():
    """error_type is caller text like message: a secret in it never reaches the body."""
    body = error_of("x", error_type=f"token={KEY}", include_timestamp=False)
    assert KEY not in str(body)
    assert body["type"] == "token=[REDACTED]"


def test_timestamp_comes_from_the_clock():
    """The timestamp is the injected clock's wall time in ISO 8601 UTC."""
    clock = FakeClock(wall_start=1_750_000_000.0)
    body = build_error_response("x", clock=clock)["error"]
    assert body["timestamp"] == "2025-06-15T15:06:40Z"


def test_no_traceback_ever_reaches_the_body():
    """Traceback text inside a message is cut off."""
    message = 'bad input\nTraceback (most recent call last):\n  File "/app/x.py", line 1'
    body = error_of(message, status_code=400)
    assert body["message"] == "bad input"


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (TimeoutError(), "The request timed out. Try again in a moment"),
        (ConnectionRefusedError(), "Could not connect to the service."),
        (UpstreamHTTPError(429, {"retry-after": "5"}), "Wait 5 seconds before retrying."),
        (CircuitOpenError("pulse", 3.0), "The pulse service is temporarily unavailable."),
        (RuntimeError("x"), "An unexpected error occurred."),
    ],
)
def test_handle_api_error_gives_a_friendly_sentence(error, expected):
    """handle_api_error returns message and suggestion as one user-facing string."""
    text = handle_api_error(error)
    assert expected in text
    assert "Traceback" not in text


@pytest.mark.parametrize(
    ("text", "leaked"),
    [
        (f"Incorrect API key provided: {KEY}", KEY),
        (f"xai key {XAI_KEY} rejected", XAI_KEY),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", "eyJhbGci"),
        ("GET /v1?api_key=abc123def456&q=1", "abc123def456"),
        ('{"password": "hunter2hunter2"}', "hunter2hunter2"),
        ("redis://user:s3cretpass@cache:6379/0", "s3cretpass"),
        ("token=ghp_abcdefghijklmnopqrstuvwxyz0123456789", "ghp_abcdef"),
        ("aws AKIAABCDEFGHIJKLMNOP", "AKIAABCDEFGHIJKLMNOP"),
        ("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", "4eC39HqLyjWDarjtT1zdp7dc"),
        ("client_secret: 0a1b2c3d4e5f", "0a1b2c3d4e5f"),
    ],
)
def test_scrub_secrets_removes_keys_and_tokens(text, leaked):
    """Key and token shapes are replaced by [REDACTED]."""
    scrubbed = scrub_secrets(text)
    assert leaked not in scrubbed
    assert "[REDACTED]" in scrubbed


def test_scrub_secrets_leaves_ordinary_text_alone():
    """Plain messages (including words like 'token' without a value) are unchanged."""
    text = "CVE-2024-3400 affects PAN-OS; the token bucket refilled; skip-list ok"
    assert scrub_secrets(text) == text


def test_scrub_secrets_truncates_long_text():
    """Messages are bounded."""
    assert len(scrub_secrets("x" * 10_000)) == 500


@given(
    prefix=st.text(alphabet=st.characters(blacklist_categories=("Lu", "Ll", "Nd")), max_size=40),
    secret=st.text(
        alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
        min_size=16,
        max_size=40,
    ),
    kind=st.sampled_from(["sk-", "xai-", "sk-proj-"]),
    suffix=st.text(alphabet=st.characters(blacklist_categories=("Lu", "Ll", "Nd")), max_size=40),
)
def test_property_provider_keys_never_survive_scrubbing(prefix, secret, kind, suffix):
    """Whatever surrounds an sk-/xai- key, the key body does not reach the output."""
    scrubbed = scrub_secrets(f"{prefix} {kind}{secret} {suffix}", max_length=10_000)
    assert secret not in scrubbed


def test_classify_error_is_usable_directly():
    """classify_error exposes the same mapping as a small value object."""
    info = classify_error(UpstreamHTTPError(503, {"retry-after": "7"}))
    assert (info.type, info.status, info.retry_after) == ("upstream_error", 502, 7)
