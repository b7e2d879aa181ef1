"""The community pulse: RSS/Atom parsing, trending topics, and the service against real loopback
feeds with faults (live, stale, error, offline with no cache, breaker, untrusted text)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from jupiter.intel import CommunityPulseService, IntelSourceError, trending_topics
from jupiter.intel._pulse import parse_feed
from jupiter.intel.models import PulseItemRow
from jupiter.resilience.testing import FakeClock
from support.feed_upstream import FeedEntry, FeedUpstream, atom_document, rss_document


def day(n: int) -> dt.datetime:
    return dt.datetime(2025, 8, n, 9, 30, tzinfo=dt.UTC)


VENDOR = [
    FeedEntry(
        "Ivanti EPMM CVE-2025-4427 exploited", "https://vendor.example/1", "Patch now", day(20)
    ),
    FeedEntry("Kernel hardening notes", "https://vendor.example/2", "No CVE here", day(18)),
]
CERT = [
    FeedEntry(
        "Alert: Ivanti gateways under attack",
        "https://cert.example/a",
        "See CVE-2025-4427",
        day(21),
    ),
    FeedEntry("Weekly bulletin", "https://cert.example/b", "<p>Many <b>items</b></p>", day(19)),
]

PulseFactory = Callable[..., CommunityPulseService]


@pytest.fixture
async def make_pulse(
    make_settings: Callable[..., Any],
    session_factory: Callable[[], Session],
    clock: FakeClock,
) -> AsyncIterator[PulseFactory]:
    """Build pulse services on the test database and fake clock; clients are closed after."""
    built: list[CommunityPulseService] = []

    def build(feeds: list[str], **kwargs: Any) -> CommunityPulseService:
        kwargs.setdefault("clock", clock)
        service = CommunityPulseService(make_settings(pulse_feeds=feeds), session_factory, **kwargs)
        built.append(service)
        return service

    yield build
    for service in built:
        await service.aclose()


# --- parsing ----------------------------------------------------------------------------------


def test_rss_and_atom_parse_to_plain_entries() -> None:
    """Both wire formats give title, link, UTC published time and a plain-text summary."""
    for document, kind in (
        (rss_document, "application/rss+xml"),
        (atom_document, "application/atom+xml"),
    ):
        name, entries, rejected = parse_feed(
            document("CERT", "https://cert.example/", CERT), kind, "http://h/f"
        )
        assert name == "CERT"
        assert rejected == 0
        assert [e.title for e in entries] == [e.title for e in CERT]
        assert entries[0].link == "https://cert.example/a"
        assert entries[0].published == "2025-08-21T09:30:00Z"
        assert entries[1].summary == "Many items"


def test_untrusted_markup_and_links_never_become_html() -> None:
    """Script links are dropped; HTML titles lose their tags; text titles stay literal text."""
    hostile = [
        FeedEntry("<img src=x onerror=alert(1)>Hello", "javascript:alert(1)", title_type="html"),
        FeedEntry("Use <b> tags", "data:text/html,<script>alert(1)</script>", title_type="text"),
        FeedEntry("ok", "https://fine.example/", "<script>steal()</script>Body text"),
    ]
    _, entries, rejected = parse_feed(
        atom_document("X", "https://x/", hostile), "application/atom+xml", "http://h/x"
    )
    assert rejected == 2
    assert [e.link for e in entries] == [None, None, "https://fine.example/"]
    assert entries[0].title == "Hello"
    assert entries[1].title == "Use <b> tags"
    assert entries[2].summary == "Body text"


def test_a_document_that_is_not_a_feed_is_refused() -> None:
    """HTML error pages and garbage are a clear 'not an RSS or Atom feed' error."""
    with pytest.raises(IntelSourceError, match="not an RSS or Atom feed") as caught:
        parse_feed(b"\x00\x01 garbage {]", "application/xml", "https://h/feed?key=SECRET")
    assert "SECRET" not in str(caught.value)


# --- trending ---------------------------------------------------------------------------------


def test_trending_needs_two_sources_and_ranks_spread_first() -> None:
    """A CVE in two feeds beats a word repeated by one feed; single-source topics never trend."""
    items = [
        {"source": "a", "title": "Ivanti EPMM flaw", "summary": "CVE-2025-4427"},
        {"source": "b", "title": "Ivanti gateways hit", "summary": "cve-2025-4427 exploited"},
        {"source": "a", "title": "Kubernetes tips", "summary": ""},
        {"source": "a", "title": "Kubernetes tricks", "summary": ""},
        {"source": "a", "title": "Kubernetes things", "summary": ""},
        {"source": "c", "title": "Weekly Ivanti roundup", "summary": ""},
    ]
    topics = trending_topics(items)
    by_topic = {t["topic"]: t for t in topics}
    assert set(by_topic) == {"Ivanti", "CVE-2025-4427"}
    assert by_topic["Ivanti"]["sources"] == 3
    assert by_topic["CVE-2025-4427"] == {
        "topic": "CVE-2025-4427",
        "kind": "cve",
        "sources": 2,
        "mentions": 2,
        "score": 2.5,
    }
    assert topics[0]["topic"] == "Ivanti"
    assert trending_topics(items, min_sources=4) == []


def test_trending_ignores_stopwords_and_short_words() -> None:
    """Common words ('the', 'security', 'new') do not trend even when everywhere."""
    items = [{"source": s, "title": "The new security update is out"} for s in "abc"]
    assert trending_topics(items) == []


# --- service ----------------------------------------------------------------------------------


async def test_live_pulse_from_rss_and_atom(make_pulse: PulseFactory) -> None:
    """Two live feeds: items newest first, both sources live, the shared CVE trending."""
    with FeedUpstream() as upstream:
        rss = upstream.add_rss("/vendor.rss", "Vendor blog", VENDOR)
        atom = upstream.add_atom("/cert.atom", "CERT notes", CERT)
        pulse = await make_pulse([rss, atom]).get_pulse()
        accepts = [r.headers.get("accept", "") for r in upstream.requests]
    assert pulse["status"] == "live"
    assert pulse["success"] is True
    assert pulse["stale"] is False
    assert [s["status"] for s in pulse["sources"].values()] == ["live", "live"]
    assert {s["name"] for s in pulse["sources"].values()} == {"Vendor blog", "CERT notes"}
    assert [i["published"] for i in pulse["items"]] == sorted(
        (i["published"] for i in pulse["items"]), reverse=True
    )
    assert pulse["items"][0]["source"] == "CERT notes"
    topics = {t["topic"] for t in pulse["trending"]}
    assert {"CVE-2025-4427", "Ivanti"} <= topics
    assert all("atom+xml" in accept for accept in accepts)


async def test_failed_feed_serves_its_cache_stale_with_age(
    make_pulse: PulseFactory, clock: FakeClock, aggregator: Any
) -> None:
    """A feed that fails after a good fetch is served from the cache, stale, with its age."""
    with FeedUpstream() as upstream:
        rss = upstream.add_rss("/vendor.rss", "Vendor blog", VENDOR)
        atom = upstream.add_atom("/cert.atom", "CERT notes", CERT)
        service = make_pulse([rss, atom], aggregator=aggregator)
        await service.get_pulse()
        upstream.set_fault("500", path="/vendor.rss")
        clock.advance(600)
        pulse = await service.get_pulse()
    vendor = next(s for s in pulse["sources"].values() if s["name"] == "Vendor blog")
    cert = next(s for s in pulse["sources"].values() if s["name"] == "CERT notes")
    assert vendor["status"] == "stale"
    assert vendor["age_seconds"] == pytest.approx(600 + sum(clock.sleeps))
    assert "HTTP 500" in vendor["error"]
    assert cert["status"] == "live"
    assert pulse["status"] == "degraded"
    assert pulse["stale"] is True
    assert {i["title"] for i in pulse["items"]} >= {e.title for e in VENDOR}
    recent = aggregator.get_recent_errors(limit=5)
    assert [r["type"] for r in recent] == ["pulse_feed_error"]
    assert recent[0]["context"]["component"] == "community_pulse"


async def test_offline_with_no_cache_says_so_plainly(make_pulse: PulseFactory) -> None:
    """Unreachable feeds and an empty cache give status 'error', a message and a suggestion."""
    with FeedUpstream() as upstream:
        dead = upstream.url_for("/gone.rss?token=SECRET")
    pulse = await make_pulse([dead]).get_pulse()
    assert pulse["status"] == "error"
    assert pulse["success"] is False
    assert pulse["items"] == []
    assert "could not be reached" in pulse["message"]
    assert "JUPITER_PULSE_FEEDS" in pulse["suggestion"]
    (source,) = pulse["sources"].values()
    assert source["status"] == "error"
    assert "connection failed" in source["error"]
    assert "SECRET" not in json.dumps(pulse)


async def test_no_feeds_configured_is_empty_not_error(make_pulse: PulseFactory) -> None:
    """With no feeds configured the pulse is 'empty' and says how to add some."""
    pulse = await make_pulse([]).get_pulse()
    assert pulse["status"] == "empty"
    assert "JUPITER_PULSE_FEEDS" in pulse["suggestion"]


async def test_empty_and_malformed_feeds(make_pulse: PulseFactory) -> None:
    """An empty feed is live with 0 items; a malformed one is an error naming the problem."""
    with FeedUpstream() as upstream:
        empty = upstream.add_rss("/empty.rss", "Quiet", VENDOR)
        broken = upstream.add_atom("/broken.atom", "Broken", CERT)
        upstream.set_fault("empty", path="/empty.rss")
        upstream.set_fault("malformed", path="/broken.atom")
        pulse = await make_pulse([empty, broken]).get_pulse()
    quiet, bad = pulse["sources"].values()
    assert quiet["status"] == "live"
    assert quiet["count"] == 0
    assert quiet["empty"] is True
    assert bad["status"] == "error"
    assert "not an RSS or Atom feed" in bad["error"]
    assert pulse["status"] == "degraded"


async def test_429_retry_after_and_flapping_feed(
    make_pulse: PulseFactory, clock: FakeClock
) -> None:
    """Retry-After is honoured between attempts; a flapping feed is live after one retry."""
    with FeedUpstream() as upstream:
        feed = upstream.add_rss("/vendor.rss", "Vendor blog", VENDOR)
        upstream.set_fault("429", retry_after=4)
        limited = await make_pulse([feed]).get_pulse()
        assert clock.sleeps == [4.0, 4.0]
        upstream.set_fault("flapping")
        clock.sleeps.clear()
        flapping = await make_pulse([feed]).get_pulse(refresh=True)
    assert limited["status"] == "error"
    assert flapping["status"] == "live"
    assert clock.sleeps == [1.0]


async def test_malicious_titles_are_stored_as_plain_text(
    make_pulse: PulseFactory, session_factory: Callable[[], Session]
) -> None:
    """Hostile titles are stored as text (HTML titles reduced to their words), links vetted."""
    hostile = [
        FeedEntry(
            "<script>alert(1)</script>Patch Tuesday", "https://ok.example/1", title_type="html"
        ),
        FeedEntry('"><svg onload=alert(2)>', "javascript:alert(2)", title_type="text"),
    ]
    with FeedUpstream() as upstream:
        feed = upstream.add_atom("/x.atom", "<b>Bold</b> feed", hostile)
        pulse = await make_pulse([feed]).get_pulse()
    with session_factory() as session:
        rows = {row.title: row for row in session.scalars(select(PulseItemRow))}
    assert set(rows) == {"Patch Tuesday", '"><svg onload=alert(2)>'}
    assert rows['"><svg onload=alert(2)>'].link is None
    assert rows["Patch Tuesday"].link == "https://ok.example/1"
    assert {i["title"] for i in pulse["items"]} == set(rows)
    assert "&lt;" not in json.dumps(pulse)  # text is never HTML-escaped (or rendered) here


async def test_breaker_opens_then_recovers_for_feeds(
    make_pulse: PulseFactory, clock: FakeClock, breaker_factory: Callable[..., Any]
) -> None:
    """Repeated feed failures open the breaker (no upstream calls); it recovers afterwards."""
    breaker = breaker_factory(failure_threshold=2, timeout=30)
    with FeedUpstream() as upstream:
        feed = upstream.add_rss("/vendor.rss", "Vendor blog", VENDOR)
        service = make_pulse([feed], breaker=breaker)
        upstream.set_fault("500")
        await service.refresh()
        await service.refresh()
        assert breaker.state.value == "open"
        seen = len(upstream.requests)
        refused = await service.refresh()
        assert len(upstream.requests) == seen
        assert "circuit breaker open" in next(iter(refused["sources"].values()))["error"]
        upstream.set_fault(None)
        clock.advance(31)
        recovered = await service.refresh()
    assert recovered["status"] == "live"
    assert breaker.state.value == "closed"


async def test_cache_survives_a_restart(make_pulse: PulseFactory) -> None:
    """A new service on the same database serves the cached items when the feed is gone."""
    with FeedUpstream() as upstream:
        feed = upstream.add_rss("/vendor.rss", "Vendor blog", VENDOR)
        await make_pulse([feed]).get_pulse()
    pulse = await make_pulse([feed]).get_pulse(refresh=True)
    assert pulse["status"] == "degraded"
    assert [s["status"] for s in pulse["sources"].values()] == ["stale"]
    assert {i["title"] for i in pulse["items"]} == {e.title for e in VENDOR}


async def test_bad_limit_is_refused(make_pulse: PulseFactory) -> None:
    """A limit outside 1..1000 is a clear ValueError."""
    with pytest.raises(ValueError, match="limit"):
        await make_pulse([]).get_pulse(limit=0)
