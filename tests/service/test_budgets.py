"""Per-request budgets: header count, concurrent requests and sockets, and the time budget.

The time budget runs on the fake clock (no sleeping); concurrency is tested with many tasks and
threads at once; the socket limits against a real uvicorn with real ``websockets`` clients.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest
import websockets

from jupiter.service.app import create_app
from jupiter.service.budgets import ConcurrencyLimiter
from support.jupiter_app import ADMIN, LOCAL_BASE_URL, recv_event, running_app, send_event
from support.server import ServerThread


class Gate:
    """A route that waits until released, counting who is inside and who was cancelled."""

    def __init__(self) -> None:
        self.inside = 0
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.cancelled = 0

    async def __call__(self) -> dict[str, bool]:
        self.inside += 1
        self.entered.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.inside -= 1
        return {"ok": True}


async def wait_for(condition: Any, timeout: float = 5.0) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.001)

    await asyncio.wait_for(poll(), timeout)


async def test_a_handler_past_its_time_budget_is_cancelled_and_answered_504(
    settings_factory, clock
):
    """On the fake clock: at 59 s the handler is still running; at 60 s it is cancelled and
    the client gets a JSON 504 naming the budget."""
    async with running_app(settings_factory(), clock=clock) as (app, client):
        gate = Gate()
        app.add_api_route("/api/test/slow", gate)
        request = asyncio.create_task(client.get("/api/test/slow", headers=ADMIN))
        await asyncio.wait_for(gate.entered.wait(), 5)
        clock.advance(59)
        await asyncio.sleep(0.05)
        assert not request.done()
        clock.advance(1)
        response = await asyncio.wait_for(request, 5)
    assert response.status_code == 504
    error = response.json()["error"]
    assert error["type"] == "timeout"
    assert error["limit"] == "http_request_timeout_seconds"
    assert error["maximum"] == 60
    assert "60 seconds" in error["message"]
    assert response.headers["x-request-id"]
    assert gate.cancelled == 1
    assert gate.inside == 0


async def test_a_handlers_own_timeout_error_is_not_mistaken_for_the_budget(settings_factory, clock):
    """A TimeoutError raised by the route (an upstream's, say) is a 500, not our 504."""

    async def fails() -> None:
        raise TimeoutError("upstream")

    async with running_app(settings_factory(), clock=clock) as (app, _):
        app.add_api_route("/api/test/fails", fails)
        # Starlette re-raises after answering 500; the client only needs the answer.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=LOCAL_BASE_URL) as client:
            response = await client.get("/api/test/fails", headers=ADMIN)
    assert response.status_code == 500
    assert response.json()["error"]["status"] == 500


async def test_concurrent_requests_are_limited_per_client_and_in_total(settings_factory, clock):
    """20 requests at once from one address: 3 get in, the rest get 429 at once; from many
    addresses the total limit answers 503. Both with Retry-After, and the slots come back."""
    settings = settings_factory(max_concurrent_requests=5, max_concurrent_requests_per_client=3)
    async with running_app(settings, clock=clock) as (app, _):
        gate = Gate()
        app.add_api_route("/api/test/gate", gate)

        def client_from(address: str) -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=app, client=(address, 1234))
            return httpx.AsyncClient(transport=transport, base_url=LOCAL_BASE_URL)

        one = client_from("10.0.0.1")
        requests = [
            asyncio.create_task(one.get("/api/test/gate", headers=ADMIN)) for _ in range(20)
        ]
        await wait_for(lambda: sum(r.done() for r in requests) == 17)
        assert gate.inside == 3
        refused = [r.result() for r in requests if r.done()]
        assert {r.status_code for r in refused} == {429}
        error = refused[0].json()["error"]
        assert error["type"] == "too_many_requests"
        assert error["limit"] == "max_concurrent_requests_per_client"
        assert refused[0].headers["retry-after"] == "1"

        others = [client_from(f"10.0.1.{i}") for i in range(5)]
        more = [asyncio.create_task(c.get("/api/test/gate", headers=ADMIN)) for c in others]
        await wait_for(lambda: sum(r.done() for r in more) == 3)
        assert gate.inside == 5
        busy = [r.result() for r in more if r.done()]
        assert {r.status_code for r in busy} == {503}
        assert busy[0].json()["error"]["type"] == "server_busy"

        gate.release.set()
        answered = await asyncio.gather(*requests, *more)
        assert sum(r.status_code == 200 for r in answered) == 5
        again = await one.get("/api/test/gate", headers=ADMIN)
        assert again.status_code == 200
        for c in (one, *others):
            await c.aclose()


