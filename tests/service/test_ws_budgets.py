"""The socket's budgets: frames (flood guard), JSON limits, pending requests, the send queue.

The flood guard and the send queue are tested on their own (fake clock, a scripted socket),
then end to end through a real uvicorn with real ``websockets`` clients, still on the fake
clock, so "how many frames in how much time" is exact.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets
from starlette.websockets import WebSocketState

from jupiter.service.app import create_app
from jupiter.service.hub import Connection, SendBudget, WebSocketHub
from jupiter.service.ratelimit import FloodGuard, TokenBucket
from support.jupiter_app import recv_event, send_event
from support.server import ServerThread

# ----- the flood guard --------------------------------------------------------------------


def guard(clock: Any, **overrides: Any) -> FloodGuard:
    options = {
        "burst": 10,
        "per_second": 5.0,
        "notice_interval": 1.0,
        "close_after_drops": 50,
        "close_window": 10.0,
    }
    options.update(overrides)
    return FloodGuard(clock=clock, **options)


def test_the_burst_is_admitted_then_frames_are_dropped_with_one_notice_per_interval(clock):
    flood = guard(clock)
    assert all(flood.admit().admitted for _ in range(10))
    verdicts = [flood.admit() for _ in range(20)]
    assert not any(v.admitted for v in verdicts)
    assert [v.notify for v in verdicts].count(True) == 1
    assert verdicts[0].notify
    assert verdicts[0].retry_after == pytest.approx(0.2)
    assert flood.dropped == 20
    clock.advance(0.5)  # 2.5 tokens back: two frames get in, the next is dropped silently
    assert flood.admit().admitted
    assert flood.admit().admitted
    third = flood.admit()
    assert not third.admitted
    assert not third.notify
    clock.advance(0.5)  # the interval has passed: the next drop is told again
    assert all(flood.admit().admitted for _ in range(3))  # half a token + 2.5 refilled
    again = flood.admit()
    assert not again.admitted
    assert again.notify
    assert not again.close


def test_a_sustained_flood_closes_but_a_burst_that_stops_does_not(clock):
    flood = guard(clock)
    for _ in range(10):
        flood.admit()
    drops = [flood.admit() for _ in range(50)]
    assert not any(v.close for v in drops)  # 50 drops: at the threshold, not over it
    assert flood.admit().close
    calm = guard(clock)
    for _ in range(10 + 40):
        calm.admit()
    clock.advance(10)  # both buckets refill: a flood that stopped is forgiven
    assert all(calm.admit().admitted for _ in range(10))
    assert not any(calm.admit().close for _ in range(50))


# ----- the send queue ---------------------------------------------------------------------


class StuckSocket:
    """A socket whose peer reads nothing: ``send_text`` waits until ``unblock``."""

    def __init__(self) -> None:
        self.client_state = WebSocketState.CONNECTED
        self.sent: list[str] = []
        self.closed_with: tuple[int, str] | None = None
        self.unblock = asyncio.Event()
        self.waiting = 0

    async def send_text(self, text: str) -> None:
        self.waiting += 1
        await self.unblock.wait()
        self.sent.append(text)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed_with = (code, reason)


def connection(socket: Any, **budget: int) -> Connection:
    conn = Connection(
        socket,
        rate_limit=TokenBucket(5, 1.0),
        budget=SendBudget(**{"messages": 10, "bytes": 10_000, **budget}),
    )
    conn.start()
    return conn


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_broadcasts_to_a_stuck_socket_drop_the_oldest_and_never_block():
    socket = StuckSocket()
    conn = connection(socket)
    hub = WebSocketHub()
    hub.add(conn)
    hub.broadcast("status_update", {"n": 0})
    await settle()  # the sender took it and is stuck writing it
    assert socket.waiting == 1
    for index in range(1, 1000):
        hub.broadcast("status_update", {"n": index, "pad": "x" * 200})
    messages, size = conn.queued
    assert messages <= 10
    assert size <= 10_000
    assert conn.dropped_broadcasts >= 980
    assert not conn.closing  # broadcasts alone never close a socket
    socket.unblock.set()
    await settle()
    numbers = [json.loads(text)["data"]["n"] for text in socket.sent]
    assert numbers[0] == 0  # the one already being written when the socket stuck
    assert numbers[-1] == 999  # the newest state always survives
    assert numbers == sorted(numbers)
    await conn.close()


async def test_a_direct_reply_over_the_budget_closes_with_1008_too_slow():
    """Replies are never dropped silently: once they do not fit (queued broadcasts dropped
    first), the socket is closed with 1008 and a reason, and the queue is freed."""
    socket = StuckSocket()
    conn = connection(socket, bytes=5_000)
    await conn.send("status_update", {"first": True})  # being written; the socket is stuck
    await settle()
    conn.send_nowait("status_update", {"pad": "b" * 2_000})
    for _ in range(2):
        await conn.send("threats_update", {"pad": "r" * 2_000})
    assert conn.dropped_broadcasts == 1  # the broadcast made room for the second reply
    assert not conn.closing
    await conn.send("threats_update", {"pad": "r" * 2_000})  # never waits
    assert conn.close_request is not None
    code, reason = conn.close_request
    assert code == 1008
    assert reason.startswith("too slow")
    assert conn.queued == (0, 0)
    await conn.send("chat_response", {"late": True})  # ignored: the socket is closing
    assert conn.queued == (0, 0)
    socket.unblock.set()
    await settle()
    assert socket.closed_with == (code, reason)
    await conn.close()


async def test_a_message_larger_than_the_whole_budget_still_goes_to_an_idle_socket():
    socket = StuckSocket()
    socket.unblock.set()
    conn = connection(socket, bytes=64 * 1024)
    await conn.send("threats_update", {"items": ["x" * 100_000]})
    await settle()
    assert len(socket.sent) == 1
    assert not conn.closing
    await conn.close()


# ----- end to end -------------------------------------------------------------------------


@pytest.fixture
def flood_server(settings_factory, clock):
    settings = settings_factory(
        ws_frame_burst=20,
        ws_frames_per_second=10.0,
        ws_flood_close_drops=100,
        ws_flood_close_window_seconds=10.0,
    )
    with ServerThread(create_app(settings, clock=clock)) as running:
        yield running


async def events_until(ws: Any, name: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Every event up to and including the first called ``name``."""
    seen: list[dict[str, Any]] = []

    async def read() -> None:
        while True:
            seen.append(json.loads(await ws.recv()))
            if seen[-1]["event"] == name:
                return

    await asyncio.wait_for(read(), timeout)
    return seen


