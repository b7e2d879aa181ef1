"""Database tables of the intel area: the threat-item cache and the community-pulse cache.

Every table hangs off :class:`jupiter.storage.base.Base`, so the service's one ``create_all``
builds them. Dates that come from upstream stay ISO-8601 strings (KEV uses ``YYYY-MM-DD``, STIX
full timestamps): they sort correctly as text on SQLite and PostgreSQL alike, and nothing is lost
to a timezone conversion. Times that Jupiter itself records are UNIX seconds (``float``) read from
the injected clock, so staleness is testable on a fake clock.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from jupiter.storage.base import Base

__all__ = ["IntelSourceState", "PulseFeedState", "PulseItemRow", "ThreatItemRow"]


class ThreatItemRow(Base):
    """One normalised threat item (a KEV record, a STIX object, an ATT&CK group) of a source."""

    __tablename__ = "intel_threat_items"

    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    item_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40), index=True)
    title: Mapped[str] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(20), index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    published: Mapped[str | None] = mapped_column(String(40), nullable=True)
    added: Mapped[str | None] = mapped_column(String(40), nullable=True)
    due: Mapped[str | None] = mapped_column(String(40), nullable=True)
    modified: Mapped[str | None] = mapped_column(String(40), nullable=True)
    references: Mapped[list[str]] = mapped_column(JSON, default=list)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    stored_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_intel_threat_items_kind_item", "kind", "item_id"),)


class IntelSourceState(Base):
    """What Jupiter knows about one threat source: its last good fetch and its last failure."""

    __tablename__ = "intel_sources"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    location: Mapped[str] = mapped_column(Text, default="")  # redacted URL or file path
    last_success_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_attempt_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    item_count: Mapped[int] = mapped_column(Integer, default=0)


class PulseItemRow(Base):
    """One community-feed entry, stored as plain text (titles and summaries are untrusted)."""

    __tablename__ = "pulse_items"

    item_key: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256(feed, entry id)
    feed_url: Mapped[str] = mapped_column(Text, index=True)
    source: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(Text, nullable=True)
    published: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    summary: Mapped[str] = mapped_column(Text, default="")
    stored_at: Mapped[float] = mapped_column(Float)


class PulseFeedState(Base):
    """The last good fetch and the last failure of one community feed."""

    __tablename__ = "pulse_feeds"

    feed_url: Mapped[str] = mapped_column(String(2048), primary_key=True)
    name: Mapped[str] = mapped_column(Text, default="")
    last_success_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_attempt_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    item_count: Mapped[int] = mapped_column(Integer, default=0)
