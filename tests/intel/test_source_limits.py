"""Hostile threat-intel documents against the real ThreatIntelService and loopback upstreams:
every KEV catalog, STIX bundle, TAXII page and intel file is parsed within explicit limits.

Going over one fails that source with a message naming the limit and the JSON path, records
the error (with the limit's fields) in the aggregator, stores nothing from the document and
leaves the last good snapshot served as stale. Deadlines run on the fake clock: the upstream
moves it while it answers.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import stix2
from sqlalchemy import select
from sqlalchemy.orm import Session

from jupiter.intel import ThreatIntelService
from jupiter.intel._limits import IntelLimits
from jupiter.intel._sources import parse_stix
from jupiter.intel.models import ThreatItemRow
from jupiter.limits import InputLimitError, JsonLimits
from jupiter.resilience.testing import FakeClock
from support.hostile import MB, Case, json_cases
from support.kev_upstream import FaultyUpstream, KevUpstream, kev_catalog, kev_record
from support.taxii_upstream import TAXII_TYPE, TaxiiUpstream

GOOD = kev_catalog([kev_record("CVE-2025-1001"), kev_record("CVE-2025-1002")])
ServiceFactory = Callable[..., ThreatIntelService]


@pytest.fixture
async def make_service(
    make_settings: Callable[..., Any],
    session_factory: Callable[[], Session],
    clock: FakeClock,
    aggregator: Any,
) -> AsyncIterator[ServiceFactory]:
    """Services on the test database, fake clock and real aggregator; any setting by name."""
    built: list[ThreatIntelService] = []

    def build(**values: Any) -> ThreatIntelService:
        service = ThreatIntelService(
            make_settings(**values), session_factory, clock=clock, aggregator=aggregator
        )
        built.append(service)
        return service

    yield build
    for service in built:
        await service.aclose()


def stored_ids(session_factory: Callable[[], Session], source: str) -> set[str]:
    with session_factory() as session:
        rows = session.scalars(select(ThreatItemRow.item_id).where(ThreatItemRow.source == source))
        return set(rows)


def indicator(i: int) -> dict[str, Any]:
    made = stix2.Indicator(
        name=f"Bad IP {i}", pattern=f"[ipv4-addr:value = '10.0.0.{i}']", pattern_type="stix"
    )
    return dict(json.loads(made.serialize()))


KEV_CASES = json_cases(GOOD, string_path=["vulnerabilities", 0, "shortDescription"])


@pytest.mark.parametrize("case", KEV_CASES, ids=lambda case: case.name)
async def test_a_hostile_kev_document_fails_the_source_and_keeps_the_last_good_data(
    make_service: ServiceFactory,
    session_factory: Callable[[], Session],
    clock: FakeClock,
    aggregator: Any,
    case: Case,
) -> None:
    """Good catalog, then the hostile one: the source is stale, its error names the limit,
    the two good records are still stored and served, the aggregator has the limit's fields."""
    with KevUpstream(GOOD) as upstream:
        service = make_service(kev_url=upstream.url)
        first = await service.sync_feeds(["kev"])
        assert first["sources"]["kev"]["status"] == "live"
        upstream.serve(
            "/sites/default/files/feeds/known_exploited_vulnerabilities.json",
            case.body,
            headers=case.headers,
        )
        clock.advance(1)
        result = await service.fetch_threats({"source": "kev"}, refresh=True)
    kev = result["sources"]["kev"]
    assert kev["status"] == "stale"
    assert case.expect in kev["error"]
    assert {item["id"] for item in result["items"]} == {"CVE-2025-1001", "CVE-2025-1002"}
    assert stored_ids(session_factory, "kev") == {"CVE-2025-1001", "CVE-2025-1002"}
    recorded = aggregator.get_recent_errors(limit=1)[0]
    assert recorded["type"] == "intel_source_error"
    assert case.expect in recorded["message"]
    if "limit" in recorded.get("context", {}):
        assert recorded["context"]["limit"]["limit"].startswith("max_")


async def test_the_refusal_names_the_limit_and_the_json_path(make_service: ServiceFactory) -> None:
    """A record nested too deep is named by its path; a long number too."""
    deep = kev_catalog([kev_record("CVE-2025-1001", notes=[[[[[[[[["deep"]]]]]]]]])])
    numbered = kev_catalog([kev_record("CVE-2025-1001")])
    numbered["count"] = int("9" * 200)
    with KevUpstream(deep) as upstream:
        service = make_service(kev_url=upstream.url, intel_max_depth=8)
        deep_error = (await service.sync_feeds(["kev"]))["sources"]["kev"]["error"]
        upstream.set_catalog(numbered)
        number_error = (await service.sync_feeds(["kev"]))["sources"]["kev"]["error"]
    assert deep_error == (
        "the KEV catalog: nesting depth is over the limit of 8 "
        "(at $.vulnerabilities[0].notes[0][0][0][0][0])"
    )
    assert number_error == (
        "the KEV catalog: number length in characters is over the limit of 100 (at $.count)"
    )


