"""The server's budgets under a real uvicorn (``uvicorn_options``, as ``jupiter serve`` uses):
request-head size and deadline (slowloris), and the write-stall guard for peers that never
read. Raw sockets, because a well-behaved client cannot misbehave this way.

These deadlines are the server's own loop timers, so the tests set them short (a fraction of a
second) and wait on the socket for the server to act, bounded by the socket's timeout.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time

import pytest

from jupiter.service.app import create_app
from support.jupiter_app import ADMIN_TOKEN
from support.server import ServerThread


@pytest.fixture
def server(settings_factory, clock):
    settings = settings_factory(http_header_timeout_seconds=0.3, write_stall_timeout_seconds=0.5)
    with ServerThread(create_app(settings, clock=clock)) as running:
        yield running


def connect(server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def split(response: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return status, {k.lower(): v for k, v in headers.items()}, body


def test_a_request_head_sent_slowly_gets_408_and_the_connection_closed(server):
    """Slowloris: a head that is still incomplete after the deadline is answered 408 (JSON)
    and the connection closed, though bytes kept coming."""
    with connect(server) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        sock.sendall(b"X-Slow: 1\r\n")
        response = read_all(sock)
        elapsed = time.monotonic() - started
    status, headers, body = split(response)
    assert status == 408
    assert headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert error["type"] == "request_timeout"
    assert "0.3 seconds" in error["message"]
    assert 0.25 < elapsed < 3


def test_a_connection_that_sends_nothing_is_closed(server):
    with connect(server) as sock:
        started = time.monotonic()
        assert read_all(sock) == b""
        assert time.monotonic() - started < 3


def test_the_deadline_restarts_for_each_request_on_a_keep_alive_connection(server):
    """A complete request is answered; the next one on the same connection gets its own
    deadline from its first byte."""
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        time.sleep(0.1)  # well inside keep-alive; not a timeout test
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        status, _, _ = split(read_all(sock))
    assert status == 408


@pytest.mark.parametrize("whole", [True, False])
def test_a_request_head_over_the_size_limit_is_431_json(server, whole):
    """Over 16 KiB of headers is refused whether the head arrives in one read (measured by
    the request middleware) or keeps growing unfinished (refused by h11 as it arrives)."""
    head = b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: " + b"a" * (20 * 1024)
    with connect(server) as sock:
        if whole:
            sock.sendall(head + b"\r\n\r\n")
        else:
            for start in range(0, len(head), 4096):
                sock.sendall(head[start : start + 4096])
        status, headers, body = split(read_all(sock))
    assert status == 431
    assert headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert error["type"] == "input_limit_exceeded"
    assert "16384" in error["message"]


def test_a_request_that_is_not_http_is_400_json(server):
    with connect(server) as sock:
        sock.sendall(b"HELLO THERE\r\n\r\n")
        status, _, body = split(read_all(sock))
    assert status == 400
    assert json.loads(body)["error"]["type"] == "bad_request"


async def test_a_socket_peer_that_never_reads_is_dropped_and_others_carry_on(server):
    """A WebSocket client that completes the handshake and then reads nothing, while the server
    broadcasts: its queue drops old broadcasts, the transport stalls, and the write-stall guard
    drops the connection; a second client gets every answer meanwhile."""
    import websockets

    dashboard = server.app.state.dashboard
    slow = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window fills fast
    slow.connect(("127.0.0.1", server.port))
    key = base64.b64encode(os.urandom(16)).decode()
    slow.sendall(
        (
            "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {ADMIN_TOKEN}\r\n\r\n"
        ).encode()
    )
    assert slow.recv(4096).startswith(b"HTTP/1.1 101")
    try:
        async with websockets.connect(server.ws_url + "/ws") as good:
            await asyncio.wait_for(good.recv(), 5)
            assert dashboard.hub.count == 2
            payload = {"blob": "x" * 50_000}
            deadline = time.monotonic() + 10
            while dashboard.hub.count == 2 and time.monotonic() < deadline:
                await asyncio.to_thread(dashboard.publish, "scan_progress", payload)
                reply = json.loads(await asyncio.wait_for(good.recv(), 5))
                assert reply["event"] == "scan_progress"
            assert dashboard.hub.count == 1  # the reader that never read is gone
            await good.send(json.dumps({"event": "request_status", "data": {}}))
            while (message := json.loads(await asyncio.wait_for(good.recv(), 5)))[
                "event"
            ] != "status_update":
                pass
            assert message["data"]["health"]
    finally:
        slow.close()


def test_a_chunked_body_over_the_limit_is_413_over_the_wire(server):
    """No Content-Length to check up front: the body is counted as it arrives and refused
    when it passes 64 KiB, and the connection is closed rather than read to the end."""
    chunk = b" " * 8192
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(9)) + b"0\r\n\r\n"
    with connect(server) as sock:
        sock.sendall(
            b"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + ADMIN_TOKEN.encode() + b"\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + body
        )
        status, headers, payload = split(read_all(sock))
    assert status == 413
    assert headers["connection"] == "close"
    error = json.loads(payload)["error"]
    assert error["type"] == "input_limit_exceeded"
    assert error["limit"] == "max_bytes"


def test_the_server_options_come_from_the_settings(settings_factory):
    """What `jupiter serve` (and ServerThread) hand to uvicorn is the settings' budgets."""
    from jupiter.service.serving import (
        BudgetedH11Protocol,
        BudgetedWebSocketProtocol,
        uvicorn_options,
    )

    settings = settings_factory(
        ws_max_frame_bytes=2 * 1024 * 1024,
        http_max_header_bytes=8192,
        http_header_timeout_seconds=7,
        http_keep_alive_seconds=9,
        write_stall_timeout_seconds=11,
        ws_ping_interval_seconds=12,
        ws_ping_timeout_seconds=13,
        socket_send_buffer_bytes=64 * 1024,
    )
    options = uvicorn_options(settings)
    assert options["ws_max_size"] == 2 * 1024 * 1024
    assert options["h11_max_incomplete_event_size"] == 8192
    assert options["timeout_keep_alive"] == 9
    assert (options["ws_ping_interval"], options["ws_ping_timeout"]) == (12, 13)
    http, ws = options["http"], options["ws"]
    assert issubclass(http, BudgetedH11Protocol)
    assert (http.header_timeout, http.max_header_bytes, http.stall_timeout) == (7, 8192, 11)
    assert http.send_buffer_bytes == 64 * 1024
    assert issubclass(ws, BudgetedWebSocketProtocol)
    assert ws.stall_timeout == 11
