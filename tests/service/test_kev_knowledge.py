"""KEV records the intel component stores reach the offline chat assistant and stored findings.

Real parts throughout: a KEV upstream on loopback speaking the CISA catalog format, the app on
a real uvicorn with the real ``websockets`` client, the offline knowledge base, the scans API
and the ``jupiter`` command.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import threading
from pathlib import Path
from typing import Any

import pytest
import websockets

from jupiter.cli import main
from jupiter.knowledge import default_knowledge_base
from jupiter.service.app import create_app
from jupiter.service.dashboard import JupiterDashboard
from jupiter.service.knowledge_sync import catalog_changed, kev_fingerprint, sync_signature
from support.jupiter_app import fast_settings, recv_event, running_app, send_event
from support.kev_upstream import KEV_PATH, KevUpstream, kev_catalog, kev_record
from support.server import ServerThread

OFFLINE_LABEL = "offline knowledge base"
QUESTION = "Is the Zorblax Quasar Gateway flux overflow exploited in the wild?"


def made_up_cve() -> str:
    """A CVE id no catalog has, new per test: the knowledge base is process-wide."""
    return f"CVE-2031-{random.randrange(10_000, 10_000_000)}"


def zorblax_record(cve_id: str) -> dict[str, Any]:
    """A KEV record about a product that exists nowhere else in the knowledge base."""
    return kev_record(
        cve_id,
        vendorProject="Zorblax",
        product="Quasar Gateway",
        vulnerabilityName="Zorblax Quasar Gateway Flux Overflow Vulnerability",
        shortDescription="Zorblax Quasar Gateway contains a flux overflow that allows remote "
        "code execution.",
        cwes=["CWE-787"],
    )


def trivy_report(*cves: str) -> bytes:
    """A minimal Trivy JSON report (schema version 2) with one finding per CVE."""
    vulnerabilities = [
        {
            "VulnerabilityID": cve,
            "PkgName": f"pkg-{cve.lower()}",
            "InstalledVersion": "1.0",
            "FixedVersion": "1.1",
            "Severity": "MEDIUM",
            "Title": "a flaw",
        }
        for cve in cves
    ]
    report = {
        "SchemaVersion": 2,
        "ArtifactName": "registry.example/app:1.4",
        "ArtifactType": "container_image",
        "Results": [{"Target": "img (debian 12)", "Class": "os-pkgs", "Type": "debian",
                     "Vulnerabilities": vulnerabilities}],
    }  # fmt: skip
    return json.dumps(report).encode()


async def wait_for(condition: Any, timeout: float = 15.0) -> None:
    """Poll ``condition()`` until it is true; background work has no completion event."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def ask(ws: Any, question: str) -> dict[str, Any]:
    """Send a chat_message and return its chat_response (or chat_error) event."""
    await send_event(ws, "chat_message", {"message": question})
    return await recv_event(ws, "chat_response", "chat_error", timeout=60)


def test_fingerprint_ignores_order_and_sees_every_change() -> None:
    """The catalog digest is order-free, and any record change or addition changes it."""
    first, second = kev_record("CVE-2024-0001"), kev_record("CVE-2024-0002")
    assert kev_fingerprint([first, second]) == kev_fingerprint([second, first])
    assert kev_fingerprint([first]) != kev_fingerprint([first, second])
    changed = {**first, "dueDate": "2099-01-01"}
    assert kev_fingerprint([changed, second]) != kev_fingerprint([first, second])
    assert catalog_changed(None, kev_fingerprint([first])) is False
    assert catalog_changed(kev_fingerprint([]), kev_fingerprint([first])) is True
    assert catalog_changed(kev_fingerprint([first]), kev_fingerprint([first])) is False


def test_sync_signature_tracks_successful_fetch_times() -> None:
    """The signature changes when a source's last successful fetch does, not otherwise."""
    payload = {"sources": {"kev": {"fetched_at": "2026-01-01T00:00:00Z"}, "attack": {}}}
    later = {"sources": {"kev": {"fetched_at": "2026-01-01T01:00:00Z"}, "attack": {}}}
    assert sync_signature(payload) == sync_signature(json.loads(json.dumps(payload)))
    assert sync_signature(payload) != sync_signature(later)
    assert sync_signature({"items": []}) == ()


async def test_chat_over_the_socket_cites_kev_that_a_feed_sync_stored(tmp_path: Path) -> None:
    """After request_threats syncs the KEV feed, the offline chat cites the new CVE."""
    cve = made_up_cve()
    with KevUpstream(kev_catalog([zorblax_record(cve)])) as upstream:
        app = create_app(fast_settings(tmp_path, kev_url=upstream.url, ws_chat_burst=10))
        with ServerThread(app) as server:
            dashboard = app.state.dashboard
            assert dashboard.services["grok_chat"].is_offline
            async with websockets.connect(server.ws_url + "/ws") as ws:
                before = await ask(ws, QUESTION)
                assert before["event"] == "chat_response"
                assert cve not in before["data"]["response"]

                await send_event(ws, "request_threats")
                update = await recv_event(ws, "threats_update", "threats_error", timeout=30)
                assert update["event"] == "threats_update", update
                assert cve in {item["id"] for item in update["data"]["items"]}
                assert upstream.requests_to(KEV_PATH)

                await wait_for(lambda: dashboard.knowledge_base.lookup_kev(cve) is not None)
                after = await ask(ws, QUESTION)
    assert after["event"] == "chat_response"
    answer = after["data"]
    assert answer["is_error"] is False
    assert cve in answer["response"]
    assert "Zorblax Quasar Gateway" in answer["response"]
    assert OFFLINE_LABEL in answer["response"]
    assert cve in answer["citations"]


