"""POST /api/threats/refresh and POST /api/pulse/refresh: an admin makes the running server
fetch its sources now, and sees per source what came of it (a limit named, data kept)."""

from __future__ import annotations

from pathlib import Path

from support.feed_upstream import RSS_TYPE, FeedEntry, rss_document
from support.hostile import deep_json
from support.jupiter_app import ADMIN, fast_settings, running_app
from support.kev_upstream import KEV_PATH, FaultyUpstream, KevUpstream, kev_catalog, kev_record

KEV = kev_catalog([kev_record("CVE-2025-8001")])
RSS = rss_document("Vendor", "https://v.example/", [FeedEntry("A title", "https://v.example/1")])


async def test_an_admin_refresh_fetches_now_and_names_a_refused_document(tmp_path: Path) -> None:
    """Without the token: 401, nothing fetched. With it: the sources are fetched at once; a
    hostile document afterwards is refused, named, and the good data stays."""
    with KevUpstream(KEV) as kev, FaultyUpstream() as feeds:
        feed = feeds.serve("/feed.rss", RSS, RSS_TYPE)
        settings = fast_settings(tmp_path, kev_url=kev.url, pulse_feeds=[feed])
        async with running_app(settings) as (_app, client):
            refused = await client.post("/api/threats/refresh", auth=None)
            assert refused.status_code == 401
            assert kev.requests == []
            assert (await client.post("/api/pulse/refresh", auth=None)).status_code == 401
            good = await client.post("/api/threats/refresh", headers=ADMIN)
            assert good.status_code == 200
            assert good.json()["sources"]["kev"]["status"] == "live"
            assert len(kev.requests) == 1
            kev.serve(KEV_PATH, deep_json(100_000))
            feeds.serve("/feed.rss", b"<rss>" + b"<x>" * 1000 + b"</rss>", RSS_TYPE)
            bad = (await client.post("/api/threats/refresh", headers=ADMIN)).json()
            pulse = await client.post("/api/pulse/refresh", headers=ADMIN)
            served = (await client.get("/api/threats", params={"source": "kev"})).json()
    assert bad["success"] is False
    assert bad["sources"]["kev"]["status"] == "stale"
    assert bad["sources"]["kev"]["error"].startswith(
        "the KEV catalog: nesting depth is over the limit of 64 (at $"
    )
    assert [item["id"] for item in served["items"]] == ["CVE-2025-8001"]
    assert pulse.status_code == 200
    status = next(iter(pulse.json()["sources"].values()))
    assert status["status"] == "error"  # no good entries were ever stored for it
    assert status["error"].startswith("the feed: nesting depth is over the limit of 64")


async def test_a_refresh_of_a_disabled_component_is_a_503(tmp_path: Path) -> None:
    """A disabled intel or pulse feature answers 503 with the standard error body."""
    async with running_app(fast_settings(tmp_path)) as (app, client):
        app.state.dashboard.disable_feature("intel", "testing")
        app.state.dashboard.disable_feature("pulse", "testing")
        threats = await client.post("/api/threats/refresh", headers=ADMIN)
        pulse = await client.post("/api/pulse/refresh", headers=ADMIN)
    assert threats.status_code == 503
    assert threats.json()["error"]["type"] == "feature_disabled"
    assert pulse.status_code == 503
    assert pulse.json()["error"]["type"] == "feature_disabled"
