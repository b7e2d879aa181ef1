"""`jupiter serve` in a subprocess, killed with SIGKILL and restarted: nothing recorded is lost."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from sqlalchemy import func, select

from jupiter.storage import Database
from jupiter.storage.models import ErrorRecord, StateChange
from support.databases import postgres_schema, search_path_url
from support.server import ServerProcess, free_port


def wait_for_rows(database: Database, errors: int, changes: int, timeout: float = 15.0) -> None:
    """Poll the database until the background writer has committed the expected rows."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with database.session_factory() as session:
            have_errors = session.scalar(select(func.count()).select_from(ErrorRecord))
            have_changes = session.scalar(select(func.count()).select_from(StateChange))
        if have_errors >= errors and have_changes >= changes:
            return
        time.sleep(0.05)
    raise AssertionError(f"rows not written: {have_errors} errors, {have_changes} changes")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """SQLite in the data dir, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'jupiter.db'}"
        return
    base = request.getfixturevalue("postgres_url")
    with postgres_schema(base, "jupiter_restart") as schema:
        yield search_path_url(base, schema)


def test_kill_9_and_restart_keeps_recent_errors_and_history(tmp_path, database_url):
    """Errors and breaker history recorded before a SIGKILL are served after the restart."""
    dead_llm = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens: every chat call fails
    server = ServerProcess(
        tmp_path / "data",
        env={
            "JUPITER_DATABASE_URL": database_url,
            "JUPITER_LLM_PROVIDER": "openai",
            "JUPITER_LLM_BASE_URL": dead_llm,
            "JUPITER_LLM_API_KEY": "sk-restart-test-key-0123456789",
            "JUPITER_RETRY_INITIAL_DELAY_SECONDS": "0",
            "JUPITER_RETRY_MAX_DELAY_SECONDS": "0",
            "JUPITER_STORAGE_FLUSH_INTERVAL_SECONDS": "0.1",
            "JUPITER_BREAKER_FAILURE_THRESHOLD": "20",
        },
    )
    server.start()
    try:
        output = server.output()
        assert f"Jupiter is running at {server.url}/" in output
        token = server.admin_token
        assert f"Admin token:   {token}" in output
        admin = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=server.url, timeout=10, headers=admin) as client:
            for question in ("first question", "second question"):
                reply = client.post("/api/chat", json={"message": question}).json()
                assert reply["is_error"] is True
                assert reply["error"]["type"] == "connection_error"
            assert client.post("/api/breakers/pulse/force-open", headers=admin).status_code == 200
            before = client.get("/api/recent-errors", params={"limit": 100}).json()["errors"]
        assert len(before) == 2
        database = Database(database_url)
        wait_for_rows(database, errors=2, changes=1)
        database.dispose()
        server.kill()  # SIGKILL: no shutdown hook, no final flush
        server.start()  # same data dir, same port
        with httpx.Client(base_url=server.url, timeout=10) as client:
            after = client.get("/api/recent-errors", params={"limit": 100}).json()["errors"]
            history = client.get("/api/history", headers=admin).json()["changes"]
            stats = client.get("/api/error-stats").json()
        assert [(e["type"], e["message"]) for e in after] == [
            (e["type"], e["message"]) for e in before
        ]
        assert stats["errors_by_type"] == {"chat_failure": 2}
        assert ("community_pulse", "open") in [(c["component"], c["new_state"]) for c in history]
        assert "sk-restart-test-key" not in server.output()
    finally:
        server.stop()


def test_serve_with_json_logs_puts_the_request_id_on_every_line(tmp_path):
    """JUPITER_LOG_FORMAT=json: uvicorn's and Jupiter's lines are JSON with a request_id."""
    server = ServerProcess(
        tmp_path / "data",
        env={
            "JUPITER_LOG_FORMAT": "json",
            "JUPITER_LOG_LEVEL": "INFO",
            "JUPITER_LLM_PROVIDER": "offline",
        },
    )
    with server:
        httpx.get(server.url + "/api/status", headers={"X-Request-ID": "cli-json-1"}, timeout=10)
        token = server.admin_token
    records = [json.loads(line) for line in server.output().splitlines() if line.startswith("{")]
    assert records
    assert all("request_id" in r and "level" in r for r in records)
    assert any(r["request_id"] == "cli-json-1" and r.get("marker") == "📡" for r in records)
    assert any(r["logger"].startswith("uvicorn") for r in records)
    assert token not in "\n".join(json.dumps(r) for r in records)
