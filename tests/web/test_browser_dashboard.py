"""The dashboard in real Chromium against a real Jupiter with fault-injecting upstreams."""

from __future__ import annotations

import re
from typing import Any

import pytest

from web.browser_support import (
    ARTIFACTS,
    XSS_ALERT,
    XSS_FLAG,
    Jupiter,
    reset_upstreams,
    screenshots,
    sign_in_context,
    sign_in_cookie,
    unnamed_controls,
)

pytestmark = pytest.mark.browser

expect = pytest.importorskip("playwright.sync_api").expect


@pytest.fixture
def page(page: Any, jupiter: Jupiter) -> Any:
    """The dashboard signed in as admin: chat here reaches an LLM, which needs analyst."""
    sign_in_context(page.context, jupiter.url)
    return page


def open_dashboard(page: Any, jupiter: Jupiter) -> None:
    page.goto(jupiter.url + "/")
    expect(page.locator("#connection")).to_have_text("Live")
    expect(page.locator('#status-rows tr[data-feature="grok_chat"]')).to_be_visible()


def send_chat(page: Any, text: str) -> None:
    page.fill("#chat-input", text)
    page.press("#chat-input", "Enter")


def test_chat_shows_thinking_then_answer_then_error_with_retry(page: Any, jupiter: Jupiter) -> None:
    """Thinking, answer; upstream fails: error, suggestion, Retry; upstream back: Retry answers."""
    reset_upstreams(jupiter)
    jupiter.llm.set_reply("Use parameterised queries to stop SQL injection.")
    jupiter.llm.set_fault("slow", delay=1.0)
    open_dashboard(page, jupiter)
    expect(page.locator("#chat-feature")).to_have_text("Chat: Available")

    send_chat(page, "What are SQL injection risks?")
    expect(page.locator("#chat-thinking")).to_be_visible()
    answer = page.locator(".msg-assistant").last
    expect(answer).to_contain_text("parameterised queries", timeout=10_000)
    expect(page.locator("#chat-thinking")).to_be_hidden()
    expect(answer).not_to_have_class("msg-error")

    jupiter.llm.set_fault("500")
    send_chat(page, "And cross-site scripting?")
    error = page.locator(".msg-assistant.msg-error").last
    expect(error).to_be_visible(timeout=10_000)
    expect(error.locator(".msg-suggestion")).to_contain_text("Suggestion:")
    expect(page.locator("#chat-thinking")).to_be_hidden()
    retry = error.get_by_role("button", name="Retry")
    expect(retry).to_be_visible()

    jupiter.llm.set_fault("ok")
    jupiter.llm.clear_requests()
    retry.click()
    expect(page.locator(".msg-assistant:not(.msg-error)")).to_have_count(2, timeout=10_000)
    expect(page.locator(".msg-assistant").last).to_contain_text("parameterised queries")
    expect(error.locator(".btn-retry")).to_have_text("Retried")
    expect(error.locator(".btn-retry")).to_be_disabled()
    sent = jupiter.llm.completion_requests[-1].messages[-1]["content"]
    assert sent == "And cross-site scripting?"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator("#chat-panel").screenshot(path=str(ARTIFACTS / "dashboard-chat-1280.png"))


def test_retry_resends_the_message_that_failed_not_the_last_one_sent(
    page: Any, jupiter: Jupiter
) -> None:
    """A is slow then fails; B, sent meanwhile, is answered: Retry on A's error resends A."""
    reset_upstreams(jupiter)
    jupiter.llm.set_reply("An answer.")
    open_dashboard(page, jupiter)
    jupiter.llm.clear_requests()
    # Upstream calls in arrival order: A's first attempt outlasts the 3 s LLM timeout, B's
    # answers at once, A's retries fail.
    jupiter.llm.set_fault("flapping", delay=4.0, pattern=("slow", "ok", "500", "500", "500"))
    send_chat(page, "Question A about CVE-2025-0001")
    assert jupiter.llm.wait_for_requests(1)
    send_chat(page, "Question B about something else")
    expect(page.locator(".msg-assistant:not(.msg-error)")).to_have_count(1, timeout=10_000)
    expect(page.locator("#chat-thinking")).to_be_visible()  # A is still unanswered
    error_a = page.locator(".msg-assistant.msg-error")
    expect(error_a).to_have_count(1, timeout=15_000)
    expect(page.locator("#chat-thinking")).to_be_hidden()

    jupiter.llm.set_fault("ok")
    jupiter.llm.clear_requests()
    error_a.get_by_role("button", name="Retry").click()
    expect(page.locator(".msg-assistant:not(.msg-error)")).to_have_count(2, timeout=10_000)
    expect(error_a.locator(".btn-retry")).to_have_text("Retried")
    sent = [request.messages[-1]["content"] for request in jupiter.llm.completion_requests]
    assert sent == ["Question A about CVE-2025-0001"]
    expect(page.locator(".msg-user")).to_have_count(2)  # a retry adds no new question


