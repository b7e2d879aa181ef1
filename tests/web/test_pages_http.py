"""The pages router over ASGI: pages, static files, headers, status summary, sign-in check."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from jupiter.service.routers.pages import STATIC_DIR, WEB_DIR, static_file
from support.jupiter_app import ADMIN, fast_settings, running_app

PAGES = {"/": "index.html", "/admin": "admin.html", "/status": "status.html"}


class _TagCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_bodies: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.script_bodies.append(data)


@pytest.fixture
async def client(tmp_path: Path):
    """A running app (offline, fast settings) and an httpx client on it."""
    async with running_app(fast_settings(tmp_path)) as (_app, http):
        yield http


@pytest.mark.parametrize(("path", "filename"), PAGES.items())
async def test_pages_are_served_with_security_headers(client, path: str, filename: str) -> None:
    """Each page is its HTML file, with CSP (script-src 'self', frame-ancestors 'none'),
    nosniff and a referrer policy."""
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.text == (WEB_DIR / filename).read_text(encoding="utf-8")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"]


@pytest.mark.parametrize("filename", PAGES.values())
def test_pages_have_no_inline_script_style_or_handlers(filename: str) -> None:
    """No inline script, no style attribute, no on* handler: the strict CSP would block them."""
    parser = _TagCollector()
    parser.feed((WEB_DIR / filename).read_text(encoding="utf-8"))
    scripts = [attrs for tag, attrs in parser.tags if tag == "script"]
    assert scripts, "every page loads its module"
    assert all(attrs.get("src", "").startswith("/static/js/") for attrs in scripts)
    assert all(attrs.get("type") == "module" for attrs in scripts)
    assert parser.script_bodies == []
    for tag, attrs in parser.tags:
        assert "style" not in attrs, tag
        assert not [name for name in attrs if name.startswith("on")], tag
    assert not any(tag == "style" for tag, _ in parser.tags)


def test_page_code_never_inserts_html() -> None:
    """No module uses innerHTML, outerHTML, insertAdjacentHTML, document.write or eval."""
    forbidden = re.compile(
        r"\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function\("
    )
    modules = sorted((STATIC_DIR / "js").glob("*.js"))
    assert len(modules) >= 6
    for module in modules:
        assert not forbidden.search(module.read_text(encoding="utf-8")), module.name


async def test_static_modules_and_css_have_their_media_types(client) -> None:
    """ES modules are text/javascript (required for type=module) and CSS is text/css."""
    js = await client.get("/static/js/dashboard.js")
    assert js.status_code == 200
    assert js.headers["content-type"].startswith("text/javascript")
    assert "content-security-policy" in js.headers
    css = await client.get("/static/css/jupiter.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")


async def test_pages_answer_head(client) -> None:
    """HEAD on a page answers 200 with no body (for probes and curl -I)."""
    response = await client.head("/status")
    assert response.status_code == 200
    assert response.content == b""


@pytest.mark.parametrize(
    "path",
    [
        "/static/../routers/pages.py",
        "/static/%2e%2e/%2e%2e/service/app.py",
        "/static/..%2f..%2fsettings.py",
        "/static/js/missing.js",
        "/static/",
        "/static/js",
        "/static//etc/passwd",
    ],
)
async def test_static_route_serves_nothing_outside_static(client, path: str) -> None:
    """Traversal, directories and missing files are a JSON 404."""
    response = await client.get(path)
    assert response.status_code == 404
    assert "error" in response.json()


def test_static_file_refuses_hidden_files_and_other_kinds(tmp_path: Path) -> None:
    """Hidden paths, backslashes, NUL and unlisted suffixes resolve to nothing."""
    assert static_file("js/dashboard.js") == STATIC_DIR / "js" / "dashboard.js"
    assert static_file(".hidden.js") is None
    assert static_file("js/../../index.html") is None
    assert static_file("js\\dashboard.js") is None
    assert static_file("js/dashboard.js\x00.css") is None
    assert static_file("/etc/passwd") is None


async def test_admin_session_checks_the_token(client) -> None:
    """The sign-in check is 401 without or with a wrong token and 200 with the right one."""
    assert (await client.get("/api/admin/session", auth=None)).status_code == 401
    wrong = await client.get("/api/admin/session", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert "error" in wrong.json()
    right = await client.get("/api/admin/session", headers=ADMIN)
    assert right.status_code == 200
    assert right.json() == {"ok": True}


async def test_status_summary_is_public_and_shows_the_live_state(client) -> None:
    """No login needed; four operational components with 90 bars each."""
    response = await client.get("/api/status/summary")
    assert response.status_code == 200
    body = response.json()
    assert body["status"]["indicator"] == "none"
    assert [c["id"] for c in body["components"]] == ["chat", "intel", "pulse", "scans"]
    assert all(len(c["days"]) == 90 for c in body["components"])
    assert body["history_available"] is True


async def test_status_summary_shows_incidents_without_reasons(tmp_path: Path) -> None:
    """A disabled feature and a forced-open breaker become incidents; the reason never shows."""
    secret_reason = "token sk-live-ABCDEF0123456789 leaked in /srv/secret.env"
    async with running_app(fast_settings(tmp_path)) as (app, http):
        disabled = await http.post(
            "/api/features/pulse/disable", json={"reason": secret_reason}, headers=ADMIN
        )
        assert disabled.status_code == 200
        forced = await http.post("/api/breakers/intel/force-open", headers=ADMIN)
        assert forced.status_code == 200
        app.state.status_summary_cache = None  # another test may have warmed it
        body = (await http.get("/api/status/summary")).json()
    kinds = {(i["component"], i["kind"], i["status"]) for i in body["incidents"]}
    assert ("pulse", "feature_disabled", "ongoing") in kinds
    assert ("intel", "breaker_open", "ongoing") in kinds
    statuses = {c["id"]: c["status"] for c in body["components"]}
    assert statuses["pulse"] == "under_maintenance"
    # Forced open by an admin: planned, so maintenance rather than an outage.
    assert statuses["intel"] == "under_maintenance"
    assert body["status"]["indicator"] == "maintenance"
    text = str(body)
    assert "sk-live" not in text
    assert "/srv/secret" not in text
