"""JSON request bodies: content type, bytes, structure and time, before any route sees them.

Through the whole app (httpx on the ASGI transport, lifespan running) for what the client sees,
and through :class:`JsonBodyMiddleware` alone, with a scripted ``receive`` and the fake clock,
for how much is read and when the time budget ends.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from jupiter.service.bodies import BodyDeadline, JsonBodyMiddleware
from support.jupiter_app import ADMIN, fast_settings, running_app


def error_of(response: Any, status: int, error_type: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["type"] == error_type
    assert error["status"] == status
    assert error["message"]
    assert error["suggestion"]
    return error


# ----- through the app --------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain;charset=UTF-8",  # what a cross-site fetch() with a string body sends
        "application/x-www-form-urlencoded",  # what an auto-submitted form sends
        "multipart/form-data; boundary=x",
        "application/json; charset=latin-1",
        None,  # a Blob body without a type
    ],
)
async def test_a_body_that_is_not_declared_json_is_415_and_changes_nothing(api, content_type):
    """A state-changing POST with a non-JSON body is refused before the route runs: the
    feature stays enabled, though the body is valid JSON and the token is right."""
    app, client = api
    headers = dict(ADMIN)
    if content_type is not None:
        headers["content-type"] = content_type
    response = await client.post(
        "/api/features/chat/disable", content=b'{"reason": "csrf"}', headers=headers
    )
    error = error_of(response, 415, "unsupported_media_type")
    assert "application/json" in error["message"]
    assert app.state.dashboard.get_feature_status()["grok_chat"]["enabled"] is True


async def test_a_compressed_body_is_415(api):
    _, client = api
    response = await client.post(
        "/api/chat",
        content=b"\x1f\x8b...",
        headers={**ADMIN, "content-type": "application/json", "content-encoding": "gzip"},
    )
    error_of(response, 415, "unsupported_media_type")


async def test_json_bodies_still_reach_their_routes(api):
    """A JSON body (with or without a UTF-8 charset) is replayed to the route unchanged."""
    app, client = api
    response = await client.post(
        "/api/chat",
        content=json.dumps({"message": "What is SQL injection?"}).encode(),
        headers={**ADMIN, "content-type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200, response.text
    assert "CWE-89" in response.json()["response"]
    response = await client.post(
        "/api/features/pulse/disable", json={"reason": "maintenance"}, headers=ADMIN
    )
    assert response.status_code == 200
    status = app.state.dashboard.get_feature_status()["community_pulse"]
    assert status["enabled"] is False
    assert status["reason"] == "maintenance"


async def test_a_post_without_a_body_needs_no_content_type(api):
    """Admin actions without a body (reset, force-open) are unaffected."""
    _, client = api
    response = await client.post("/api/breakers/pulse/force-open", headers=ADMIN)
    assert response.status_code == 200, response.text


async def test_content_length_over_the_limit_is_413_naming_it(api):
    _, client = api
    body = json.dumps({"message": "x" * (70 * 1024)}).encode()
    response = await client.post(
        "/api/chat", content=body, headers={**ADMIN, "content-type": "application/json"}
    )
    error = error_of(response, 413, "input_limit_exceeded")
    assert error["limit"] == "max_bytes"
    assert error["maximum"] == 64 * 1024
    assert error["actual"] == len(body)
    assert "65,536" in error["message"]
    assert response.headers["connection"] == "close"


@pytest.mark.parametrize(
    ("body", "limit", "path"),
    [
        ('{"message": "hi", "x": ' + "[" * 40 + "]" * 40 + "}", "max_depth", "$.x"),
        ('{"message": "hi", "n": ' + "9" * 5000 + "}", "max_number_chars", "$.n"),
        ('{"message": "hi", "v": [' + ",".join(["0"] * 12_000) + "]}", "max_values", "$"),
    ],
)
async def test_json_over_a_structure_limit_is_413_with_the_json_path(api, body, limit, path):
    """Depth, number length and value count are checked before the route parses anything."""
    _, client = api
    response = await client.post(
        "/api/chat", content=body.encode(), headers={**ADMIN, "content-type": "application/json"}
    )
    error = error_of(response, 413, "input_limit_exceeded")
    assert error["limit"] == limit
    assert error["location"]["json_path"].startswith(path)
    assert limit.removeprefix("max_").split("_")[0] in error["message"]


async def test_a_string_over_its_limit_is_413(settings_factory, clock):
    settings = settings_factory(http_json_max_string_chars=1000)
    async with running_app(settings, clock=clock) as (_, client):
        response = await client.post("/api/chat", json={"message": "y" * 1001}, headers=ADMIN)
    error = error_of(response, 413, "input_limit_exceeded")
    assert error["limit"] == "max_string_chars"
    assert error["location"] == {"json_path": "$.message"}


@pytest.mark.parametrize(
    ("body", "line", "column"),
    [
        (b'{"message": "hi",\n  "oops": }', 2, 11),
        (b'{"message": "hi"', 1, 17),
        (b'{"message": NaN}', None, None),
        (b'{"message": "\xff"}', None, None),
    ],
)
async def test_malformed_json_is_422_with_the_line_and_column(api, body, line, column):
    _, client = api
    response = await client.post(
        "/api/chat", content=body, headers={**ADMIN, "content-type": "application/json"}
    )
    error = error_of(response, 422, "malformed_json")
    assert "not valid JSON" in error["message"]
    if line is not None:
        assert error["location"] == {"line": line, "column": column}
        assert f"line {line}, column {column}" in error["message"]


# ----- the middleware alone: what it reads, and when it stops -----------------------------


class Client:
    """A scripted ASGI client: ``receive`` hands out ``chunks`` (then waits for ``more``)."""

    def __init__(self, chunks: list[bytes], *, then_wait: bool = False) -> None:
        self.chunks = list(chunks)
        self.then_wait = then_wait
        self.reads = 0
        self.sent: list[dict[str, Any]] = []
        self.more = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        self.reads += 1
        if self.chunks:
            chunk = self.chunks.pop(0)
            more = bool(self.chunks) or self.then_wait
            return {"type": "http.request", "body": chunk, "more_body": more}
        await self.more.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int | None:
        starts = [m for m in self.sent if m["type"] == "http.response.start"]
        return starts[0]["status"] if starts else None

    @property
    def error(self) -> dict[str, Any]:
        body = b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")
        return json.loads(body)["error"]


def scope(method: str = "POST", path: str = "/api/chat", **headers: str) -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 5555),
    }


class Route:
    """The app behind the middleware: records what body it was given."""

    def __init__(self, *, stream: bool = False) -> None:
        self.calls = 0
        self.body = b""
        self.stream = stream

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1
        more = True
        while more:
            message = await receive()
            self.body += message.get("body", b"")
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def middleware(tmp_path, clock):
    def build(route: Route, **overrides: Any) -> JsonBodyMiddleware:
        return JsonBodyMiddleware(route, settings=fast_settings(tmp_path, **overrides), clock=clock)

    return build


async def test_an_announced_oversize_body_is_refused_without_reading_a_byte(middleware):
    route = Route()
    client = Client([b"{" * 1000])
    await middleware(route)(
        scope(content_type="application/json", content_length=str(10**9)),
        client.receive,
        client.send,
    )
    assert client.status == 413
    assert client.reads == 0
    assert route.calls == 0


async def test_a_chunked_body_without_a_length_is_cut_off_at_the_limit(middleware):
    """A client that announces nothing (or lies) gets no more in: reading stops one chunk past
    the limit, nothing more is buffered, and the route never runs."""
    route = Route()
    client = Client([b" " * 16 * 1024] * 1000)  # 16 MB on offer
    await middleware(route, http_max_body_bytes=64 * 1024)(
        scope(content_type="application/json", transfer_encoding="chunked"),
        client.receive,
        client.send,
    )
    assert client.status == 413
    assert client.error["limit"] == "max_bytes"
    assert client.reads == 5  # 4 chunks fill 64 KiB, the 5th goes over
    assert len(client.chunks) == 995
    assert route.calls == 0


async def test_a_body_that_arrives_in_chunks_is_replayed_whole(middleware):
    route = Route()
    body = json.dumps({"message": "hello " * 1000}).encode()
    client = Client([body[i : i + 1000] for i in range(0, len(body), 1000)])
    await middleware(route)(
        scope(content_type="application/json", transfer_encoding="chunked"),
        client.receive,
        client.send,
    )
    assert client.status == 200
    assert route.body == body


async def test_a_request_without_a_body_passes_straight_through(middleware):
    """A GET is not read, parsed or checked: the route gets the server's own receive."""
    route = Route()
    client = Client([b""])
    await middleware(route)(scope("GET", "/api/status"), client.receive, client.send)
    assert client.status == 200
    assert route.calls == 1
    assert client.reads == 1  # the route's own read, nothing before it


