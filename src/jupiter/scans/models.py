"""Scan tables on the shared declarative base: imported scans, deduplicated findings, and the
links that say which scans saw which finding."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from jupiter.storage.base import Base

__all__ = ["FindingRecord", "ScanFindingLink", "ScanRecord"]


class ScanRecord(Base):
    """One imported file. ``content_sha256`` makes a second import of the same file a no-op."""

    __tablename__ = "scans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    format: Mapped[str] = mapped_column(String(16))
    tool: Mapped[str] = mapped_column(String(200))
    tool_version: Mapped[str | None] = mapped_column(String(100))
    asset: Mapped[str | None] = mapped_column(String(500))
    source_name: Mapped[str] = mapped_column(String(255))
    content_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    size_bytes: Mapped[int] = mapped_column(Integer)
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finding_count: Mapped[int] = mapped_column(Integer, default=0)
    new_count: Mapped[int] = mapped_column(Integer, default=0)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class FindingRecord(Base):
    """One finding, however many scans reported it (unique ``fingerprint``)."""

    __tablename__ = "findings"
    __table_args__ = (
        Index("ix_findings_order", "kev_exploited", "severity_rank", "last_seen"),
        Index("ix_findings_asset", "asset"),
        Index("ix_findings_tool", "tool"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    tool: Mapped[str] = mapped_column(String(200))
    rule_id: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(500))
    message: Mapped[str] = mapped_column(Text, default="")
    severity: Mapped[str] = mapped_column(String(16))
    severity_rank: Mapped[int] = mapped_column(Integer)
    priority: Mapped[str] = mapped_column(String(32))
    kev_exploited: Mapped[bool] = mapped_column(Boolean, default=False)
    kev: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    asset: Mapped[str] = mapped_column(String(500))
    location: Mapped[str] = mapped_column(String(1000), default="")
    cve_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    cwe_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    first_scan_id: Mapped[int | None] = mapped_column(Integer)
    last_scan_id: Mapped[int | None] = mapped_column(Integer)


class ScanFindingLink(Base):
    """Scan ``scan_id`` reported finding ``finding_id``."""

    __tablename__ = "scan_findings"

    scan_id: Mapped[int] = mapped_column(
        ForeignKey("scans.id", ondelete="CASCADE"), primary_key=True
    )
    finding_id: Mapped[int] = mapped_column(
        ForeignKey("findings.id", ondelete="CASCADE"), primary_key=True, index=True
    )
