"""Chat against a fault-injecting OpenAI upstream on loopback, through a real uvicorn and socket.

For each fault: the breaker opens, the fallback is served, the error is recorded, the socket
stays up, and chat recovers once the upstream is healthy again. Breaker and retry time runs on
a FakeClock; only the LLM's own request timeout (0.3 s, for hang and slow) is real time.
"""

from __future__ import annotations

import json

import httpx
import pytest
import websockets

from jupiter.service.app import create_app
from support.jupiter_app import ADMIN, recv_event, send_event
from support.server import ServerThread

THRESHOLD = 3
OPEN_SECONDS = 30.0


@pytest.fixture
def chat_server(settings_factory, clock, openai_upstream):
    """Jupiter chatting with the fault-injecting upstream (openai provider, fake clock)."""
    settings = settings_factory(
        llm_provider="openai",
        llm_base_url=openai_upstream.base_url,
        llm_api_key="sk-test-upstream-key-0123456789",
        llm_model="gpt-test",
        llm_timeout_seconds=0.3,
        breaker_failure_threshold=THRESHOLD,
        breaker_timeout_seconds=OPEN_SECONDS,
        retry_initial_delay_seconds=0.5,
        retry_max_delay_seconds=5.0,
        ws_chat_burst=20,
    )
    with ServerThread(create_app(settings, clock=clock)) as server:
        yield server


FAULTS = [
    pytest.param({"fault": "500"}, "upstream_error", id="500"),
    pytest.param({"fault": "429", "retry_after": 2}, "rate_limited", id="429-retry-after"),
    pytest.param({"fault": "hang", "hang_seconds": 3}, "timeout", id="hang"),
    pytest.param({"fault": "slow", "delay": 1.0}, "timeout", id="slow"),
    pytest.param({"fault": "malformed"}, "bad_upstream_response", id="malformed-json"),
    pytest.param(
        {"fault": "flapping", "pattern": ("500", "500", "500", "ok")},
        "upstream_error",
        id="flapping",
    ),
]


@pytest.mark.parametrize(("fault", "error_type"), FAULTS)
async def test_fault_opens_breaker_serves_fallback_records_error_and_recovers(
    chat_server, openai_upstream, clock, fault, error_type
):
    """The whole story of one upstream fault, seen through the socket and the REST API."""
    dashboard = chat_server.app.state.dashboard
    openai_upstream.set_fault(**fault)
    async with websockets.connect(chat_server.ws_url + "/ws", additional_headers=ADMIN) as ws:
        await recv_event(ws, "status_update")
        # 1. The upstream fails on every attempt (1 call + 2 retries): chat_error with fallback.
        await send_event(ws, "chat_message", {"message": "What is CVE-2021-44228?"})
        assert (await recv_event(ws, "chat_thinking"))["event"] == "chat_thinking"
        failed = await recv_event(ws, "chat_response", "chat_error", timeout=20)
        assert failed["event"] == "chat_error"
        data = failed["data"]
        assert {"type", "timestamp", "recoverable", "suggestion", "fallback"} <= set(data)
        if error_type:
            assert data["type"] == error_type
        assert data["recoverable"] is True
        assert "temporarily unavailable" in data["fallback"]
        assert "sk-test-upstream-key" not in str(data)
        assert len(openai_upstream.completion_requests) == THRESHOLD
        # 2. Three failed attempts opened the breaker; every socket was told.
        pushed = await recv_event(ws, "status_update")
        assert pushed["data"]["features"]["grok_chat"]["circuit_breaker"] == "open"
        assert dashboard.breakers["grok_chat"].state.value == "open"
        # 3. While open, chat is refused at once without touching the upstream.
        await send_event(ws, "chat_message", {"message": "still there?"})
        refused = await recv_event(ws, "chat_response", "chat_error")
        assert refused["data"]["type"] == "circuit_open"
        assert refused["data"]["retry_after"] > 0
        assert len(openai_upstream.completion_requests) == THRESHOLD
        # 4. The error was recorded (and is served by the REST API, redacted).
        async with httpx.AsyncClient(base_url=chat_server.url, headers=ADMIN) as client:
            recent = (await client.get("/api/recent-errors", params={"limit": 50})).json()
        chat_errors = [e for e in recent["errors"] if e["type"] == "chat_failure"]
        assert chat_errors
        assert "sk-test-upstream-key" not in str(recent)
        # 5. The socket is still up.
        await send_event(ws, "request_status")
        status = await recv_event(ws, "status_update")
        assert status["data"]["health"] == "degraded"
        # 6. The upstream comes back; after the open period a trial call closes the breaker.
        if fault["fault"] != "flapping":
            openai_upstream.set_fault("ok")
        openai_upstream.set_reply("Log4Shell is CVE-2021-44228.")
        clock.advance(OPEN_SECONDS + 1)
        await send_event(ws, "chat_message", {"message": "What is CVE-2021-44228?"})
        recovered = await recv_event(ws, "chat_response", "chat_error", timeout=20)
        assert recovered["event"] == "chat_response", recovered
        assert recovered["data"]["is_error"] is False
        assert recovered["data"]["response"] == "Log4Shell is CVE-2021-44228."
        closed = await recv_event(ws, "status_update")
        assert closed["data"]["features"]["grok_chat"]["circuit_breaker"] in ("half_open", "closed")
    assert dashboard.breakers["grok_chat"].state.value == "closed"
    openai_upstream.release()