async def test_too_many_headers_is_431(api):
    _, client = api
    headers = {**ADMIN, **{f"x-h{i}": "1" for i in range(120)}}
    response = await client.get("/api/status", headers=headers)
    assert response.status_code == 431
    error = response.json()["error"]
    assert error["type"] == "input_limit_exceeded"
    assert error["limit"] == "max_headers"
    assert error["maximum"] == 100


def test_the_concurrency_limiter_holds_under_many_threads():
    """32 threads taking and releasing slots at once never exceed either limit, and every slot
    comes back."""
    limiter = ConcurrencyLimiter(total=10, per_client=4)
    peak = {"total": 0, "client": 0}
    lock = threading.Lock()
    start = threading.Barrier(32)

    def work(index: int) -> None:
        client = f"c{index % 4}"
        start.wait()
        for _ in range(500):
            if limiter.acquire(client) is None:
                with lock:
                    peak["total"] = max(peak["total"], limiter.in_progress)
                    peak["client"] = max(peak["client"], limiter.in_progress_for(client))
                limiter.release(client)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 1 <= peak["total"] <= 10
    assert 1 <= peak["client"] <= 4
    assert limiter.in_progress == 0
    assert all(limiter.in_progress_for(f"c{i}") == 0 for i in range(4))
    with pytest.raises(RuntimeError):
        limiter.release("c0")


async def test_sockets_over_the_per_client_limit_are_closed_with_1013_and_a_reason(
    settings_factory, clock
):
    """The 4th socket from one address is accepted and closed at once with 1013 (try again
    later) and a reason; the first three keep working, and a slot freed is usable again."""
    app = create_app(settings_factory(max_websockets_per_client=3), clock=clock)
    with ServerThread(app) as server:
        url = server.ws_url + "/ws"
        first = [await websockets.connect(url) for _ in range(3)]
        try:
            for ws in first:
                await recv_event(ws, "status_update")
            async with websockets.connect(url) as extra:
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await recv_event(extra, "status_update")
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1013
            assert "too many sockets from your address" in closed.value.rcvd.reason
            await send_event(first[0], "request_status")
            assert (await recv_event(first[0], "status_update"))["event"] == "status_update"
            await first.pop().close()
            await wait_for(lambda: app.state.dashboard.hub.count == 2)
            async with websockets.connect(url) as again:
                assert (await recv_event(again, "status_update"))["event"] == "status_update"
        finally:
            for ws in first:
                await ws.close()


def test_every_budget_setting_is_documented_with_its_default():
    """Each field of settings.py's budgets block appears in docs/security.md#budgets, so a new
    budget cannot be added without saying what it is."""
    import re
    from pathlib import Path

    from jupiter.settings import Settings

    root = Path(__file__).resolve().parents[2]
    source = (root / "src" / "jupiter" / "settings.py").read_text(encoding="utf-8")
    block = source.split("# --- budgets", 1)[1].split("\n    # --- ", 1)[0]
    fields = re.findall(r"^    (\w+): ", block, re.MULTILINE)
    assert len(fields) >= 30
    docs = (root / "docs" / "security.md").read_text(encoding="utf-8")
    budgets = docs.split("## Budgets", 1)[1].split("\n## ", 1)[0]
    missing = [name for name in fields if f"`{name}`" not in budgets]
    assert not missing, f"not in docs/security.md#budgets: {missing}"
    assert all(name in Settings.model_fields for name in fields)


def test_a_frame_limit_under_the_message_limit_is_refused(tmp_path):
    from pydantic import ValidationError

    from support.jupiter_app import fast_settings

    with pytest.raises(ValidationError, match="ws_max_frame_bytes"):
        fast_settings(tmp_path, ws_max_message_bytes=64 * 1024, ws_max_frame_bytes=32 * 1024)
