"""The intel settings refuse unsafe source URLs and feed the services' defaults."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy.orm import Session

from jupiter.intel import CommunityPulseService, ThreatIntelService


@pytest.mark.parametrize("field", ["kev_url", "stix_url", "taxii_collection_url"])
@pytest.mark.parametrize("value", ["file:///etc/passwd", "ftp://host/x", "javascript:alert(1)"])
def test_source_urls_must_be_http(
    make_settings: Callable[..., Any], field: str, value: str
) -> None:
    """Non-http(s) intel URLs are refused at configuration time."""
    with pytest.raises(ValidationError, match="http"):
        make_settings(**{field: value})


def test_blank_source_url_means_not_configured(make_settings: Callable[..., Any]) -> None:
    """An empty JUPITER_KEV_URL is 'no KEV source', not an error."""
    assert make_settings(kev_url="  ").kev_url is None


def test_pulse_feeds_must_be_http(make_settings: Callable[..., Any]) -> None:
    """A file:// feed is refused; blanks are dropped and URLs trimmed."""
    with pytest.raises(ValidationError, match="feed URLs must be http"):
        make_settings(pulse_feeds=["https://ok.example/rss", "file:///etc/passwd"])
    assert make_settings(pulse_feeds=[" https://a.example/x ", ""]).pulse_feeds == [
        "https://a.example/x"
    ]


def test_services_take_timeouts_and_intervals_from_settings(
    make_settings: Callable[..., Any], session_factory: Callable[[], Session]
) -> None:
    """intel_timeout_seconds and pulse_refresh_seconds reach the services."""
    settings = make_settings(intel_timeout_seconds=4.5, pulse_refresh_seconds=42)
    assert ThreatIntelService(settings, session_factory).timeout == 4.5
    pulse = CommunityPulseService(settings, session_factory)
    assert pulse.timeout == 4.5
    assert pulse.refresh_seconds == 42
