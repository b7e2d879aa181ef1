"""ThreatIntelService against real loopback upstreams: KEV, STIX, TAXII, local files, ATT&CK,
staleness on a fake clock, faults, breaker, retries and the aggregator."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import stix2
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from jupiter.intel import ThreatIntelService
from jupiter.intel.models import ThreatItemRow
from jupiter.resilience import retry_with_backoff
from jupiter.resilience.testing import FakeClock
from support.kev_upstream import (
    KEV_PATH,
    FaultyUpstream,
    KevUpstream,
    Reply,
    kev_catalog,
    kev_record,
)
from support.taxii_upstream import TaxiiUpstream

SMALL = [
    kev_record("CVE-2025-0001", dateAdded="2025-01-10", knownRansomwareCampaignUse="Known"),
    kev_record("CVE-2025-0002", dateAdded="2025-01-12", vendorProject="Git", product="Git"),
    kev_record("CVE-2025-0003", dateAdded="2025-01-14", shortDescription="SQL injection in x"),
]

ServiceFactory = Callable[..., ThreatIntelService]


@pytest.fixture
async def make_service(
    make_settings: Callable[..., Any],
    session_factory: Callable[[], Session],
    clock: FakeClock,
) -> AsyncIterator[ServiceFactory]:
    """Build services on the test database and fake clock; their HTTP clients close after."""
    built: list[ThreatIntelService] = []

    def build(**kwargs: Any) -> ThreatIntelService:
        settings_values = {k: kwargs.pop(k) for k in list(kwargs) if k in _SETTING_NAMES}
        kwargs.setdefault("clock", clock)
        service = ThreatIntelService(make_settings(**settings_values), session_factory, **kwargs)
        built.append(service)
        return service

    yield build
    for service in built:
        await service.aclose()


_SETTING_NAMES = {
    "kev_url",
    "stix_url",
    "taxii_collection_url",
    "intel_file",
    "intel_failure_retry_seconds",
}


def stored_count(session_factory: Callable[[], Session], source: str) -> int:
    with session_factory() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(ThreatItemRow)
                .where(ThreatItemRow.source == source)
            )
            or 0
        )


async def test_real_kev_snapshot_is_normalised_and_stored(
    kev_snapshot: Path, make_service: ServiceFactory, session_factory: Callable[[], Session]
) -> None:
    """All 1,404 records of the real catalog are stored, with CISA's fields for lookups."""
    data = json.loads(kev_snapshot.read_text())
    records = {record["cveID"]: record for record in data["vulnerabilities"]}
    ransomware = sum(1 for r in records.values() if r.get("knownRansomwareCampaignUse") == "Known")
    with KevUpstream(kev_snapshot) as upstream:
        service = make_service(kev_url=upstream.url)
        result = await service.sync_feeds()
    assert result["sources"]["kev"]["status"] == "live"
    assert result["sources"]["kev"]["count"] == data["count"] == 1404
    assert stored_count(session_factory, "kev") == len(records)
    critical = await service.fetch_threats({"source": "kev", "severity": "critical", "limit": 1})
    assert critical["count"] == ransomware
    entries = service.kev_entries()
    assert {entry["cveID"] for entry in entries} == set(records)
    some = data["vulnerabilities"][17]
    found = service.lookup_kev(some["cveID"].lower())
    assert found is not None
    for name in ("dateAdded", "dueDate", "requiredAction", "vendorProject", "product"):
        assert found[name] == some[name]
    assert found["knownRansomwareCampaignUse"] == some["knownRansomwareCampaignUse"]
    assert found["cwes"] == some.get("cwes", [])
    wanted = [data["vulnerabilities"][0]["cveID"], "CVE-1999-99999"]
    assert set(await service.alookup_kev_many(wanted)) == {wanted[0]}


async def test_sync_is_idempotent_and_replaces_the_snapshot(
    make_service: ServiceFactory, session_factory: Callable[[], Session], clock: FakeClock
) -> None:
    """Syncing twice stores the same rows; a changed record is updated, a removed one deleted."""
    with KevUpstream(kev_catalog(SMALL)) as upstream:
        service = make_service(kev_url=upstream.url)
        await service.sync_feeds()
        await service.sync_feeds()
        assert stored_count(session_factory, "kev") == 3
        changed = [*SMALL[:1], kev_record("CVE-2025-0002", dueDate="2030-01-01")]
        upstream.set_catalog(kev_catalog(changed))
        clock.advance(10)
        await service.sync_feeds()
    assert stored_count(session_factory, "kev") == 2
    assert service.lookup_kev("CVE-2025-0002")["dueDate"] == "2030-01-01"  # type: ignore[index]
    assert service.lookup_kev("CVE-2025-0003") is None


