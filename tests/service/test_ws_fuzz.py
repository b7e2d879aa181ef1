"""WebSocket fuzz: hostile clients against a real ``jupiter serve`` process.

Malformed JSON (hand-written and seeded random mutations), binary frames, 1 MB and 16 MB
frames, 5,000 frames a second, and readers that never read while the server broadcasts or
answers. Each hostile socket gets ``error`` events or a clean close with a code and reason; a
second, well-behaved client gets its answers within a bound throughout; and the server's RSS
(from ``/proc/<pid>/status``) grows by less than 100 MB.

The figures (frames sent, events received, max RSS growth) are printed at the end of the module
(``pytest -s``) and kept in ``FIGURES``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

from support.jupiter_app import recv_event, send_event
from support.server import ServerProcess

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="RSS is read from /proc (Linux only)"
)

MB = 1024 * 1024
#: The bound on the server's RSS growth over the whole module.
MAX_RSS_GROWTH = 100 * MB
#: How long the well-behaved client may wait for any one answer while hostile clients run.
ANSWER_BOUND = 2.0
#: Short so the never-reading sockets are dropped within the test (the default is 30 s).
STALL_SECONDS = 3.0

FIGURES: dict[str, Any] = {"frames_sent": 0, "events_received": 0, "max_rss_growth_mb": 0.0}


def rss_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    assert match is not None
    return int(match.group(1)) * 1024


class RssWatch:
    """Samples the server's RSS every 20 ms in a thread; ``peak`` is the highest seen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.baseline = rss_bytes(pid)
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            with contextlib.suppress(OSError, AssertionError):
                self.peak = max(self.peak, rss_bytes(self.pid))

    @property
    def growth(self) -> int:
        return self.peak - self.baseline

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture(scope="module")
def jupiter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {
        "JUPITER_LLM_PROVIDER": "offline",
        "JUPITER_WRITE_STALL_TIMEOUT_SECONDS": str(STALL_SECONDS),
    }
    server = ServerProcess(tmp_path_factory.mktemp("fuzz"), env=env)
    server.start(timeout=90)  # a loaded CI machine can take a while to import and start
    try:
        yield server
    finally:
        server.stop()
    print(
        f"\nWebSocket fuzz: {FIGURES['frames_sent']} frames sent, "
        f"{FIGURES['events_received']} events received, "
        f"max RSS growth {FIGURES['max_rss_growth_mb']:.1f} MB "
        f"(baseline {FIGURES.get('baseline_rss_mb', 0):.1f} MB)\n"
        + "\n".join(f"  {key}: {value}" for key, value in FIGURES.items())
    )


@pytest.fixture(scope="module")
def rss(jupiter: ServerProcess) -> Iterator[RssWatch]:
    """The RSS watch, started after a warm-up (every event type answered once)."""

    async def warm_up() -> None:
        async with websockets.connect(
            jupiter.ws_url + "/ws", additional_headers=auth(jupiter)
        ) as ws:
            await recv_event(ws, "status_update")
            await send_event(ws, "request_threats", {"filters": {"limit": 1000}})
            await recv_event(ws, "threats_update", "threats_error", timeout=30)
            await send_event(ws, "request_pulse")
            await recv_event(ws, "pulse_update", "pulse_error")
            await send_event(ws, "chat_message", {"message": "What is XSS?"})
            await recv_event(ws, "chat_response", "chat_error", timeout=30)

    asyncio.run(warm_up())
    assert jupiter.process is not None
    watch = RssWatch(jupiter.process.pid)
    FIGURES["baseline_rss_mb"] = watch.baseline / MB
    yield watch
    watch.stop()