def test_non_recoverable_chat_error_offers_no_retry(page: Any, jupiter: Jupiter) -> None:
    """A refused API key is not fixed by trying again: the error shows without a Retry button."""
    reset_upstreams(jupiter)
    jupiter.llm.set_fault("401")
    open_dashboard(page, jupiter)
    send_chat(page, "Will this work?")
    error = page.locator(".msg-assistant.msg-error").last
    expect(error).to_be_visible(timeout=10_000)
    expect(error.locator(".msg-suggestion")).to_be_visible()
    expect(error.locator(".btn-retry")).to_have_count(0)
    reset_upstreams(jupiter)


def test_status_panel_failures_match_the_feature_status_api(page: Any, jupiter: Jupiter) -> None:
    """After real upstream failures each feature's failure count is the API's, no reload."""
    reset_upstreams(jupiter)
    page.clock.install()  # the panel's 10 s status poll runs on demand
    open_dashboard(page, jupiter)
    jupiter.llm.set_fault("500")
    jupiter.http.post("/api/chat", json={"message": "count my failures"})
    features = {
        name: entry
        for name, entry in jupiter.http.get("/api/feature-status").json().items()
        if isinstance(entry, dict) and "circuit_breaker" in entry
    }
    assert features["grok_chat"]["failures"] > 0
    assert features["grok_chat"]["circuit_breaker"] == "closed"

    page.clock.run_for(10_000)
    for name, entry in features.items():
        cell = page.locator(f'#status-rows tr[data-feature="{name}"] td.num')
        expect(cell).to_have_text(str(entry["failures"]))
    reset_upstreams(jupiter)


def test_tripped_breaker_shows_open_within_two_seconds_with_a_toast(
    page: Any, jupiter: Jupiter
) -> None:
    """A breaker tripped via the upstream shows open within 2 s, no reload, with toasts."""
    reset_upstreams(jupiter)
    open_dashboard(page, jupiter)
    row = page.locator('#status-rows tr[data-feature="grok_chat"]')
    expect(row).to_have_attribute("data-breaker", "closed")
    page.evaluate("window.__same_page = true")

    jupiter.llm.set_fault("500")
    for _ in range(2):  # 2 questions x 3 attempts >= the threshold of 5
        jupiter.http.post("/api/chat", json={"message": "trip the breaker"})
    assert jupiter.feature("grok_chat")["circuit_breaker"] == "open"

    expect(row).to_have_attribute("data-breaker", "open", timeout=2_000)
    expect(row.locator(".breaker")).to_have_text("open")
    expect(page.locator(".toast", has_text="Chat is degraded")).to_be_visible(timeout=2_000)
    expect(page.locator("#health")).to_have_text("Health: degraded")
    expect(page.locator("#chat-feature")).to_contain_text("Degraded")
    assert page.evaluate("window.__same_page") is True

    jupiter.llm.set_fault("ok")
    jupiter.admin_post("/api/reset-circuit-breaker/chat")
    expect(row).to_have_attribute("data-breaker", "closed", timeout=2_000)
    expect(page.locator(".toast", has_text="Chat recovered")).to_be_visible(timeout=2_000)
    expect(page.locator("#health")).to_have_text("Health: healthy")


def test_xss_payloads_show_as_text_and_never_run(page: Any, jupiter: Jupiter) -> None:
    """Markup in a KEV name, feed title, LLM reply and error message stays text; nothing runs."""
    reset_upstreams(jupiter)
    jupiter.llm.set_reply(f"{XSS_ALERT} then {XSS_FLAG}")
    open_dashboard(page, jupiter)

    expect(page.locator("#threats-rows")).to_contain_text(XSS_ALERT, timeout=10_000)
    expect(page.locator("#threats-rows")).to_contain_text(XSS_FLAG)
    expect(page.locator("#pulse-sources")).to_contain_text(XSS_ALERT, timeout=10_000)
    expect(page.locator("#pulse-sources")).to_contain_text("Script link")
    assert page.locator('#pulse-sources a[href^="javascript"]').count() == 0

    send_chat(page, "Show me markup")
    expect(page.locator(".msg-assistant").last).to_contain_text(XSS_FLAG, timeout=10_000)

    # The server echoes an unknown event's name in its error message: that must stay text too.
    page.evaluate("(name) => window.jupiter.socket.send(name, {})", XSS_ALERT)
    expect(page.locator(".toast-error", has_text=XSS_ALERT)).to_be_visible()

    page.wait_for_timeout(300)  # give any payload that got through time to fire
    assert page.locator("main img, #toasts img").count() == 0
    assert page.locator("main script, #toasts script").count() == 0
    assert page.evaluate("window.__xss") is None
    # the page fixture fails the test if any dialog (alert) opened