async def flood_until_closed(ws: Any, frames: int) -> None:
    """Send ``frames`` frames, then read until the server closes the socket."""
    for _ in range(frames):
        await send_event(ws, "request_status")
    await events_until(ws, "never")


async def test_a_flood_is_throttled_told_once_per_interval_then_closed_with_1008(
    flood_server, clock
):
    """On the fake clock: 20 frames are answered, the rest dropped with one rate_limited
    error; after the interval, another; past 100 drops, close 1008 with a reason. A second
    client is answered throughout."""
    url = flood_server.ws_url + "/ws"
    async with websockets.connect(url) as ws, websockets.connect(url) as other:
        await recv_event(ws, "status_update")
        await recv_event(other, "status_update")
        for _ in range(60):
            await send_event(ws, "request_status")
        await send_event(ws, "request_pulse")  # a marker: dropped too, so it never answers
        await send_event(other, "request_status")
        assert (await recv_event(other, "status_update"))["event"] == "status_update"
        seen = await events_until(ws, "error")
        assert [e["event"] for e in seen] == ["status_update"] * 20 + ["error"]
        notice = seen[-1]["data"]
        assert notice["type"] == "rate_limited"
        assert notice["retry_after"] >= 1
        assert notice["limit"] == "ws_frames_per_second"
        assert notice["recoverable"] is True
        clock.advance(1.0)  # 10 frames' worth, and a new notice interval
        for _ in range(30):
            await send_event(ws, "request_status")
        seen = await events_until(ws, "error")
        assert [e["event"] for e in seen] == ["status_update"] * 10 + ["error"]
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await flood_until_closed(ws, 200)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1008
        assert "too many messages" in closed.value.rcvd.reason
        await send_event(other, "request_status")
        assert (await recv_event(other, "status_update"))["event"] == "status_update"