async def test_stix_bundle_by_url(make_service: ServiceFactory) -> None:
    """A STIX 2.1 bundle built with stix2 is parsed; SDOs become items, relationships do not."""
    actor = stix2.ThreatActor(name="Loopback Panda", threat_actor_types=["nation-state"])
    malware = stix2.Malware(name="LoopRAT", is_family=True)
    vuln = stix2.Vulnerability(name="CVE-2025-4242")
    uses = stix2.Relationship(actor, "uses", malware)
    bundle = stix2.Bundle(actor, malware, vuln, uses)
    with FaultyUpstream() as upstream:
        upstream.route("/bundle.json", Reply(bundle.serialize().encode(), "application/stix+json"))
        service = make_service(stix_url=upstream.url_for("/bundle.json"))
        result = await service.fetch_threats({"source": "stix"})
    assert result["sources"]["stix"]["status"] == "live"
    assert {item["id"] for item in result["items"]} == {actor.id, malware.id, vuln.id}
    assert {item["kind"] for item in result["items"]} == {
        "threat-actor",
        "malware",
        "vulnerability",
    }


async def test_invalid_stix_is_an_error_with_a_clear_message(make_service: ServiceFactory) -> None:
    """A bundle whose objects break the STIX 2.1 spec is refused and the reason is shown."""
    broken = {"type": "bundle", "id": "bundle--6b2a7e55-1c8e-4b3a-9f3a-1f0e3c7a2b11"}
    broken["objects"] = [{"type": "malware", "id": "malware--not-a-uuid", "name": "x"}]
    with FaultyUpstream() as upstream:
        upstream.route("/bundle.json", Reply(json.dumps(broken).encode()))
        service = make_service(stix_url=upstream.url_for("/bundle.json"))
        result = await service.fetch_threats()
    assert result["sources"]["stix"]["status"] == "error"
    assert "invalid STIX 2.1 content" in result["sources"]["stix"]["error"]


async def test_taxii_collection_is_read_page_by_page(make_service: ServiceFactory) -> None:
    """Every object of a paged TAXII 2.1 collection on loopback is read and normalised."""
    objects = [
        json.loads(
            stix2.Indicator(
                name=f"Bad IP {i}", pattern=f"[ipv4-addr:value = '10.0.0.{i}']", pattern_type="stix"
            ).serialize()
        )
        for i in range(5)
    ]
    with TaxiiUpstream(objects, page_size=2) as upstream:
        service = make_service(taxii_collection_url=upstream.collection_url)
        result = await service.fetch_threats({"source": "taxii"})
        pages = upstream.requests_to(upstream.objects_path)
    assert result["sources"]["taxii"]["status"] == "live"
    assert result["count"] == 5
    assert {item["title"] for item in result["items"]} == {f"Bad IP {i}" for i in range(5)}
    assert len(pages) == 3
    assert all("taxii+json" in page.headers["accept"] for page in pages)


async def test_taxii_server_error_is_retried_then_reported(
    make_service: ServiceFactory, clock: FakeClock
) -> None:
    """A TAXII server answering 500 is retried with backoff, then reported as an error."""
    with TaxiiUpstream([]) as upstream:
        upstream.set_fault("500")
        service = make_service(taxii_collection_url=upstream.collection_url)
        result = await service.fetch_threats()
        attempts = len(upstream.requests)
    assert result["sources"]["taxii"]["status"] == "error"
    assert "HTTP 500" in result["sources"]["taxii"]["error"]
    assert attempts == 3
    assert clock.sleeps == [1.0, 2.0]