async def test_the_real_kev_catalog_imports_within_the_default_limits(
    make_service: ServiceFactory, kev_snapshot: Path
) -> None:
    """The 2025 CISA catalog (1.3 MB, 1,404 records) is well inside every default limit,
    plain and gzipped."""
    body = kev_snapshot.read_bytes()
    records = len(json.loads(body)["vulnerabilities"])
    with KevUpstream(kev_snapshot) as upstream:
        service = make_service(kev_url=upstream.url)
        plain = await service.sync_feeds(["kev"])
        upstream.serve(
            "/sites/default/files/feeds/known_exploited_vulnerabilities.json",
            gzip.compress(body),
            headers={"Content-Encoding": "gzip"},
        )
        zipped = await service.sync_feeds(["kev"])
    assert plain["sources"]["kev"]["status"] == "live"
    assert plain["sources"]["kev"]["count"] == records
    assert zipped["sources"]["kev"]["status"] == "live"
    assert zipped["sources"]["kev"]["count"] == records


async def test_too_many_kev_records_are_refused_before_validation(
    make_service: ServiceFactory,
) -> None:
    """More records than intel_max_items: refused by count, naming $.vulnerabilities."""
    many = kev_catalog([kev_record(f"CVE-2025-{2000 + i}") for i in range(11)])
    with KevUpstream(many) as upstream:
        service = make_service(kev_url=upstream.url, intel_max_items=10)
        result = await service.sync_feeds(["kev"])
    assert result["sources"]["kev"]["error"] == (
        "the KEV catalog: number of items (11) is over the limit of 10 (at $.vulnerabilities)"
    )


async def test_a_dripping_upstream_is_cut_off_by_the_fetch_deadline(
    make_service: ServiceFactory, clock: FakeClock
) -> None:
    """Each read is quick, the whole download is not: intel_max_fetch_seconds stops it (the
    upstream moves the fake clock 10 s per 16-byte piece)."""
    with KevUpstream(GOOD) as upstream:
        upstream.set_fault("drip")
        upstream.on_drip = lambda: clock.advance(10)
        service = make_service(kev_url=upstream.url, intel_max_fetch_seconds=60)
        result = await service.sync_feeds(["kev"])
        attempts = len(upstream.requests)
    assert result["sources"]["kev"]["status"] == "error"
    assert result["sources"]["kev"]["error"] == (
        "the KEV catalog: time to fetch in seconds is over the limit of 60"
    )
    assert attempts == 1  # the same upstream would drip again: not retried


async def test_a_gzip_bomb_stays_a_size_error_whatever_its_ratio(
    make_service: ServiceFactory,
) -> None:
    """128 MB of whitespace in 0.5 MB of gzip against a 1 MB limit: refused by decoded size."""
    bomb = next(case for case in KEV_CASES if case.name == "gzip-bomb")
    with FaultyUpstream() as upstream:
        url = upstream.serve("/kev.json", bomb.body, headers=bomb.headers)
        service = make_service(kev_url=url, intel_max_bytes=MB)
        result = await service.sync_feeds(["kev"])
        asked = upstream.requests[-1].headers["accept-encoding"]
    assert asked == "gzip, deflate"  # only what Jupiter decodes within the limit
    assert result["sources"]["kev"]["error"].startswith("the KEV catalog: size in bytes (1,")
    assert result["sources"]["kev"]["error"].endswith("is over the limit of 1,048,576")


async def test_stix_objects_are_counted_and_checked_against_the_parse_deadline(
    make_service: ServiceFactory,
) -> None:
    """A bundle with more objects than intel_max_items is refused by count; an invalid
    object is named by its path."""
    bundle = {"type": "bundle", "id": "bundle--6b2a7e55-1c8e-4b3a-9f3a-1f0e3c7a2b11"}
    bundle["objects"] = [indicator(i) for i in range(12)]
    broken = dict(bundle, objects=[indicator(1), {"type": "malware", "id": "malware--nope"}])
    with FaultyUpstream() as upstream:
        url = upstream.serve("/bundle.json", json.dumps(bundle).encode())
        service = make_service(stix_url=url, intel_max_items=10)
        many = await service.sync_feeds(["stix"])
        upstream.serve("/bundle.json", json.dumps(broken).encode())
        invalid = await make_service(stix_url=url).sync_feeds(["stix"])
    assert many["sources"]["stix"]["error"] == (
        "the STIX bundle: number of items (12) is over the limit of 10 (at $.objects)"
    )
    assert invalid["sources"]["stix"]["error"].startswith(
        "invalid STIX 2.1 content at $.objects[1]:"
    )