async def test_feed_sync_reenriches_findings_only_when_the_catalog_changed(
    tmp_path: Path,
) -> None:
    """A sync that adds a CVE marks findings imported earlier; an unchanged one leaves them."""
    known, added = made_up_cve(), made_up_cve()
    with KevUpstream(kev_catalog([zorblax_record(known)])) as upstream:
        settings = fast_settings(tmp_path, kev_url=upstream.url)
        async with running_app(settings) as (app, http):
            dashboard = app.state.dashboard
            await dashboard.sync_feeds()
            imported = await http.post("/api/scans?format=trivy", content=trivy_report(added))
            assert imported.status_code == 201, imported.text
            assert imported.json()["kev_exploited"] == 0

            upstream.set_catalog(kev_catalog([zorblax_record(known), zorblax_record(added)]))
            result = await dashboard.sync_feeds()
            assert result["sources"]["kev"]["count"] == 2
            exploited = (await http.get("/api/findings", params={"kev": "true"})).json()
            assert [item["rule_id"] for item in exploited["items"]] == [added]
            assert exploited["items"][0]["priority"] == "critical-exploited"
            assert dashboard.knowledge_base.lookup_kev(added) is not None

            unchanged = await dashboard.propagate_kev()
    assert unchanged is not None
    assert unchanged.catalog_changed is False
    assert unchanged.findings is None
    assert unchanged.entries == 2


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data dir for the ``jupiter`` command, with no JUPITER_* settings leaking in."""
    for key in list(os.environ):
        if key.startswith("JUPITER_"):
            monkeypatch.delenv(key)
    data_dir = tmp_path / "data"
    monkeypatch.setenv("JUPITER_DATA_DIR", str(data_dir))
    monkeypatch.setenv("JUPITER_RETRY_INITIAL_DELAY_SECONDS", "0")
    monkeypatch.chdir(tmp_path)  # no stray .env
    return data_dir


async def test_cli_sync_refreshes_findings_and_the_server_loads_kev_at_start(
    cli_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """`jupiter feeds sync` re-enriches stored findings; a server started later answers with
    that KEV without syncing itself."""
    cve = made_up_cve()
    scan = tmp_path / "trivy.json"
    scan.write_bytes(trivy_report(cve))
    assert await asyncio.to_thread(main, ["scans", "import", str(scan), "--json"]) == 0
    capsys.readouterr()
    with KevUpstream(kev_catalog([zorblax_record(cve)])) as upstream:
        kev_url = upstream.url
        monkeypatch.setenv("JUPITER_KEV_URL", kev_url)
        assert await asyncio.to_thread(main, ["feeds", "sync"]) == 0
        first = json.loads(capsys.readouterr().out)
        assert await asyncio.to_thread(main, ["feeds", "sync"]) == 0
        second = json.loads(capsys.readouterr().out)
    assert first["findings_kev"] == {"checked": 1, "changed": 1}
    assert "findings_kev" not in second  # same catalog: nothing to re-apply

    # That upstream is gone: what the server knows comes from the database at start.
    async with running_app(fast_settings(cli_env, kev_url=kev_url)) as (app, http):
        dashboard = app.state.dashboard
        await wait_for(lambda: dashboard.knowledge_base.lookup_kev(cve) is not None)
        reply = (await http.post("/api/chat", json={"message": QUESTION})).json()
        exploited = (await http.get("/api/findings", params={"kev": "true"})).json()["items"]
    assert cve in reply["response"]
    assert OFFLINE_LABEL in reply["response"]
    assert [item["rule_id"] for item in exploited] == [cve]


class GatedKnowledgeBase:
    """The real knowledge base, whose KEV intake waits until the test opens the gate."""

    def __init__(self) -> None:
        self.real = default_knowledge_base()
        self.gate = threading.Event()
        self.received: list[str] = []

    def add_kev_entries(self, items: Any) -> int:
        items = list(items)
        assert self.gate.wait(30), "the gate was never opened"
        self.received.extend(item["cveID"] for item in items)
        return self.real.add_kev_entries(items)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


async def test_loading_kev_at_start_does_not_hold_up_startup(tmp_path: Path) -> None:
    """Start-up finishes while the knowledge base is still taking the stored KEV in."""
    cve = made_up_cve()
    with KevUpstream(kev_catalog([zorblax_record(cve)])) as upstream:
        settings = fast_settings(tmp_path, kev_url=upstream.url)
        seeded = JupiterDashboard(settings)
        await seeded.start()
        await seeded.sync_feeds()
        await seeded.stop()

    knowledge_base = GatedKnowledgeBase()
    dashboard = JupiterDashboard(settings, knowledge_base=knowledge_base)
    try:
        await asyncio.wait_for(dashboard.start(), timeout=30)
        assert dashboard.started
        assert knowledge_base.received == []
        knowledge_base.gate.set()
        await wait_for(lambda: cve in knowledge_base.received)
    finally:
        knowledge_base.gate.set()
        await dashboard.stop()