@pytest.fixture
def server(settings_factory, clock):
    with ServerThread(create_app(settings_factory(), clock=clock)) as running:
        yield running


@pytest.mark.parametrize(
    ("frame", "limit", "path"),
    [
        (
            '{"event": "request_status", "data": {"x": ' + "[" * 40 + "]" * 40 + "}}",
            "max_depth",
            "$.data.x",
        ),
        (
            '{"event": "request_status", "data": {"n": ' + "1" * 500 + "}}",
            "max_number_chars",
            "$.data.n",
        ),
        ('{"event": "request_status", "data": {"v": [' + "0," * 3000 + "0]}}", "max_values", "$"),
    ],
)
async def test_frames_over_a_json_limit_get_input_limit_exceeded_and_the_socket_stays_open(
    server, frame, limit, path
):
    async with websockets.connect(server.ws_url + "/ws") as ws:
        await recv_event(ws, "status_update")
        await ws.send(frame)
        error = (await recv_event(ws, "error"))["data"]
        assert error["type"] == "input_limit_exceeded"
        assert error["limit"] == limit
        assert error["location"]["json_path"].startswith(path)
        assert error["suggestion"]
        await send_event(ws, "request_status")
        assert (await recv_event(ws, "status_update"))["event"] == "status_update"


async def test_an_oversize_message_names_its_size_and_the_limit(server):
    async with websockets.connect(server.ws_url + "/ws") as ws:
        await ws.send(json.dumps({"event": "chat_message", "data": {"message": "é" * 9000}}))
        error = (await recv_event(ws, "error"))["data"]
    assert error["type"] == "message_too_large"
    assert error["limit"] == "max_bytes"
    assert error["maximum"] == 16 * 1024
    assert error["actual"] > 16 * 1024


async def test_requests_beyond_the_pending_limit_get_an_error_event(settings_factory, clock):
    """With 2 chats already thinking, a third request is refused at once (the socket keeps
    answering status requests); when they finish, requests are accepted again."""
    app = create_app(settings_factory(ws_max_pending_requests=2), clock=clock)
    with ServerThread(app) as server:
        dashboard = app.state.dashboard
        release = asyncio.Event()
        loop = asyncio.get_running_loop()
        original = dashboard.chat_with_jupiter

        async def slow_chat(*args: Any, **kwargs: Any) -> dict[str, Any]:
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(release.wait(), loop))
            return await original(*args, **kwargs)

        dashboard.chat_with_jupiter = slow_chat
        async with websockets.connect(server.ws_url + "/ws") as ws:
            for index in range(2):
                await send_event(ws, "chat_message", {"message": "hello", "id": index})
                await recv_event(ws, "chat_thinking")
            await send_event(ws, "request_threats")
            refused = (await recv_event(ws, "error", "threats_loading"))["data"]
            assert refused["type"] == "too_many_pending"
            assert refused["event"] == "request_threats"
            assert refused["maximum"] == 2
            await send_event(ws, "request_status")
            assert (await recv_event(ws, "status_update"))["event"] == "status_update"
            release.set()
            for _ in range(2):
                await recv_event(ws, "chat_response", "chat_error")
            await send_event(ws, "request_pulse")
            answer = await recv_event(ws, "pulse_update", "pulse_error", "error")
            assert answer["event"] == "pulse_update"
