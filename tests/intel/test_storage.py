"""The intel cache tables on SQLite and on the real PostgreSQL: snapshots, upserts, JSON fields,
ordering with missing dates, and the pulse cache surviving a restart."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import stix2
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from jupiter.intel import CommunityPulseService, ThreatIntelService
from jupiter.intel.models import IntelSourceState, ThreatItemRow
from jupiter.resilience.testing import FakeClock
from support.feed_upstream import FeedEntry, FeedUpstream
from support.kev_upstream import kev_catalog, kev_record


async def test_threat_snapshots_upsert_and_query(
    any_engine: Engine, make_settings: Callable[..., Any], tmp_path: Path, clock: FakeClock
) -> None:
    """Storing twice is idempotent, a new snapshot replaces the old, JSON and unicode survive."""
    factory = sessionmaker(any_engine)
    records = [
        kev_record("CVE-2025-1000", vulnerabilityName="Zürich ✓ widget", cwes=["CWE-79", "CWE-89"]),
        kev_record("CVE-2025-1001", dateAdded="2025-03-01"),
    ]
    path = tmp_path / "kev.json"
    path.write_text(json.dumps(kev_catalog(records)))
    service = ThreatIntelService(make_settings(intel_file=path), factory, clock=clock)
    await service.sync_feeds()
    await service.sync_feeds(["file"])
    with factory() as session:
        total = session.scalar(select(func.count()).select_from(ThreatItemRow))
        state = session.get(IntelSourceState, "file")
        assert state is not None
        assert state.item_count == 2
    assert total == 2 + session_count_attack(factory)
    entry = service.lookup_kev("CVE-2025-1000")
    assert entry is not None
    assert entry["vulnerabilityName"] == "Zürich ✓ widget"
    assert entry["cwes"] == ["CWE-79", "CWE-89"]

    path.write_text(json.dumps(kev_catalog([records[1]])))
    await service.sync_feeds(["file"])
    assert service.lookup_kev("CVE-2025-1000") is None
    assert [e["cveID"] for e in service.kev_entries()] == ["CVE-2025-1001"]


def session_count_attack(factory: Callable[[], Any]) -> int:
    with factory() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(ThreatItemRow)
                .where(ThreatItemRow.source == "attack")
            )
            or 0
        )


async def test_items_without_dates_sort_last(
    any_engine: Engine, make_settings: Callable[..., Any], tmp_path: Path, clock: FakeClock
) -> None:
    """Newest first on both databases, with undated items after dated ones."""
    factory = sessionmaker(any_engine)
    bundle = stix2.Bundle(
        stix2.Vulnerability(name="older", created="2024-01-01T00:00:00Z"),
        stix2.Vulnerability(name="newer", created="2025-06-01T00:00:00Z"),
    )
    path = tmp_path / "bundle.json"
    path.write_text(bundle.serialize())
    service = ThreatIntelService(make_settings(intel_file=path), factory, clock=clock)
    mine = await service.fetch_threats({"source": "file"})
    assert [item["title"] for item in mine["items"]] == ["newer", "older"]
    everything = await service.fetch_threats({"limit": 5000})
    dated = [bool(item["added"] or item["published"]) for item in everything["items"]]
    assert dated.count(False) > 0
    assert dated == sorted(dated, reverse=True)  # every dated item before every undated one


async def test_pulse_cache_survives_restart(
    any_engine: Engine, make_settings: Callable[..., Any], clock: FakeClock
) -> None:
    """A second service on the same database serves the first one's items when offline."""
    factory = sessionmaker(any_engine)
    entries = [FeedEntry("Ünïcode CVE-2025-2222 story", "https://news.example/1", "body")]
    with FeedUpstream() as upstream:
        url = upstream.add_rss("/n.rss", "News", entries)
        first = CommunityPulseService(make_settings(pulse_feeds=[url]), factory, clock=clock)
        live = await first.get_pulse()
        await first.aclose()
    second = CommunityPulseService(make_settings(pulse_feeds=[url]), factory, clock=clock)
    clock.advance(1000)
    cached = await second.get_pulse()
    await second.aclose()
    assert live["status"] == "live"
    assert cached["status"] == "degraded"
    assert [i["title"] for i in cached["items"]] == ["Ünïcode CVE-2025-2222 story"]
    (status,) = cached["sources"].values()
    assert status["status"] == "stale"
    assert status["age_seconds"] >= 1000
