"""Threat and pulse feeds against fault-injecting KEV and RSS/Atom upstreams on loopback, through
a real uvicorn and a real socket.

For each fault: the breaker opens (pushed to the socket, shown by /api/feature-status), the last
good data is served marked stale with its age (or, with nothing cached, the source is reported
as failed with a suggestion), the error is recorded without secrets, the socket stays up, and
once the upstream is back and the open period has passed a new request gets live data and the
breaker closes. Breaker, freshness and retry time run on a FakeClock; only the feed client's own
request timeout (0.3 s, for hang and slow) is real time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import websockets

from jupiter.service.app import create_app
from support.feed_upstream import FeedEntry, FeedUpstream
from support.jupiter_app import send_event
from support.kev_upstream import KevUpstream, kev_catalog, kev_record
from support.server import ServerThread

THRESHOLD = 2
OPEN_SECONDS = 60.0
# The intel service re-fetches a source no sooner than this after a success or a failure
# (intel_sync_interval_seconds' minimum and the service's failure spacing): fake seconds.
DUE_SECONDS = 31.0
SECRET = "feed-secret-token-0123456789"
KEV_IDS = ("CVE-2025-0001", "CVE-2025-0002", "CVE-2025-0003")


class Inbox:
    """Every event a socket receives, in order, read by a background task."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self._arrived = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in self.ws:
                async with self._arrived:
                    self.events.append(json.loads(raw))
                    self._arrived.notify_all()

    def mark(self) -> int:
        """A position: later waits only look at events that arrive after it."""
        return len(self.events)

    async def wait(
        self,
        *names: str,
        after: int = 0,
        where: Callable[[dict[str, Any]], bool] = lambda _data: True,
        timeout: float = 15.0,
    ) -> dict[str, Any]:
        """The first event after ``after`` named one of ``names`` whose data passes ``where``."""

        def found() -> dict[str, Any] | None:
            for event in self.events[after:]:
                if event["event"] in names and where(event["data"]):
                    return event
            return None

        async def wait_for_it() -> dict[str, Any]:
            async with self._arrived:
                await self._arrived.wait_for(lambda: found() is not None)
            event = found()
            assert event is not None
            return event

        return await asyncio.wait_for(wait_for_it(), timeout)

    def close(self) -> None:
        self._reader.cancel()


