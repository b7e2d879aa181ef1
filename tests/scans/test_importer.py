"""The import pipeline: one transaction per import, dedup by fingerprint, progress, deletes,
concurrency, bounded memory; the storage tests run on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import threading
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import sessionmaker

from jupiter.resilience.testing import FakeClock
from jupiter.scans import ImportProgress, MalformedScanError, ScanImporter
from jupiter.scans._queries import FindingFilters, delete_scan, list_findings
from jupiter.scans.models import FindingRecord, ScanFindingLink, ScanRecord


def counts(session_factory: Any) -> tuple[int, int, int]:
    with session_factory() as session:
        return (
            session.scalar(select(func.count()).select_from(ScanRecord)),
            session.scalar(select(func.count()).select_from(FindingRecord)),
            session.scalar(select(func.count()).select_from(ScanFindingLink)),
        )


def trivy_with(builders: dict[str, Any], packages: list[tuple[str, str]], **kwargs: Any) -> Any:
    vulns = [
        builders["trivy_vulnerability"](cve, package, "1.0", "1.1") for cve, package in packages
    ]
    return builders["trivy_report"](
        [
            {
                "Target": "img (debian 12)",
                "Class": "os-pkgs",
                "Type": "debian",
                "Vulnerabilities": vulns,
            }
        ],
        **kwargs,
    )


def test_error_half_way_through_stores_nothing(
    tmp_path: Path, builders: dict[str, Any], any_engine: Engine
) -> None:
    """A bad entry after several flushed batches rolls the whole import back."""
    session_factory = sessionmaker(any_engine)
    importer = ScanImporter(session_factory, batch_size=5)
    packages = [(f"CVE-2024-{1000 + n}", f"pkg{n}") for n in range(40)]
    document = trivy_with(builders, packages)
    document["Results"][0]["Vulnerabilities"][33]["Severity"] = "BOGUS"
    path = builders["write_json"](tmp_path / "bad.json", document)
    with pytest.raises(MalformedScanError) as caught:
        importer.import_file(path)
    assert caught.value.json_path == "$.Results[0].Vulnerabilities[33].Severity"
    assert counts(session_factory) == (0, 0, 0)


def test_truncated_json_stores_nothing_and_names_the_path(
    tmp_path: Path, builders: dict[str, Any], importer: ScanImporter, session_factory: Any
) -> None:
    """A JSON file cut off mid-way is refused as truncated, with the path where it ends."""
    packages = [(f"CVE-2024-{1000 + n}", f"pkg{n}") for n in range(30)]
    text = json.dumps(trivy_with(builders, packages))
    cut = text.index('"pkg25"')
    path = tmp_path / "cut.json"
    path.write_text(text[:cut])
    with pytest.raises(MalformedScanError) as caught:
        importer.import_file(path)
    assert "truncated" in caught.value.detail
    assert caught.value.json_path.startswith("$.Results[0].Vulnerabilities[25]")
    assert counts(session_factory) == (0, 0, 0)


def test_reimport_of_an_overlapping_scan_deduplicates_by_fingerprint(
    tmp_path: Path, builders: dict[str, Any], any_engine: Engine
) -> None:
    """A later scan of the same image links known findings, updates last seen, adds only new."""
    clock = FakeClock(wall_start=1_750_000_000.0)
    session_factory = sessionmaker(any_engine)
    importer = ScanImporter(session_factory, clock=clock, batch_size=3)
    monday = [(f"CVE-2024-{n}", f"pkg{n}") for n in range(1000, 1010)]
    tuesday = monday[5:] + [(f"CVE-2025-{n}", f"new{n}") for n in range(1000, 1004)]
    first = importer.import_file(
        builders["write_json"](tmp_path / "mon.json", trivy_with(builders, monday))
    )
    clock.advance(86_400)
    second_path = builders["write_json"](
        tmp_path / "tue.json",
        {**trivy_with(builders, tuesday), "CreatedAt": "2025-08-21T00:00:00Z"},
    )
    second = importer.import_file(second_path)
    assert (first.new, second.new, second.existing, second.findings) == (10, 4, 5, 9)
    assert counts(session_factory) == (2, 14, 19)
    with session_factory() as session:
        rows = {row.rule_id: row for row in session.scalars(select(FindingRecord))}
    kept = rows["CVE-2024-1007"]
    assert (kept.first_scan_id, kept.last_scan_id) == (first.scan_id, second.scan_id)
    assert (kept.last_seen - kept.first_seen).total_seconds() == 86_400
    assert rows["CVE-2024-1001"].last_scan_id == first.scan_id


def test_duplicate_findings_inside_one_file_are_stored_once(
    tmp_path: Path, builders: dict[str, Any], importer: ScanImporter, session_factory: Any
) -> None:
    """The same finding twice in a file (across batches) is one finding, counted as repeated."""
    packages = [(f"CVE-2024-{n}", f"p{n}") for n in range(10)]
    packages.append(packages[1])  # batch_size 7: the repeat lands in a later batch
    packages.insert(3, packages[2])  # and this one in the same batch
    result = importer.import_file(
        builders["write_json"](tmp_path / "d.json", trivy_with(builders, packages))
    )
    assert (result.findings, result.new, result.repeated) == (10, 10, 2)
    assert counts(session_factory) == (1, 10, 10)


def test_deleting_a_scan_keeps_findings_other_scans_reported(
    tmp_path: Path, builders: dict[str, Any], any_engine: Engine
) -> None:
    """Delete removes a scan's own findings; shared ones stay with first/last seen recomputed."""
    session_factory = sessionmaker(any_engine)
    importer = ScanImporter(session_factory, batch_size=4)
    a = importer.import_file(
        builders["write_json"](
            tmp_path / "a.json", trivy_with(builders, [("CVE-2024-1", "a"), ("CVE-2024-2", "b")])
        )
    )
    b = importer.import_file(
        builders["write_json"](
            tmp_path / "b.json",
            trivy_with(
                builders,
                [("CVE-2024-2", "b"), ("CVE-2024-3", "c")],
                artifact="registry.example/app:1.4",
            )
            | {"CreatedAt": "2025-08-22T00:00:00Z"},
        )
    )
    with session_factory() as session, session.begin():
        outcome = delete_scan(session, b.scan_id)
    assert outcome == {"deleted_scan": b.scan_id, "deleted_findings": 1, "kept_findings": 1}
    with session_factory() as session:
        remaining = {f.rule_id: f for f in session.scalars(select(FindingRecord))}
    assert set(remaining) == {"CVE-2024-1", "CVE-2024-2"}
    assert remaining["CVE-2024-2"].last_scan_id == a.scan_id
    assert counts(session_factory) == (1, 2, 2)
    with session_factory() as session, session.begin():
        assert delete_scan(session, b.scan_id) is None