async def test_local_files_are_detected_as_kev_or_stix(
    tmp_path: Path, make_service: ServiceFactory
) -> None:
    """A local file is read as KEV or STIX by its shape; anything else is a clear error."""
    kev_file = tmp_path / "kev.json"
    kev_file.write_text(json.dumps(kev_catalog(SMALL)))
    result = await make_service(intel_file=kev_file).fetch_threats({"source": "file"})
    assert result["count"] == 3
    assert result["items"][0]["kind"] == "kev"

    stix_file = tmp_path / "bundle.json"
    stix_file.write_text(stix2.Bundle(stix2.Vulnerability(name="CVE-2025-7777")).serialize())
    result = await make_service(intel_file=stix_file).fetch_threats({"source": "file"})
    assert [item["title"] for item in result["items"]] == ["CVE-2025-7777"]

    odd = tmp_path / "odd.json"
    odd.write_text('{"hello": "world"}')
    result = await make_service(intel_file=odd).fetch_threats()
    assert result["sources"]["file"]["status"] == "error"
    assert "neither a CISA KEV catalog" in result["sources"]["file"]["error"]

    missing = await make_service(intel_file=tmp_path / "nope.json").fetch_threats()
    assert "intel file not found" in missing["sources"]["file"]["error"]


async def test_attack_is_the_offline_default(make_service: ServiceFactory) -> None:
    """With no source configured, the bundled ATT&CK groups, campaigns and software are served."""
    service = make_service()
    assert service.source_names == ["attack"]
    result = await service.fetch_threats({"limit": 5000})
    assert result["success"] is True
    assert result["stale"] is False
    assert result["sources"]["attack"]["status"] == "live"
    assert result["count"] > 900
    kinds = {item["kind"] for item in result["items"]}
    assert kinds == {"attack-group", "attack-campaign", "attack-software"}
    group = await service.fetch_threats({"query": "G0016"})
    assert any("APT29" in item["title"] for item in group["items"])


async def test_failed_source_serves_last_good_data_marked_stale_with_age(
    make_service: ServiceFactory, clock: FakeClock, aggregator: Any
) -> None:
    """After a failure the previous snapshot is served, stale, with its age on the fake clock."""
    with KevUpstream(kev_catalog(SMALL)) as upstream:
        service = make_service(kev_url=upstream.url, aggregator=aggregator)
        first = await service.fetch_threats({"source": "kev"})
        assert first["sources"]["kev"]["status"] == "live"
        upstream.set_fault("500")
        clock.advance(3600)
        result = await service.fetch_threats({"source": "kev"})
    kev = result["sources"]["kev"]
    assert kev["status"] == "stale"
    # the retries' backoff sleeps (1 s + 2 s) also advanced the fake clock
    assert kev["age_seconds"] == pytest.approx(3600 + sum(clock.sleeps))
    assert kev["count"] == 3
    assert "HTTP 500" in kev["error"]
    assert result["stale"] is True
    assert result["success"] is True
    assert result["count"] == 3
    assert result["age_seconds"] >= kev["age_seconds"]
    assert aggregator.get_error_stats()["errors_by_type"]["intel_source_error"] == 1


async def test_source_that_never_worked_is_an_error_others_still_serve(
    make_service: ServiceFactory,
) -> None:
    """A failing KEV URL with no cache is 'error' while ATT&CK keeps the answer successful."""
    with KevUpstream(kev_catalog(SMALL)) as upstream:
        upstream.set_fault("500")
        result = await make_service(kev_url=upstream.url).fetch_threats()
    assert result["sources"]["kev"]["status"] == "error"
    assert result["sources"]["kev"]["count"] == 0
    assert result["sources"]["attack"]["status"] == "live"
    assert result["success"] is True


async def test_no_source_at_all_says_so(make_service: ServiceFactory, tmp_path: Path) -> None:
    """When every source fails and nothing is cached, the answer carries a message and hint."""
    from jupiter.intel._sources import LocalFileSource

    service = make_service(sources=[LocalFileSource(tmp_path / "absent.json")])
    result = await service.fetch_threats()
    assert result["success"] is False
    assert result["count"] == 0
    assert result["message"]
    assert "jupiter feeds sync" in result["suggestion"]


async def test_empty_catalog_is_reported_not_an_error(
    make_service: ServiceFactory, aggregator: Any
) -> None:
    """A valid catalog with zero records is live, counted 0 and flagged empty; no error logged."""
    with KevUpstream(kev_catalog(SMALL)) as upstream:
        upstream.set_fault("empty")
        result = await make_service(kev_url=upstream.url, aggregator=aggregator).fetch_threats()
    kev = result["sources"]["kev"]
    assert kev["status"] == "live"
    assert kev["count"] == 0
    assert kev["empty"] is True
    assert "no items" in kev["message"]
    assert aggregator.get_error_stats()["total_errors"] == 0