async def test_a_stalled_body_gets_408_when_its_time_budget_ends(middleware, clock):
    """Half a body, then nothing: at the end of the grace period (on the fake clock) the
    client gets 408 naming the budget, and the route never ran."""
    route = Route()
    client = Client([b'{"message": '], then_wait=True)
    app = middleware(route, http_body_grace_seconds=10, http_body_min_bytes_per_second=1000)
    task = asyncio.create_task(
        app(
            scope(content_type="application/json", content_length="40"), client.receive, client.send
        )
    )
    while client.reads < 2:
        await asyncio.sleep(0)
    clock.advance(9.9)
    await asyncio.sleep(0.01)
    assert not task.done()  # 12 bytes bought 0.012 s more than the grace: not yet
    clock.advance(0.2)
    await asyncio.wait_for(task, 5)
    assert client.status == 408
    error = client.error
    assert error["type"] == "request_timeout"
    assert error["limit"] == "http_body_min_bytes_per_second"
    assert "12 bytes" in error["message"]
    assert route.calls == 0


async def test_the_scan_upload_stream_is_held_to_the_same_time_budget(middleware, clock):
    """The upload is streamed by its route (no JSON checks), but a stalled upload still ends
    with 408 instead of holding its request for ever."""
    route = Route(stream=True)
    client = Client([b"<?xml version='1.0'?>" * 100], then_wait=True)
    app = middleware(route, http_body_grace_seconds=5, http_body_max_seconds=60)
    task = asyncio.create_task(
        app(
            scope("POST", "/api/scans", content_type="text/xml", content_length="999999"),
            client.receive,
            client.send,
        )
    )
    while client.reads < 2:
        await asyncio.sleep(0)
    assert route.calls == 1  # the route itself is reading
    clock.advance(61)
    await asyncio.wait_for(task, 5)
    assert client.status == 408
    assert client.error["limit"] == "http_body_max_seconds"


def test_the_body_deadline_moves_with_the_bytes_received(clock):
    """Grace, plus a second per min_bytes_per_second received, capped by the total."""
    deadline = BodyDeadline(
        grace_seconds=10, min_bytes_per_second=1000, max_seconds=100, clock=clock
    )
    start = clock.monotonic()
    assert deadline.deadline(0) == start + 10
    assert deadline.deadline(5000) == start + 15
    assert deadline.deadline(10**9) == start + 100
    clock.advance(14)
    assert deadline.remaining(5000) == pytest.approx(1)
    assert deadline.remaining(3000) < 0