async def test_flapping_upstream_is_absorbed_by_retries(chat_server, openai_upstream):
    """A 500 followed by a success is retried and answered; the breaker stays closed."""
    openai_upstream.set_fault("flapping", pattern=("500", "ok"))
    openai_upstream.set_reply("fine")
    async with websockets.connect(chat_server.ws_url + "/ws", additional_headers=ADMIN) as ws:
        await send_event(ws, "chat_message", {"message": "hello"})
        reply = await recv_event(ws, "chat_response", "chat_error", timeout=20)
    assert reply["event"] == "chat_response"
    assert reply["data"]["response"] == "fine"
    assert len(openai_upstream.completion_requests) == 2
    assert chat_server.app.state.dashboard.breakers["grok_chat"].state.value == "closed"


async def test_retry_after_hint_is_honoured_on_the_injected_clock(
    chat_server, openai_upstream, clock
):
    """A 429's Retry-After sets the wait before the next attempt (slept on the fake clock)."""
    openai_upstream.set_fault("429", retry_after=3)
    before = len(clock.sleeps)
    async with websockets.connect(chat_server.ws_url + "/ws", additional_headers=ADMIN) as ws:
        await send_event(ws, "chat_message", {"message": "hello"})
        await recv_event(ws, "chat_response", "chat_error", timeout=20)
    assert clock.sleeps[before:] == [3.0, 3.0]


async def test_history_sends_only_the_last_ten_messages(chat_server, openai_upstream):
    """After many turns the upstream gets the system prompt, 10 history messages, the question."""
    openai_upstream.set_reply("ok")
    async with websockets.connect(chat_server.ws_url + "/ws", additional_headers=ADMIN) as ws:
        for turn in range(8):
            await send_event(ws, "chat_message", {"message": f"question {turn}"})
            reply = await recv_event(ws, "chat_response", "chat_error", timeout=20)
            assert reply["event"] == "chat_response"
    sent = openai_upstream.completion_requests[-1].messages
    assert sent[0]["role"] == "system"
    assert "security" in sent[0]["content"]
    assert len(sent) == 1 + 10 + 1
    assert sent[-1] == {"role": "user", "content": "question 7"}
    assert sent[1]["content"] == "question 2"
    body = openai_upstream.completion_requests[-1].json
    assert body["temperature"] == 0.7
    assert body["max_tokens"] == 600


