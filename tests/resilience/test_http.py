"""Retry-After parsing shared by the retry core, the error mapping, intel and the LLM area."""

from __future__ import annotations

import email.utils

import pytest

from jupiter.resilience import parse_retry_after, retry_after_from_headers

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7.0),
        (" 120 ", 120.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        ("soon", None),
        ("", None),
        ("inf", None),
        ("nan", None),
        (None, None),
    ],
)
def test_parse_retry_after_reads_delta_seconds(value, expected):
    """Delta-seconds are read as seconds; negatives wait 0; junk and non-finite give None."""
    assert parse_retry_after(value, NOW) == expected


def test_parse_retry_after_reads_http_dates_against_the_given_wall_time():
    """An HTTP-date becomes the seconds until it, and a past date means no wait."""
    assert parse_retry_after(email.utils.formatdate(NOW + 30, usegmt=True), NOW) == 30.0
    assert parse_retry_after(email.utils.formatdate(NOW - 30, usegmt=True), NOW) == 0.0
    assert parse_retry_after("Thu, 01 Jan 1970 00:01:40 GMT", 40.0) == 60.0


def test_an_http_date_without_a_zone_is_utc():
    """A date with the '-0000' (unknown) zone is read as UTC, not as local time."""
    assert parse_retry_after("Thu, 01 Jan 1970 00:01:40 -0000", 40.0) == 60.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"RETRY-AFTER": "7"}, 7.0),
        ([("retry-after", "4")], 4.0),
        ({"retry-after-ms": "250", "Retry-After": "9"}, 0.25),
        ({"retry-after-ms": "junk", "Retry-After": "9"}, 9.0),
        ({"retry-after-ms": "inf", "Retry-After": "9"}, 9.0),
        ({"Content-Type": "text/plain"}, None),
        ({}, None),
        (None, None),
    ],
)
def test_retry_after_from_headers_prefers_milliseconds(headers, expected):
    """retry-after-ms wins when usable; header names match in any case and container."""
    assert retry_after_from_headers(headers, NOW) == expected
