"""Benchmark: the cost of parsing threat feeds within limits, against the plain parsers.

    uv run python benchmarks/bench_feed_parsing.py            # every row, medians of 7 runs
    uv run python benchmarks/bench_feed_parsing.py --quick    # 3 runs, for a smoke check
    uv run python benchmarks/bench_feed_parsing.py --json out.json

Rows, each measured in the same run as its baseline, with the ratio:

* the real CISA KEV catalog (``../shared/data/kev-2025-08-25.json``, 1.3 MB; a generated
  catalog of the same size when it is absent): :func:`jupiter.limits.parse_json` with the
  intel limits against :func:`json.loads`, and the whole KEV source parse (bounded JSON, record
  count, CISA schema checks, items) against ``json.loads`` plus the same checks;
* a STIX 2.1 bundle of 2,000 indicators: ``parse_json`` against ``json.loads``, and the
  object-by-object ``stix2`` checks (with the parse deadline) against one ``stix2.parse`` of
  the bundle;
* an RSS feed of 200 entries with HTML summaries: the bounded feed parse (``check_xml``,
  entry count, feedparser without its sanitizer and the linear text converter) in this
  process and in the worker process (as the service runs it), against plain
  ``feedparser.parse`` with its sanitizer (what the pulse did before) plus the old
  ``html.parser`` text conversion;
* a 64 MB gzip bomb read by :class:`jupiter.bodies.BoundedBody` (refused at 1 MB) against
  ``zlib`` inflating it whole, for what the limit saves.

Figures are milliseconds per document (median of the runs).
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import time
import zlib
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import feedparser
import stix2

from jupiter.bodies import BoundedBody
from jupiter.intel._feeds import parse_feed
from jupiter.intel._items import kev_record_to_item
from jupiter.intel._kev import validate_kev_catalog
from jupiter.intel._limits import FeedLimits, IntelLimits
from jupiter.intel._sources import parse_kev, parse_stix
from jupiter.intel._worker import ParserWorker
from jupiter.limits import InputLimitError, parse_json

REPO = Path(__file__).resolve().parent.parent
KEV_SNAPSHOT = REPO.parent / "shared" / "data" / "kev-2025-08-25.json"


def median_ms(func: Callable[[], Any], runs: int) -> float:
    func()  # warm up
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        func()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def kev_document() -> tuple[bytes, str]:
    if KEV_SNAPSHOT.exists():
        return KEV_SNAPSHOT.read_bytes(), "real 2025-08-25 catalog"
    records = [
        {
            "cveID": f"CVE-2024-{10000 + i}",
            "vendorProject": "Vendor",
            "product": "Product",
            "vulnerabilityName": f"Vendor Product flaw {i}",
            "dateAdded": "2024-01-15",
            "shortDescription": "A flaw lets a remote attacker run code. " * 6,
            "requiredAction": "Apply mitigations per vendor instructions.",
            "dueDate": "2024-02-05",
            "knownRansomwareCampaignUse": "Unknown",
            "notes": f"https://vendor.example/advisory/{i} ; https://nvd.nist.gov/x",
            "cwes": ["CWE-79"],
        }
        for i in range(1404)
    ]
    catalog = {
        "title": "CISA Catalog of Known Exploited Vulnerabilities",
        "catalogVersion": "2025.08.25",
        "dateReleased": "2025-08-25T00:00:00.000Z",
        "count": len(records),
        "vulnerabilities": records,
    }
    return json.dumps(catalog).encode(), "generated catalog (shared snapshot absent)"


def stix_document(count: int = 2000) -> dict[str, Any]:
    objects = [
        json.loads(
            stix2.Indicator(
                name=f"Bad IP {i}",
                description="Seen scanning. " * 10,
                pattern=f"[ipv4-addr:value = '10.{i // 250}.{i % 250}.1']",
                pattern_type="stix",
            ).serialize()
        )
        for i in range(count)
    ]
    return {
        "type": "bundle",
        "id": "bundle--6b2a7e55-1c8e-4b3a-9f3a-1f0e3c7a2b11",
        "objects": objects,
    }


def rss_document(count: int = 200) -> bytes:
    from xml.sax.saxutils import escape

    items = "".join(
        "<item>"
        f"<title>Advisory {i}: CVE-2025-{1000 + i} exploited in Product {i % 7}</title>"
        f"<link>https://vendor.example/advisories/{i}</link>"
        f'<guid isPermaLink="false">advisory-{i}</guid>'
        "<pubDate>Mon, 25 Aug 2025 12:00:00 GMT</pubDate>"
        "<description>"
        + escape(
            f"<p>Attackers exploit <b>CVE-2025-{1000 + i}</b> in the wild.</p>"
            "<ul><li>Patch now</li><li>Hunt for <a href='https://x.example/ioc'>IOCs</a></li>"
            "</ul><script>tracker()</script>" + "<p>More context on the campaign.</p>" * 4
        )
        + "</description></item>"
        for i in range(count)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>'
        "<title>Vendor advisories</title><link>https://vendor.example/</link>"
        f"<description>Advisories</description>{items}</channel></rss>"
    ).encode()


class _OldText(HTMLParser):
    """The html.parser-based conversion the pulse used before (quadratic on hostile markup)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def old_feed_parse(body: bytes) -> int:
    parsed = feedparser.parse(body, sanitize_html=True, resolve_relative_uris=False)
    for entry in parsed.entries:
        for name in ("title", "summary"):
            converter = _OldText()
            converter.feed(entry.get(name, ""))
            converter.close()
            " ".join("".join(converter.parts).split())
    return len(parsed.entries)


