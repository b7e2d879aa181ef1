"""The service's own tables: recorded errors, chat conversations, feature and breaker history.

Times are stored as UTC ``DateTime`` with time zone so that SQLite and PostgreSQL agree.
Context is stored already redacted: the aggregator's redaction runs before anything is queued.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base

__all__ = [
    "ChatMessage",
    "Conversation",
    "ErrorRecord",
    "JournalCheckpoint",
    "StateChange",
    "utcnow",
]


def utcnow() -> datetime:
    """The current time in UTC, time-zone aware."""
    return datetime.now(UTC)


class ErrorRecord(Base):
    """One error the aggregator recorded (type, message, redacted context, when)."""

    __tablename__ = "jupiter_errors"
    __table_args__ = (Index("ix_jupiter_errors_time", "occurred_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    type: Mapped[str] = mapped_column(String(200), nullable=False)
    message: Mapped[str] = mapped_column(Text, nullable=False)
    context: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)


class Conversation(Base):
    """A chat conversation (one per socket connection, or one per REST conversation id)."""

    __tablename__ = "jupiter_conversations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    channel: Mapped[str] = mapped_column(String(20), nullable=False, default="rest")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    messages: Mapped[list[ChatMessage]] = relationship(
        back_populates="conversation", order_by="ChatMessage.id", cascade="all, delete-orphan"
    )


class ChatMessage(Base):
    """One chat turn: the user's question or the assistant's answer (flagged if an error)."""

    __tablename__ = "jupiter_chat_messages"
    __table_args__ = (Index("ix_jupiter_chat_messages_conv", "conversation_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("jupiter_conversations.id", ondelete="CASCADE"), nullable=False
    )
    role: Mapped[str] = mapped_column(String(20), nullable=False)
    content: Mapped[str] = mapped_column(Text, nullable=False)
    is_error: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    conversation: Mapped[Conversation] = relationship(back_populates="messages")


class StateChange(Base):
    """A feature flag or breaker changed state; the status page builds its history from these.

    ``kind`` is ``"breaker"`` (states closed/open/half_open) or ``"feature"``
    (states enabled/disabled). ``component`` is the internal name, e.g. ``grok_chat``.
    ``actor`` is who made the change: ``"admin"`` (an operator), ``"auto"`` (the resilience
    core: a breaker tripping or recovering) or ``"system"`` (the service itself, e.g. a
    component that failed to start). Rows written before the column existed have NULL.
    """

    __tablename__ = "jupiter_state_changes"
    __table_args__ = (Index("ix_jupiter_state_changes_time", "occurred_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    component: Mapped[str] = mapped_column(String(100), nullable=False)
    old_state: Mapped[str | None] = mapped_column(String(40), nullable=True)
    new_state: Mapped[str] = mapped_column(String(40), nullable=False)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Added after the first release: nullable, so create_all's tables and older ones agree once
    # Database.create_all has added it (see jupiter.storage.database.ADDED_COLUMNS).
    actor: Mapped[str | None] = mapped_column(String(20), nullable=True)


class JournalCheckpoint(Base):
    """How far the background writer has committed a journal's records (see
    :mod:`jupiter.storage.journal`): every record numbered up to ``last_seq`` is stored.

    Updated in the same transaction as the rows it covers, so after a crash at any moment a
    replayed record at or below it is known to be stored already and is skipped: each record
    lands exactly once. One row per journal (``journal_id`` is the random id in the journal
    directory), so several data dirs can share one database.
    """

    __tablename__ = "jupiter_journal_checkpoints"

    journal_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow
    )
