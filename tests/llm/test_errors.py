"""Retry-After parsing and secret redaction used by the provider's errors."""

from __future__ import annotations

import email.utils

import pytest

from jupiter.llm import parse_retry_after
from jupiter.llm._errors import redact, redact_value


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"Retry-After": "-3"}, 0.0),
        ({"retry-after-ms": "250", "Retry-After": "9"}, 0.25),
        ({"Retry-After": "soon"}, None),
        ({}, None),
        (None, None),
    ],
)
def test_parse_retry_after(headers, expected) -> None:
    """Seconds, OpenAI's retry-after-ms, negatives and junk are handled."""
    assert parse_retry_after(headers) == expected


def test_parse_retry_after_http_date() -> None:
    """An HTTP-date is converted relative to now."""
    now = 1_700_000_000.0
    header = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after({"Retry-After": header}, now=now) == pytest.approx(30.0)
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert parse_retry_after({"Retry-After": past}, now=now) == 0.0


def test_redact_replaces_every_occurrence() -> None:
    """Every occurrence of the secret is replaced; short or empty secrets are ignored."""
    assert redact("key sk-abc12345 and sk-abc12345", ["sk-abc12345"]) == "key *** and ***"
    assert redact("abc", ["", None, "ab"]) == "abc"


def test_redact_value_keeps_shape() -> None:
    """Nested error bodies keep their shape with the secret removed."""
    body = {"error": {"message": "bad key sk-abc12345", "codes": ["sk-abc12345", 3]}}
    assert redact_value(body, ["sk-abc12345"]) == {
        "error": {"message": "bad key ***", "codes": ["***", 3]}
    }