def test_progress_is_monotonic_and_ends_at_100(
    tmp_path: Path, builders: dict[str, Any], importer: ScanImporter
) -> None:
    """Progress is reported by bytes read, never goes backwards, and finishes at 100%."""
    packages = [(f"CVE-2024-{n}", f"pkg{n}") for n in range(3000)]
    path = builders["write_json"](tmp_path / "big.json", trivy_with(builders, packages))
    seen: list[ImportProgress] = []
    importer.import_file(path, on_progress=seen.append)
    percents = [p.percent for p in seen]
    assert percents == sorted(percents)
    assert percents[-1] == 100
    assert len(set(percents)) > 10
    assert all(p.total_bytes == path.stat().st_size for p in seen)
    assert seen[-1].bytes_read == path.stat().st_size


def test_concurrent_imports_of_overlapping_scans_never_duplicate(
    tmp_path: Path, builders: dict[str, Any], any_engine: Engine
) -> None:
    """Eight threads import overlapping scans at once: every finding is stored exactly once."""
    session_factory = sessionmaker(any_engine)
    importer = ScanImporter(session_factory, batch_size=5)
    paths = []
    for n in range(8):
        packages = [(f"CVE-2024-{k}", f"pkg{k}") for k in range(n * 5, n * 5 + 20)]
        document = {**trivy_with(builders, packages), "CreatedAt": f"2025-08-{n + 1:02d}T00:00:00Z"}
        paths.append(builders["write_json"](tmp_path / f"s{n}.json", document))
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(paths))

    def run(path: Path) -> None:
        barrier.wait()
        try:
            importer.import_file(path)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(path,)) for path in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert counts(session_factory) == (8, 55, 160)