@dataclass(frozen=True)
class Component:
    """One feed component as the socket and REST API see it."""

    name: str
    alias: str
    request: str
    replies: tuple[str, str]
    error_type: str

    def sources(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        """The per-source statuses of the upstream under test (KEV, or the RSS and Atom feeds)."""
        if self.alias == "intel":
            return [data["sources"]["kev"]]
        return list(data["sources"].values())


INTEL = Component(
    "threat_intelligence", "intel", "request_threats", ("threats_update", "threats_error"),
    "intel_source_error",
)  # fmt: skip
PULSE = Component(
    "community_pulse", "pulse", "request_pulse", ("pulse_update", "pulse_error"),
    "pulse_feed_error",
)  # fmt: skip

FAULTS = [
    pytest.param({"fault": "500"}, ("HTTP 500",), id="500"),
    pytest.param({"fault": "429", "retry_after": 7}, ("HTTP 429",), id="429-retry-after"),
    pytest.param({"fault": "hang"}, ("timed out",), id="hang"),
    pytest.param({"fault": "slow", "slow_seconds": 1.0}, ("timed out",), id="slow"),
    pytest.param(
        {"fault": "malformed"}, ("malformed KEV catalog", "not an RSS or Atom feed"), id="bad"
    ),
    pytest.param({"fault": "truncated"}, ("transport error", "RemoteProtocolError"), id="cut"),
]


@dataclass
class Upstreams:
    kev: KevUpstream
    feeds: FeedUpstream

    def for_(self, component: Component) -> KevUpstream | FeedUpstream:
        return self.kev if component is INTEL else self.feeds

    def requests(self, component: Component) -> int:
        return len(self.for_(component).requests)


@pytest.fixture
def upstreams():
    """A KEV catalog, and an RSS and an Atom feed, on loopback."""
    entries = [
        FeedEntry("CVE-2025-0001 exploited in Widget", "https://example.org/1", "Widget flaw"),
        FeedEntry("Widget patch released", "https://example.org/2", "CVE-2025-0001 fixed"),
    ]
    with (
        KevUpstream(kev_catalog([kev_record(cve) for cve in KEV_IDS])) as kev,
        FeedUpstream() as feeds,
    ):
        feeds.add_rss("/rss.xml", "Vendor blog", entries)
        feeds.add_atom("/atom.xml", "CERT notes", entries)
        yield Upstreams(kev, feeds)


@pytest.fixture
def feed_server(settings_factory, clock, upstreams):
    """Jupiter with the KEV URL and both feeds configured (secrets in their query strings)."""
    settings = settings_factory(
        kev_url=f"{upstreams.kev.url}?token={SECRET}",
        pulse_feeds=[
            f"{upstreams.feeds.url_for('/rss.xml')}?apikey={SECRET}",
            f"{upstreams.feeds.url_for('/atom.xml')}?apikey={SECRET}",
        ],
        pulse_refresh_seconds=0,
        intel_sync_interval_seconds=30,
        intel_timeout_seconds=0.3,
        breaker_failure_threshold=THRESHOLD,
        breaker_timeout_seconds=OPEN_SECONDS,
    )
    app = create_app(settings, clock=clock, breaker_watch_interval=0.05)
    with ServerThread(app) as server:
        yield server
    upstreams.kev.set_fault(None)  # release hanging handlers
    upstreams.feeds.set_fault(None)


async def ask(inbox: Inbox, component: Component) -> dict[str, Any]:
    """Send the component's request and return its answer."""
    mark = inbox.mark()
    await send_event(inbox.ws, component.request)
    return await inbox.wait(*component.replies, after=mark, timeout=20)


def breaker_is(component: Component, state: str) -> Callable[[dict[str, Any]], bool]:
    return lambda data: data["features"][component.name]["circuit_breaker"] == state


async def feature_status(server: ServerThread) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.url) as client:
        return (await client.get("/api/feature-status")).json()


