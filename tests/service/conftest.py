"""Fixtures for the service tests: fast settings, an app with its lifespan, an httpx client."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from jupiter.resilience.testing import FakeClock
from jupiter.settings import Settings
from support.jupiter_app import fast_settings, running_app
from support.openai_upstream import openai_upstream  # noqa: F401 - re-exported fixture


@pytest.fixture
def settings_factory(tmp_path: Path) -> Callable[..., Settings]:
    """Build fast settings in this test's temporary data dir."""
    return lambda **overrides: fast_settings(tmp_path, **overrides)


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock for breakers, retries and rate limits."""
    return FakeClock(wall_start=time.time())


@pytest.fixture
async def api(
    settings_factory: Callable[..., Settings], clock: FakeClock
) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """A running app (offline defaults, fake clock) and its client."""
    async with running_app(settings_factory(), clock=clock) as pair:
        yield pair
