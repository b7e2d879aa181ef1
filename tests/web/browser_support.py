"""Helpers for the browser tests: settings, a handle on the running Jupiter, screenshots."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from support.feed_upstream import FeedUpstream
from support.jupiter_app import ADMIN, ADMIN_TOKEN, fast_settings
from support.kev_upstream import KevUpstream
from support.openai_upstream import OpenAIUpstream
from support.server import ServerThread

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "artifacts" / "pages"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
WIDTHS = {1280: 900, 390: 844}

#: Payloads that would run if any page inserted text as HTML. ``window.__xss`` is checked too,
#: since a dialog is not the only thing a payload can do.
XSS_ALERT = "<img src=x onerror=alert(1)>"
XSS_FLAG = "<img src=x onerror=window.__xss=1><script>window.__xss=2</script>"


@dataclass
class Jupiter:
    """A running Jupiter and the upstreams behind it."""

    server: ServerThread
    llm: OpenAIUpstream
    kev: KevUpstream
    feeds: FeedUpstream
    data_dir: Path
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        # The tests' own calls (arranging state, checking it) are an admin's.
        self.http = httpx.Client(base_url=self.server.url, timeout=10.0, headers=ADMIN)

    @property
    def url(self) -> str:
        return self.server.url

    def admin_post(self, path: str, **kwargs: Any) -> httpx.Response:
        response = self.http.post(path, headers=ADMIN, **kwargs)
        response.raise_for_status()
        return response

    def feature(self, name: str) -> dict[str, Any]:
        return self.http.get("/api/feature-status").json()[name]


def jupiter_settings(data_dir: Path, llm: OpenAIUpstream, kev: KevUpstream, feeds: FeedUpstream):
    """Settings pointing every component at the loopback upstreams."""
    return fast_settings(
        data_dir,
        llm_provider="openai",
        llm_base_url=llm.base_url,
        llm_api_key="sk-test-key-for-browser-tests",
        llm_model="gpt-test",
        llm_timeout_seconds=3.0,
        kev_url=kev.url,
        pulse_feeds=[feeds.url_for("/blog.xml"), feeds.url_for("/cert.xml")],
        breaker_failure_threshold=5,
        breaker_timeout_seconds=600.0,
        ws_chat_burst=100,
        ws_chat_refill_per_second=100.0,
    )


def reset_upstreams(jupiter: Jupiter) -> None:
    """Healthy upstreams, closed breakers and enabled features for the next test."""
    jupiter.llm.set_fault("ok")
    jupiter.llm.set_reply(None)
    for name in ("chat", "intel", "pulse", "scans"):
        jupiter.admin_post(f"/api/features/{name}/enable", json={"reason": "test reset"})
        jupiter.admin_post(f"/api/reset-circuit-breaker/{name}")


#: Elements inside the page's panels that scroll sideways, hiding part of their content (a
#: table wider than its scroll box, say): the page itself may fit while a column is cut off.
CLIPPED_INSIDE_PANELS = """() => [...document.querySelectorAll('main *, .card *')]
    .filter((el) => el.offsetParent !== null && el.clientWidth > 0)
    .filter((el) => {
        const overflowX = getComputedStyle(el).overflowX;
        const scrolls = overflowX === 'auto' || overflowX === 'scroll';
        return el.tagName === 'TABLE' ? el.scrollWidth > el.parentElement.clientWidth + 1
                                      : scrolls && el.scrollWidth > el.clientWidth + 1;
    })
    .map((el) => `${el.tagName.toLowerCase()}#${el.id}.${[...el.classList].join('.')}`
                 + ` ${el.scrollWidth}>${el.clientWidth}`)"""


def screenshots(browser: Any, url: str, name: str, ready: str, *, before: Any = None) -> list[Path]:
    """Screenshots of ``url`` at 1280 and 390 px, light and dark, under artifacts/pages/.

    Asserts on the way that the page never scrolls sideways at either width.
    """
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    written = []
    for width, height in WIDTHS.items():
        for scheme in ("light", "dark"):
            context = browser.new_context(
                viewport={"width": width, "height": height}, color_scheme=scheme
            )
            shot_page = context.new_page()
            if before is not None:
                before(shot_page)
            shot_page.goto(url)
            shot_page.wait_for_selector(ready)
            shot_page.wait_for_timeout(300)  # let the last socket events paint
            overflow = shot_page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{name} scrolls sideways by {overflow}px at {width}px"
            clipped = shot_page.evaluate(CLIPPED_INSIDE_PANELS)
            assert clipped == [], f"{name} hides content behind a sideways scroll at {width}px"
            path = ARTIFACTS / f"{name}-{width}-{scheme}.png"
            shot_page.screenshot(path=str(path), full_page=True)
            written.append(path)
            context.close()
    return written


def sign_in_context(context: Any, url: str, token: str = ADMIN_TOKEN) -> dict[str, Any]:
    """Sign a browser context in (POST /api/session through the context, so the session
    cookie lands in its cookie jar, as the pages' sign-in forms do); the session's answer."""
    response = context.request.post(url + "/api/session", data={"token": token})
    assert response.ok, response.text()
    session = response.json()
    # What the sign-in form does with the answer: the CSRF token in Jupiter's own storage.
    context.add_init_script(
        f"if (location.origin === {url!r}) "
        f"localStorage.setItem('jupiter.csrf', {session['csrf_token']!r});"
    )
    return session


def sign_in_cookie(url: str, token: str = ADMIN_TOKEN):
    """A ``before`` hook for :func:`screenshots` that signs the page's context in."""

    def hook(shot_page: Any) -> None:
        sign_in_context(shot_page.context, url, token)

    return hook


def unnamed_controls(page: Any) -> list[str]:
    """Visible form controls and buttons that have no accessible name (should be none)."""
    return page.evaluate(
        """() => [...document.querySelectorAll('button, select, textarea, input, a[href]')]
               .filter((el) => el.offsetParent !== null)
               .filter((el) => !el.labels?.length && !el.getAttribute('aria-label')
                               && !el.getAttribute('aria-labelledby') && !el.textContent.trim())
               .map((el) => el.outerHTML)"""
    )