@pytest.mark.parametrize("component", [INTEL, PULSE], ids=["kev", "rss-atom"])
@pytest.mark.parametrize(("fault", "messages"), FAULTS)
async def test_feed_fault_serves_stale_data_opens_breaker_and_recovers(
    feed_server, upstreams, clock, component, fault, messages
):
    """After a good fetch, a fault serves stale data with its age, opens the breaker, is recorded
    without secrets, leaves the socket up, and live data returns once the upstream does."""
    dashboard = feed_server.app.state.dashboard
    breaker = dashboard.breakers[component.name]
    upstream = upstreams.for_(component)
    async with websockets.connect(feed_server.ws_url + "/ws") as ws:
        inbox = Inbox(ws)
        # 1. A good fetch fills the cache.
        good = await ask(inbox, component)
        assert good["event"] == component.replies[0]
        assert all(source["status"] == "live" for source in component.sources(good["data"]))
        # 2. The upstream fails: every request still gets the last good data, marked stale.
        upstream.set_fault(**fault)
        opened_at = inbox.mark()
        for _ in range(THRESHOLD):
            clock.advance(DUE_SECONDS)
            stale = await ask(inbox, component)
            assert stale["event"] == component.replies[0], stale
            data = stale["data"]
            assert data["stale"] is True
            assert data["age_seconds"] >= DUE_SECONDS
            for source in component.sources(data):
                assert source["status"] == "stale"
                assert any(text in source["error"] for text in messages), source["error"]
            if component is INTEL:
                assert {item["id"] for item in data["items"] if item["source"] == "kev"} == set(
                    KEV_IDS
                )
            else:
                assert data["count"] == 4  # two entries from each feed
            if breaker.state.value == "open":
                break
        # 3. The breaker opened; the socket was told and the REST API shows it.
        assert breaker.state.value == "open"
        await inbox.wait("status_update", after=opened_at, where=breaker_is(component, "open"))
        assert (await feature_status(feed_server))[component.name]["circuit_breaker"] == "open"
        # 4. While open, requests are served from the cache without touching the upstream.
        calls = upstreams.requests(component)
        clock.advance(DUE_SECONDS)
        refused = await ask(inbox, component)
        assert refused["data"]["stale"] is True
        assert all(
            "circuit breaker open" in source["error"]
            for source in component.sources(refused["data"])
        )
        assert upstreams.requests(component) == calls
        # 5. The error was recorded, and neither the socket nor the REST API leaks the secret.
        async with httpx.AsyncClient(base_url=feed_server.url) as client:
            recent = (await client.get("/api/recent-errors", params={"limit": 100})).json()
        recorded = [e for e in recent["errors"] if e["type"] == component.error_type]
        assert recorded
        assert any(any(text in e["message"] for text in messages) for e in recorded)
        assert SECRET not in json.dumps(recent)
        assert SECRET not in json.dumps(inbox.events)
        # 6. The socket is still up.
        mark = inbox.mark()
        await send_event(ws, "request_status")
        status = await inbox.wait("status_update", after=mark)
        assert status["data"]["health"] == "degraded"
        # 7. The upstream comes back; after the open period the next request makes the trial
        # call, which succeeds and closes the breaker (the two pulse feeds share one breaker, so
        # the feed that lost the race for the single trial is refreshed by the next request).
        upstream.set_fault(None)
        mark = inbox.mark()
        clock.advance(OPEN_SECONDS)
        trial = await ask(inbox, component)
        assert any(source["status"] == "live" for source in component.sources(trial["data"]))
        await inbox.wait("status_update", after=mark, where=breaker_is(component, "closed"))
        assert breaker.state.value == "closed"
        clock.advance(DUE_SECONDS)
        live = await ask(inbox, component)
        assert live["event"] == component.replies[0]
        assert live["data"]["stale"] is False
        assert all(source["status"] == "live" for source in component.sources(live["data"]))
        assert (await feature_status(feed_server))[component.name]["circuit_breaker"] == "closed"
        inbox.close()


@pytest.mark.parametrize("component", [INTEL, PULSE], ids=["kev", "rss-atom"])
@pytest.mark.parametrize("fault", [{"fault": "500"}, {"fault": "hang"}], ids=["500", "hang"])
async def test_feed_fault_with_nothing_cached_says_so_with_a_suggestion(
    feed_server, upstreams, clock, component, fault
):
    """With no good fetch yet, the failed source is reported as an error (the pulse with a plain
    message and a suggestion); the breaker opens and the socket stays up."""
    upstreams.for_(component).set_fault(**fault)
    breaker = feed_server.app.state.dashboard.breakers[component.name]
    async with websockets.connect(feed_server.ws_url + "/ws") as ws:
        inbox = Inbox(ws)
        mark = inbox.mark()
        for _ in range(THRESHOLD):
            answer = await ask(inbox, component)
            assert answer["event"] in component.replies
            data = answer["data"]
            for source in component.sources(data):
                assert source["status"] == "error"
                assert source["count"] == 0
            if component is PULSE:
                assert data["status"] == "error"
                assert data["items"] == []
                assert "nothing is cached" in data["message"]
                assert "JUPITER_PULSE_FEEDS" in data["suggestion"]
            else:
                # The bundled ATT&CK data is still served; KEV contributes nothing.
                assert not [item for item in data["items"] if item["source"] == "kev"]
            if breaker.state.value == "open":
                break
            clock.advance(DUE_SECONDS)
        await inbox.wait("status_update", after=mark, where=breaker_is(component, "open"))
        mark = inbox.mark()
        await send_event(ws, "request_status")
        await inbox.wait("status_update", after=mark)
        inbox.close()