def test_findings_are_listed_kev_first_then_by_severity_with_filters(
    tmp_path: Path, builders: dict[str, Any], kev_importer: ScanImporter, session_factory: Any
) -> None:
    """KEV-exploited findings come first; severity, kev, asset and tool filters apply."""
    vuln = builders["trivy_vulnerability"]
    document = builders["trivy_report"](
        [
            {
                "Target": "t",
                "Class": "os-pkgs",
                "Type": "debian",
                "Vulnerabilities": [
                    vuln("CVE-2024-3094", "liblzma5", "5.6.0", severity="CRITICAL"),
                    vuln("CVE-2014-0160", "openssl", "1.0.1f", severity="MEDIUM"),
                    vuln("CVE-2024-0001", "zlib", "1.0", severity="LOW"),
                    vuln("CVE-2024-0002", "bash", "5.0", severity="HIGH"),
                ],
            }
        ]
    )
    kev_importer.import_file(builders["write_json"](tmp_path / "t.json", document))
    with session_factory() as session:
        everything = list_findings(session, FindingFilters())
        only_kev = list_findings(session, FindingFilters(kev=True))
        page = list_findings(session, FindingFilters(limit=2, offset=1))
        wrong_asset = list_findings(session, FindingFilters(asset="nothing-like-this"))
        by_asset = list_findings(session, FindingFilters(asset="APP:1.4", tool="TRIVY"))
    order = [item["rule_id"] for item in everything["items"]]
    assert order == ["CVE-2014-0160", "CVE-2024-3094", "CVE-2024-0002", "CVE-2024-0001"]
    assert [item["rule_id"] for item in only_kev["items"]] == ["CVE-2014-0160"]
    assert page["total"] == 4
    assert [i["rule_id"] for i in page["items"]] == order[1:3]
    assert wrong_asset["total"] == 0
    assert by_asset["total"] == 4


def test_memory_stays_bounded_while_importing(
    tmp_path: Path, builders: dict[str, Any], session_factory: Any
) -> None:
    """Peak Python memory does not grow with the file: 5x the findings, about the same peak."""
    importer = ScanImporter(session_factory, batch_size=50)

    def peak_for(count: int, name: str) -> tuple[int, int]:  # (peak bytes, file bytes)
        packages = [(f"CVE-2024-{n}", f"{name}-{n}") for n in range(count)]
        path = builders["write_json"](tmp_path / f"{name}.json", trivy_with(builders, packages))
        tracemalloc.start()
        try:
            result = importer.import_file(path)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert result.findings == count
        return peak, path.stat().st_size

    peak_for(50, "warm-up")  # SQLAlchemy's statement caches fill on the first import
    small_peak, small_size = peak_for(300, "small")
    large_peak, large_size = peak_for(1500, "large")
    assert large_size > 4 * small_size
    assert large_peak < small_peak * 1.5, (small_peak, large_peak)


def test_refresh_kev_marks_findings_whose_cves_were_added_later(
    tmp_path: Path, builders: dict[str, Any], session_factory: Any, kev_catalog: Any
) -> None:
    """Imported before KEV knew them, findings become critical-exploited on refresh_kev."""
    from jupiter.scans import FindingEnricher

    known: set[str] = set()
    enricher = FindingEnricher(lambda cve: kev_catalog(cve) if cve in known else None)
    importer = ScanImporter(session_factory, enricher=enricher, batch_size=2)
    packages = [("CVE-2021-44228", "log4j"), ("CVE-2024-3094", "xz"), ("CVE-2014-0160", "ssl")]
    importer.import_file(
        builders["write_json"](tmp_path / "t.json", trivy_with(builders, packages))
    )
    assert importer.refresh_kev() == {"checked": 3, "changed": 0}
    known.update({"CVE-2021-44228", "CVE-2014-0160"})  # the catalog gained two entries
    assert importer.refresh_kev() == {"checked": 3, "changed": 2}
    with session_factory() as session:
        priorities = {f.rule_id: f.priority for f in session.scalars(select(FindingRecord))}
    assert priorities == {
        "CVE-2021-44228": "critical-exploited",
        "CVE-2024-3094": "high",
        "CVE-2014-0160": "critical-exploited",
    }
    assert importer.refresh_kev() == {"checked": 3, "changed": 0}
