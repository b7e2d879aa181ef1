"""Containment against a real ``jupiter serve``: a parser worker killed by SIGSEGV mid-import,
one over its memory budget and one over its time budget each give the upload a clear 4xx while
the server stays up, stores nothing and keeps its scan_processing breaker closed (the file's
fault is not a failure of scan processing); the next upload works. No worker outlives the
server, whether it is stopped (SIGTERM) or killed (SIGKILL)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from support.procfs import alive, children
from support.scan_files import big_trivy, scan_with, valid_scan
from support.server import ServerProcess

MIB = 1024 * 1024


def wait_for(condition: Any, within: float = 30.0) -> Any:
    """Poll ``condition()`` until it is truthy (a state to reach, not a timeout under test)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"not reached within {within} s")


class Client:
    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.http = httpx.Client(
            base_url=server.url,
            headers={"Authorization": f"Bearer {server.admin_token}"},
            timeout=120,
        )

    @property
    def pid(self) -> int:
        assert self.server.process is not None
        return self.server.process.pid

    def upload(self, body: bytes, **params: Any) -> httpx.Response:
        return self.http.post(
            "/api/scans",
            content=body,
            params=params,
            headers={"content-type": "application/octet-stream"},
        )

    def total(self) -> int:
        return int(self.http.get("/api/scans").json()["total"])

    def scans_are_healthy(self) -> None:
        """Up, the breaker closed, no scan_failure counted, and a valid file still imports."""
        assert self.http.get("/healthz").status_code == 200
        features = self.http.get("/api/feature-status").json()
        assert features["scan_processing"]["circuit_breaker"] == "closed"
        stats = self.http.get("/api/error-stats").json()
        assert "scan_failure" not in stats["errors_by_type"]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    server = ServerProcess(
        tmp_path_factory.mktemp("contained"),
        env={
            "JUPITER_LLM_PROVIDER": "offline",
            "JUPITER_SCAN_MAX_MEMORY_BYTES": str(96 * MIB),
        },
    ).start(timeout=60)
    try:
        yield Client(server)
    finally:
        server.stop()


def test_a_worker_killed_by_sigsegv_mid_import_is_a_422(client: Client) -> None:
    before = client.total()
    accepted = client.upload(big_trivy(), wait="false", filename="big.json")
    assert accepted.status_code == 202, accepted.text
    job_url = accepted.json()["job_url"]

    def running() -> bool:
        job = client.http.get(job_url).json()
        return job["status"] == "running" and job["percent"] >= 1

    wait_for(running)  # the worker is reading the file
    (worker,) = children(client.pid)
    os.kill(worker, signal.SIGSEGV)
    job = wait_for(lambda: (j := client.http.get(job_url).json())["status"] == "error" and j)
    error = job["error"]
    assert error["type"] == "parser_crashed"
    assert error["signal"] == "SIGSEGV"
    assert "nothing was stored" in error["message"]
    assert client.total() == before
    recent = client.http.get("/api/recent-errors").json()["errors"]
    assert any(item["type"] == "scan_rejected" for item in recent)
    client.scans_are_healthy()
    assert not alive(worker)
    assert client.upload(valid_scan("trivy")).status_code == 201


def test_a_worker_over_its_memory_budget_is_a_413(client: Client) -> None:
    before = client.total()
    bomb = scan_with("sarif", b"[" + b"[]," * 2_000_000 + b"[]]")  # 6 MB: ~160 MB of lists
    response = client.upload(bomb)
    assert response.status_code == 413, response.text[:500]
    error = response.json()["error"]
    assert (error["type"], error["limit"], error["maximum"]) == (
        "input_limit_exceeded",
        "max_memory_bytes",
        96 * MIB,
    )
    assert error["location"]["json_path"].startswith("$.runs[0].results[0].rank[")
    assert "JUPITER_SCAN_MAX_MEMORY_BYTES" in error["suggestion"]
    assert client.total() == before
    client.scans_are_healthy()
    assert client.upload(valid_scan("sarif")).status_code == 201


def test_no_worker_outlives_the_server_and_the_time_budget(client: Client) -> None:
    """SIGTERM stops the server cleanly and takes its worker with it. Restarted with
    JUPITER_SCAN_MAX_SECONDS=0.5, a file needing more parse time is a 413 naming the JSON path
    reached. Then kill -9 of the server leaves no worker behind either. (Runs last: it stops
    the module's server.)"""
    server = client.server
    (worker,) = wait_for(lambda: children(client.pid))
    server.stop()
    assert server.process is not None
    assert server.process.poll() is not None
    assert not alive(worker)
    assert "Traceback" not in server.output()

    server.env["JUPITER_SCAN_MAX_SECONDS"] = "0.5"
    server.start(timeout=60)
    before = client.total()
    response = client.upload(big_trivy())
    assert response.status_code == 413, response.text[:500]
    error = response.json()["error"]
    assert (error["limit"], error["maximum"]) == ("max_seconds", 0.5)
    assert error["location"]["json_path"].startswith("$.Results[0].Vulnerabilities[")
    assert client.total() == before
    client.scans_are_healthy()

    (worker,) = wait_for(lambda: children(client.pid))
    server.kill()
    wait_for(lambda: not alive(worker), within=10)