@pytest.fixture(autouse=True)
def rss_stays_bounded(rss: RssWatch, jupiter: ServerProcess) -> Iterator[None]:
    """After every scenario: the process is alive and its RSS grew by less than 100 MB."""
    yield
    time.sleep(0.05)  # one more sample after the scenario's last frame
    FIGURES["max_rss_growth_mb"] = max(FIGURES["max_rss_growth_mb"], rss.growth / MB)
    assert jupiter.process is not None
    assert jupiter.process.poll() is None, jupiter.output()[-2000:]
    assert httpx.get(jupiter.url + "/healthz", timeout=5).status_code == 200
    assert rss.growth < MAX_RSS_GROWTH, f"RSS grew by {rss.growth / MB:.1f} MB"


def auth(server: ServerProcess) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.admin_token}"}


@contextlib.asynccontextmanager
async def connected(server: ServerProcess, **options: Any) -> AsyncIterator[Any]:
    async with websockets.connect(
        server.ws_url + "/ws", additional_headers=auth(server), **options
    ) as ws:
        await recv_event(ws, "status_update")
        yield ws


class Watchdog:
    """A well-behaved client asking for the status over and over while a hostile one runs;
    records how long each answer took."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.latencies: list[float] = []
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._ready = asyncio.Event()

    async def _run(self) -> None:
        # Unbounded client-side buffering: broadcasts it skips must not pause its own reading
        # (websockets would then miss the server's close reply and wait out close_timeout).
        async with connected(self.server, max_queue=None) as ws:
            while not self._stop.is_set():
                started = time.monotonic()
                await send_event(ws, "request_status")
                await recv_event(ws, "status_update", timeout=10)
                self.latencies.append(time.monotonic() - started)
                self._ready.set()
                await asyncio.sleep(0.1)  # well within its own frame budget

    async def __aenter__(self) -> Watchdog:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._ready.wait(), 10)  # connected and answered once
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._task is not None
        await asyncio.wait_for(self._task, 15)
        assert self.latencies, "the well-behaved client got no answer at all"
        assert max(self.latencies) < ANSWER_BOUND, f"slowest answer {max(self.latencies):.2f}s"


def count(sent: int = 0, received: int = 0) -> None:
    FIGURES["frames_sent"] += sent
    FIGURES["events_received"] += received


# ----- malformed and binary frames --------------------------------------------------------

HOSTILE_FRAMES: list[str | bytes] = [
    "",
    "{",
    "}",
    "null",
    "[]",
    '"event"',
    "{'event': 'request_status'}",
    '{"event": "request_status", "data": {}',
    '{"event": "request_status", "data": {}}}',
    '{"event": "request_status", "data": NaN}',
    '{"event": "request_status", "data": [Infinity]}',
    '{"event": "request_status", "data": {"n": 1e999}}',
    '{"event": "request_status", "data": {"n": ' + "9" * 10_000 + "}}",
    "[" * 100_000,  # 10^5 deep: over the byte limit before any parsing
    "[" * 5000 + "]" * 5000,
    '{"event": "' + "A" * 15_000 + '"}',
    '{"event": "\\ud800", "data": {}}',
    '{"event": "request_status\\u0000", "data": {}}',
    '{"event": "chat_message", "data": {"message": "' + "\\u0000" * 2000 + '"}}',
    '{"event": 42}',
    '{"event": "chat_message", "data": {"message": ["not", "a", "string"]}}',
    '{"event": "request_threats", "data": {"filters": {"limit": "' + "9" * 80 + '"}}}',
    "\ufeff" * 3000,
    "\x00" * 1000,
    b"\x00\x01\x02binary",
    b"\xff\xfe" * 4096,
    b"",
]


def mutations(seed: int, count: int) -> list[str]:
    """Seeded random damage to a valid frame: deleted, repeated, swapped or random characters."""
    rng = random.Random(seed)
    valid = '{"event": "request_status", "data": {}}'
    alphabet = '{}[]",:\\ 0123456789.eE-+tfnul' + "\x00\u2028\ud7ff\uffff"
    frames = []
    for _ in range(count):
        text = list(valid)
        for _ in range(rng.randint(1, 6)):
            position = rng.randrange(len(text) + 1)
            action = rng.random()
            if action < 0.3 and text:
                del text[min(position, len(text) - 1)]
            elif action < 0.6:
                text.insert(position, rng.choice(alphabet))
            elif action < 0.8 and text:
                text[min(position, len(text) - 1)] = rng.choice(alphabet)
            else:
                text[position:position] = text[: rng.randint(1, 10)] * rng.randint(1, 50)
        frames.append("".join(text))
    return frames


async def test_malformed_and_binary_frames_each_get_one_error_and_the_socket_stays_open(jupiter):
    """Every hostile frame gets exactly one answer: an ``error`` event naming the problem (or,
    for a mutation that happens to be valid, its status_update); the socket stays open. A new
    socket every 40 frames keeps each within its frame budget."""
    frames: list[str | bytes] = [*HOSTILE_FRAMES, *mutations(seed=9, count=400)]
    errors: dict[str, int] = {}
    async with Watchdog(jupiter):
        for start in range(0, len(frames), 40):
            async with connected(jupiter) as ws:
                for frame in frames[start : start + 40]:
                    await ws.send(frame)
                    answer = await recv_event(ws, "error", "chat_error", "status_update")
                    count(sent=1, received=1)
                    if answer["event"] != "status_update":
                        data = answer["data"]
                        assert data["message"]
                        assert data["suggestion"]
                        assert data["recoverable"] is True
                        errors[data["type"]] = errors.get(data["type"], 0) + 1
                await send_event(ws, "request_status")
                await recv_event(ws, "status_update")
                count(sent=1, received=1)
    assert set(errors) <= {
        "empty_message",  # a chat message of NULs only: chat_error, never the LLM
        "validation_error",  # a threat filter that is not a number
        "malformed_json",
        "invalid_message",
        "unknown_event",
        "message_too_large",
        "input_limit_exceeded",
    }
    assert {
        "malformed_json",
        "invalid_message",
        "message_too_large",
        "input_limit_exceeded",
    } <= set(errors)
    FIGURES["malformed"] = errors


async def test_a_text_frame_that_is_not_utf8_is_closed_with_1007(jupiter):
    """A text frame must be UTF-8 (RFC 6455 §8.1); the server closes with 1007."""
    async with RawSocket.open(jupiter) as raw:
        raw.send(Frame(Opcode.TEXT, b'{"event": "\xff"}'))
        count(sent=1)
        close = await raw.read_until_closed()
    assert close is not None
    assert close.code == 1007


# ----- oversize frames --------------------------------------------------------------------


async def send_and_wait_for_the_close(ws: Any, frame: str) -> None:
    await ws.send(frame)
    await recv_event(ws, "never")


async def test_a_1_mb_frame_gets_an_error_event_and_a_16_mb_frame_a_1009_close(jupiter):
    async with Watchdog(jupiter):
        async with connected(jupiter, max_size=None) as ws:
            await ws.send(json.dumps({"event": "chat_message", "data": {"message": "x" * MB}}))
            error = (await recv_event(ws, "error"))["data"]
            count(sent=1, received=1)
            assert error["type"] == "message_too_large"
            assert error["actual"] > MB
            await send_event(ws, "request_status")
            await recv_event(ws, "status_update")
            count(sent=1, received=1)
        async with connected(jupiter, max_size=None) as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await send_and_wait_for_the_close(ws, "x" * (16 * MB))
            count(sent=1)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009
        assert closed.value.rcvd.reason  # websockets names the size and the limit


# ----- floods -----------------------------------------------------------------------------


async def test_5000_frames_a_second_are_throttled_then_closed_with_1008(jupiter):
    """A client sending 5,000 frames a second: a few are answered, the rest dropped with one
    rate_limited error per second, and the sustained flood is closed with 1008 and a reason.
    The well-behaved client's answers stay within the bound."""
    frame = json.dumps({"event": "request_status", "data": {}})
    async with Watchdog(jupiter), connected(jupiter) as ws:
        received: list[dict[str, Any]] = []

        async def read() -> None:
            with contextlib.suppress(websockets.ConnectionClosed):
                while True:
                    received.append(json.loads(await ws.recv()))

        reader = asyncio.create_task(read())
        sent = 0
        with contextlib.suppress(websockets.ConnectionClosed):
            for _ in range(10):  # 500 frames every 0.1 s: 5,000 a second
                tick = time.monotonic()
                for _ in range(500):
                    await ws.send(frame)
                    sent += 1
                await asyncio.sleep(max(0.0, 0.1 - (time.monotonic() - tick)))
        await asyncio.wait_for(reader, 10)
        count(sent=sent, received=len(received))
        close = ws.protocol.close_rcvd
    notices = [e for e in received if e["event"] == "error"]
    answers = [e for e in received if e["event"] == "status_update"]
    assert notices, "the flood was never told it is throttled"
    assert {n["data"]["type"] for n in notices} == {"rate_limited"}
    assert all(n["data"]["retry_after"] >= 1 for n in notices)
    assert len(notices) <= 3  # one per second of flooding, not one per dropped frame
    assert len(answers) < 200  # the burst of 60 and what refilled; far from the 5,000
    assert close is not None
    assert close.code == 1008
    assert "too many messages" in close.reason
    FIGURES["flood"] = {"sent": sent, "answered": len(answers), "notices": len(notices)}