def measure(runs: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def row(name: str, bounded: float, plain: float, baseline: str, note: str = "") -> None:
        rows.append(
            {
                "row": name,
                "bounded_ms": round(bounded, 2),
                "plain_ms": round(plain, 2),
                "baseline": baseline,
                "ratio": round(bounded / plain, 2) if plain else None,
                "note": note,
            }
        )

    intel = IntelLimits()
    kev, where = kev_document()
    row(
        f"KEV parse_json ({len(kev) / 1e6:.1f} MB)",
        median_ms(lambda: parse_json(kev, intel.json, what="the KEV catalog"), runs),
        median_ms(lambda: json.loads(kev), runs),
        "json.loads",
        where,
    )

    def plain_kev() -> None:
        data = json.loads(kev)
        [kev_record_to_item(record, "kev") for record in validate_kev_catalog(data)]

    row(
        "KEV source parse (JSON + checks + items)",
        median_ms(lambda: parse_kev(parse_json(kev, intel.json), "kev", intel), runs),
        median_ms(plain_kev, runs),
        "json.loads + same checks",
        where,
    )

    bundle = stix_document()
    stix = json.dumps(bundle).encode()
    row(
        f"STIX parse_json ({len(stix) / 1e6:.1f} MB, 2,000 objects)",
        median_ms(lambda: parse_json(stix, intel.json, what="the STIX bundle"), runs),
        median_ms(lambda: json.loads(stix), runs),
        "json.loads",
    )
    stix_runs = max(1, runs // 3)  # stix2 is slow: ~1 s a run
    row(
        "STIX checks, object by object with deadline",
        median_ms(lambda: parse_stix(bundle, "stix", intel), stix_runs),
        median_ms(lambda: stix2.parse(bundle, allow_custom=True), stix_runs),
        "stix2.parse(bundle)",
    )

    feed = rss_document()
    limits = FeedLimits()
    plain = median_ms(lambda: old_feed_parse(feed), runs)
    row(
        f"RSS feed, in process ({len(feed) / 1e3:.0f} KB, 200 entries)",
        median_ms(
            lambda: parse_feed(feed, "application/rss+xml", "https://v.example/", limits), runs
        ),
        plain,
        "feedparser (sanitizer) + html.parser text",
    )
    worker = ParserWorker(max_memory_bytes=limits.max_parser_memory_bytes)
    try:
        parse_feed(feed, "application/rss+xml", "https://v.example/", limits, worker)  # start
        row(
            "RSS feed, in the worker process (as served)",
            median_ms(
                lambda: parse_feed(
                    feed, "application/rss+xml", "https://v.example/", limits, worker
                ),
                runs,
            ),
            plain,
            "feedparser (sanitizer) + html.parser text",
            "process started once, reused",
        )
    finally:
        worker.close()

    bomb = gzip.compress(b" " * (64 * 1024 * 1024), compresslevel=9)

    def bounded_bomb() -> None:
        body = BoundedBody("gzip", max_bytes=1024 * 1024, what="the bomb")
        try:
            for start in range(0, len(bomb), 65536):
                body.feed(bomb[start : start + 65536])
        except InputLimitError:
            return
        raise AssertionError("the bomb was not refused")

    row(
        "gzip bomb 64 MB (refused at 1 MB)",
        median_ms(bounded_bomb, runs),
        median_ms(lambda: zlib.decompress(bomb, 16 + zlib.MAX_WBITS), runs),
        "zlib inflating it whole",
        "what the limit saves",
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="3 runs per figure")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    rows = measure(3 if args.quick else 7)
    width = max(len(r["row"]) for r in rows)
    print(f"{'row':<{width}}  {'bounded ms':>10}  {'plain ms':>9}  {'ratio':>6}  baseline")
    for r in rows:
        print(
            f"{r['row']:<{width}}  {r['bounded_ms']:>10.2f}  {r['plain_ms']:>9.2f}  "
            f"{r['ratio']:>5.2f}x  {r['baseline']}" + (f"  ({r['note']})" if r["note"] else "")
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
