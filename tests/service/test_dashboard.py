"""The dashboard core: components start separately, a failing one is disabled, recovery."""

from __future__ import annotations

import asyncio
import threading

import pytest

from jupiter.service.dashboard import JupiterDashboard, UnknownComponentError
from support.jupiter_app import running_app


class FlakyFactory:
    """A component factory that fails until told to work (a real callable, counted)."""

    def __init__(self, failures: int | None = None) -> None:
        self.calls = 0
        self.failures = failures  # None: fail until healthy is set
        self.healthy = False

    def __call__(self, ctx):
        self.calls += 1
        if self.healthy or (self.failures is not None and self.calls > self.failures):
            return {"component": ctx.name, "breaker": ctx.breaker.name}
        raise ConnectionError("feed host unreachable")


async def test_a_failing_component_is_disabled_and_the_others_start(settings_factory, clock):
    """Pulse fails every init attempt: only pulse is disabled, with the reason and an error."""
    factory = FlakyFactory()
    async with running_app(
        settings_factory(), clock=clock, factories={"community_pulse": factory}
    ) as (_, client):
        status = (await client.get("/api/feature-status")).json()
        assert status["community_pulse"]["enabled"] is False
        assert "ConnectionError" in status["community_pulse"]["reason"]
        assert all(status[n]["enabled"] for n in status if n != "community_pulse")
        assert factory.calls == 2  # component_init_attempts
        errors = (await client.get("/api/recent-errors")).json()["errors"]
        assert errors[0]["type"] == "component_init_failed"
        assert errors[0]["context"]["component"] == "community_pulse"
        ready = (await client.get("/readyz")).json()
        assert ready["ready"] is True
        assert ready["components"]["community_pulse"] == "not_started"
        assert (await client.get("/api/status")).json()["health"] == "degraded"


async def test_initialisation_retries_with_backoff_on_the_injected_clock(settings_factory, clock):
    """A component that fails once starts on the second attempt after the configured delay."""
    factory = FlakyFactory(failures=1)
    settings = settings_factory(retry_initial_delay_seconds=2.0, retry_max_delay_seconds=10.0)
    async with running_app(settings, clock=clock, factories={"scan_processing": factory}) as (
        app,
        _,
    ):
        dashboard = app.state.dashboard
        assert dashboard.services["scan_processing"] == {
            "component": "scan_processing",
            "breaker": "scan_processing",
        }
        assert dashboard.degradation.is_enabled("scan_processing")
    assert 2.0 in clock.sleeps


async def test_recovery_reinitialises_failed_components(settings_factory, clock):
    """Once the dependency is back, a recovery pass re-enables the component and pushes status."""
    factory = FlakyFactory()
    async with running_app(
        settings_factory(), clock=clock, factories={"community_pulse": factory}
    ) as (
        app,
        client,
    ):
        dashboard = app.state.dashboard
        assert await dashboard.recover_failed() == []
        factory.healthy = True
        assert await dashboard.recover_failed() == ["community_pulse"]
        status = (await client.get("/api/feature-status")).json()
        assert status["community_pulse"]["enabled"] is True
        assert dashboard.init_errors == {}
        dashboard.writer.flush()
        history = (
            await client.get(
                "/api/history", headers={"Authorization": "Bearer test-admin-token-0123456789"}
            )
        ).json()["changes"]
        assert [(c["component"], c["new_state"]) for c in history if c["kind"] == "feature"] == [
            ("community_pulse", "disabled"),
            ("community_pulse", "enabled"),
        ]


async def test_background_recovery_task_runs_on_its_interval(settings_factory):
    """The recovery loop itself brings a component back without anyone calling it."""
    factory = FlakyFactory()
    settings = settings_factory(component_recovery_interval_seconds=0.05)
    async with running_app(settings, factories={"community_pulse": factory}) as (app, _):
        dashboard = app.state.dashboard
        assert not dashboard.degradation.is_enabled("community_pulse")
        factory.healthy = True
        for _ in range(200):
            if dashboard.degradation.is_enabled("community_pulse"):
                break
            await asyncio.sleep(0.01)
        assert dashboard.degradation.is_enabled("community_pulse")


async def test_every_component_failing_makes_health_unhealthy(settings_factory, clock):
    """With all four components down, health is unhealthy; the API still answers."""
    factories = {
        name: FlakyFactory()
        for name in ("grok_chat", "threat_intelligence", "community_pulse", "scan_processing")
    }
    async with running_app(settings_factory(), clock=clock, factories=factories) as (_, client):
        status = (await client.get("/api/status")).json()
        assert status["health"] == "unhealthy"
        chat = (await client.post("/api/chat", json={"message": "hi"})).json()
        assert chat["is_error"] is True


