"""The loopback upstreams themselves speak their wire formats and inject the faults they claim."""

from __future__ import annotations

import json

import feedparser
import httpx
import pytest

from support.feed_upstream import FeedEntry, FeedUpstream
from support.kev_upstream import KevUpstream, kev_catalog, kev_record


def test_kev_upstream_serves_json_and_records_requests() -> None:
    """The catalog comes back as application/json and each request is recorded."""
    with KevUpstream(kev_catalog([kev_record("CVE-2025-0001")])) as upstream:
        response = httpx.get(upstream.url, headers={"X-Probe": "1"})
        assert response.headers["content-type"] == "application/json"
        assert response.json()["count"] == 1
        assert upstream.requests[0].headers["x-probe"] == "1"
        upstream.set_fault("empty")
        assert httpx.get(upstream.url).json()["vulnerabilities"] == []
        upstream.set_fault("429", retry_after=9)
        limited = httpx.get(upstream.url)
        assert (limited.status_code, limited.headers["retry-after"]) == (429, "9")


def test_truncated_body_breaks_the_http_framing() -> None:
    """'truncated' promises a longer body than it sends, so clients see a protocol error."""
    with KevUpstream(kev_catalog([kev_record("CVE-2025-0001")])) as upstream:
        upstream.set_fault("truncated")
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.get(upstream.url)


def test_feed_upstream_serves_real_rss_and_atom() -> None:
    """RSS and Atom come with their media types and parse as rss20 and atom10."""
    entries = [FeedEntry("One", "https://e.example/1")]
    with FeedUpstream() as upstream:
        rss = httpx.get(upstream.add_rss("/r.xml", "R", entries))
        atom = httpx.get(upstream.add_atom("/a.xml", "A", entries))
        upstream.set_fault("malformed", path="/a.xml")
        broken = httpx.get(upstream.url_for("/a.xml"))
        still_fine = httpx.get(upstream.url_for("/r.xml"))
    assert rss.headers["content-type"].startswith("application/rss+xml")
    assert atom.headers["content-type"].startswith("application/atom+xml")
    assert feedparser.parse(rss.content).version == "rss20"
    assert feedparser.parse(atom.content).version == "atom10"
    assert feedparser.parse(broken.content).version == ""
    assert feedparser.parse(still_fine.content).version == "rss20"


def test_hang_fault_holds_the_request_until_cleared() -> None:
    """A hung request gets no answer within the client's timeout."""
    with KevUpstream(kev_catalog([])) as upstream:
        upstream.set_fault("hang")
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(upstream.url, timeout=0.2)
        upstream.set_fault(None)
        assert json.loads(httpx.get(upstream.url).content)["count"] == 0
