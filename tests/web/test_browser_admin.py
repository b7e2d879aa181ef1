"""The Admin Console in real Chromium against a real Jupiter."""

from __future__ import annotations

import json
from typing import Any

import pytest

from support.jupiter_app import ADMIN, ADMIN_TOKEN
from web.browser_support import (
    ARTIFACTS,
    XSS_FLAG,
    Jupiter,
    reset_upstreams,
    screenshots,
    sign_in_cookie,
    unnamed_controls,
)

pytestmark = pytest.mark.browser

expect = pytest.importorskip("playwright.sync_api").expect


def sign_in(page: Any, jupiter: Jupiter, token: str = ADMIN_TOKEN) -> None:
    page.goto(jupiter.url + "/admin")
    page.get_by_label("Admin token").fill(token)
    page.get_by_role("button", name="Sign in").click()


def row(page: Any, alias: str) -> Any:
    return page.locator(f'.feature-row[data-alias="{alias}"]')


def stored_anywhere(page: Any) -> str:
    """Everything the page's scripts can keep: session and local storage."""
    return page.evaluate(
        """() => JSON.stringify([Object.entries(sessionStorage), Object.entries(localStorage)])"""
    )


def test_wrong_token_is_refused(page: Any, jupiter: Jupiter) -> None:
    """A wrong token gets an error, the console stays hidden and nothing is stored."""
    sign_in(page, jupiter, "not-the-token")
    expect(page.locator("#signin-error")).to_contain_text("not valid")
    expect(page.locator("#console")).to_be_hidden()
    assert page.context.cookies() == []
    assert "not-the-token" not in stored_anywhere(page)


def test_sign_in_sets_an_http_only_cookie_and_the_page_keeps_no_token(
    page: Any, jupiter: Jupiter
) -> None:
    """Signing in trades the token for an HttpOnly, SameSite=Strict session cookie that page
    scripts cannot read; the page stores no token, never puts one in a URL or an Authorization
    header, and sends X-CSRF-Token with every action. Signing out deletes the cookie."""
    reset_upstreams(jupiter)
    api_calls: list[Any] = []
    page.on("request", lambda r: api_calls.append(r) if "/api/" in r.url else None)
    sign_in(page, jupiter)
    expect(page.locator("#console")).to_be_visible()
    expect(row(page, "chat")).to_be_visible()
    expect(page.locator("#recent-note")).to_contain_text("updated")

    [cookie] = page.context.cookies()
    assert cookie["name"] == "jupiter_session"
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Strict", "/")
    assert cookie["secure"] is False  # plain http on loopback; https sets Secure
    assert ADMIN_TOKEN not in cookie["value"]
    assert page.evaluate("document.cookie") == ""  # HttpOnly: invisible to scripts
    assert ADMIN_TOKEN not in stored_anywhere(page)
    assert api_calls, "the console called the API"
    for request in api_calls:
        assert ADMIN_TOKEN not in request.url
        assert request.headers.get("authorization") is None, request.url
    row(page, "chat").get_by_role("button", name="Disable Chat with Jupiter").click()
    expect(row(page, "chat")).to_have_attribute("data-enabled", "false")
    posts = [r for r in api_calls if r.method == "POST" and "/api/features/" in r.url]
    assert posts
    assert all(r.headers.get("x-csrf-token") for r in posts)
    row(page, "chat").get_by_role("button", name="Enable Chat with Jupiter").click()
    expect(row(page, "chat")).to_have_attribute("data-enabled", "true")
    assert ADMIN_TOKEN not in page.url
    assert unnamed_controls(page) == []

    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#signin")).to_be_visible()
    assert page.context.cookies() == []


def test_a_rotated_token_ends_the_console_session(page: Any, jupiter: Jupiter) -> None:
    """A named admin token signs the console in; once revoked, the console's next call is
    refused and it asks to sign in again, without a reload."""
    created = jupiter.http.post("/api/tokens", json={"name": "console-test", "role": "admin"})
    assert created.status_code == 201, created.text
    sign_in(page, jupiter, created.json()["token"])
    expect(page.locator("#console")).to_be_visible()
    assert jupiter.http.delete("/api/tokens/console-test").status_code == 200
    page.locator("#errors-refresh").click()
    expect(page.locator("#signin")).to_be_visible()
    expect(page.locator("#signin-error")).to_contain_text("session has ended")


def test_a_lesser_token_does_not_open_the_console(page: Any, jupiter: Jupiter) -> None:
    """A viewer token is valid but the console needs admin: it says so and signs out."""
    created = jupiter.http.post("/api/tokens", json={"name": "console-viewer", "role": "viewer"})
    sign_in(page, jupiter, created.json()["token"])
    expect(page.locator("#signin-error")).to_contain_text("needs an admin token")
    expect(page.locator("#console")).to_be_hidden()
    assert page.context.cookies() == []
    jupiter.http.delete("/api/tokens/console-viewer")