async def test_breaker_changes_from_many_threads_are_all_persisted(settings_factory, clock):
    """Breaker transitions made by 16 threads at once each land in the state history."""
    async with running_app(settings_factory(), clock=clock) as (app, _):
        dashboard = app.state.dashboard
        barrier = threading.Barrier(16)

        def flip(index: int) -> None:
            barrier.wait()
            name = ("chat", "intel", "pulse", "scans")[index % 4]
            dashboard.force_open_breaker(name)
            dashboard.reset_breaker(name)

        threads = [threading.Thread(target=flip, args=(i,)) for i in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            await asyncio.to_thread(thread.join, 10)
        assert dashboard.writer.flush()
        from jupiter.storage import load_state_changes

        changes = load_state_changes(dashboard.database.session_factory)
        breaker_changes = [c for c in changes if c["kind"] == "breaker"]
        opened = [c for c in breaker_changes if c["new_state"] == "open"]
        closed = [c for c in breaker_changes if c["new_state"] == "closed"]
        assert len(opened) == len(closed) >= 4
        assert {c["component"] for c in opened} == set(dashboard.breakers)


def test_resolve_accepts_aliases_and_names_and_refuses_others(settings_factory):
    """chat and grok_chat both name the chat component; anything else is an error naming options."""
    dashboard = JupiterDashboard(settings_factory())
    assert dashboard.resolve("chat") == "grok_chat"
    assert dashboard.resolve("grok_chat") == "grok_chat"
    assert dashboard.resolve("scans") == "scan_processing"
    with pytest.raises(UnknownComponentError, match="chat, intel, pulse, scans"):
        dashboard.resolve("coffee")


async def test_errors_recorded_before_shutdown_are_restored_on_the_next_start(
    settings_factory, clock
):
    """Errors and their redacted context survive a graceful restart of the app."""
    settings = settings_factory()
    async with running_app(settings, clock=clock) as (app, _):
        app.state.dashboard.record_error(
            "api_failure", "KEV feed timed out", {"password": "hunter2"}
        )
    async with running_app(settings, clock=clock) as (_, client):
        errors = (await client.get("/api/recent-errors")).json()["errors"]
        stats = (await client.get("/api/error-stats")).json()
    assert [e["message"] for e in errors] == ["KEV feed timed out"]
    assert errors[0]["context"]["password"] == "[REDACTED]"
    assert stats["errors_by_type"] == {"api_failure": 1}


class SteppedSleep:
    """The dashboard's background-loop sleep, released one step at a time by the test.

    Sleeps of ``interval`` wait for :meth:`step`; any other loop's sleep parks for good.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.requested: list[float] = []
        self._steps: asyncio.Queue[None] = asyncio.Queue()

    async def __call__(self, seconds: float) -> None:
        self.requested.append(seconds)
        if seconds != self.interval:
            await asyncio.Event().wait()
        await self._steps.get()

    def step(self) -> None:
        self._steps.put_nowait(None)

    @property
    def waits(self) -> int:
        return self.requested.count(self.interval)


class FlakySync:
    """An intel component whose first sync fails (stands in for the intel service)."""

    def __init__(self) -> None:
        self.calls = 0

    async def sync_feeds(self) -> dict:
        self.calls += 1
        if self.calls == 1:
            raise ConnectionError("feed host unreachable")
        return {"success": True, "stored": 0, "sources": {}}


async def eventually(condition, timeout: float = 5.0) -> None:
    """Wait (real time, briefly) until ``condition()`` holds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_periodic_feed_sync_runs_on_its_interval_and_survives_a_failing_sync(
    settings_factory, clock
):
    """The sync task waits intel_sync_interval_seconds between syncs; a sync that raises is
    logged and the next one still runs."""
    interval = 45.0
    sleep = SteppedSleep(interval)
    intel = FlakySync()
    settings = settings_factory(intel_sync_interval_seconds=interval)
    async with running_app(
        settings, clock=clock, sleep=sleep, factories={"threat_intelligence": lambda ctx: intel}
    ) as (app, _):
        await eventually(lambda: sleep.waits == 1)
        assert intel.calls == 0  # nothing before the first interval has passed
        for expected in (1, 2, 3):
            sleep.step()
            await eventually(lambda expected=expected: intel.calls == expected)
            await eventually(lambda expected=expected: sleep.waits == expected + 1)
        assert app.state.dashboard._sync_task is not None
        assert not app.state.dashboard._sync_task.done()
        # While intel is disabled the task skips the sync and keeps its rhythm.
        app.state.dashboard.disable_feature("intel", "maintenance")
        sleep.step()
        await eventually(lambda: sleep.waits == 5)
        assert intel.calls == 3
    assert {seconds for seconds in sleep.requested if seconds != interval} == {
        settings.component_recovery_interval_seconds
    }
