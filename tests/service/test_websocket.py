"""End-to-end socket tests: a real uvicorn on 127.0.0.1 and the real ``websockets`` client."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets

from jupiter.service.app import create_app
from support.jupiter_app import recv_event, send_event
from support.server import ServerThread


@pytest.fixture
def server(settings_factory, clock):
    """A real uvicorn serving the app (offline defaults, fake clock)."""
    with ServerThread(create_app(settings_factory(ws_chat_burst=3), clock=clock)) as running:
        yield running


async def test_connect_gets_a_status_update(server):
    """A new socket is told the current status at once."""
    async with websockets.connect(server.ws_url + "/ws") as ws:
        first = json.loads(await ws.recv())
    assert first["event"] == "status_update"
    assert set(first["data"]) == {"features", "errors", "timestamp", "health"}
    assert first["data"]["health"] == "healthy"


@pytest.mark.parametrize(
    ("frame", "error_type"),
    [
        ("{not json", "malformed_json"),
        (json.dumps({"event": "launch_missiles", "data": {}}), "unknown_event"),
        (json.dumps(["chat_message"]), "invalid_message"),
        (json.dumps({"data": {}}), "invalid_message"),
        (json.dumps({"event": "chat_message", "data": {"message": 42}}), "invalid_message"),
        (json.dumps({"event": "chat_message", "data": "hello"}), "invalid_message"),
        (
            json.dumps({"event": "chat_message", "data": {"message": "x" * 20_000}}),
            "message_too_large",
        ),
        (b"\x00\x01binary", "invalid_message"),
        # NaN is not JSON (RFC 8259): refused by the bounded parser before any handler sees it.
        ('{"event":"request_threats","data":{"filters":{"offset":NaN}}}', "malformed_json"),
    ],
)
async def test_bad_input_gets_an_error_event_and_the_socket_stays_open(server, frame, error_type):
    """Malformed JSON, unknown events, wrong types, oversize and binary frames never close it."""
    async with websockets.connect(server.ws_url + "/ws") as ws:
        await recv_event(ws, "status_update")
        await ws.send(frame)
        error = await recv_event(ws, "error")
        assert error["data"]["type"] == error_type
        assert error["data"]["message"]
        assert error["data"]["suggestion"]
        assert error["data"]["recoverable"] is True
        await send_event(ws, "request_status")
        status = await recv_event(ws, "status_update")
        assert status["data"]["health"] == "healthy"


async def test_chat_message_gets_thinking_then_a_response(server):
    """chat_thinking comes first, then chat_response with is_error and feature_status."""
    async with websockets.connect(server.ws_url + "/ws") as ws:
        await send_event(
            ws, "chat_message", {"message": "What are SQL injection risks?", "id": "q1"}
        )
        thinking = await recv_event(ws, "chat_thinking", "chat_response", "chat_error")
        assert thinking["event"] == "chat_thinking"
        assert thinking["data"]["reply_to"] == "q1"
        reply = await recv_event(ws, "chat_response", "chat_error", timeout=30)
    assert reply["event"] == "chat_response"
    assert reply["data"]["is_error"] is False
    assert "CWE-89" in reply["data"]["response"]
    assert reply["data"]["feature_status"]["circuit_breaker"] == "closed"
    assert reply["data"]["reply_to"] == "q1"


@pytest.mark.parametrize("message", ["", "   ", "\n\t "])
async def test_empty_chat_message_gets_chat_error_and_never_reaches_the_llm(server, message):
    """A blank message is refused with chat_error; the breaker sees no call."""
    breaker = server.app.state.dashboard.breakers["grok_chat"]
    async with websockets.connect(server.ws_url + "/ws") as ws:
        await send_event(ws, "chat_message", {"message": message})
        error = await recv_event(ws, "chat_error", "chat_thinking")
    assert error["event"] == "chat_error"
    assert error["data"]["type"] == "empty_message"
    assert {"type", "timestamp", "recoverable", "suggestion"} <= set(error["data"])
    assert breaker.metrics.calls == 0


async def test_chat_rate_limit_is_per_connection_on_the_injected_clock(server, clock):
    """A burst over the bucket is refused on that socket only; time refills it."""
    dashboard = server.app.state.dashboard
    dashboard.disable_feature("chat", "answer fast with the fallback")
    async with (
        websockets.connect(server.ws_url + "/ws") as ws,
        websockets.connect(server.ws_url + "/ws") as other,
    ):
        for _ in range(3):
            await send_event(ws, "chat_message", {"message": "hi"})
            assert (await recv_event(ws, "chat_response", "chat_error"))["event"] == "chat_response"
        await send_event(ws, "chat_message", {"message": "hi"})
        limited = await recv_event(ws, "chat_response", "chat_error")
        assert limited["event"] == "chat_error"
        assert limited["data"]["type"] == "rate_limited"
        assert limited["data"]["retry_after"] >= 1
        await send_event(other, "chat_message", {"message": "hi"})
        assert (await recv_event(other, "chat_response", "chat_error"))["event"] == "chat_response"
        clock.advance(10)
        await send_event(ws, "chat_message", {"message": "hi"})
        assert (await recv_event(ws, "chat_response", "chat_error"))["event"] == "chat_response"


async def test_disabled_chat_answers_with_the_fallback(server):
    """With chat disabled the reply is the fallback, flagged as an error."""
    server.app.state.dashboard.disable_feature("chat", "maintenance")
    async with websockets.connect(server.ws_url + "/ws") as ws:
        await send_event(ws, "chat_message", {"message": "hello"})
        reply = await recv_event(ws, "chat_response", "chat_error")
    assert reply["data"]["is_error"] is True
    assert reply["data"]["feature_status"]["enabled"] is False
    assert reply["data"]["feature_status"]["reason"] == "maintenance"


async def test_request_threats_gets_loading_then_update(server):
    """threats_loading, then threats_update whose count is the number of matching items, the
    same as the REST API's (filtered or not), and success."""
    async with websockets.connect(server.ws_url + "/ws") as ws:
        await send_event(ws, "request_threats")
        loading = await recv_event(ws, "threats_loading", "threats_update", "threats_error")
        assert loading["event"] == "threats_loading"
        update = await recv_event(ws, "threats_update", "threats_error", timeout=30)
        await send_event(ws, "request_threats", {"filters": {"query": "ransomware", "limit": 5}})
        filtered = await recv_event(ws, "threats_update", "threats_error", timeout=30)
    assert update["event"] == "threats_update"
    assert update["data"]["success"] is True
    async with httpx.AsyncClient(base_url=server.url) as client:
        everything = (await client.get("/api/threats", params={"limit": 1000})).json()
        matching = (
            await client.get("/api/threats", params={"q": "ransomware", "limit": 1000})
        ).json()
    assert everything["count"] > 0
    assert update["data"]["count"] == everything["count"]
    assert update["data"]["returned"] == len(update["data"]["items"])
    assert update["data"]["count"] >= len(update["data"]["items"])
    # A filter narrows the count to the matching items, not to the page returned.
    assert 5 < matching["count"] < everything["count"]
    assert filtered["data"]["count"] == matching["count"]
    assert len(filtered["data"]["items"]) == 5
    assert all("ransomware" in json.dumps(item).lower() for item in matching["items"])


