"""Retry decisions, Retry-After parsing, URL redaction and error descriptions."""

from __future__ import annotations

import json

import httpx
import pytest

from jupiter.intel import IntelSourceError, UpstreamHTTPError
from jupiter.intel._http import (
    ServiceClient,
    describe_error,
    is_retryable,
    parse_retry_after,
    redact_url,
)
from jupiter.resilience import CircuitOpenError


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:pw@feeds.example/kev.json?token=s3cret#x", "https://feeds.example/kev.json"),
        ("http://127.0.0.1:8080/a/b?k=v", "http://127.0.0.1:8080/a/b"),
        ("https://[::1]:9/x", "https://[::1]:9/x"),
        ("/local/file.json?x=1", "/local/file.json"),
    ],
)
def test_redact_url_drops_credentials_query_and_fragment(url: str, expected: str) -> None:
    """User info, query strings and fragments never survive redaction."""
    assert redact_url(url) == expected


def test_parse_retry_after_seconds_and_http_date() -> None:
    """Retry-After is read as delta-seconds or as an HTTP-date against the given wall time."""
    assert parse_retry_after("7", 0.0) == 7.0
    assert parse_retry_after("Thu, 01 Jan 1970 00:01:40 GMT", 40.0) == 60.0
    assert parse_retry_after("soon", 0.0) is None
    assert parse_retry_after(None, 0.0) is None


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (UpstreamHTTPError(500, "u"), True),
        (UpstreamHTTPError(503, "u"), True),
        (UpstreamHTTPError(429, "u", 3), True),
        (UpstreamHTTPError(404, "u"), False),
        (UpstreamHTTPError(401, "u"), False),
        (httpx.ReadTimeout("t"), True),
        (httpx.ConnectError("c"), True),
        (httpx.RemoteProtocolError("incomplete"), True),
        (IntelSourceError("malformed"), False),
        (json.JSONDecodeError("x", "doc", 0), False),
        (CircuitOpenError("intel", 5), False),
    ],
)
def test_only_transient_failures_are_retryable(exc: Exception, expected: bool) -> None:
    """Timeouts, connection errors, 5xx and 429 are retried; bad data and 4xx are not."""
    assert is_retryable(exc) is expected


def test_describe_error_never_shows_query_strings() -> None:
    """Error texts redact every URL they mention."""
    exc = httpx.RemoteProtocolError("peer closed while reading https://h.example/f?api_key=SECRET")
    message = describe_error(exc)
    assert "SECRET" not in message
    assert "https://h.example/f" in message
    assert describe_error(httpx.ReadTimeout("x"), 2.5) == "timed out after 2.5s"
    assert "circuit breaker open" in describe_error(CircuitOpenError("intel", 12))


def test_describe_error_scrubs_secrets_outside_urls_too() -> None:
    """Besides cutting URLs, error texts go through the core's secret scrubbing."""
    exc = httpx.RemoteProtocolError("upstream said: Authorization: Bearer abcdefghijkl123 bad")
    message = describe_error(exc)
    assert "abcdefghijkl123" not in message
    assert "[REDACTED]" in message


async def test_service_client_closes_only_the_client_it_made() -> None:
    """A borrowed client stays open; one made on first use is reused and closed by aclose()."""
    borrowed = httpx.AsyncClient()
    try:
        lent = ServiceClient(borrowed, timeout=3.0, headers={})
        assert lent() is borrowed
        await lent.aclose()
        assert not borrowed.is_closed
    finally:
        await borrowed.aclose()

    owned = ServiceClient(None, timeout=20.0, headers={"User-Agent": "test-agent"})
    client = owned()
    assert owned() is client
    assert client.headers["User-Agent"] == "test-agent"
    assert (client.timeout.read, client.timeout.connect) == (20.0, 5.0)
    await owned.aclose()
    assert client.is_closed