def test_disabling_a_feature_records_the_reason_and_degrades_the_dashboard(
    page: Any, browser: Any, jupiter: Jupiter
) -> None:
    """Disabling chat records the reason and an open dashboard shows it disabled, live."""
    reset_upstreams(jupiter)
    dashboard = browser.new_context().new_page()
    dashboard.goto(jupiter.url + "/")
    expect(dashboard.locator("#connection")).to_have_text("Live")
    chat_status = dashboard.locator('#status-rows tr[data-feature="grok_chat"]')
    expect(chat_status).to_have_attribute("data-condition", "ok")

    sign_in(page, jupiter)
    reason = f"upstream maintenance {XSS_FLAG}"
    page.get_by_label("Reason for the change to Chat with Jupiter").fill(reason)
    row(page, "chat").get_by_role("button", name="Disable Chat with Jupiter").click()
    expect(row(page, "chat")).to_have_attribute("data-enabled", "false")
    expect(row(page, "chat")).to_contain_text(f"reason: {reason}")
    assert page.evaluate("window.__xss") is None

    expect(chat_status).to_have_attribute("data-condition", "disabled", timeout=2_000)
    expect(dashboard.locator("#chat-feature")).to_have_text("Chat: Disabled")
    expect(dashboard.locator(".toast", has_text="Chat is disabled")).to_be_visible()

    history = jupiter.http.get("/api/history", params={"component": "chat"}, headers=ADMIN)
    reasons = [c["reason"] for c in history.json()["changes"] if c["new_state"] == "disabled"]
    assert reasons[-1] == reason

    row(page, "chat").get_by_role("button", name="Enable Chat with Jupiter").click()
    expect(row(page, "chat")).to_have_attribute("data-enabled", "true")
    expect(chat_status).to_have_attribute("data-condition", "ok", timeout=2_000)
    dashboard.context.close()


def test_breaker_force_open_and_reset_ask_for_confirmation(page: Any, jupiter: Jupiter) -> None:
    """Force open and reset each need confirmation; cancelling changes nothing."""
    reset_upstreams(jupiter)
    sign_in(page, jupiter)
    intel = row(page, "intel")
    expect(intel).to_have_attribute("data-breaker", "closed")

    intel.get_by_role(
        "button", name="Force open the circuit breaker of Threat intelligence"
    ).click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Force open").click()
    expect(intel).to_have_attribute("data-breaker", "open")
    assert jupiter.feature("threat_intelligence")["circuit_breaker"] == "open"

    intel.get_by_role("button", name="Reset the circuit breaker of Threat intelligence").click()
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")  # the native dialog cancels on Escape
    expect(dialog).to_be_hidden()
    page.wait_for_timeout(300)
    assert jupiter.feature("threat_intelligence")["circuit_breaker"] == "open"

    intel.get_by_role("button", name="Reset the circuit breaker of Threat intelligence").click()
    dialog.get_by_role("button", name="Reset breaker").click()
    expect(intel).to_have_attribute("data-breaker", "closed")
    assert jupiter.feature("threat_intelligence")["circuit_breaker"] == "closed"


def test_recent_errors_show_redacted_context_and_filter_by_type(
    page: Any, jupiter: Jupiter
) -> None:
    """Recent errors filter by type and never show the LLM key an upstream echoed."""
    reset_upstreams(jupiter)
    jupiter.llm.set_fault("401")  # echoes the presented API key in its error body
    jupiter.http.post("/api/chat", json={"message": "who am I"})
    jupiter.llm.set_fault("ok")
    jupiter.llm.set_reply("Error: the model is overloaded")
    jupiter.http.post("/api/chat", json={"message": "error reply please"})
    jupiter.admin_post("/api/reset-circuit-breaker/chat")

    sign_in(page, jupiter)
    table = page.locator("#recent-errors")
    expect(table.locator('tr[data-type="chat_error_reply"]').first).to_be_visible()
    types = set(page.locator("#error-type-filter option").all_text_contents()[1:])
    assert {"chat_error_reply"} < types, types

    page.get_by_label("Filter by error type").select_option("chat_error_reply")
    shown = {r.get_attribute("data-type") for r in table.locator("tr").all()}
    assert shown == {"chat_error_reply"}
    assert "sk-test-key-for-browser-tests" not in page.content()
    expect(page.locator("#stats-types")).to_contain_text("chat_error_reply")


