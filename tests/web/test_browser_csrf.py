"""Cross-site request forgery and socket hijacking, tried for real in Chromium.

A hostile page is served by a second loopback server (another port of 127.0.0.1: another
origin, but the same *site*, so the browser does send Jupiter's SameSite=Strict cookie with
its requests). The browser holds a signed-in admin session for Jupiter. From the hostile page:
cross-origin ``fetch`` with ``text/plain``, ``no-cors`` fetches, auto-submitted forms
(urlencoded, multipart, text/plain) against scan import, chat, breakers and features, an
``<img>`` GET, and a WebSocket. Afterwards nothing on the server has changed. The same actions
from Jupiter's own page succeed.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jupiter.service.app import create_app
from support.jupiter_app import ADMIN, fast_settings
from support.server import ServerThread
from support.static_site import StaticSite
from web.browser_support import sign_in_context

pytestmark = pytest.mark.browser

expect = pytest.importorskip("playwright.sync_api").expect

TRIVY = json.dumps(
    {
        "SchemaVersion": 2,
        "ArtifactName": "forged:1",
        "ArtifactType": "container_image",
        "Results": [
            {
                "Target": "forged",
                "Class": "os-pkgs",
                "Type": "debian",
                "Vulnerabilities": [
                    {
                        "VulnerabilityID": "CVE-2024-0001",
                        "PkgName": "openssl",
                        "InstalledVersion": "1",
                        "Severity": "HIGH",
                    }
                ],
            }
        ],
    }
)


class AccessLog(logging.Handler):
    """Jupiter's own access lines ("📡 POST /api/chat 200 ..."), kept for the assertions."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def succeeded(self, method: str, path: str) -> list[str]:
        return [
            line
            for line in self.lines
            if f" {method} {path} " in line and line.split()[3].startswith("2")
        ]


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """Jupiter on loopback (anonymous viewers may read; offline chat, which needs no sign-in)."""
    data_dir: Path = tmp_path_factory.mktemp("csrf-target")
    with ServerThread(create_app(fast_settings(data_dir))) as server:
        yield server


@pytest.fixture
def access_log() -> Iterator[AccessLog]:
    handler = AccessLog()
    logger = logging.getLogger("jupiter.http")
    previous = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(previous)


def server_state(target: ServerThread) -> dict[str, Any]:
    features = httpx.get(target.url + "/api/feature-status", headers=ADMIN).json()
    scans = httpx.get(target.url + "/api/scans", headers=ADMIN).json()
    return {
        "features": {name: (f["enabled"], f["circuit_breaker"]) for name, f in features.items()},
        "scans": scans["total"],
    }


def form(action: str, enctype: str, fields: dict[str, str]) -> str:
    inputs = "".join(
        f'<textarea name="{html.escape(name)}">{html.escape(value)}</textarea>'
        for name, value in fields.items()
    )
    return (
        f'<!doctype html><form id="f" method="POST" action="{action}" enctype="{enctype}">'
        f"{inputs}</form><script>document.getElementById('f').submit()</script>"
    )


