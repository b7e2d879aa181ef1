"""Threat feed and community pulse badges in real Chromium, from really failing upstreams.

A Jupiter of its own runs on the injected FakeClock, so "the data is due for a refresh" is one
``clock.advance`` away instead of minutes of waiting; the upstreams fail for real on loopback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from jupiter.resilience.testing import FakeClock
from support.feed_upstream import FeedEntry, FeedUpstream
from support.kev_upstream import KevUpstream, kev_catalog, kev_record
from support.server import ServerThread
from web.browser_support import Jupiter, jupiter_settings

pytestmark = pytest.mark.browser

expect = pytest.importorskip("playwright.sync_api").expect

TWO_HOURS = 7200.0  # past the pulse refresh (300 s) and the KEV sync interval (3600 s)


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    """The clock the whole app runs on: the test moves it, nothing sleeps."""
    return FakeClock()


@pytest.fixture(scope="module")
def faulty(
    tmp_path_factory: pytest.TempPathFactory, llm_upstream: Any, clock: FakeClock
) -> Iterator[Jupiter]:
    """Jupiter with three feeds (steady, flaky, down from the start) and a KEV upstream."""
    from jupiter.service.app import create_app

    kev = KevUpstream(kev_catalog([kev_record("CVE-2025-0101", vulnerabilityName="Gadget RCE")]))
    feeds = FeedUpstream()
    feeds.add_rss("/steady.xml", "Steady blog", [FeedEntry("Steady news", "https://s.example/1")])
    feeds.add_atom(
        "/flaky.xml", "Flaky notes", [FeedEntry("Flaky advisory", "https://f.example/1")]
    )
    feeds.add_rss("/down.xml", "Down feed", [FeedEntry("Never seen", "https://d.example/1")])
    with kev, feeds:
        feeds.set_fault("500", path="/down.xml")
        data_dir = tmp_path_factory.mktemp("jupiter-faults")
        settings = jupiter_settings(data_dir, llm_upstream, kev, feeds).model_copy(
            update={
                "pulse_feeds": [
                    feeds.url_for(path) for path in ("/steady.xml", "/flaky.xml", "/down.xml")
                ],
                # Badges are about the feeds themselves: keep the shared breaker out of it.
                "breaker_failure_threshold": 100,
            }
        )
        with ServerThread(create_app(settings, clock=clock)) as server:
            running = Jupiter(server, llm_upstream, kev, feeds, data_dir)
            yield running
            running.http.close()


def test_pulse_badges_come_from_real_feed_failures(
    page: Any, faulty: Jupiter, clock: FakeClock
) -> None:
    """A feed down from the start is 'error'; one that worked, then fails when due, is 'stale'."""
    page.goto(faulty.url + "/")
    expect(page.locator("#connection")).to_have_text("Live")
    steady = page.locator('.pulse-source[data-source$="/steady.xml"]')
    flaky = page.locator('.pulse-source[data-source$="/flaky.xml"]')
    down = page.locator('.pulse-source[data-source$="/down.xml"]')
    expect(steady).to_have_attribute("data-status", "live", timeout=10_000)
    expect(flaky).to_have_attribute("data-status", "live")
    expect(flaky).to_contain_text("Flaky advisory")
    expect(down).to_have_attribute("data-status", "error")
    expect(down.locator(".badge")).to_have_text("error")
    expect(down).to_contain_text("500")
    expect(down).to_contain_text("No items.")

    faulty.feeds.set_fault("500", path="/flaky.xml")
    clock.advance(TWO_HOURS)
    page.locator("#pulse-refresh").click()
    expect(flaky).to_have_attribute("data-status", "stale", timeout=10_000)
    expect(flaky.locator(".badge")).to_have_text("stale")
    expect(flaky).to_contain_text("2 h ago")
    expect(flaky).to_contain_text("Flaky advisory")  # the last good items are still served
    expect(steady).to_have_attribute("data-status", "live")
    expect(down).to_have_attribute("data-status", "error")
    flaky_fetches = faulty.feeds.requests_to("/flaky.xml")
    assert len(flaky_fetches) >= 2, "the flaky feed was fetched again once due"


def test_threat_feed_loading_and_stale_badge_from_a_failing_kev_upstream(
    page: Any, faulty: Jupiter, clock: FakeClock
) -> None:
    """The server's own threats_loading marks the table busy; a failed KEV sync shows stale."""
    frames: list[dict[str, Any]] = []

    def watch(socket: Any) -> None:
        socket.on("framereceived", lambda payload: frames.append(json.loads(payload)))

    page.on("websocket", watch)
    faulty.kev.set_fault(None)
    page.goto(faulty.url + "/")
    expect(page.locator("#connection")).to_have_text("Live")
    expect(page.locator("#threats-rows")).to_contain_text("CVE-2025-0101", timeout=10_000)
    kev_badge = page.locator('#threats-sources .badge[data-source="kev"]')
    expect(kev_badge).to_have_text("kev live")

    # A slow but working KEV: the server announces the load and the table shows it.
    faulty.kev.set_fault("slow", slow_seconds=1.5)
    clock.advance(TWO_HOURS)
    frames.clear()
    page.locator("#threats-refresh").click()
    expect(page.locator("#threats-panel")).to_have_attribute("aria-busy", "true")
    expect(page.locator("#threats-message")).to_have_text("Loading threat intelligence…")
    expect(page.locator("#threats-panel")).to_have_attribute("aria-busy", "false", timeout=10_000)
    events = [frame["event"] for frame in frames]
    assert "threats_loading" in events, events
    assert "threats_update" in events, events
    assert events.index("threats_loading") < events.index("threats_update"), events
    expect(kev_badge).to_have_text("kev live")
    expect(page.locator("#threats-stale")).to_be_hidden()

    # Now it fails once due: the last good data is served with its age.
    faulty.kev.set_fault("500")
    clock.advance(TWO_HOURS)
    page.locator("#threats-refresh").click()
    expect(page.locator("#threats-stale")).to_have_text("stale · 2 h ago", timeout=10_000)
    expect(kev_badge).to_have_text("kev stale · 2 h ago")
    expect(page.locator("#threats-rows")).to_contain_text("CVE-2025-0101")
    update = [f["data"] for f in frames if f["event"] == "threats_update"][-1]
    assert update["stale"] is True
    assert update["sources"]["kev"]["status"] == "stale"
    faulty.kev.set_fault(None)
