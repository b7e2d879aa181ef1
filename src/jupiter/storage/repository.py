"""Reads of the service tables: what startup restores and what the history APIs serve."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import ChatMessage, ErrorRecord, StateChange

__all__ = ["as_utc", "load_conversation", "load_recent_errors", "load_state_changes"]

SessionFactory = Callable[[], Session]


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def load_recent_errors(
    session_factory: SessionFactory, *, limit: int = 1000, since: datetime | None = None
) -> list[dict[str, Any]]:
    """The newest ``limit`` errors (after ``since``), returned oldest first for replaying."""
    stmt = select(ErrorRecord).order_by(ErrorRecord.occurred_at.desc(), ErrorRecord.id.desc())
    if since is not None:
        stmt = stmt.where(ErrorRecord.occurred_at >= since)
    with session_factory() as session:
        rows = session.scalars(stmt.limit(limit)).all()
        return [
            {
                "timestamp": as_utc(r.occurred_at).timestamp(),
                "type": r.type,
                "message": r.message,
                "context": dict(r.context or {}),
            }
            for r in reversed(rows)
        ]


def load_state_changes(
    session_factory: SessionFactory,
    *,
    since: datetime | None = None,
    component: str | None = None,
    limit: int = 10_000,
) -> list[dict[str, Any]]:
    """Feature and breaker state changes, oldest first (for the status page's history).

    ``actor`` is None for rows recorded before the column existed."""
    stmt = select(StateChange).order_by(StateChange.occurred_at.desc(), StateChange.id.desc())
    if since is not None:
        stmt = stmt.where(StateChange.occurred_at >= since)
    if component is not None:
        stmt = stmt.where(StateChange.component == component)
    with session_factory() as session:
        rows = session.scalars(stmt.limit(limit)).all()
        return [
            {
                "timestamp": as_utc(r.occurred_at).timestamp(),
                "kind": r.kind,
                "component": r.component,
                "old_state": r.old_state,
                "new_state": r.new_state,
                "reason": r.reason,
                "actor": r.actor,
            }
            for r in reversed(rows)
        ]


def load_conversation(
    session_factory: SessionFactory, conversation_id: str, *, limit: int = 10
) -> list[dict[str, Any]]:
    """The last ``limit`` messages of a conversation, oldest first, as LLM chat messages."""
    stmt = (
        select(ChatMessage)
        .where(ChatMessage.conversation_id == conversation_id)
        .order_by(ChatMessage.id.desc())
        .limit(limit)
    )
    with session_factory() as session:
        rows = session.scalars(stmt).all()
        return [
            {"role": r.role, "content": r.content, "is_error": r.is_error} for r in reversed(rows)
        ]
