"""The acknowledgement points: what a response or socket event reports on is in the journal
before the client sees it, not merely by the journal's timer or the writer's next commit
(both are set minutes away here, so only the acknowledgement hook can have written it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import websockets

from jupiter.service.app import create_app
from jupiter.storage.journal import MAGIC, decode_frames
from support.jupiter_app import ADMIN, recv_event, running_app, send_event
from support.server import ServerThread

SLOW = {
    "storage_flush_interval_seconds": 60.0,
    "storage_flush_batch_size": 100_000,
    "journal_flush_interval_seconds": 5.0,
}


def journaled(data_dir: Path) -> list[tuple[Any, ...]]:
    """Every record on disk in the journal now (read straight from its segments)."""
    rows = []
    for segment in sorted((data_dir / "journal").glob("*.jnl")):
        entries, _, problem = decode_frames(segment.read_bytes()[len(MAGIC) :])
        assert problem is None
        rows += [row for _, row in entries]
    return rows


async def test_an_http_response_starts_only_after_its_records_are_journaled(settings_factory):
    """An error, a feature change and a breaker change made by requests, and a chat turn: each
    is on disk by the time its response has arrived."""
    settings = settings_factory(**SLOW)
    async with running_app(settings) as (app, client):
        client.headers.update(ADMIN)
        dashboard = app.state.dashboard
        assert dashboard.journal_ok()
        response = await client.post("/api/features/pulse/disable", json={"reason": "ack-1"})
        assert response.status_code == 200
        assert ("community_pulse", "disabled", "ack-1") in [
            (r[3], r[4], r[6]) for r in journaled(settings.data_dir) if r[0] == "state"
        ]
        await client.post("/api/breakers/intel/force-open")
        assert ("breaker", "threat_intelligence", "open") in [
            (r[2], r[3], r[4]) for r in journaled(settings.data_dir) if r[0] == "state"
        ]
        reply = await client.post(
            "/api/chat", json={"message": "What is CWE-89?", "conversation_id": "ack-c"}
        )
        assert reply.status_code == 200
        turns = [r for r in journaled(settings.data_dir) if r[0] == "chat"]
        assert [(r[2], r[4]) for r in turns] == [("ack-c", "user"), ("ack-c", "assistant")]
        assert turns[1][5] == reply.json()["response"]
        dashboard.record_error("made_by_hand", "no response carries this one", None)
        assert "made_by_hand" not in [r[2] for r in journaled(settings.data_dir)]
        await client.get("/healthz")  # any response: the buffer goes out before it
        assert "made_by_hand" in [r[2] for r in journaled(settings.data_dir)]
        assert dashboard.writer.stats.written == 0  # the database has none of it yet


async def test_a_socket_event_is_sent_only_after_its_records_are_journaled(settings_factory):
    """Chat over the socket: when chat_response arrives, both turns are on disk; a breaker
    change pushed as status_update is on disk when the push arrives."""
    settings = settings_factory(**SLOW)
    app = create_app(settings)
    with ServerThread(app) as server:
        async with websockets.connect(server.ws_url + "/ws", additional_headers=ADMIN) as ws:
            await recv_event(ws, "status_update")
            await send_event(ws, "chat_message", {"message": "What is CWE-79?"})
            await recv_event(ws, "chat_response")
            turns = [r for r in journaled(settings.data_dir) if r[0] == "chat"]
            assert [(r[3], r[4]) for r in turns] == [("ws", "user"), ("ws", "assistant")]
            # A change no request made (as a breaker tripping in the background does).
            app.state.dashboard.hub.loop.call_soon_threadsafe(
                app.state.dashboard.force_open_breaker, "pulse"
            )
            status = await recv_event(ws, "status_update")
            assert status["data"]["features"]["community_pulse"]["circuit_breaker"] == "open"
            assert ("breaker", "community_pulse", "open") in [
                (r[2], r[3], r[4]) for r in journaled(settings.data_dir) if r[0] == "state"
            ]
        assert app.state.dashboard.writer.stats.written == 0


async def test_readyz_and_metrics_report_a_full_journal_until_the_database_catches_up(
    settings_factory,
):
    """A 1 MiB journal and a writer that has not committed: records past the bound are kept in
    memory only, /metrics counts them and /readyz names the journal; once the writer commits
    (releasing the journal) the next record is journaled and /readyz is ready again."""
    settings = settings_factory(
        **SLOW, journal_max_bytes=1024 * 1024, journal_segment_bytes=64 * 1024
    )
    async with running_app(settings) as (app, client):
        client.headers.update(ADMIN)
        writer = app.state.dashboard.writer
        ready = (await client.get("/readyz")).json()
        assert ready["checks"]["journal"] is True
        for i in range(40):  # 40 x 60 KB: more than the journal holds
            writer.record_chat_message("big", "user", f"{i} " + "x" * 60_000)
            await client.get("/healthz")  # each acknowledged on its own
        metrics = (await client.get("/metrics")).text
        overflow = writer.journal.stats.overflow
        assert overflow > 0
        assert f"jupiter_journal_overflow_records_total {float(overflow)}" in metrics
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert "journal" in ready.json()["not_ready"]
        assert writer.flush(10)  # the database takes everything (from the writer's queue)
        await client.post("/api/features/pulse/disable", json={"reason": "room again"})
        assert (await client.get("/readyz")).status_code == 200


async def test_a_second_server_on_the_same_data_dir_runs_without_a_journal_and_says_so(
    settings_factory,
):
    """The journal is one process's: a second server on the same data dir still serves, logs
    why, and /readyz names the journal as not ready."""
    settings = settings_factory()
    async with running_app(settings) as (_first, _), running_app(settings) as (second, client):
        client.headers.update(ADMIN)
        assert "JournalLockedError" in (second.state.dashboard.journal_error or "")
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert "journal" in ready.json()["not_ready"]
        assert (await client.get("/api/feature-status")).status_code == 200


async def test_the_journal_can_be_switched_off(settings_factory):
    """journal_enabled=False: no journal directory, no journal check."""
    settings = settings_factory(journal_enabled=False)
    async with running_app(settings) as (app, client):
        client.headers.update(ADMIN)
        assert app.state.dashboard.writer.journal is None
        ready = (await client.get("/readyz")).json()
        assert "journal" not in ready["checks"]
        assert ready["ready"] is True
    assert not (Path(settings.data_dir) / "journal").exists()
