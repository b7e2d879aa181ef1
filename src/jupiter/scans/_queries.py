"""Reading and deleting stored scans and findings (sync; callers run these off the event loop)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from ._enrich import FindingEnricher
from ._finding import Severity
from .models import FindingRecord, ScanFindingLink, ScanRecord

__all__ = [
    "FindingFilters",
    "delete_scan",
    "get_finding",
    "get_scan",
    "list_findings",
    "list_scans",
]


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite hands back naive datetimes; they were stored as UTC
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def scan_to_dict(scan: ScanRecord) -> dict[str, Any]:
    return {
        "id": scan.id,
        "format": scan.format,
        "tool": scan.tool,
        "tool_version": scan.tool_version,
        "asset": scan.asset,
        "source_name": scan.source_name,
        "sha256": scan.content_sha256,
        "size_bytes": scan.size_bytes,
        "imported_at": _iso(scan.imported_at),
        "finding_count": scan.finding_count,
        "new_count": scan.new_count,
        "summary": scan.summary or {},
        "details": scan.details or {},
    }


def finding_to_dict(
    finding: FindingRecord, enricher: FindingEnricher | None, *, full: bool
) -> dict[str, Any]:
    cwe_ids = list(finding.cwe_ids or [])
    body: dict[str, Any] = {
        "id": finding.id,
        "fingerprint": finding.fingerprint,
        "tool": finding.tool,
        "rule_id": finding.rule_id,
        "title": finding.title,
        "severity": finding.severity,
        "priority": finding.priority,
        "kev_exploited": finding.kev_exploited,
        "kev": list(finding.kev or []),
        "asset": finding.asset,
        "location": finding.location,
        "cve_ids": list(finding.cve_ids or []),
        "cwe_ids": cwe_ids,
        "first_seen": _iso(finding.first_seen),
        "last_seen": _iso(finding.last_seen),
        "first_scan_id": finding.first_scan_id,
        "last_scan_id": finding.last_scan_id,
    }
    entries = enricher.cwe_entries(cwe_ids) if enricher is not None else []
    if full:
        body["message"] = finding.message
        body["details"] = finding.details or {}
        body["cwe"] = entries
    else:
        body["cwe"] = [
            {"id": entry["id"], "name": entry.get("name"), "url": entry.get("url")}
            for entry in entries
        ]
    return body


@dataclass(frozen=True, slots=True)
class FindingFilters:
    """``severity`` (one or more levels), ``kev``, ``asset`` (substring), ``tool`` (exact,
    case-insensitive), ``scan_id``; ``limit``/``offset`` paginate."""

    severity: tuple[Severity, ...] = ()
    kev: bool | None = None
    asset: str | None = None
    tool: str | None = None
    scan_id: int | None = None
    limit: int = 50
    offset: int = 0


def list_scans(session: Session, *, limit: int = 50, offset: int = 0) -> dict[str, Any]:
    total = session.scalar(select(func.count()).select_from(ScanRecord)) or 0
    rows = session.scalars(
        select(ScanRecord).order_by(ScanRecord.id.desc()).limit(limit).offset(offset)
    ).all()
    return {
        "items": [scan_to_dict(row) for row in rows],
        "total": total,
        "limit": limit,
        "offset": offset,
    }


def get_scan(session: Session, scan_id: int) -> dict[str, Any] | None:
    scan = session.get(ScanRecord, scan_id)
    return scan_to_dict(scan) if scan is not None else None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_findings(
    session: Session, filters: FindingFilters, enricher: FindingEnricher | None = None
) -> dict[str, Any]:
    """Findings, KEV-exploited first, then by severity and recency."""
    query = select(FindingRecord)
    if filters.severity:
        query = query.where(FindingRecord.severity.in_([s.value for s in filters.severity]))
    if filters.kev is not None:
        query = query.where(FindingRecord.kev_exploited.is_(filters.kev))
    if filters.asset:
        query = query.where(
            FindingRecord.asset.ilike(f"%{_escape_like(filters.asset)}%", escape="\\")
        )
    if filters.tool:
        query = query.where(func.lower(FindingRecord.tool) == filters.tool.lower())
    if filters.scan_id is not None:
        query = query.where(
            FindingRecord.id.in_(
                select(ScanFindingLink.finding_id).where(ScanFindingLink.scan_id == filters.scan_id)
            )
        )
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(
            FindingRecord.kev_exploited.desc(),
            FindingRecord.severity_rank.desc(),
            FindingRecord.last_seen.desc(),
            FindingRecord.id.asc(),
        )
        .limit(filters.limit)
        .offset(filters.offset)
    ).all()
    return {
        "items": [finding_to_dict(row, enricher, full=False) for row in rows],
        "total": total,
        "limit": filters.limit,
        "offset": filters.offset,
    }


def get_finding(
    session: Session, finding_id: int, enricher: FindingEnricher | None = None
) -> dict[str, Any] | None:
    finding = session.get(FindingRecord, finding_id)
    if finding is None:
        return None
    body = finding_to_dict(finding, enricher, full=True)
    body["scan_ids"] = list(
        session.scalars(
            select(ScanFindingLink.scan_id)
            .where(ScanFindingLink.finding_id == finding_id)
            .order_by(ScanFindingLink.scan_id)
        )
    )
    return body


def _chunks(ids: list[int], size: int = 500) -> list[list[int]]:
    return [ids[start : start + size] for start in range(0, len(ids), size)]


def delete_scan(session: Session, scan_id: int) -> dict[str, Any] | None:
    """Delete a scan and the findings no other scan reported; returns counts, None if unknown.

    Findings another scan also reported stay, with first/last seen recomputed from the scans
    that remain.
    """
    scan = session.get(ScanRecord, scan_id)
    if scan is None:
        return None
    linked_ids = list(
        session.scalars(
            select(ScanFindingLink.finding_id).where(ScanFindingLink.scan_id == scan_id)
        )
    )
    shared_ids: list[int] = []
    for chunk in _chunks(linked_ids):
        shared_ids.extend(
            session.scalars(
                select(ScanFindingLink.finding_id)
                .where(ScanFindingLink.finding_id.in_(chunk), ScanFindingLink.scan_id != scan_id)
                .distinct()
            )
        )
    session.execute(delete(ScanFindingLink).where(ScanFindingLink.scan_id == scan_id))
    orphan_ids = sorted(set(linked_ids) - set(shared_ids))
    for chunk in _chunks(orphan_ids):
        session.execute(delete(FindingRecord).where(FindingRecord.id.in_(chunk)))
    for finding_id in shared_ids:
        remaining = session.execute(
            select(func.min(ScanRecord.id), func.max(ScanRecord.id))
            .join(ScanFindingLink, ScanFindingLink.scan_id == ScanRecord.id)
            .where(ScanFindingLink.finding_id == finding_id)
        ).one()
        first, last = (session.get(ScanRecord, remaining[0]), session.get(ScanRecord, remaining[1]))
        if first is None or last is None:
            continue
        session.execute(
            update(FindingRecord)
            .where(FindingRecord.id == finding_id)
            .values(
                first_scan_id=first.id,
                first_seen=first.imported_at,
                last_scan_id=last.id,
                last_seen=last.imported_at,
            )
        )
    session.delete(scan)
    return {
        "deleted_scan": scan_id,
        "deleted_findings": len(orphan_ids),
        "kept_findings": len(shared_ids),
    }