async def test_request_threats_while_disabled_gets_threats_error(server):
    """A disabled intel component answers threats_error with the standard fields."""
    server.app.state.dashboard.disable_feature("intel", "testing")
    async with websockets.connect(server.ws_url + "/ws") as ws:
        await send_event(ws, "request_threats")
        error = await recv_event(ws, "threats_update", "threats_error")
    assert error["event"] == "threats_error"
    assert {"type", "message", "recoverable", "suggestion", "timestamp"} <= set(error["data"])


async def test_request_pulse_gets_pulse_update_or_error(server):
    """request_pulse answers pulse_update (no feeds configured) and pulse_error when disabled."""
    async with websockets.connect(server.ws_url + "/ws") as ws:
        await send_event(ws, "request_pulse")
        update = await recv_event(ws, "pulse_update", "pulse_error")
        assert update["event"] == "pulse_update"
        assert "sources" in update["data"]
        server.app.state.dashboard.disable_feature("pulse", "testing")
        await send_event(ws, "request_pulse")
        error = await recv_event(ws, "pulse_update", "pulse_error")
        assert error["event"] == "pulse_error"


async def test_state_changes_push_status_update_to_every_client(server):
    """A breaker opening (from another thread) reaches all 20 sockets without any request."""
    dashboard = server.app.state.dashboard
    clients = [await websockets.connect(server.ws_url + "/ws") for _ in range(20)]
    try:
        for ws in clients:
            await recv_event(ws, "status_update")
        await asyncio.to_thread(dashboard.force_open_breaker, "pulse")
        pushed = await asyncio.gather(*(recv_event(ws, "status_update") for ws in clients))
        for message in pushed:
            assert message["data"]["features"]["community_pulse"]["circuit_breaker"] == "open"
            assert message["data"]["health"] == "degraded"
        await asyncio.to_thread(dashboard.disable_feature, "scans", "testing")
        pushed = await asyncio.gather(*(recv_event(ws, "status_update") for ws in clients))
        for message in pushed:
            assert message["data"]["features"]["scan_processing"]["enabled"] is False
    finally:
        for ws in clients:
            await ws.close()


async def test_many_sockets_chatting_at_once_each_get_their_own_answers(server):
    """Concurrent sockets get replies to their own questions (per-connection history)."""
    dashboard = server.app.state.dashboard
    dashboard.disable_feature("chat", "fallback keeps this fast")

    async def one(index: int) -> dict:
        async with websockets.connect(server.ws_url + "/ws") as ws:
            await send_event(ws, "chat_message", {"message": f"q{index}", "id": index})
            return await recv_event(ws, "chat_response", "chat_error")

    replies = await asyncio.gather(*(one(i) for i in range(15)))
    assert sorted(r["data"]["reply_to"] for r in replies) == list(range(15))


