"""Fuzz: hostile threat feeds against a real ``jupiter serve`` subprocess.

One server (its own data dir, the admin token, breakers that do not open during the run)
pulls a CISA KEV catalog, a STIX 2.1 bundle, a TAXII 2.1 collection and an RSS and an Atom
feed from loopback upstreams. After a first good fetch, each upstream in turn answers with
the hand-written hostile documents of :mod:`support.hostile` (nesting to depth 10^5, a
10^4-digit number, a 16 MB string, billion laughs, XXE, truncated documents, a gzip bomb,
invalid UTF-8, NUL bytes...) and then with Hypothesis mutations of its valid document;
fetches go through the admin refresh endpoints (and ``jupiter feeds sync`` for two of the
KEV cases). After every one:

* the server still answers ``/healthz``, and its peak resident memory grew less than
  100 MB over the fetch (``VmHWM`` of ``/proc/<pid>/status``, reset before it);
* a hand-written hostile document fails its source with the limit (or the problem) named,
  in the refresh answer, the source's status and the recent errors, and the last good data
  is still served, marked stale;
* a mutation leaves the source ``live`` (it was still a valid document) or ``stale``/``error``
  with a reason.

The number of cases and the largest growth are printed at the end (run with ``-s``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import stix2
from hypothesis import HealthCheck, given, settings

from support.feed_upstream import ATOM_TYPE, RSS_TYPE, FeedEntry, atom_document, rss_document
from support.hostile import JSON_INSERTIONS, XML_INSERTIONS, Case, json_cases, mutated, xml_cases
from support.kev_upstream import KEV_PATH, FaultyUpstream, KevUpstream, kev_catalog, kev_record
from support.memory import RssWatch
from support.server import ServerProcess
from support.taxii_upstream import TAXII_TYPE, TaxiiUpstream

pytestmark = pytest.mark.timeout(300)

TOKEN = "fuzz-admin-token-0123456789abcdef"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
MAX_GROWTH_MB = 100
MUTATIONS = 12  # Hypothesis examples per format: bounded, derandomized

KEV = kev_catalog([kev_record("CVE-2025-7001"), kev_record("CVE-2025-7002")])


def _indicator(i: int) -> dict[str, Any]:
    made = stix2.Indicator(
        name=f"Bad IP {i}", pattern=f"[ipv4-addr:value = '10.9.0.{i}']", pattern_type="stix"
    )
    return dict(json.loads(made.serialize()))


STIX_OBJECTS = [_indicator(1), _indicator(2)]
BUNDLE = {
    "type": "bundle",
    "id": "bundle--7e2c5a3b-1d4f-4c8e-9a6b-2f1e0d3c4b5a",
    "objects": STIX_OBJECTS,
}
TAXII_OBJECTS = [_indicator(3), _indicator(4)]
TAXII_PAGE = {"more": False, "objects": TAXII_OBJECTS}
ENTRIES = [
    FeedEntry("Ivanti EPMM CVE-2025-4427 exploited", "https://vendor.example/1", "Patch now"),
    FeedEntry("Kernel hardening notes", "https://vendor.example/2", "<p>Read</p>"),
]
RSS = rss_document("Vendor", "https://vendor.example/", ENTRIES)
ATOM = atom_document("CERT", "https://cert.example/", ENTRIES)


@dataclass
class Tally:
    """What the run did, for the summary."""

    cases: dict[str, int] = field(default_factory=dict)
    watch: RssWatch | None = None

    def count(self, kind: str) -> None:
        self.cases[kind] = self.cases.get(kind, 0) + 1


@dataclass
class Rig:
    server: ServerProcess
    client: httpx.Client
    kev: KevUpstream
    stix: FaultyUpstream
    taxii: TaxiiUpstream
    feeds: FaultyUpstream
    watch: RssWatch
    tally: Tally

    # --- fetching through the real interfaces ---------------------------------------------
    def refresh_threats(self) -> dict[str, Any]:
        answer = self.client.post("/api/threats/refresh", headers=ADMIN, timeout=120)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def refresh_pulse(self) -> dict[str, Any]:
        answer = self.client.post("/api/pulse/refresh", headers=ADMIN, timeout=120)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def threats(self, source: str) -> dict[str, Any]:
        answer = self.client.get("/api/threats", params={"source": source}, headers=ADMIN)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def recent_errors(self) -> list[dict[str, Any]]:
        answer = self.client.get("/api/recent-errors", params={"limit": 20}, headers=ADMIN)
        return list(answer.json()["errors"])

    # --- the checks after every fetch ------------------------------------------------------
    def assert_alive_and_bounded(self, what: str) -> float:
        assert self.server.process is not None
        assert self.server.process.poll() is None, f"the server died on {what}"
        assert self.client.get("/healthz").status_code == 200, what
        growth = self.watch.growth_mb()
        assert growth < MAX_GROWTH_MB, f"{what}: RSS grew {growth:.0f} MB"
        return growth

    # --- serving hostile documents ----------------------------------------------------------
    def serve_kev(self, body: bytes, headers: dict[str, str]) -> None:
        self.kev.serve(KEV_PATH, body, headers=headers)

    def serve_stix(self, body: bytes, headers: dict[str, str]) -> None:
        self.stix.serve("/bundle.json", body, headers=headers)

    def serve_taxii(self, body: bytes, headers: dict[str, str]) -> None:
        from support.kev_upstream import Reply

        self.taxii.pages_served = 0
        self.taxii.page_replies = {1: Reply(body, TAXII_TYPE, headers=dict(headers))}

    def serve_feed(self, kind: str, body: bytes, headers: dict[str, str]) -> None:
        self.feeds.serve(
            f"/feed.{kind}", body, RSS_TYPE if kind == "rss" else ATOM_TYPE, headers=headers
        )


@pytest.fixture(scope="module")
def tally() -> Iterator[Tally]:
    found = Tally()
    yield found
    if found.watch is not None:
        total = sum(found.cases.values())
        print(
            f"\nfeed fuzz: {total} cases {found.cases}; "
            f"max RSS growth {found.watch.max_growth_mb:.1f} MB (limit {MAX_GROWTH_MB} MB)"
        )


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory, tally: Tally) -> Iterator[Rig]:
    with (
        KevUpstream(KEV) as kev,
        FaultyUpstream() as stix,
        TaxiiUpstream(TAXII_OBJECTS, page_size=10) as taxii,
        FaultyUpstream() as feeds,
    ):
        stix.serve("/bundle.json", json.dumps(BUNDLE).encode())
        feeds.serve("/feed.rss", RSS, RSS_TYPE)
        feeds.serve("/feed.atom", ATOM, ATOM_TYPE)
        data_dir: Path = tmp_path_factory.mktemp("fuzz-feeds")
        env = {
            "JUPITER_ADMIN_TOKEN": TOKEN,
            "JUPITER_LLM_PROVIDER": "offline",
            "JUPITER_KEV_URL": kev.url,
            "JUPITER_STIX_URL": stix.url_for("/bundle.json"),
            "JUPITER_TAXII_COLLECTION_URL": taxii.collection_url,
            "JUPITER_PULSE_FEEDS": json.dumps(
                [feeds.url_for("/feed.rss"), feeds.url_for("/feed.atom")]
            ),
            # Every fetch must reach the parser: no breaker opening, no retry pauses.
            "JUPITER_BREAKER_FAILURE_THRESHOLD": "1000",
            "JUPITER_RETRY_INITIAL_DELAY_SECONDS": "0",
            "JUPITER_RETRY_MAX_DELAY_SECONDS": "0",
            "JUPITER_INTEL_TIMEOUT_SECONDS": "5",
        }
        server = ServerProcess(data_dir, env=env).start(timeout=120)  # slow on a busy machine
        try:
            assert server.process is not None
            client = httpx.Client(base_url=server.url, timeout=60)
            watch = RssWatch(server.process.pid)
            tally.watch = watch
            rig = Rig(server, client, kev, stix, taxii, feeds, watch, tally)
            # The good documents first: the data every later failure must leave served.
            first = rig.refresh_threats()
            for name in ("kev", "stix", "taxii"):
                assert first["sources"][name]["status"] == "live", first["sources"][name]
            pulse = rig.refresh_pulse()
            assert pulse["status"] == "live", pulse["sources"]
            watch.reset()
            yield rig
            client.close()
        finally:
            server.stop()
        log = server.output()
        assert "Traceback" not in log, log[-3000:]


GOOD_IDS = {
    "kev": {"CVE-2025-7001", "CVE-2025-7002"},
    "stix": {obj["id"] for obj in STIX_OBJECTS},
    "taxii": {obj["id"] for obj in TAXII_OBJECTS},
}
KEV_CASES = json_cases(KEV, string_path=["vulnerabilities", 0, "shortDescription"])
JSON_CASES = [
    pytest.param(source, case, id=f"{source}-{case.name}")
    for source, cases in (
        ("kev", KEV_CASES),
        ("stix", json_cases(BUNDLE, string_path=["objects", 0, "name"])),
        (
            "taxii",
            json_cases(
                {"more": False, "objects": TAXII_OBJECTS}, string_path=["objects", 0, "name"]
            ),
        ),
    )
    for case in cases
]
XML_CASES = [
    pytest.param(kind, case, id=f"{kind}-{case.name}")
    for kind, good in (("rss", RSS), ("atom", ATOM))
    for case in xml_cases(good)
]


def _serve_json(rig: Rig, source: str, body: bytes, headers: dict[str, str]) -> None:
    {"kev": rig.serve_kev, "stix": rig.serve_stix, "taxii": rig.serve_taxii}[source](body, headers)


def _restore(rig: Rig) -> None:
    rig.serve_kev(json.dumps(KEV).encode(), {})
    rig.serve_stix(json.dumps(BUNDLE).encode(), {})
    rig.taxii.page_replies = {}
    rig.serve_feed("rss", RSS, {})
    rig.serve_feed("atom", ATOM, {})


@pytest.mark.parametrize(("source", "case"), JSON_CASES)
def test_a_hostile_json_feed_is_refused_and_the_server_carries_on(
    rig: Rig, source: str, case: Case
) -> None:
    """KEV, STIX and TAXII: refused naming the limit; the good data still served, stale."""
    _restore(rig)
    _serve_json(rig, source, case.body, dict(case.headers))
    rig.watch.reset()
    answer = rig.refresh_threats()
    rig.assert_alive_and_bounded(f"{source} {case.name}")
    rig.tally.count(source)
    status = answer["sources"][source]
    assert status["status"] == "stale", status
    assert case.expect in status["error"], status["error"]
    served = rig.threats(source)
    assert {item["id"] for item in served["items"]} == GOOD_IDS[source]
    assert served["sources"][source]["status"] == "stale"
    assert served["stale"] is True
    assert any(case.expect in error["message"] for error in rig.recent_errors())
    assert case.expect in rig.server.output()  # the log names it too


@pytest.mark.parametrize(("kind", "case"), XML_CASES)
def test_a_hostile_rss_or_atom_feed_is_refused_and_the_server_carries_on(
    rig: Rig, kind: str, case: Case
) -> None:
    """RSS and Atom: refused naming the limit or the XML problem and its line; the good
    entries still served, stale."""
    _restore(rig)
    rig.serve_feed(kind, case.body, dict(case.headers))
    rig.watch.reset()
    pulse = rig.refresh_pulse()
    rig.assert_alive_and_bounded(f"{kind} {case.name}")
    rig.tally.count(kind)
    status = next(value for key, value in pulse["sources"].items() if key.endswith(f".{kind}"))
    assert status["status"] == "stale", status
    assert case.expect in status["error"], status["error"]
    titles = [item["title"] for item in pulse["items"] if item["feed"].endswith(f".{kind}")]
    assert sorted(titles) == sorted(entry.title for entry in ENTRIES)
    assert any(case.expect in error["message"] for error in rig.recent_errors())


def _feeds_sync(rig: Rig) -> tuple[int, str, float]:
    """``jupiter feeds sync`` in its own process, on the server's data dir: its exit code,
    output and peak RSS in MB (from ``wait4``, which reports that one child's)."""
    import os
    import subprocess
    import sys

    env = {**rig.server.env, "JUPITER_LOG_LEVEL": "WARNING"}
    process = subprocess.Popen(
        [sys.executable, "-m", "jupiter.cli", "feeds", "sync"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert process.stdout is not None
    output = process.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, output, usage.ru_maxrss / 1024


# Each CLI run starts a Python process: two of the heaviest cases are enough here.
SYNC_CASES = [case for case in KEV_CASES if case.name in ("string-16MB", "gzip-bomb")]


def test_jupiter_feeds_sync_refuses_hostile_kev_and_the_server_keeps_serving(rig: Rig) -> None:
    """The CLI on the server's database: a hostile KEV catalog makes it exit 1 naming the
    limit, its own peak RSS stays within 100 MB of a good run's, and the running server still
    serves the good records (now stale, as the CLI stored the failure)."""
    _restore(rig)
    code, output, good_peak = _feeds_sync(rig)
    assert code == 0, output
    for case in SYNC_CASES:
        rig.serve_kev(case.body, dict(case.headers))
        code, output, peak = _feeds_sync(rig)
        rig.tally.count("feeds-sync")
        assert code == 1, output
        assert case.expect in output, output
        assert peak - good_peak < MAX_GROWTH_MB, f"{case.name}: CLI peak {peak:.0f} MB"
        served = rig.threats("kev")
        assert {item["id"] for item in served["items"]} == GOOD_IDS["kev"]
        assert served["sources"]["kev"]["status"] == "stale"
        rig.assert_alive_and_bounded(f"feeds sync {case.name}")


MUTATED = [
    ("kev", json.dumps(KEV).encode()),
    ("stix", json.dumps(BUNDLE).encode()),
    ("taxii", json.dumps(TAXII_PAGE).encode()),
    ("rss", RSS),
    ("atom", ATOM),
]


@pytest.mark.parametrize(("kind", "valid"), MUTATED, ids=[kind for kind, _ in MUTATED])
def test_mutations_of_valid_documents_never_hurt_the_server(
    rig: Rig, kind: str, valid: bytes
) -> None:
    """Hypothesis mutations: every one is either read (still valid) or refused with a
    reason; the server stays up and within its memory budget."""

    @settings(
        max_examples=MUTATIONS,
        derandomize=True,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(body=mutated(valid, XML_INSERTIONS if kind in ("rss", "atom") else JSON_INSERTIONS))
    def one(body: bytes) -> None:
        _restore(rig)
        rig.watch.reset()
        if kind in ("rss", "atom"):
            rig.serve_feed(kind, body, {})
            pulse = rig.refresh_pulse()
            status = next(v for k, v in pulse["sources"].items() if k.endswith(f".{kind}"))
        else:
            _serve_json(rig, kind, body, {})
            status = rig.refresh_threats()["sources"][kind]
        rig.assert_alive_and_bounded(f"{kind} mutation")
        rig.tally.count(f"{kind}-mutation")
        assert status["status"] in ("live", "stale", "error"), status
        if status["status"] != "live":
            assert status["error"], status

    one()
