"""The dashboard survives a killed server: it shows "reconnecting…" and comes back by itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.jupiter_app import ADMIN_TOKEN
from support.openai_upstream import OpenAIUpstream
from support.server import ServerProcess
from web.browser_support import ARTIFACTS, sign_in_context

pytestmark = pytest.mark.browser

expect = pytest.importorskip("playwright.sync_api").expect


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, llm_upstream: OpenAIUpstream) -> Iterator[Any]:
    """``jupiter serve`` in its own process (so it can be SIGKILLed and started again)."""
    data_dir: Path = tmp_path_factory.mktemp("jupiter-process")
    env = {
        "JUPITER_ADMIN_TOKEN": ADMIN_TOKEN,
        "JUPITER_LLM_PROVIDER": "openai",
        "JUPITER_LLM_BASE_URL": llm_upstream.base_url,
        "JUPITER_LLM_API_KEY": "sk-test-key-for-browser-tests",
        "JUPITER_PULSE_FEEDS": "[]",
        "JUPITER_STORAGE_FLUSH_INTERVAL_SECONDS": "0.05",
    }
    process = ServerProcess(data_dir, env=env)
    process.start()
    yield process
    process.stop()


@pytest.fixture
def page(page: Any, server: Any) -> Any:
    """Signed in (chat here reaches an LLM: analyst); the session outlives the restart, since
    its signing key is in the data dir."""
    sign_in_context(page.context, server.url)
    return page


def test_page_reconnects_by_itself_after_the_server_is_killed(
    page: Any, server: Any, llm_upstream: OpenAIUpstream
) -> None:
    """After SIGKILL and restart the same page reconnects by itself and Retry works."""
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(server.url + "/")
    expect(page.locator("#connection")).to_have_text("Live")
    expect(page.locator('#status-rows tr[data-feature="grok_chat"]')).to_be_visible()
    page.evaluate("window.__same_page = true")
    llm_upstream.set_fault("hang", hang_seconds=10.0)
    page.fill("#chat-input", "Are you still there?")
    page.press("#chat-input", "Enter")
    expect(page.locator("#chat-thinking")).to_be_visible()
    assert llm_upstream.wait_for_requests(1, timeout=5.0)

    server.kill()
    expect(page.locator("#connection")).to_have_text("Reconnecting…", timeout=3_000)
    banner = page.locator("#reconnect-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Reconnecting…")
    expect(page.locator("body")).to_have_attribute("data-connection", "reconnecting")
    expect(page.locator("#health")).to_have_attribute("data-health", "unknown")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-reconnecting-390.png"))
    page.wait_for_timeout(1_500)  # let a few attempts fail while the server is down
    expect(banner).to_contain_text("attempt")
    dropped = page.locator(".msg-error", has_text="The connection dropped")
    expect(dropped).to_be_visible()
    expect(page.locator("#chat-thinking")).to_be_hidden()
    llm_upstream.set_fault("ok")
    llm_upstream.set_reply("Still here.")

    server.start()
    expect(page.locator("#connection")).to_have_text("Live", timeout=20_000)
    expect(banner).to_be_hidden()
    expect(page.locator(".toast", has_text="Reconnected")).to_be_visible()
    expect(page.locator('#status-rows tr[data-feature="grok_chat"]')).to_be_visible()
    expect(page.locator("#health")).to_have_attribute("data-health", "healthy")
    assert page.evaluate("window.__same_page") is True
    dropped.get_by_role("button", name="Retry").click()
    expect(page.locator(".msg-assistant").last).to_contain_text("Still here.", timeout=10_000)


def test_backoff_grows_exponentially_with_jitter(page: Any, server: Any) -> None:
    """The module's delays double from 0.5 s up to the cap, each within its jitter band."""
    page.goto(server.url + "/")
    delays = page.evaluate(
        """async () => {
             const { backoffDelay } = await import("/static/js/socket.js");
             const low = [1, 2, 3, 4, 5, 6, 7, 8].map((n) => backoffDelay(n, () => 0));
             const high = [1, 2, 3, 4, 5, 6, 7, 8].map((n) => backoffDelay(n, () => 0.999999));
             return { low, high };
           }"""
    )
    assert delays["low"] == [250, 500, 1000, 2000, 4000, 7500, 7500, 7500]
    assert delays["high"] == [500, 1000, 2000, 4000, 8000, 15000, 15000, 15000]