def test_stix_checking_stops_at_the_parse_deadline() -> None:
    """stix2 is slow (about 0.6 ms per object): past intel_max_parse_seconds on the clock the
    check stops and names the object it reached."""

    class TickingClock(FakeClock):
        def monotonic(self) -> float:  # every look at the clock costs 10 s
            self.advance(10)
            return super().monotonic()

    bundle = {"type": "bundle", "id": "bundle--6b2a7e55-1c8e-4b3a-9f3a-1f0e3c7a2b11"}
    bundle["objects"] = [indicator(i) for i in range(10)]
    limits = IntelLimits(max_parse_seconds=35)
    with pytest.raises(InputLimitError) as caught:
        parse_stix(bundle, "stix", limits, TickingClock())
    assert caught.value.limit == "max_seconds"
    assert caught.value.json_path == "$.objects[3]"


async def test_hostile_taxii_pages_fail_the_source_without_storing_anything(
    make_service: ServiceFactory, session_factory: Callable[[], Session], clock: FakeClock
) -> None:
    """A good collection first; then, each in turn, a gzip bomb page, a deeply nested page, a
    page that is a JSON list, a collection that never ends, and a page served after the
    fetch deadline. The source turns stale with the limit named; the good objects stay."""
    objects = [indicator(i) for i in range(4)]
    with TaxiiUpstream(objects, page_size=2) as upstream:
        service = make_service(
            taxii_collection_url=upstream.collection_url,
            intel_max_bytes=MB,
            intel_max_taxii_pages=5,
            intel_max_fetch_seconds=100,
        )
        good = await service.sync_feeds(["taxii"])
        assert good["sources"]["taxii"]["count"] == 4
        errors = {}
        hostile = {
            "bomb": (gzip.compress(b" " * (2 * MB)), {"Content-Encoding": "gzip"}),
            "deep": (b"[" * 100_000 + b"]" * 100_000, {}),
            "list": (b"[1, 2, 3]", {}),
        }
        for name, (body, headers) in hostile.items():
            upstream.pages_served = 0
            upstream.page_replies = {2: _reply(body, headers)}
            errors[name] = (await service.sync_feeds(["taxii"]))["sources"]["taxii"]
        upstream.page_replies = {}
        upstream.endless = True
        errors["endless"] = (await service.sync_feeds(["taxii"]))["sources"]["taxii"]
        upstream.endless = False
        upstream.pages_served = 0
        upstream.on_page = lambda number: clock.advance(60)
        errors["slow"] = (await service.sync_feeds(["taxii"]))["sources"]["taxii"]
    assert errors["bomb"]["error"].startswith("TAXII response 3: size in bytes")
    assert errors["deep"]["error"].startswith("TAXII response 3: nesting depth is over")
    assert errors["list"]["error"] == "malformed TAXII response 3: expected a JSON object"
    assert errors["endless"]["error"] == (
        "the TAXII collection: number of pages is over the limit of 5"
    )
    assert errors["slow"]["error"] == (
        "the TAXII collection: time to fetch in seconds is over the limit of 100"
    )
    assert all(status["status"] == "stale" for status in errors.values())
    assert stored_ids(session_factory, "taxii") == {obj["id"] for obj in objects}


async def test_too_many_taxii_objects_over_all_pages_are_refused(
    make_service: ServiceFactory,
) -> None:
    """intel_max_items counts objects over every page, not per page."""
    with TaxiiUpstream([indicator(i) for i in range(12)], page_size=5) as upstream:
        service = make_service(taxii_collection_url=upstream.collection_url, intel_max_items=10)
        result = await service.sync_feeds(["taxii"])
    assert result["sources"]["taxii"]["error"] == (
        "the TAXII collection (page 3): number of items (12) is over the limit of 10 (at $.objects)"
    )


async def test_a_collection_description_taxii2_client_cannot_take_is_an_error(
    make_service: ServiceFactory,
) -> None:
    """Collection information whose keys crash taxii2-client's constructor is reported as a
    malformed answer, never an unhandled exception."""
    with TaxiiUpstream([indicator(1)]) as upstream:
        upstream.collection_reply = _reply(json.dumps({"self": 1, "can_read": True}).encode())
        result = await make_service(taxii_collection_url=upstream.collection_url).sync_feeds(
            ["taxii"]
        )
    assert result["sources"]["taxii"]["error"].startswith("malformed TAXII response from")