def test_threat_feed_counts_filters_and_shows_stale_age(page: Any, jupiter: Jupiter) -> None:
    """Threat count, source badges, server-side filters, loading state and stale age."""
    reset_upstreams(jupiter)
    open_dashboard(page, jupiter)
    rows = page.locator("#threats-rows tr[data-source]")
    expect(page.locator("#threats-rows")).to_contain_text("CVE-2025-0001", timeout=10_000)
    everything = jupiter.http.get("/api/threats").json()["count"]
    expect(page.locator("#threats-count")).to_have_attribute("data-count", str(everything))
    expect(page.locator('#threats-sources .badge[data-source="kev"]')).to_have_text("kev live")

    with page.expect_response(lambda r: "/api/threats?" in r.url and "source=kev" in r.url):
        page.get_by_label("Source").select_option("kev")
    kev_count = jupiter.http.get("/api/threats", params={"source": "kev"}).json()["count"]
    expect(page.locator("#threats-count")).to_have_text(f"{kev_count} matching")
    assert {r.get_attribute("data-source") for r in rows.all()} == {"kev"}

    page.get_by_label("Source").select_option("")
    with page.expect_response(lambda r: "severity=high" in r.url):
        page.locator("#threats-panel").get_by_label("Severity").select_option("high")
    high = jupiter.http.get("/api/threats", params={"severity": "high"}).json()["count"]
    expect(page.locator("#threats-count")).to_have_text(f"{high} matching")
    assert {r.get_attribute("data-severity") for r in rows.all()} == {"high"}
    page.locator("#threats-panel").get_by_label("Severity").select_option("")
    expect(page.locator("#threats-count")).to_have_attribute("data-count", str(everything))

    # threats_loading marks the table busy until the update arrives.
    page.evaluate(
        """() => window.jupiter.socket.dispatchEvent(
             new CustomEvent("threats_loading", {detail: {}}))"""
    )
    expect(page.locator("#threats-panel")).to_have_attribute("aria-busy", "true")
    expect(page.locator("#threats-message")).to_have_text("Loading threat intelligence…")
    # A stale answer (the shape the server sends when a source fails) shows the data's age.
    page.evaluate(
        """() => window.jupiter.socket.dispatchEvent(new CustomEvent("threats_update", {detail: {
             items: [{id: "CVE-2024-9999", title: "Old item", severity: "high", source: "kev"}],
             count: 1, success: true, stale: true, age_seconds: 5400}}))"""
    )
    expect(page.locator("#threats-stale")).to_have_text("stale · 2 h ago")
    expect(page.locator("#threats-count")).to_have_text("1 item")
    expect(page.locator("#threats-panel")).to_have_attribute("aria-busy", "false")
    expect(page.locator("#threats-message")).to_be_hidden()


def test_pulse_shows_sources_with_badges_and_trending(page: Any, jupiter: Jupiter) -> None:
    """Each feed has a live badge and its items; a CVE in both feeds is trending."""
    reset_upstreams(jupiter)
    open_dashboard(page, jupiter)
    cards = page.locator(".pulse-source")
    expect(cards).to_have_count(2, timeout=10_000)
    for card in cards.all():
        expect(card.locator(".badge")).to_have_text("live")
    expect(page.locator("#pulse-trending")).to_contain_text("CVE-2025-1234")


def test_error_chart_draws_errors_and_switches_windows(page: Any, jupiter: Jupiter) -> None:
    """The chart draws errors by type, updates without reload and switches 15/60/240 min."""
    reset_upstreams(jupiter)
    jupiter.llm.set_fault("500")
    jupiter.http.post("/api/chat", json={"message": "fail once"})
    jupiter.admin_post("/api/reset-circuit-breaker/chat")
    open_dashboard(page, jupiter)
    chart = page.locator("#error-chart")
    expect(chart.locator("polyline.chart-line").first).to_be_visible()
    before = int(chart.get_attribute("data-total"))
    assert before > 0

    jupiter.http.post("/api/chat", json={"message": "fail again"})
    jupiter.admin_post("/api/reset-circuit-breaker/chat")  # a state change pushes status_update
    page.wait_for_function(
        "(n) => Number(document.querySelector('#error-chart').dataset.total) > n",
        arg=before,
        timeout=5_000,
    )

    with page.expect_request(lambda r: "/api/errors/timeseries?minutes=15" in r.url):
        page.get_by_role("button", name="15 min").click()
    expect(page.get_by_role("button", name="15 min")).to_have_attribute("aria-pressed", "true")
    with page.expect_request(lambda r: "/api/errors/timeseries?minutes=240" in r.url):
        page.get_by_role("button", name="240 min").click()
    expect(chart.locator("svg")).to_have_attribute("aria-label", re.compile("Errors per minute"))