async def test_retry_after_is_honoured_on_429(
    make_service: ServiceFactory, clock: FakeClock
) -> None:
    """429 with Retry-After: 7 waits 7 seconds between attempts (on the fake clock)."""
    with KevUpstream(kev_catalog(SMALL)) as upstream:
        upstream.set_fault("429", retry_after=7)
        result = await make_service(kev_url=upstream.url).fetch_threats()
        attempts = len(upstream.requests)
    assert attempts == 3
    assert clock.sleeps == [7.0, 7.0]
    assert "HTTP 429" in result["sources"]["kev"]["error"]


async def test_flapping_upstream_recovers_within_one_call(
    make_service: ServiceFactory, clock: FakeClock
) -> None:
    """A failure followed by a success is absorbed by one retry; the source is live."""
    with KevUpstream(kev_catalog(SMALL)) as upstream:
        upstream.set_fault("flapping")
        result = await make_service(kev_url=upstream.url).fetch_threats()
        attempts = len(upstream.requests)
    assert result["sources"]["kev"]["status"] == "live"
    assert attempts == 2
    assert clock.sleeps == [1.0]


@pytest.mark.parametrize(
    ("fault", "expected_attempts", "expected_error"),
    [
        ("malformed", 1, "invalid JSON"),
        ("truncated", 3, "transport error"),
    ],
)
async def test_broken_payloads_are_errors_with_clear_messages(
    make_service: ServiceFactory, fault: str, expected_attempts: int, expected_error: str
) -> None:
    """Malformed JSON is not retried; a truncated body (a transport error) is."""
    with KevUpstream(kev_catalog(SMALL)) as upstream:
        upstream.set_fault(fault)
        result = await make_service(kev_url=upstream.url).fetch_threats()
        attempts = len(upstream.requests)
    assert result["sources"]["kev"]["status"] == "error"
    assert expected_error in result["sources"]["kev"]["error"]
    assert attempts == expected_attempts


async def test_hanging_upstream_times_out(make_service: ServiceFactory) -> None:
    """A server that never answers is cut off by the HTTP timeout and reported."""
    with KevUpstream(kev_catalog(SMALL)) as upstream:
        upstream.set_fault("hang")
        service = make_service(
            kev_url=upstream.url, timeout=0.3, retry=retry_with_backoff(max_attempts=1)
        )
        result = await service.fetch_threats()
    assert result["sources"]["kev"]["status"] == "error"
    assert result["sources"]["kev"]["error"] == "timed out after 0.3s"


async def test_slow_upstream_within_timeout_is_live(make_service: ServiceFactory) -> None:
    """A slow but timely answer is accepted."""
    with KevUpstream(kev_catalog(SMALL)) as upstream:
        upstream.set_fault("slow", slow_seconds=0.2)
        result = await make_service(kev_url=upstream.url, timeout=5).fetch_threats()
    assert result["sources"]["kev"]["status"] == "live"


async def test_breaker_opens_on_repeated_failures_and_recovers(
    make_service: ServiceFactory, clock: FakeClock, breaker_factory: Callable[..., Any]
) -> None:
    """Two failed syncs open the breaker (no more upstream calls); after its timeout and the
    upstream's return, a trial call succeeds and the source is live again."""
    breaker = breaker_factory(failure_threshold=2, timeout=60)
    with KevUpstream(kev_catalog(SMALL)) as upstream:
        service = make_service(kev_url=upstream.url, breaker=breaker)
        await service.sync_feeds()
        upstream.set_fault("500")
        await service.sync_feeds()
        await service.sync_feeds()
        assert breaker.state.value == "open"
        calls_when_open = len(upstream.requests)
        refused = await service.sync_feeds()
        assert len(upstream.requests) == calls_when_open
        assert "circuit breaker open" in refused["sources"]["kev"]["error"]
        assert refused["sources"]["kev"]["status"] == "stale"
        upstream.set_fault(None)
        clock.advance(61)
        recovered = await service.sync_feeds()
    assert recovered["sources"]["kev"]["status"] == "live"
    assert breaker.state.value == "closed"


async def test_errors_reach_the_aggregator_without_secrets(
    make_service: ServiceFactory, aggregator: Any
) -> None:
    """A failure is recorded with component, source and a location stripped of its token."""
    with KevUpstream(kev_catalog(SMALL)) as upstream:
        upstream.set_fault("500")
        url = upstream.url + "?token=SUPERSECRET"
        result = await make_service(kev_url=url, aggregator=aggregator).fetch_threats()
    recent = aggregator.get_recent_errors(limit=10)
    assert len(recent) == 1
    assert recent[0]["type"] == "intel_source_error"
    assert recent[0]["context"]["component"] == "threat_intelligence"
    assert recent[0]["context"]["source"] == "kev"
    assert recent[0]["context"]["location"].endswith(KEV_PATH)
    assert "SUPERSECRET" not in json.dumps(recent) + json.dumps(result)