async def test_publish_from_any_thread_reaches_every_socket(server):
    """Components (e.g. scans) push events with dashboard.publish from worker threads."""
    dashboard = server.app.state.dashboard
    async with (
        websockets.connect(server.ws_url + "/ws") as a,
        websockets.connect(server.ws_url + "/ws") as b,
    ):
        await recv_event(a, "status_update")
        await recv_event(b, "status_update")
        await asyncio.to_thread(dashboard.publish, "scan_progress", {"percent": 40})
        for ws in (a, b):
            event = await recv_event(ws, "scan_progress")
            assert event["data"] == {"percent": 40}


async def test_open_period_ending_pushes_half_open_without_any_request(settings_factory, clock):
    """When a breaker's open time passes, every socket gets a status_update showing half_open,
    though no call through the breaker (which would make the change) was made."""
    settings = settings_factory(breaker_failure_threshold=2, breaker_timeout_seconds=30.0)
    app = create_app(settings, clock=clock, breaker_watch_interval=0.05)
    with ServerThread(app) as running:
        breaker = running.app.state.dashboard.breakers["community_pulse"]

        def fail() -> None:
            raise ConnectionError("feed host unreachable")

        async with websockets.connect(running.ws_url + "/ws") as ws:
            await recv_event(ws, "status_update")
            for _ in range(2):
                with pytest.raises(ConnectionError):
                    await asyncio.to_thread(breaker.call, fail)
            opened = await recv_event(ws, "status_update")
            assert opened["data"]["features"]["community_pulse"]["circuit_breaker"] == "open"
            calls = breaker.metrics.calls
            clock.advance(29)
            await asyncio.sleep(0.3)  # the watcher looks several times; still open
            assert breaker.state.value == "open"
            clock.advance(2)
            pushed = await recv_event(ws, "status_update", timeout=5)
            assert pushed["data"]["features"]["community_pulse"]["circuit_breaker"] == "half_open"
            assert breaker.metrics.calls == calls


def test_docs_show_a_json_example_for_every_event():
    """docs/websocket.md has a JSON example of every event either side sends."""
    import re
    from pathlib import Path

    from jupiter.service.protocol import CLIENT_EVENTS, SERVER_EVENTS

    docs = Path(__file__).resolve().parents[2] / "docs" / "websocket.md"
    blocks = re.findall(r"```json\n(.*?)```", docs.read_text(encoding="utf-8"), re.DOTALL)
    shown = set()
    for block in blocks:
        if "<name>" in block:
            continue  # the envelope's outline, not an example
        shown.add(json.loads(block)["event"])  # each example is one valid message
    missing = (set(CLIENT_EVENTS) | set(SERVER_EVENTS)) - shown
    assert not missing, f"no JSON example for {sorted(missing)}"
    assert "1009" in docs.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ('{"limit":"abc"}', "limit"),
        ('{"limit":true}', "limit"),
        ('{"limit":1.5}', "limit"),
        ('{"limit":-1}', "limit"),
        ('{"offset":99999999999999999999999}', "offset"),
        ('{"source":[1]}', "source"),
        ('{"query":5}', "query"),
        ('{"query":"\\ud800"}', "query"),
        ('{"query":"a\\u0000b"}', "query"),
        ('{"severity":"bogus"}', "severity"),
        ('{"colour":"red"}', "colour"),
        ('"x"', "filters"),
        ("[1, 2]", "filters"),
    ],
)
async def test_bad_threat_filters_get_a_validation_error_naming_the_field(server, filters, field):
    """request_threats with a bad filter gets an ``error`` event (validation_error, the field
    named) before any threats_loading; the socket stays open and intel records no failure."""
    frame = '{"event":"request_threats","data":{"filters":' + filters + "}}"
    async with websockets.connect(server.ws_url + "/ws") as ws:
        await recv_event(ws, "status_update")
        await ws.send(frame)
        answer = await recv_event(ws, "error", "threats_loading", "threats_update", "threats_error")
        assert answer["event"] == "error"
        assert answer["data"]["type"] == "validation_error"
        assert answer["data"]["field"] == field
        assert field in answer["data"]["message"]
        assert answer["data"]["recoverable"] is True
        assert answer["data"]["suggestion"]
        await send_event(ws, "request_status")
        status = await recv_event(ws, "status_update")
    assert status["data"]["features"]
    async with httpx.AsyncClient(base_url=server.url) as client:
        stats = (await client.get("/api/error-stats")).json()
        features = (await client.get("/api/feature-status")).json()
    assert stats["errors_by_type"] == {}
    assert features["threat_intelligence"]["failures"] == 0
    assert features["threat_intelligence"]["circuit_breaker"] == "closed"
