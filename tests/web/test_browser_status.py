"""The public status page in real Chromium against a real Jupiter."""

from __future__ import annotations

import time
from typing import Any

import pytest

from web.browser_support import Jupiter, reset_upstreams, screenshots, unnamed_controls

pytestmark = pytest.mark.browser

expect = pytest.importorskip("playwright.sync_api").expect


def component(page: Any, key: str) -> Any:
    return page.locator(f'.component[data-component="{key}"]')


def trip_chat_breaker(jupiter: Jupiter) -> None:
    """Open the chat breaker the way an outage does: its LLM upstream fails.

    (An admin's force-open is planned maintenance on the status page, not an outage.)
    """
    jupiter.llm.set_fault("500")
    for _ in range(2):  # 2 questions x 3 attempts >= the threshold of 5
        jupiter.http.post("/api/chat", json={"message": "trip the breaker"})
    assert jupiter.feature("grok_chat")["circuit_breaker"] == "open"


def test_status_page_shows_an_incident_for_the_period_a_breaker_was_open(
    page: Any, jupiter: Jupiter
) -> None:
    """A breaker-open period is a resolved incident with start and end and a red bar today."""
    reset_upstreams(jupiter)
    trip_chat_breaker(jupiter)
    time.sleep(1.2)  # an incident that lasts a measurable moment
    jupiter.llm.set_fault("ok")
    jupiter.admin_post("/api/reset-circuit-breaker/chat")

    page.goto(jupiter.url + "/status")
    incident = page.locator('.incident[data-kind="breaker_open"]', has_text="Chat with Jupiter")
    expect(incident.first).to_be_visible(timeout=5_000)
    first = incident.first
    expect(first).to_have_attribute("data-status", "resolved")
    expect(first.locator("h3")).to_have_text("Chat with Jupiter unavailable")
    expect(first.locator(".when")).to_contain_text("Started")
    expect(first.locator(".incident-end")).to_contain_text("ended")
    expect(first.locator("li").first).to_contain_text("resolved")

    today = component(page, "chat").locator("rect.bar").last
    expect(today).to_have_attribute("data-status", "major_outage")
    expect(component(page, "chat")).to_have_attribute("data-status", "operational")
    expect(page.locator("#overall")).to_have_text("All Systems Operational")


def test_status_page_shows_an_ongoing_outage_and_maintenance(page: Any, jupiter: Jupiter) -> None:
    """Tripped breaker: major outage; admin-disabled or forced open: maintenance; the reason
    never shows."""
    reset_upstreams(jupiter)
    secret_reason = "rotating key sk-live-999 on host db-internal-7"
    trip_chat_breaker(jupiter)
    jupiter.admin_post("/api/breakers/scans/force-open")
    jupiter.admin_post("/api/features/intel/disable", json={"reason": secret_reason})

    page.goto(jupiter.url + "/status")
    expect(page.locator("#overall")).to_have_attribute("data-indicator", "major")
    expect(page.locator("#overall")).to_have_text("Partial System Outage")
    expect(component(page, "chat").locator(".st")).to_have_text("Major outage")
    expect(component(page, "scans").locator(".st")).to_have_text("Under maintenance")
    expect(component(page, "intel").locator(".st")).to_have_text("Under maintenance")
    ongoing = page.locator('.incident[data-status="ongoing"]')
    expect(ongoing.filter(has_text="Chat with Jupiter unavailable (ongoing)")).to_be_visible()
    expect(ongoing.filter(has_text="Scan processing under maintenance")).to_be_visible()
    expect(ongoing.filter(has_text="Threat intelligence under maintenance")).to_be_visible()
    body = page.content()
    assert "sk-live-999" not in body
    assert "db-internal-7" not in body
    reset_upstreams(jupiter)


def test_status_page_bars_have_day_tooltips(page: Any, jupiter: Jupiter) -> None:
    """Each component has 90 bars (30 on a phone), today last, with a title per day."""
    reset_upstreams(jupiter)
    page.goto(jupiter.url + "/status")
    # Community pulse: the one component no other test in this module takes down.
    bars = component(page, "pulse").locator("rect.bar")
    expect(bars).to_have_count(90)
    expect(bars.last.locator("title")).to_contain_text("Operational")
    assert unnamed_controls(page) == []
    expect(component(page, "pulse").locator("svg.bars")).to_have_attribute(
        "aria-label",
        "Community pulse: last 90 days, 100% uptime over 90 days, 0 days with problems",
    )
    page.set_viewport_size({"width": 390, "height": 844})  # phones get the last 30 days
    expect(bars).to_have_count(30)
    expect(component(page, "pulse").locator(".bars-legend")).to_contain_text("30 days ago")
    today = page.evaluate("new Date().toISOString().slice(0, 10)")
    expect(bars.last).to_have_attribute("data-date", today)


def test_status_screenshots(browser: Any, jupiter: Jupiter) -> None:
    """Screenshots at 1280 and 390 px, light and dark, with an ongoing and a past incident."""
    reset_upstreams(jupiter)
    trip_chat_breaker(jupiter)
    jupiter.llm.set_fault("ok")
    jupiter.admin_post("/api/reset-circuit-breaker/chat")
    jupiter.admin_post("/api/breakers/scans/force-open")
    paths = screenshots(browser, jupiter.url + "/status", "status", ".incident")
    assert all(p.stat().st_size > 5_000 for p in paths)
    reset_upstreams(jupiter)