async def test_a_moderate_flood_is_throttled_and_the_socket_stays_open(jupiter):
    """200 frames a second for 1.5 s: throttled and told (once per second), never closed;
    after waiting the retry_after it was told, the client is answered again."""
    frame = json.dumps({"event": "request_status", "data": {}})
    async with connected(jupiter) as ws:
        for _ in range(15):
            tick = time.monotonic()
            for _ in range(20):
                await ws.send(frame)
            await asyncio.sleep(max(0.0, 0.1 - (time.monotonic() - tick)))
        count(sent=300)
        seen: list[dict[str, Any]] = []
        with contextlib.suppress(TimeoutError):
            while True:
                seen.append(json.loads(await asyncio.wait_for(ws.recv(), 0.5)))
        count(received=len(seen))
        notices = [e["data"] for e in seen if e["event"] == "error"]
        assert 1 <= len(notices) <= 3
        assert all(n["type"] == "rate_limited" for n in notices)
        await asyncio.sleep(notices[-1]["retry_after"])  # as told
        await send_event(ws, "request_status")
        await recv_event(ws, "status_update")
        count(sent=1, received=1)


# ----- readers that never read ------------------------------------------------------------


class RawSocket:
    """A WebSocket client on a plain socket (websockets' sans-I/O protocol) that reads only
    when told to: the "never reads" client. A small receive buffer makes its window fill fast.
    """

    def __init__(self, server: ServerProcess) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", server.port))
        self.protocol = ClientProtocol(parse_uri(server.ws_url + "/ws"), max_size=None)
        request = self.protocol.connect()
        request.headers["Authorization"] = f"Bearer {server.admin_token}"
        self.protocol.send_request(request)
        self._flush()
        while self.protocol.handshake_exc is None and not self._open():
            self.protocol.receive_data(self.sock.recv(65536))
        assert self.protocol.handshake_exc is None, self.protocol.handshake_exc
        self.events: list[dict[str, Any]] = []

    def _open(self) -> bool:
        return self.protocol.state.name == "OPEN"

    def _flush(self) -> None:
        self.sock.sendall(b"".join(self.protocol.data_to_send()))

    def send(self, frame: Frame) -> None:
        self.protocol.send_frame(frame)
        self._flush()

    def send_event(self, event: str, data: dict[str, Any] | None = None) -> None:
        self.protocol.send_text(json.dumps({"event": event, "data": data or {}}).encode())
        self._flush()

    async def read_until_closed(self) -> Any:
        """Read everything until the server's close frame or the end of the connection; the
        close frame received (None when the connection just ended)."""

        def read() -> None:
            while self.protocol.close_rcvd is None:
                try:
                    data = self.sock.recv(65536)
                except (ConnectionResetError, TimeoutError):
                    return
                if not data:
                    return
                self.protocol.receive_data(data)
                for event in self.protocol.events_received():
                    if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                        self.events.append(json.loads(event.data))

        await asyncio.to_thread(read)
        return self.protocol.close_rcvd

    def close(self) -> None:
        self.sock.close()

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, server: ServerProcess) -> AsyncIterator[RawSocket]:
        raw = await asyncio.to_thread(cls, server)
        try:
            yield raw
        finally:
            raw.close()