async def test_error_reply_from_the_llm_is_flagged(chat_server, openai_upstream):
    """A reply that is itself an error message comes back with is_error true and is recorded."""
    openai_upstream.set_reply("Error: model overloaded")
    async with websockets.connect(chat_server.ws_url + "/ws", additional_headers=ADMIN) as ws:
        await send_event(ws, "chat_message", {"message": "hello"})
        reply = await recv_event(ws, "chat_response", "chat_error", timeout=20)
    assert reply["event"] == "chat_response"
    assert reply["data"]["is_error"] is True
    stats = chat_server.app.state.dashboard.get_error_stats()
    assert stats["errors_by_type"].get("chat_error_reply") == 1


async def test_socket_stays_responsive_while_chat_hangs(chat_server, openai_upstream):
    """A hanging LLM call does not block the socket: status requests are answered meanwhile."""
    openai_upstream.set_fault("hang", hang_seconds=3)
    async with websockets.connect(chat_server.ws_url + "/ws", additional_headers=ADMIN) as ws:
        await recv_event(ws, "status_update")
        await send_event(ws, "chat_message", {"message": "hello"})
        await recv_event(ws, "chat_thinking")
        await send_event(ws, "request_status")
        status = await recv_event(ws, "status_update", "chat_error", "chat_response", timeout=0.25)
        assert status["event"] == "status_update"
        final = await recv_event(ws, "chat_response", "chat_error", timeout=20)
        assert final["event"] == "chat_error"
    openai_upstream.release()


async def test_each_socket_has_its_own_history_of_the_last_ten_messages(
    chat_server, openai_upstream
):
    """Two sockets chatting at once: the upstream never sees one socket's turns in the other's
    request, and each request carries only that socket's last 10 messages."""
    import asyncio

    openai_upstream.set_reply(None)  # echo the question, so replies name their socket too
    turns = 7

    async def chat(name: str) -> None:
        async with websockets.connect(chat_server.ws_url + "/ws", additional_headers=ADMIN) as ws:
            for turn in range(turns):
                await send_event(ws, "chat_message", {"message": f"{name} question {turn}"})
                reply = await recv_event(ws, "chat_response", "chat_error", timeout=20)
                assert reply["event"] == "chat_response", reply

    await asyncio.gather(chat("alpha"), chat("bravo"))
    requests = [r.messages for r in openai_upstream.completion_requests]
    assert len(requests) == 2 * turns
    for messages in requests:
        owner = messages[-1]["content"].split()[0]
        turn = int(messages[-1]["content"].split()[-1])
        history = messages[1:-1]
        assert messages[0]["role"] == "system"
        assert len(history) == min(2 * turn, 10)
        assert all(owner in m["content"] for m in history), messages
        other = "bravo" if owner == "alpha" else "alpha"
        assert not any(other in m["content"] for m in messages)
        # Only the newest turns are kept: the oldest one left is (turn - 5) once history is full.
        if history:
            assert history[0]["content"].endswith(f"question {max(0, turn - 5)}")


async def test_lone_surrogate_and_nul_are_cleaned_before_the_llm_sees_them(
    chat_server, openai_upstream
):
    """A hostile chat frame reaches the LLM cleaned and is answered, not counted as a failure."""
    openai_upstream.set_fault("ok")
    async with websockets.connect(chat_server.ws_url + "/ws", additional_headers=ADMIN) as ws:
        await recv_event(ws, "status_update")
        # json.dumps escapes the lone surrogate as a \\ud800 escape, as a hostile client sends it.
        frame = {"event": "chat_message", "data": {"message": "SQL\ud800 injection\u0000?"}}
        await ws.send(json.dumps(frame))
        reply = await recv_event(ws, "chat_response", "chat_error", timeout=20)
    assert reply["event"] == "chat_response"
    assert reply["data"]["is_error"] is False
    sent = openai_upstream.completion_requests[-1].json["messages"][-1]["content"]
    assert sent == "SQL\ufffd injection?"
    assert chat_server.app.state.dashboard.breakers["grok_chat"].metrics.failed == 0
