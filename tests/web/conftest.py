"""Browser-test plumbing: one headless Chromium per module, a real Jupiter on 127.0.0.1 and
fault-injecting LLM, KEV and RSS/Atom upstreams on loopback (helpers: browser_support.py).

Debian's Chromium is driven by Playwright for Python (no browser download): see the
``chromium_path`` fixture in tests/conftest.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from support.feed_upstream import FeedEntry, FeedUpstream
from support.kev_upstream import KevUpstream, kev_catalog, kev_record
from support.openai_upstream import OpenAIUpstream
from support.server import ServerThread
from web.browser_support import CHROMIUM_ARGS, XSS_ALERT, XSS_FLAG, Jupiter, jupiter_settings


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Any]:
    """One headless Chromium for the whole module (starting one per test is slow)."""
    playwright_sync = pytest.importorskip("playwright.sync_api")
    with playwright_sync.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def llm_upstream() -> Iterator[OpenAIUpstream]:
    """The fault-injecting OpenAI-compatible upstream the chat talks to."""
    with OpenAIUpstream() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def kev_upstream() -> Iterator[KevUpstream]:
    """A small KEV catalog; one entry's name is an XSS payload."""
    records = [
        kev_record("CVE-2025-0001", vulnerabilityName="Widget SQL injection"),
        kev_record("CVE-2025-0002", vulnerabilityName=XSS_ALERT),
        kev_record("CVE-2025-0003", vulnerabilityName=XSS_FLAG, vendorProject="Acme"),
    ]
    with KevUpstream(kev_catalog(records)) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def feed_upstream() -> Iterator[FeedUpstream]:
    """An RSS and an Atom feed; both mention CVE-2025-1234 (trending), one title is a payload."""
    when = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
    with FeedUpstream() as upstream:
        upstream.add_rss(
            "/blog.xml",
            "Vendor blog",
            [
                FeedEntry(XSS_ALERT, "https://blog.example/xss", published=when),
                FeedEntry(
                    "CVE-2025-1234 exploited in the wild", "https://blog.example/a", published=when
                ),
                FeedEntry("Script link", "javascript:alert(1)", published=when),
            ],
        )
        upstream.add_atom(
            "/cert.xml",
            "CERT notes",
            [FeedEntry("Advisory for CVE-2025-1234", "https://cert.example/1", published=when)],
        )
        yield upstream


@pytest.fixture(scope="module")
def jupiter(
    tmp_path_factory: pytest.TempPathFactory,
    llm_upstream: OpenAIUpstream,
    kev_upstream: KevUpstream,
    feed_upstream: FeedUpstream,
) -> Iterator[Jupiter]:
    """A real uvicorn on 127.0.0.1 serving Jupiter, wired to the upstreams."""
    from jupiter.service.app import create_app

    data_dir = tmp_path_factory.mktemp("jupiter")
    settings = jupiter_settings(data_dir, llm_upstream, kev_upstream, feed_upstream)
    with ServerThread(create_app(settings)) as server:
        running = Jupiter(server, llm_upstream, kev_upstream, feed_upstream, data_dir)
        yield running
        running.http.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page (own context: own sessionStorage) that fails the test on a JS error, a CSP
    violation or any dialog, since no page ever opens one."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    new_page = context.new_page()
    problems: list[str] = []
    new_page.on("pageerror", lambda error: problems.append(f"page error: {error}"))

    def on_console(message: Any) -> None:
        # A CSP violation means some page code needs 'unsafe-inline' or another origin.
        if "Content Security Policy" in message.text:
            problems.append(f"CSP violation: {message.text}")

    new_page.on("console", on_console)
    new_page.on(
        "dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"), dialog.dismiss())
    )
    new_page.problems = problems
    yield new_page
    context.close()
    assert problems == [], problems
