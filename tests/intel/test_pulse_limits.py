"""Hostile RSS and Atom documents against the real CommunityPulseService and a loopback feed
server: every feed is checked before feedparser reads it (XML limits, no entity declarations,
well-formed, entries counted), and feedparser runs in the worker process within a time limit.

Going over a limit fails the feed with the limit and the XML line named, records it, stores
nothing from the document and keeps the last good entries served as stale.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from jupiter.intel import CommunityPulseService
from jupiter.intel._feeds import parse_feed
from jupiter.intel._limits import FeedLimits
from jupiter.intel.models import PulseItemRow
from jupiter.limits import InputLimitError, UnsafeXmlError, XmlLimits
from jupiter.resilience.testing import FakeClock
from support.feed_upstream import RSS_TYPE, FeedEntry, atom_document, rss_document
from support.hostile import MB, Case, billion_laughs, xml_cases, xxe
from support.kev_upstream import FaultyUpstream

ENTRIES = [
    FeedEntry("Ivanti EPMM CVE-2025-4427 exploited", "https://vendor.example/1", "Patch now"),
    FeedEntry("Kernel hardening notes", "https://vendor.example/2", "<p>No <b>CVE</b></p>"),
]
RSS = rss_document("Vendor blog", "https://vendor.example/", ENTRIES)
ATOM = atom_document("CERT", "https://cert.example/", ENTRIES)
PulseFactory = Callable[..., CommunityPulseService]


@pytest.fixture
async def make_pulse(
    make_settings: Callable[..., Any],
    session_factory: Callable[[], Session],
    clock: FakeClock,
    aggregator: Any,
) -> AsyncIterator[PulseFactory]:
    built: list[CommunityPulseService] = []

    def build(feeds: list[str], **values: Any) -> CommunityPulseService:
        service = CommunityPulseService(
            make_settings(pulse_feeds=feeds, **values),
            session_factory,
            clock=clock,
            aggregator=aggregator,
        )
        built.append(service)
        return service

    yield build
    for service in built:
        await service.aclose()


def stored_titles(session_factory: Callable[[], Session]) -> set[str]:
    with session_factory() as session:
        return set(session.scalars(select(PulseItemRow.title)))


CASES = [
    pytest.param(kind, good, case, id=f"{kind}-{case.name}")
    for kind, good in (("rss", RSS), ("atom", ATOM))
    for case in xml_cases(good)
]


@pytest.mark.parametrize(("kind", "good", "case"), CASES)
async def test_a_hostile_feed_fails_and_the_last_good_entries_stay_served(
    make_pulse: PulseFactory,
    session_factory: Callable[[], Session],
    aggregator: Any,
    kind: str,
    good: bytes,
    case: Case,
) -> None:
    """Good document, then the hostile one at the same URL: the feed is stale, its error names
    the problem, the two good entries are what is stored and served."""
    with FaultyUpstream() as upstream:
        url = upstream.serve(f"/feed.{kind}", good, RSS_TYPE)
        service = make_pulse([url])
        assert (await service.refresh())["status"] == "live"
        upstream.serve(f"/feed.{kind}", case.body, RSS_TYPE, headers=case.headers)
        pulse = await service.refresh()
    status = next(iter(pulse["sources"].values()))
    assert status["status"] == "stale"
    assert case.expect in status["error"]
    assert {item["title"] for item in pulse["items"]} == {entry.title for entry in ENTRIES}
    assert stored_titles(session_factory) == {entry.title for entry in ENTRIES}
    recorded = aggregator.get_recent_errors(limit=1)[0]
    assert recorded["type"] == "pulse_feed_error"
    assert case.expect in recorded["message"]


def test_the_refusal_names_the_xml_line() -> None:
    """Entity bombs, deep nesting and one entry too many are named with their line."""
    limits = FeedLimits(xml=XmlLimits(max_depth=8), max_entries=2)
    with pytest.raises(UnsafeXmlError) as laughs:
        parse_feed(billion_laughs(), "application/rss+xml", "http://h/f")
    with pytest.raises(UnsafeXmlError) as external:
        parse_feed(xxe(), "application/rss+xml", "http://h/f")
    deep = b"<rss version='2.0'><channel>\n\n" + b"<x>" * 20 + b"</x>" * 20 + b"</channel></rss>"
    with pytest.raises(InputLimitError) as nested:
        parse_feed(deep, "application/rss+xml", "http://h/f", limits)
    three = rss_document("t", "https://t/", ENTRIES * 2).replace(b"<item>", b"\n<item>")
    with pytest.raises(InputLimitError) as entries:
        parse_feed(three, "application/rss+xml", "http://h/f", limits)
    assert str(laughs.value) == (
        "the feed is not XML Jupiter accepts: a DOCTYPE with an internal subset is not "
        "allowed at line 2, column 15"
    )
    assert external.value.line == 2
    assert str(nested.value) == (
        "the feed: nesting depth is over the limit of 8 (at line 3, column 19)"
    )
    assert str(entries.value) == (
        "the feed: number of entries is over the limit of 2 (at line 5, column 1)"
    )


def test_a_feed_that_is_not_well_formed_is_refused_with_its_line() -> None:
    """feedparser's loose fallback is never used: a truncated or broken feed is an error (half
    a feed would replace the whole one in the cache)."""
    with pytest.raises(Exception, match=r"is not an RSS or Atom feed \(not well-formed XML: "):
        parse_feed(RSS[:200], "application/rss+xml", "https://h/f?token=SECRET")


def test_html_named_entities_are_accepted() -> None:
    """&nbsp; and &mdash; are undeclared in XML, but feeds use them: written as numeric
    references first, they parse; an unknown name is still refused."""
    sloppy = RSS.replace(b"Patch now", b"Patch&nbsp;now &mdash; today &amp; tomorrow")
    _, entries, _ = parse_feed(sloppy, "application/rss+xml", "http://h/f")
    assert entries[0].summary == "Patch now — today & tomorrow"
    with pytest.raises(Exception, match="undefined entity"):
        parse_feed(RSS.replace(b"Patch now", b"&bogus;"), "application/rss+xml", "http://h/f")


def test_markup_that_made_feedparser_quadratic_is_plain_text_now() -> None:
    """200,000 '<!--' in a description (1.2 MB): feedparser's sanitizer needed hours; the
    linear converter reads it at once (the comment hides the rest, as in a browser)."""
    hostile = [FeedEntry("Title", "https://x.example/", "before " + "<!--" * 200_000)]
    document = rss_document("x", "https://x.example/", hostile)
    limits = FeedLimits(xml=XmlLimits(max_bytes=4 * MB, max_text_chars=2 * MB))
    _, entries, _ = parse_feed(document, "application/rss+xml", "http://h/f", limits)
    assert entries[0].summary == "before"


async def test_feedparser_runs_in_the_worker_within_its_time_limit(
    make_pulse: PulseFactory,
) -> None:
    """The service hands feedparser to the worker process with pulse_max_parse_seconds."""
    calls: list[tuple[Any, ...]] = []

    class RecordingWorker:
        def run(self, func: Any, *args: Any, timeout: float, what: str) -> Any:
            calls.append((func.__name__, timeout, what))
            return func(*args)

    with FaultyUpstream() as upstream:
        url = upstream.serve("/feed.rss", RSS, RSS_TYPE)
        service = make_pulse([url], pulse_max_parse_seconds=3)
        service.parser_worker = RecordingWorker()  # type: ignore[assignment]
        pulse = await service.refresh()
    assert pulse["status"] == "live"
    assert calls == [("entries_of", 3.0, "the feed")]


def test_limits_come_from_the_settings(make_settings: Callable[..., Any]) -> None:
    """Every pulse_* limit setting reaches the limits the feeds are checked with."""
    limits = FeedLimits.from_settings(
        make_settings(
            pulse_max_bytes=MB,
            pulse_max_depth=16,
            pulse_max_elements=500,
            pulse_max_attribute_chars=2048,
            pulse_max_text_chars=4096,
            pulse_max_entries=7,
            pulse_max_parse_seconds=2,
            pulse_parser_max_memory_bytes=300 * MB,
            intel_max_fetch_seconds=20,
        )
    )
    assert limits == FeedLimits(
        xml=XmlLimits(
            max_bytes=MB,
            max_depth=16,
            max_elements=500,
            max_attribute_chars=2048,
            max_text_chars=4096,
        ),
        max_entries=7,
        max_fetch_seconds=20,
        max_parse_seconds=2,
        max_parser_memory_bytes=300 * MB,
    )
