"""Helpers to run the Jupiter app in tests: fast settings and the app with its lifespan.

async with running_app(fast_settings(tmp_path)) as (app, client):
    await client.get("/api/status")

The client sends the admin token (``ADMIN_TOKEN``) unless a request brings its own
``Authorization`` header; ``auth=None`` on a request (or ``credential=None`` for the whole
client) sends none, for tests of what an anonymous caller gets.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from jupiter.service.app import create_app
from jupiter.settings import Settings

__all__ = [
    "ADMIN",
    "ADMIN_TOKEN",
    "LOCAL_BASE_URL",
    "BearerAuth",
    "fast_settings",
    "recv_event",
    "running_app",
    "send_event",
]

ADMIN_TOKEN = "test-admin-token-0123456789"


def fast_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings for tests: offline LLM, tiny delays, quick flushes, no env surprises."""
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": None,
        "llm_provider": "offline",
        "admin_token": ADMIN_TOKEN,
        "breaker_failure_threshold": 3,
        "breaker_timeout_seconds": 30.0,
        "retry_initial_delay_seconds": 0.0,
        "retry_max_delay_seconds": 0.0,
        "component_init_attempts": 2,
        "component_recovery_interval_seconds": 3600.0,
        "storage_flush_interval_seconds": 0.05,
        "pulse_feeds": [],
    }
    values.update(overrides)
    return Settings(**values)


ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
#: A loopback-bound Jupiter answers to loopback Host names only (DNS rebinding defence).
LOCAL_BASE_URL = "http://127.0.0.1:8000"


class BearerAuth(httpx.Auth):
    """``Authorization: Bearer <token>`` on every request that does not set its own."""

    def __init__(self, token: str) -> None:
        self.token = token

    def auth_flow(self, request: httpx.Request) -> Any:
        if "authorization" not in request.headers:
            request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


@contextlib.asynccontextmanager
async def running_app(
    settings: Settings, *, credential: str | None = ADMIN_TOKEN, **kwargs: Any
) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """The app with its lifespan running, and an httpx client on its ASGI transport that
    sends ``credential`` as a Bearer token (None: anonymous)."""
    app = create_app(settings, **kwargs)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        auth = BearerAuth(credential) if credential is not None else None
        async with httpx.AsyncClient(
            transport=transport, base_url=LOCAL_BASE_URL, auth=auth
        ) as client:
            yield app, client


async def send_event(ws: Any, event: str, data: dict[str, Any] | None = None) -> None:
    """Send ``{"event", "data"}`` on a ``websockets`` client connection."""
    import json

    await ws.send(json.dumps({"event": event, "data": data or {}}))


async def recv_event(ws: Any, *names: str, timeout: float = 10.0) -> dict[str, Any]:
    """The next event named one of ``names`` (others, e.g. pushed status updates, are skipped)."""
    import asyncio
    import json

    async def wait() -> dict[str, Any]:
        while True:
            message = json.loads(await ws.recv())
            if not names or message["event"] in names:
                return message

    return await asyncio.wait_for(wait(), timeout)