def test_console_adds_no_failures_while_features_are_degraded(page: Any, jupiter: Jupiter) -> None:
    """With features degraded, using the console calls no upstream and records no error."""
    reset_upstreams(jupiter)
    jupiter.admin_post("/api/features/chat/disable", json={"reason": "maintenance"})
    jupiter.admin_post("/api/breakers/intel/force-open")
    llm_before = len(jupiter.llm.requests)
    kev_before = len(jupiter.kev.requests)
    errors_before = jupiter.http.get("/api/error-stats").json()["total_errors"]

    sign_in(page, jupiter)
    expect(row(page, "chat")).to_have_attribute("data-enabled", "false")
    expect(row(page, "intel")).to_have_attribute("data-breaker", "open")
    page.locator("#errors-refresh").click()  # the Scans section has a Refresh button too
    expect(page.locator("#recent-note")).to_contain_text("updated")
    page.wait_for_timeout(500)

    assert len(jupiter.llm.requests) == llm_before
    assert len(jupiter.kev.requests) == kev_before
    assert jupiter.http.get("/api/error-stats").json()["total_errors"] == errors_before
    reset_upstreams(jupiter)


def wait_for_calls(page: Any, calls: list[str], count: int) -> None:
    """Wait (real time, the page clock is fake) until ``calls`` holds ``count`` requests."""
    for _ in range(50):
        if len(calls) >= count:
            break
        page.wait_for_timeout(100)
    assert len(calls) == count, calls


def test_console_breaker_pauses_a_failing_endpoint_then_recovers(
    page: Any, jupiter: Jupiter
) -> None:
    """After 3 failed /api/error-stats calls the console stops calling, says so, and recovers."""
    reset_upstreams(jupiter)
    calls: list[str] = []
    failing = True

    def error_stats(route: Any) -> None:
        calls.append(route.request.url)
        if failing:
            body = {"error": {"type": "service_unavailable", "message": "Stats are down"}}
            route.fulfill(status=503, content_type="application/json", body=json.dumps(body))
        else:
            route.continue_()

    page.clock.install()  # Date and timers: the 10 s poll and the 15 s cooldown run on demand
    page.route("**/api/error-stats", error_stats)
    sign_in(page, jupiter)
    note = page.locator("#stats-note")
    banner = page.locator("#console-degraded")
    expect(note).to_have_attribute("data-state", "failing")
    expect(note).to_contain_text("Stats are down")
    expect(note).to_have_attribute("data-failures", "1")
    wait_for_calls(page, calls, 1)
    expect(banner).to_be_hidden()

    # Each step waits for the page to have handled the last answer before moving time on.
    page.clock.run_for(10_000)  # the poll: second failure
    expect(note).to_have_attribute("data-failures", "2")
    wait_for_calls(page, calls, 2)
    page.clock.run_for(10_000)  # third failure: the breaker opens
    expect(note).to_have_attribute("data-failures", "3")
    wait_for_calls(page, calls, 3)
    expect(note).to_have_attribute("data-state", "paused")
    expect(note).to_contain_text("Paused after 3 failed calls")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Degraded: Error stats paused")
    expect(page.locator("#recent-note")).to_have_attribute("data-state", "ok")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "admin-degraded-1280.png"))

    page.clock.run_for(10_000)  # a poll inside the cooldown, and a manual refresh: no call
    page.locator("#errors-refresh").click()
    page.wait_for_timeout(400)
    assert len(calls) == 3, calls
    expect(note).to_have_attribute("data-state", "paused")

    page.clock.run_for(10_000)  # cooldown over: one trial call, which fails and re-opens
    expect(note).to_have_attribute("data-failures", "4")
    wait_for_calls(page, calls, 4)
    expect(note).to_have_attribute("data-state", "paused")

    failing = False
    page.clock.run_for(10_000)  # still cooling down after the failed trial
    page.wait_for_timeout(400)
    assert len(calls) == 4, calls
    page.clock.run_for(10_000)  # the next trial reaches the real endpoint and succeeds
    wait_for_calls(page, calls, 5)
    expect(note).to_have_attribute("data-state", "ok")
    expect(note).to_contain_text("updated")
    expect(banner).to_be_hidden()
    expect(page.locator("#stats .stat").first).to_be_visible()


def test_admin_screenshots(browser: Any, jupiter: Jupiter) -> None:
    """Sign-in and console screenshots at 1280 and 390 px, light and dark."""
    reset_upstreams(jupiter)
    jupiter.admin_post("/api/features/scans/disable", json={"reason": "importer upgrade"})
    signin = screenshots(browser, jupiter.url + "/admin", "admin-signin", "#token-input")
    console = screenshots(
        browser,
        jupiter.url + "/admin",
        "admin",
        '.feature-row[data-alias="scans"]',
        before=sign_in_cookie(jupiter.url),
    )
    assert all(p.stat().st_size > 5_000 for p in signin + console)
    reset_upstreams(jupiter)