async def test_concurrent_requests_share_one_upstream_fetch(make_service: ServiceFactory) -> None:
    """Twenty simultaneous fetch_threats calls cause a single upstream request."""
    with KevUpstream(kev_catalog(SMALL)) as upstream:
        service = make_service(kev_url=upstream.url)
        results = await asyncio.gather(*(service.fetch_threats() for _ in range(20)))
        requests = len(upstream.requests)
    assert requests == 1
    assert all(r["sources"]["kev"]["status"] == "live" for r in results)


async def test_fresh_data_is_not_refetched_until_the_interval_passes(
    make_service: ServiceFactory, clock: FakeClock
) -> None:
    """Within intel_sync_interval_seconds the cache is served; after it, the source is re-read."""
    with KevUpstream(kev_catalog(SMALL)) as upstream:
        service = make_service(kev_url=upstream.url)
        await service.fetch_threats()
        clock.advance(3599)
        await service.fetch_threats()
        assert len(upstream.requests) == 1
        clock.advance(2)
        await service.fetch_threats()
        assert len(upstream.requests) == 2


@pytest.mark.parametrize("failure_retry", [5.0, 30.0])
async def test_a_failed_source_is_retried_after_the_configured_pause(
    make_service: ServiceFactory, clock: FakeClock, failure_retry: float
) -> None:
    """intel_failure_retry_seconds: no new request before it has passed since the failure."""
    with KevUpstream(kev_catalog(SMALL)) as upstream:
        upstream.set_fault("500")
        service = make_service(
            kev_url=upstream.url,
            intel_failure_retry_seconds=failure_retry,
            retry=retry_with_backoff(max_attempts=1),
        )
        await service.fetch_threats()
        assert len(upstream.requests) == 1
        clock.advance(failure_retry - 1)
        await service.fetch_threats()
        assert len(upstream.requests) == 1
        upstream.set_fault(None)
        clock.advance(1)
        result = await service.fetch_threats()
        assert len(upstream.requests) == 2
    assert result["sources"]["kev"]["status"] == "live"


async def test_filters_select_sort_and_page(make_service: ServiceFactory) -> None:
    """Query, severity and paging filters apply in the database, newest first."""
    with KevUpstream(kev_catalog(SMALL)) as upstream:
        service = make_service(kev_url=upstream.url)
        newest = await service.fetch_threats({"source": "kev", "limit": 2})
        sql = await service.fetch_threats({"source": "kev", "query": "sql injection"})
        critical = await service.fetch_threats({"source": "kev", "severity": "critical"})
        second_page = await service.fetch_threats({"source": "kev", "limit": 2, "offset": 2})
        percent = await service.fetch_threats({"query": "100%"})
    assert [item["id"] for item in newest["items"]] == ["CVE-2025-0003", "CVE-2025-0002"]
    assert newest["count"] == 3
    assert newest["returned"] == 2
    assert [item["id"] for item in sql["items"]] == ["CVE-2025-0003"]
    assert [item["id"] for item in critical["items"]] == ["CVE-2025-0001"]
    assert [item["id"] for item in second_page["items"]] == ["CVE-2025-0001"]
    assert percent["count"] == 0
    with pytest.raises(ValueError, match="unknown filter"):
        await service.fetch_threats({"bogus": 1})


async def test_sync_feeds_rejects_unknown_source_names(make_service: ServiceFactory) -> None:
    """Asking to sync a source that is not configured is a clear error."""
    with pytest.raises(ValueError, match="unknown threat source"):
        await make_service().sync_feeds(["kev"])


async def test_source_statuses_read_without_fetching(make_service: ServiceFactory) -> None:
    """source_statuses() reports 'pending' before any fetch and never calls the upstream."""
    with KevUpstream(kev_catalog(SMALL)) as upstream:
        service = make_service(kev_url=upstream.url)
        before = await service.source_statuses()
        assert upstream.requests == []
        await service.fetch_threats()
        after = await service.source_statuses()
    assert before["kev"]["status"] == "pending"
    assert after["kev"]["status"] == "live"
    assert after["kev"]["count"] == 3
