"""GET /api/threats input checks (httpx over ASGI): bad filters are a 422 naming the parameter,
checked before the threat_intelligence component, so they never count as its failures."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

HUGE = "99999999999999999999999"


@pytest.mark.parametrize(
    ("query", "name"),
    [
        (f"offset={HUGE}", "offset"),
        ("limit=5&offset=9223372036854775808", "offset"),
        ("offset=-1", "offset"),
        ("limit=0", "limit"),
        ("q=a%00", "q"),
        ("q=%1B%5B31m", "q"),
        ("source=a%00", "source"),
        ("severity=apocalyptic", "severity"),
        ("severity=high%00", "severity"),
    ],
)
async def test_bad_threat_filters_are_422_and_not_a_component_failure(
    api: tuple[Any, httpx.AsyncClient], query: str, name: str
) -> None:
    """Huge offsets, control characters and unknown severities: 422 naming the parameter, and
    the component's failure count, breaker and error log stay untouched."""
    _app, client = api
    for _ in range(3):  # more than once: repeated bad input must not add up to anything either
        response = await client.get(f"/api/threats?{query}")
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["type"] == "validation_error"
        assert error["message"].startswith(f"{name}:")
    stats = (await client.get("/api/error-stats")).json()
    assert stats["errors_by_type"] == {}
    intel = (await client.get("/api/feature-status")).json()["threat_intelligence"]
    assert intel["failures"] == 0
    assert intel["circuit_breaker"] == "closed"


async def test_valid_extremes_still_answer(api: tuple[Any, httpx.AsyncClient]) -> None:
    """offset 2**63-1 is an empty page with the full count; a plain-text q still filters."""
    _app, client = api
    everything = (await client.get("/api/threats", params={"limit": 5})).json()
    far = await client.get("/api/threats", params={"limit": 5, "offset": 2**63 - 1})
    assert far.status_code == 200, far.text
    assert far.json()["items"] == []
    assert far.json()["count"] == everything["count"] > 0
    text = await client.get("/api/threats", params={"q": "ransomware", "limit": 5})
    assert text.status_code == 200
    assert 0 < text.json()["count"] < everything["count"]