SCRIPTED_ATTACKS = """async (target) => {
    const results = {};
    const attempt = async (name, run) => {
        try {
            results[name] = await run();
        } catch (error) {
            results[name] = `threw ${error.name}`;
        }
    };
    const textPlain = { "Content-Type": "text/plain" };
    await attempt("fetch text/plain disable chat", async () => (await fetch(
        `${target}/api/features/chat/disable`,
        { method: "POST", credentials: "include", headers: textPlain, body: '{"reason":"csrf"}' },
    )).status);
    await attempt("fetch text/plain import scan", async () => (await fetch(
        `${target}/api/scans?format=trivy`,
        { method: "POST", credentials: "include", headers: textPlain, body: window.TRIVY },
    )).status);
    await attempt("fetch text/plain chat", async () => (await fetch(
        `${target}/api/chat`,
        { method: "POST", credentials: "include", headers: textPlain,
          body: '{"message":"forged question"}' },
    )).status);
    for (const [name, path] of [
        ["no-cors force-open intel", "/api/breakers/intel/force-open"],
        ["no-cors disable pulse", "/api/features/pulse/disable"],
        ["no-cors import scan", "/api/scans?format=trivy"],
        ["no-cors chat", "/api/chat"],
        ["no-cors delete a scan", "/api/scans/1"],
    ]) {
        await attempt(name, async () => {
            const response = await fetch(`${target}${path}`, {
                method: "POST", mode: "no-cors", credentials: "include",
                headers: textPlain, body: name.includes("chat") ? '{"message":"x"}' : window.TRIVY,
            });
            return response.type;  // "opaque": the page cannot even see the status
        });
    }
    await attempt("cross-origin read", async () => (await fetch(
        `${target}/api/recent-errors`, { credentials: "include" },
    )).status);
    await attempt("img GET reset", () => new Promise((resolve) => {
        const img = new Image();
        img.onload = () => resolve("loaded");
        img.onerror = () => resolve("error");
        img.src = `${target}/api/reset-circuit-breaker/chat`;
    }));
    await attempt("websocket", () => new Promise((resolve) => {
        const ws = new WebSocket(`${target.replace("http", "ws")}/ws`, ["jupiter.v1"]);
        let opened = false;
        ws.onopen = () => {
            opened = true;
            ws.send('{"event":"chat_message","data":{"message":"x"}}');
        };
        ws.onmessage = () => resolve("received data");
        ws.onclose = (event) => resolve(opened ? `closed ${event.code}` : `refused ${event.code}`);
    }));
    return results;
}"""


def test_nothing_changes_when_another_origin_tries(
    browser: Any, target: ServerThread, access_log: AccessLog
) -> None:
    """Every forged request from the hostile origin is refused (403) or cannot even be made;
    the socket is refused at its handshake; the server's state is as before."""
    before = server_state(target)
    forms = {
        "/form-urlencoded.html": form(
            target.url + "/api/features/pulse/disable",
            "application/x-www-form-urlencoded",
            {"reason": "csrf"},
        ),
        "/form-multipart.html": form(
            target.url + "/api/scans?format=trivy",
            "multipart/form-data",
            {"file": TRIVY},
        ),
        "/form-breaker.html": form(
            target.url + "/api/breakers/chat/force-open", "multipart/form-data", {"x": "1"}
        ),
        "/form-text-chat.html": form(
            target.url + "/api/chat",
            "text/plain",
            {'{"message": "forged", "pad": "': '"}'},
        ),
    }
    attack_page = f"<!doctype html><script>window.TRIVY = {json.dumps(TRIVY)};</script>"
    with StaticSite({"/attack.html": attack_page, **forms}) as hostile:
        context = browser.new_context()
        sign_in_context(context, target.url)
        page = context.new_page()
        page.goto(hostile.url + "/attack.html")
        results = page.evaluate(SCRIPTED_ATTACKS, target.url)
        for path in forms:
            page.goto(hostile.url + path)
            page.wait_for_url(target.url + "/**")
            body = json.loads(page.locator("body").inner_text())
            assert body["error"]["status"] == 403, (path, body)
            assert body["error"]["type"] == "cross_origin_refused", (path, body)
        # The hostile server got Jupiter's cookie too (cookies ignore ports) ...
        leaked = [
            headers.get("Cookie", "")
            for _, _, headers in hostile.requests
            if "jupiter_session=" in headers.get("Cookie", "")
        ]
        context.close()

    # Sent (a "simple" request needs no preflight), refused with 403, and unreadable: with no
    # CORS header in the answer the page gets a TypeError, not even the status.
    for name, path in (
        ("fetch text/plain disable chat", "/api/features/chat/disable"),
        ("fetch text/plain import scan", "/api/scans"),
        ("fetch text/plain chat", "/api/chat"),
    ):
        assert results[name] == "threw TypeError", (name, results)
        assert any(f" POST {path} 403 " in line for line in access_log.lines), path
    for name in (
        "no-cors force-open intel",
        "no-cors disable pulse",
        "no-cors import scan",
        "no-cors chat",
        "no-cors delete a scan",
    ):
        assert results[name] == "opaque", (name, results)
    assert results["cross-origin read"] == "threw TypeError"  # CORS: no answer to read
    assert results["img GET reset"] == "error"  # a GET changes nothing (405)
    assert results["websocket"].startswith("refused"), results["websocket"]

    assert server_state(target) == before
    for method, path in (
        ("POST", "/api/features/chat/disable"),
        ("POST", "/api/features/pulse/disable"),
        ("POST", "/api/breakers/intel/force-open"),
        ("POST", "/api/breakers/chat/force-open"),
        ("POST", "/api/scans"),
        ("POST", "/api/chat"),
        ("POST", "/api/scans/1"),
    ):
        assert access_log.succeeded(method, path) == [], (method, path)
    refused = [line for line in access_log.lines if " 403 " in line]
    assert len(refused) >= 3 + 5 + len(forms), access_log.lines

    # ... but the cookie alone is no credential: its CSRF token lives in Jupiter's origin only.
    assert leaked, "the browser sent the cookie to the other port"
    cookie = leaked[0].split("jupiter_session=", 1)[1].split(";", 1)[0]
    stolen = {"Cookie": f"jupiter_session={cookie}"}
    assert httpx.get(target.url + "/api/session", headers=stolen).json()["authenticated"] is False
    forged = httpx.post(target.url + "/api/features/chat/disable", headers=stolen)
    assert forged.status_code == 403
    assert server_state(target) == before


