"""The import pipeline: detect, stream-parse, enrich and store one scan in ONE transaction.

Findings are written in batches while the file is read, so memory stays bounded by the batch
size, not by the file. Any error (bad input half-way through, a database failure) rolls the whole
import back: nothing is ever partly stored. A second import of the same bytes changes nothing.

With a :class:`~jupiter.scans._worker.ParserPool` (what the server and the CLI use) the parsing
runs in a worker process and only its findings reach this process; without one (tests, the
in-process benchmark) the parser runs here, with the same limits.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from jupiter.resilience import Clock, SystemClock

from ._detect import FORMATS, CompressedFileError, detect_format
from ._enrich import CRITICAL_EXPLOITED, FindingEnricher
from ._errors import ScanCancelledError, UnsupportedFormatError
from ._finding import ParsedFinding, Severity
from ._limits import DEFAULT_OPTIONS, ParseOptions
from ._source import ScanSource
from .models import FindingRecord, ScanFindingLink, ScanRecord

if TYPE_CHECKING:
    from ._parsers import ScanParser
    from ._worker import ParserPool

__all__ = ["ImportProgress", "ImportResult", "ScanImporter", "sha256_of"]


@dataclass(frozen=True, slots=True)
class ImportProgress:
    """Bytes read so far of the file being imported."""

    bytes_read: int
    total_bytes: int
    findings: int

    @property
    def percent(self) -> int:
        if self.total_bytes <= 0:
            return 100
        return min(100, self.bytes_read * 100 // self.total_bytes)


@dataclass(slots=True)
class ImportResult:
    """The outcome of one import; ``duplicate`` means the same bytes were imported before."""

    scan_id: int
    duplicate: bool
    format: str
    tool: str
    tool_version: str | None
    asset: str | None
    source_name: str
    size_bytes: int
    findings: int = 0
    new: int = 0
    existing: int = 0
    repeated: int = 0
    skipped: int = 0
    by_severity: dict[str, int] = field(default_factory=dict)
    kev_exploited: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "scan_id": self.scan_id,
            "duplicate": self.duplicate,
            "format": self.format,
            "tool": self.tool,
            "tool_version": self.tool_version,
            "asset": self.asset,
            "source_name": self.source_name,
            "size_bytes": self.size_bytes,
            "findings": self.findings,
            "new": self.new,
            "existing": self.existing,
            "repeated": self.repeated,
            "skipped": self.skipped,
            "by_severity": dict(self.by_severity),
            "kev_exploited": self.kev_exploited,
        }


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def choose_format(head: bytes, requested: str | None) -> str:
    """The named format if it fits the content, else the detected one (naming any mismatch)."""
    if requested is not None:
        requested = requested.strip().lower()
        if requested not in FORMATS:
            raise UnsupportedFormatError(
                f"unknown format {requested!r}; use one of {', '.join(FORMATS)}"
            )
        try:
            detected = detect_format(head)
        except CompressedFileError:
            raise
        except UnsupportedFormatError:
            return requested  # the parser will say what is wrong with it
        if detected != requested:
            raise UnsupportedFormatError(
                f"the file was named {requested} but looks like {detected}", scan_format=requested
            )
        return requested
    return detect_format(head)


class ScanImporter:
    """Imports scan files into the database through ``session_factory`` (a ``sessionmaker``).

    One importer serialises its imports (a lock), so two uploads of overlapping findings never
    race on the same fingerprint. ``batch_size`` bounds the findings held in memory at once.
    ``parser_pool`` runs the parsers in a worker process; without it they run in this one with
    ``options`` (limits, JSON backend).
    """

    def __init__(
        self,
        session_factory: Callable[[], Session],
        *,
        enricher: FindingEnricher | None = None,
        clock: Clock | None = None,
        batch_size: int = 500,
        parser_pool: ParserPool | None = None,
        options: ParseOptions | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._session_factory = session_factory
        self.enricher = enricher or FindingEnricher()
        self._clock = clock or SystemClock()
        self._batch_size = batch_size
        self.parser_pool = parser_pool
        self.options = options or DEFAULT_OPTIONS
        self.lock = threading.RLock()

    def _parser(
        self,
        source: ScanSource,
        scan_format: str,
        asset: str | None,
        on_bytes: Callable[[int, int], None],
        cancel: threading.Event | None,
    ) -> ScanParser:
        if self.parser_pool is not None:
            return self.parser_pool.parse(
                source.path, scan_format, asset=asset, on_bytes=on_bytes, cancel=cancel
            )
        # Imported here: a server (which uses a pool) never loads the parsers or yajl.
        from ._parsers import PARSERS

        return PARSERS[scan_format](source, asset=asset, options=self.options)

    def import_file(
        self,
        path: Path | str,
        *,
        scan_format: str | None = None,
        asset: str | None = None,
        source_name: str | None = None,
        on_progress: Callable[[ImportProgress], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> ImportResult:
        """Import ``path``; raises ``ScanInputError`` (and stores nothing) on bad input, and
        ``ScanCancelledError`` once ``cancel`` is set (the worker, if any, is stopped)."""
        path = Path(path)
        counter = {"findings": 0, "percent": -1}

        def on_bytes(read: int, total: int) -> None:
            if on_progress is None:
                return
            progress = ImportProgress(read, total, counter["findings"])
            if progress.percent > counter["percent"]:
                counter["percent"] = progress.percent
                on_progress(progress)

        source = ScanSource(path, name=source_name, on_bytes=on_bytes)
        chosen = choose_format(source.head(), scan_format)
        parser = self._parser(source, chosen, asset, on_bytes, cancel)
        digest = sha256_of(path)
        self.enricher.clear_kev_cache()  # KEV changes between imports are picked up
        with self.lock, self._session_factory() as session, session.begin():
            previous = session.execute(
                select(ScanRecord).where(ScanRecord.content_sha256 == digest)
            ).scalar_one_or_none()
            if previous is not None:
                return _duplicate_result(previous)
            now = datetime.fromtimestamp(self._clock.wall(), UTC)
            scan = ScanRecord(
                format=chosen,
                tool=parser.header.tool,
                tool_version=parser.header.tool_version,
                asset=parser.header.asset,
                source_name=source.name[:255],
                content_sha256=digest,
                size_bytes=source.size,
                imported_at=now,
                summary={},
                details={},
            )
            session.add(scan)
            session.flush()
            result = _result_of(
                scan, duplicate=False, by_severity={severity.value: 0 for severity in Severity}
            )
            linked: set[int] = set()
            batch: dict[str, ParsedFinding] = {}
            findings = parser.findings()
            # Closed at once when storing fails: a worker mid-job is stopped now, not when the
            # traceback is collected.
            with contextlib.closing(findings):
                for finding in findings:
                    if finding.fingerprint in batch:
                        result.repeated += 1
                    batch[finding.fingerprint] = finding
                    if len(batch) >= self._batch_size:
                        if cancel is not None and cancel.is_set():
                            raise ScanCancelledError("the import was cancelled")
                        self._store_batch(session, scan.id, now, batch, linked, result)
                        counter["findings"] = result.findings
                        batch = {}
            if batch:
                self._store_batch(session, scan.id, now, batch, linked, result)
            header = parser.header
            result.tool, result.tool_version, result.asset = (
                header.tool,
                header.tool_version,
                header.asset,
            )
            result.skipped = parser.skipped
            scan.tool = header.tool[:200]
            scan.tool_version = header.tool_version
            scan.asset = header.asset
            scan.finding_count = result.findings
            scan.new_count = result.new
            scan.summary = {
                key: value
                for key, value in result.summary().items()
                if key
                in (
                    "findings",
                    "new",
                    "existing",
                    "repeated",
                    "skipped",
                    "by_severity",
                    "kev_exploited",
                )
            }
            scan.details = header.details
        if on_progress is not None and counter["percent"] < 100:
            on_progress(ImportProgress(source.size, source.size, result.findings))
        return result

    def refresh_kev(self, batch_size: int = 500) -> dict[str, int]:
        """Re-apply KEV to every stored finding with a CVE (after the KEV catalog changed).

        One transaction, serialised with imports; returns how many findings were checked and
        how many changed priority or KEV data.
        """
        checked = changed = 0
        lookup = self.enricher.kev_record
        self.enricher.clear_kev_cache()
        with self.lock, self._session_factory() as session, session.begin():
            last_id = 0
            while True:
                rows = session.execute(
                    select(
                        FindingRecord.id,
                        FindingRecord.cve_ids,
                        FindingRecord.severity,
                        FindingRecord.priority,
                        FindingRecord.kev,
                    )
                    .where(FindingRecord.id > last_id)
                    .order_by(FindingRecord.id)
                    .limit(batch_size)
                ).all()
                if not rows:
                    break
                last_id = rows[-1].id
                with_cves = [row for row in rows if row.cve_ids]
                self.enricher.prefetch_kev(cve for row in with_cves for cve in row.cve_ids)
                updates = []
                for row in with_cves:
                    checked += 1
                    kev = [found for found in map(lookup, row.cve_ids) if found]
                    priority = CRITICAL_EXPLOITED if kev else row.severity
                    if priority != row.priority or kev != (row.kev or []):
                        updates.append(
                            {
                                "id": row.id,
                                "priority": priority,
                                "kev": kev,
                                "kev_exploited": bool(kev),
                            }
                        )
                if updates:
                    session.execute(update(FindingRecord), updates)
                    changed += len(updates)
        return {"checked": checked, "changed": changed}

    def _store_batch(
        self,
        session: Session,
        scan_id: int,
        now: datetime,
        batch: dict[str, ParsedFinding],
        linked: set[int],
        result: ImportResult,
    ) -> None:
        existing = dict(
            session.execute(
                select(FindingRecord.fingerprint, FindingRecord.id).where(
                    FindingRecord.fingerprint.in_(list(batch))
                )
            ).all()
        )
        self.enricher.prefetch_kev(cve for finding in batch.values() for cve in finding.cve_ids)
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        counted: list[ParsedFinding] = []
        for fingerprint, finding in batch.items():
            enrichment = self.enricher.enrich(finding)
            values = {
                "tool": finding.tool[:200],
                "rule_id": finding.rule_id,
                "title": finding.title,
                "message": finding.message,
                "severity": finding.severity.value,
                "severity_rank": finding.severity.rank,
                "priority": enrichment.priority,
                "kev_exploited": enrichment.kev_exploited,
                "kev": enrichment.kev,
                "asset": finding.asset[:500],
                "location": finding.location,
                "cve_ids": finding.cve_ids,
                "cwe_ids": finding.cwe_ids,
                "details": finding.details,
                "last_seen": now,
                "last_scan_id": scan_id,
            }
            finding_id = existing.get(fingerprint)
            if finding_id is None:
                inserts.append(
                    {
                        **values,
                        "fingerprint": fingerprint,
                        "first_seen": now,
                        "first_scan_id": scan_id,
                    }
                )
                counted.append(finding)
            elif finding_id in linked:
                result.repeated += 1  # seen earlier in this same file
                updates.append({"id": finding_id, **values})
            else:
                updates.append({"id": finding_id, **values})
                counted.append(finding)
                result.existing += 1
            if enrichment.kev_exploited and (finding_id is None or finding_id not in linked):
                result.kev_exploited += 1
        new_ids: list[int] = []
        if inserts:
            new_ids = list(
                session.scalars(insert(FindingRecord).returning(FindingRecord.id), inserts)
            )
            result.new += len(new_ids)
        if updates:
            session.execute(update(FindingRecord), updates)
        link_ids = [row["id"] for row in updates if row["id"] not in linked] + new_ids
        if link_ids:
            session.execute(
                insert(ScanFindingLink),
                [{"scan_id": scan_id, "finding_id": finding_id} for finding_id in link_ids],
            )
            linked.update(link_ids)
        for finding in counted:
            result.findings += 1
            result.by_severity[finding.severity.value] += 1


def _result_of(scan: ScanRecord, *, duplicate: bool, **counts: Any) -> ImportResult:
    """The outcome naming ``scan`` (its id, format, tool, asset, source and size)."""
    return ImportResult(
        scan_id=scan.id,
        duplicate=duplicate,
        format=scan.format,
        tool=scan.tool,
        tool_version=scan.tool_version,
        asset=scan.asset,
        source_name=scan.source_name,
        size_bytes=scan.size_bytes,
        **counts,
    )


def _duplicate_result(scan: ScanRecord) -> ImportResult:
    summary = scan.summary or {}
    return _result_of(
        scan,
        duplicate=True,
        findings=scan.finding_count,
        new=0,
        existing=int(summary.get("findings", scan.finding_count)),
        skipped=int(summary.get("skipped", 0)),
        by_severity=dict(summary.get("by_severity", {})),
        kev_exploited=int(summary.get("kev_exploited", 0)),
    )