def test_error_chart_gives_each_error_type_its_own_line_and_legend_entry(
    page: Any, jupiter: Jupiter
) -> None:
    """Two error types: two polylines in two colours, and a legend entry with each one's total."""
    reset_upstreams(jupiter)
    jupiter.llm.set_fault("500")
    jupiter.http.post("/api/chat", json={"message": "fail with a server error"})
    jupiter.llm.set_fault("ok")
    jupiter.llm.set_reply("Error: the model is overloaded")
    jupiter.http.post("/api/chat", json={"message": "error reply please"})
    jupiter.admin_post("/api/reset-circuit-breaker/chat")
    series = jupiter.http.get("/api/errors/timeseries", params={"minutes": 60}).json()["series"]
    assert "chat_error_reply" in series, series
    assert len(series) >= 2, series

    open_dashboard(page, jupiter)
    chart = page.locator("#error-chart")
    lines = chart.locator("polyline.chart-line")
    expect(lines).to_have_count(len(series))
    line_types = [line.get_attribute("data-type") for line in lines.all()]
    assert sorted(line_types) == sorted(series)
    colours = {line.get_attribute("class") for line in lines.all()}
    assert len(colours) == min(len(series), 8), colours
    legend = chart.locator(".chart-legend li")
    assert sorted(item.get_attribute("data-type") for item in legend.all()) == sorted(series)
    for name, counts in series.items():
        expect(chart.locator(f'.chart-legend li[data-type="{name}"]')).to_have_text(
            f"{name} ({sum(counts)})"
        )
    strokes = {line.evaluate("(el) => getComputedStyle(el).stroke") for line in lines.all()[:8]}
    assert len(strokes) == min(len(series), 8), strokes


def test_dark_theme_applies_on_every_page(browser: Any, jupiter: Jupiter) -> None:
    """With a dark colour scheme the pages are drawn dark: darker background, lighter text."""

    def luminance(colour: str) -> float:
        red, green, blue = (int(part) for part in re.findall(r"\d+", colour)[:3])
        return 0.2126 * red + 0.7152 * green + 0.0722 * blue

    for path in ("/", "/admin", "/status"):
        seen = {}
        for scheme in ("light", "dark"):
            context = browser.new_context(color_scheme=scheme)
            themed = context.new_page()
            themed.goto(jupiter.url + path)
            seen[scheme] = themed.evaluate(
                """() => [getComputedStyle(document.body).backgroundColor,
                          getComputedStyle(document.querySelector('.card')).backgroundColor,
                          getComputedStyle(document.body).color]"""
            )
            context.close()
        light_bg, light_card, light_text = seen["light"]
        dark_bg, dark_card, dark_text = seen["dark"]
        assert luminance(dark_bg) < luminance(light_bg) - 100, (path, seen)
        assert luminance(dark_card) < luminance(light_card) - 100, (path, seen)
        assert luminance(dark_text) > luminance(light_text) + 100, (path, seen)
        assert luminance(dark_text) > luminance(dark_bg) + 100, (path, seen)


def test_dashboard_is_keyboard_usable(page: Any, jupiter: Jupiter) -> None:
    """Tab reaches the chat box; Enter sends; every control has an accessible name."""
    reset_upstreams(jupiter)
    jupiter.llm.set_reply("Keyboard answer.")
    open_dashboard(page, jupiter)
    page.keyboard.press("Tab")  # skip link
    page.keyboard.press("Enter")
    expect(page.locator("#chat-input")).to_be_focused()
    page.keyboard.type("hello from the keyboard")
    page.keyboard.press("Enter")
    expect(page.locator(".msg-assistant").last).to_contain_text("Keyboard answer.", timeout=10_000)
    assert unnamed_controls(page) == []


def test_dashboard_screenshots(browser: Any, jupiter: Jupiter) -> None:
    """Screenshots at 1280 and 390 px, light and dark, with data loaded and no sideways scroll."""
    reset_upstreams(jupiter)
    paths = screenshots(
        browser,
        jupiter.url + "/",
        "dashboard",
        "#threats-rows tr td.mono",
        before=sign_in_cookie(jupiter.url),
    )
    # Anonymous (a loopback viewer): chat and scan import say they need a sign-in.
    paths += screenshots(
        browser, jupiter.url + "/", "dashboard-anonymous", "#chat-auth-note:not([hidden])"
    )
    assert all(p.stat().st_size > 10_000 for p in paths)