async def test_the_intel_file_is_read_within_the_limits(
    make_service: ServiceFactory, tmp_path: Path
) -> None:
    """A file over intel_max_bytes (sparse: no disk used) is refused by its size, a FIFO is
    refused without blocking, and a deeply nested file by its depth."""
    big = tmp_path / "big.json"
    with big.open("wb") as handle:
        handle.truncate(2 * MB)
    fifo = tmp_path / "intel.fifo"
    os.mkfifo(fifo)
    deep = tmp_path / "deep.json"
    deep.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    errors = {}
    for name, path in (("big", big), ("fifo", fifo), ("deep", deep)):
        service = make_service(intel_file=path, intel_max_bytes=MB)
        errors[name] = (await service.fetch_threats({"source": "file"}))["sources"]["file"]
    assert errors["big"]["error"] == (
        "the intel file: size in bytes (2,097,152) is over the limit of 1,048,576"
    )
    assert errors["fifo"]["error"] == f"intel file is not a regular file: {fifo}"
    assert errors["deep"]["error"].startswith(
        "the intel file: nesting depth is over the limit of 64 (at $"
    )


async def test_text_that_no_database_can_store_is_cleaned_not_fatal(
    make_service: ServiceFactory, session_factory: Callable[[], Session]
) -> None:
    """A NUL and a lone surrogate in a record (valid JSON escapes) are cleaned before storing,
    so one odd record cannot fail the snapshot."""
    odd = kev_catalog([kev_record("CVE-2025-1003", shortDescription="a\u0000b\ud800c")])
    with KevUpstream(odd) as upstream:
        result = await make_service(kev_url=upstream.url).fetch_threats({"source": "kev"})
    assert result["sources"]["kev"]["status"] == "live"
    assert result["items"][0]["description"] == "ab\ufffdc"


def test_limits_come_from_the_settings(make_settings: Callable[..., Any]) -> None:
    """Every intel_* limit setting reaches the limits the sources use."""
    limits = IntelLimits.from_settings(
        make_settings(
            intel_max_bytes=2 * MB,
            intel_max_depth=16,
            intel_max_string_chars=4096,
            intel_max_number_chars=30,
            intel_max_values=5000,
            intel_max_items=77,
            intel_max_taxii_pages=3,
            intel_max_fetch_seconds=9,
            intel_max_parse_seconds=8,
        )
    )
    assert limits == IntelLimits(
        json=JsonLimits(
            max_bytes=2 * MB,
            max_depth=16,
            max_string_chars=4096,
            max_number_chars=30,
            max_values=5000,
        ),
        max_items=77,
        max_taxii_pages=3,
        max_fetch_seconds=9,
        max_parse_seconds=8,
    )
    assert IntelLimits.from_settings(object()) == IntelLimits()


def _reply(body: bytes, headers: dict[str, str] | None = None) -> Any:
    from support.kev_upstream import Reply

    return Reply(body, TAXII_TYPE, headers=dict(headers or {}))


async def test_the_dashboards_retry_policy_retries_only_transient_failures(
    make_settings: Callable[..., Any],
    session_factory: Callable[[], Session],
    clock: FakeClock,
) -> None:
    """The dashboard gives every component one policy that retries any error; intel narrows
    it: a malformed or over-limit document is fetched once, a 500 three times."""
    from jupiter.resilience import retry_with_backoff

    generic = retry_with_backoff(max_attempts=3, initial_delay=0, clock=clock)
    with KevUpstream(GOOD) as upstream:
        service = ThreatIntelService(
            make_settings(kev_url=upstream.url, intel_max_depth=8),
            session_factory,
            clock=clock,
            retry=generic,
        )
        try:
            counts = {}
            for name, reply in (
                ("malformed", b'{"vulnerabilities": ['),
                ("deep", b"[" * 50 + b"]" * 50),
            ):
                upstream.serve(
                    "/sites/default/files/feeds/known_exploited_vulnerabilities.json", reply
                )
                before = len(upstream.requests)
                await service.sync_feeds(["kev"])
                counts[name] = len(upstream.requests) - before
            upstream.set_fault("500")
            before = len(upstream.requests)
            await service.sync_feeds(["kev"])
            counts["500"] = len(upstream.requests) - before
        finally:
            await service.aclose()
    assert counts == {"malformed": 1, "deep": 1, "500": 3}


def test_release_frames_drops_every_chained_traceback() -> None:
    """A refused document lives in its parser's frames: the error and everything chained to
    it lose their tracebacks, so whoever keeps the error does not keep the document."""
    from jupiter.intel._http import release_frames

    def parse() -> None:
        document = b"x" * 1000  # noqa: F841 - what the frame would keep alive
        raise ValueError("inner")

    def wrap() -> None:
        try:
            parse()
        except ValueError as exc:
            raise RuntimeError("outer") from exc

    with pytest.raises(RuntimeError) as caught:
        wrap()
    error = caught.value
    assert error.__traceback__ is not None
    assert error.__cause__ is not None
    release_frames(error)
    assert error.__traceback__ is None
    assert error.__cause__.__traceback__ is None