def metric(server: ServerProcess, name: str) -> float:
    text = httpx.get(server.url + "/metrics", timeout=5).text
    match = re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
    assert match is not None, name
    return float(match.group(1))


async def eventually(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(condition):
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.1)


async def test_a_reader_that_never_reads_while_the_server_broadcasts_is_dropped(jupiter):
    """A socket that completes the handshake and then reads nothing, while the server answers
    it (a 700 KB threat list fills its TCP window and the server's buffers) and broadcasts 60
    state changes to everyone: the broadcasts wait in its bounded queue, the well-behaved
    client is answered within the bound throughout, and once the socket has taken nothing for
    the write-stall time the server drops it (it reads nothing, so no close frame reaches it)."""
    slow_closes = metric(jupiter, "jupiter_websocket_slow_closes_total")
    async with RawSocket.open(jupiter) as raw, Watchdog(jupiter) as watchdog:
        sockets = metric(jupiter, "jupiter_websocket_connections")
        started = time.monotonic()
        raw.send_event("request_threats", {"filters": {"limit": 1000}})
        count(sent=1)
        async with httpx.AsyncClient(base_url=jupiter.url, headers=auth(jupiter)) as client:
            for index in range(60):
                action = "disable" if index % 2 == 0 else "enable"
                response = await client.post(f"/api/features/pulse/{action}")
                assert response.status_code == 200
        await eventually(
            lambda: metric(jupiter, "jupiter_websocket_connections") < sockets,
            STALL_SECONDS + 10,
        )
        dropped_after = time.monotonic() - started
        assert raw.protocol.close_rcvd is None
    assert dropped_after >= STALL_SECONDS  # the write-stall guard dropped it...
    assert metric(jupiter, "jupiter_websocket_slow_closes_total") == slow_closes  # ...not 1008
    FIGURES["never_reading"] = {
        "dropped_after_s": round(dropped_after, 2),
        "watchdog_max_latency_s": round(max(watchdog.latencies), 3),
    }


async def test_a_reader_that_stops_reading_its_replies_is_closed_with_1008_too_slow(jupiter):
    """A socket that asks for more than it reads (six 700 KB threat lists, unread): its replies
    are not dropped silently; the socket is closed with 1008 "too slow", which the client sees
    once it reads again. Server memory stays bounded meanwhile."""
    before = metric(jupiter, "jupiter_websocket_slow_closes_total")
    async with Watchdog(jupiter), RawSocket.open(jupiter) as raw:
        for _ in range(6):
            raw.send_event("request_threats", {"filters": {"limit": 1000}})
        count(sent=6)
        await eventually(
            lambda: metric(jupiter, "jupiter_websocket_slow_closes_total") > before, 20
        )
        close = await raw.read_until_closed()
        count(received=len(raw.events))
    assert close is not None
    assert close.code == 1008
    assert close.reason.startswith("too slow")
    # What it was sent before the close (if anything) are whole events it asked for; what was
    # still queued was discarded with the close, as its reason says.
    assert {e["event"] for e in raw.events} <= {
        "status_update",
        "threats_loading",
        "threats_update",
    }
