"""Import progress on the socket, end to end: a real uvicorn on 127.0.0.1, a real WebSocket
client, uploads over real HTTP with ``wait=false``; scan_error compared with real chat_error
events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from jupiter.service.app import create_app
from support.jupiter_app import ADMIN, fast_settings, recv_event, send_event
from support.server import ServerThread


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    with ServerThread(create_app(fast_settings(tmp_path))) as running:
        yield running


async def scan_events(ws: Any, job_id: str, until: set[str]) -> list[dict[str, Any]]:
    """Socket events of one import job, up to and including the first of ``until``."""
    events = []
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
        data = message.get("data") or {}
        if message["event"].startswith("scan_") and data.get("job_id") == job_id:
            events.append(message)
            if message["event"] in until:
                return events


def big_trivy(builders: dict[str, Any], count: int) -> bytes:
    vulns = [
        builders["trivy_vulnerability"](f"CVE-2024-{10000 + n}", f"package-{n}", "1.0", "1.1")
        for n in range(count)
    ]
    report = builders["trivy_report"](
        [
            {
                "Target": "img (debian 12)",
                "Class": "os-pkgs",
                "Type": "debian",
                "Vulnerabilities": vulns,
            }
        ]
    )
    return json.dumps(report).encode()


async def test_progress_then_complete_reach_the_socket(
    server: ServerThread, builders: dict[str, Any]
) -> None:
    """scan_progress percentages rise to 100, then scan_complete carries the summary counts."""
    body = big_trivy(builders, 1500)
    async with (
        websockets.connect(server.ws_url + "/ws") as ws,
        httpx.AsyncClient(headers=ADMIN) as http,
    ):
        accepted = await http.post(
            server.url + "/api/scans?wait=false", files={"file": ("trivy.json", body)}
        )
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["job_id"]
        events = await scan_events(ws, job_id, {"scan_complete", "scan_error"})
        job = (await http.get(server.url + accepted.json()["job_url"])).json()
    names = [event["event"] for event in events]
    assert names[-1] == "scan_complete"
    assert set(names[:-1]) == {"scan_progress"}
    percents = [event["data"]["percent"] for event in events[:-1]]
    assert percents == sorted(percents)
    assert percents[0] == 0
    assert percents[-1] == 100
    assert len(percents) > 5
    assert all(event["data"]["total_bytes"] == len(body) for event in events[:-1])
    complete = events[-1]["data"]
    assert complete["findings"] == complete["new"] == 1500
    assert complete["by_severity"]["high"] == 1500
    assert complete["source_name"] == "trivy.json"
    assert job["status"] == "complete"
    assert job["result"]["scan_id"] == complete["scan_id"]


async def test_bad_file_in_background_gets_scan_error_with_chat_error_fields(
    server: ServerThread, builders: dict[str, Any]
) -> None:
    """A file that breaks half-way: scan_error has chat_error's fields and the JSON path."""
    document = json.loads(big_trivy(builders, 300))
    document["Results"][0]["Vulnerabilities"][250]["Severity"] = 5
    async with (
        websockets.connect(server.ws_url + "/ws") as ws,
        httpx.AsyncClient(headers=ADMIN) as http,
    ):
        accepted = await http.post(
            server.url + "/api/scans?wait=false", content=json.dumps(document).encode()
        )
        assert accepted.status_code == 202
        job_id = accepted.json()["job_id"]
        events = await scan_events(ws, job_id, {"scan_complete", "scan_error"})
        listing = (await http.get(server.url + "/api/scans")).json()
        job = (await http.get(server.url + f"/api/scans/jobs/{job_id}")).json()
    error = events[-1]
    assert error["event"] == "scan_error"
    data = error["data"]
    assert {"type", "message", "recoverable", "suggestion", "timestamp"} <= set(data)
    assert data["type"] == "malformed_scan"
    assert data["recoverable"] is False
    assert data["location"] == {"json_path": "$.Results[0].Vulnerabilities[250].Severity"}
    assert listing["total"] == 0
    assert job["status"] == "error"
    assert job["error"]["location"] == data["location"]


def _types(data: dict[str, Any]) -> dict[str, str]:
    return {key: type(value).__name__ for key, value in data.items()}


async def test_scan_error_carries_every_field_of_a_real_chat_error(server: ServerThread) -> None:
    """Bad input on both channels: scan_error has every field chat_error has, with the same
    types, plus where the problem is."""
    async with (
        websockets.connect(server.ws_url + "/ws") as ws,
        httpx.AsyncClient(headers=ADMIN) as http,
    ):
        await send_event(ws, "chat_message", {"message": "   "})
        chat_error = (await recv_event(ws, "chat_error"))["data"]
        accepted = await http.post(
            server.url + "/api/scans?wait=false",
            content=b'{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, '
            b'"results": [{"ruleId": "a", "level": "loud", "message": {"text": "m"}}]}]}',
        )
        assert accepted.status_code == 202, accepted.text
        events = await scan_events(ws, accepted.json()["job_id"], {"scan_complete", "scan_error"})
    scan_error = events[-1]["data"]
    assert events[-1]["event"] == "scan_error"
    assert chat_error["type"] == "empty_message"
    assert set(chat_error) >= {"type", "message", "recoverable", "suggestion", "timestamp"}
    missing = set(chat_error) - set(scan_error)
    assert not missing, f"scan_error lacks chat_error's {sorted(missing)}"
    assert {key: _types(scan_error)[key] for key in chat_error} == _types(chat_error)
    assert scan_error["type"] == "malformed_scan"
    assert scan_error["location"] == {"json_path": "$.runs[0].results[0].level"}
    assert "status" not in scan_error  # a socket event has no HTTP status, like chat_error


async def test_breaker_open_scan_error_matches_breaker_open_chat_error(
    server: ServerThread, builders: dict[str, Any]
) -> None:
    """With each component's breaker open, scan_error carries chat_error's error fields,
    retry_after included, and both say the failure is recoverable."""
    dashboard = server.app.state.dashboard
    dashboard.breaker("chat").force_open()
    dashboard.breaker("scans").force_open()
    async with (
        websockets.connect(server.ws_url + "/ws") as ws,
        httpx.AsyncClient(headers=ADMIN) as http,
    ):
        await send_event(ws, "chat_message", {"message": "What is CWE-79?"})
        chat_error = await recv_event(ws, "chat_error", "chat_response")
        accepted = await http.post(
            server.url + "/api/scans?wait=false", content=big_trivy(builders, 3)
        )
        assert accepted.status_code == 202, accepted.text
        events = await scan_events(ws, accepted.json()["job_id"], {"scan_complete", "scan_error"})
    assert chat_error["event"] == "chat_error"
    assert events[-1]["event"] == "scan_error"
    chat_data, scan_data = chat_error["data"], events[-1]["data"]
    # fallback (the canned chat answer) and feature_status belong to the chat reply itself.
    error_fields = set(chat_data) - {"fallback", "feature_status"}
    assert error_fields >= {"type", "message", "recoverable", "suggestion", "timestamp"}
    assert "retry_after" in error_fields
    missing = error_fields - set(scan_data)
    assert not missing, f"scan_error lacks chat_error's {sorted(missing)}"
    assert chat_data["recoverable"] is scan_data["recoverable"] is True
    assert scan_data["type"] == "scan_processing_unavailable"
    assert scan_data["retry_after"] > 0