OWN_PAGE_ACTIONS = """async () => {
    const csrf = localStorage.getItem("jupiter.csrf");
    const json = { "Content-Type": "application/json", "X-CSRF-Token": csrf };
    const results = {};
    results.disable = (await fetch("/api/features/pulse/disable",
        { method: "POST", headers: json, body: '{"reason":"own page"}' })).status;
    results.force = (await fetch("/api/breakers/intel/force-open",
        { method: "POST", headers: json })).status;
    results.chat = (await fetch("/api/chat",
        { method: "POST", headers: json, body: '{"message":"What is CWE-89?"}' })).status;
    const form = new FormData();
    form.append("file", new Blob([window.TRIVY], { type: "application/json" }), "own.json");
    results.scan = (await fetch("/api/scans", { method: "POST", headers: { "X-CSRF-Token": csrf },
        body: form })).status;
    results.socket = await new Promise((resolve) => {
        const protocols = ["jupiter.v1", `jupiter.csrf.${csrf}`];
        const ws = new WebSocket(`ws://${location.host}/ws`, protocols);
        ws.onmessage = (event) => { resolve(JSON.parse(event.data).event); ws.close(); };
        ws.onclose = (event) => resolve(`closed ${event.code}`);
    });
    return results;
}"""


def test_the_same_actions_from_jupiters_own_page_succeed(
    browser: Any, target: ServerThread
) -> None:
    """Signed in, on Jupiter's own origin (with the session's CSRF token), every one of those
    actions works, so the refusals above are the origin's, not the actions'."""
    context = browser.new_context()
    sign_in_context(context, target.url)
    page = context.new_page()
    page.goto(target.url + "/")
    expect(page.locator("#whoami")).to_have_attribute("data-role", "admin")
    page.evaluate(f"window.TRIVY = {json.dumps(TRIVY)}")
    before = server_state(target)["scans"]
    results = page.evaluate(OWN_PAGE_ACTIONS)
    context.close()
    assert results == {
        "disable": 200,
        "force": 200,
        "chat": 200,
        "scan": 201,
        "socket": "status_update",
    }
    state = server_state(target)
    assert state["features"]["community_pulse"][0] is False
    assert state["features"]["threat_intelligence"][1] == "open"
    assert state["scans"] == before + 1
    httpx.post(target.url + "/api/features/pulse/enable", headers=ADMIN)
    httpx.post(target.url + "/api/breakers/intel/reset", headers=ADMIN)
