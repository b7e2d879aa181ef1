"""A background writer: requests queue records in memory, one thread commits them in batches.

Requests never wait for the database. The thread commits whenever ``batch_size`` records are
waiting or ``flush_interval`` seconds have passed (0.5 s by default, so a ``kill -9`` loses at
most that much), and once more on :meth:`BackgroundWriter.close`. A failing database keeps the
records queued and retries; past ``max_pending`` the oldest records are dropped and counted.

A record the database refuses for what it holds (a data or integrity error, text it cannot
encode) must not block everything queued after it: a failed batch is retried row by row, and
rows refused for their data are logged (by error type only), dropped and counted as
``rejected``. Only failures that look transient (connection lost, database down, missing table)
keep rows queued. Every text is cleaned on the way in as well (see :func:`jupiter.text.clean_text`).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from jupiter.resilience import Clock, SystemClock
from jupiter.text import clean_text

from .models import ChatMessage, Conversation, ErrorRecord, StateChange

__all__ = ["BackgroundWriter", "WriterStats"]

log = logging.getLogger("jupiter.storage.writer")


# Failures caused by a row's content: retrying them can never succeed.
_DATA_ERRORS: tuple[type[BaseException], ...] = (
    sa_exc.DataError,
    sa_exc.IntegrityError,
    UnicodeError,
    ValueError,
    TypeError,
)


def is_data_error(error: BaseException) -> bool:
    """Whether ``error`` (or what it wraps) means the row itself is unstorable, not the database
    being unavailable. Connection and operational errors are never data errors."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sa_exc.OperationalError | sa_exc.InterfaceError):
            return False
        if isinstance(current, _DATA_ERRORS):
            return True
        wrapped = getattr(current, "orig", None)
        current = wrapped if isinstance(wrapped, BaseException) else current.__cause__
    return False


def _clean(value: Any) -> Any:
    return clean_text(value) if isinstance(value, str) else value


def _as_datetime(timestamp: float | str | datetime | None) -> datetime:
    if timestamp is None:
        return datetime.now(UTC)
    if isinstance(timestamp, str):
        timestamp = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    if isinstance(timestamp, datetime):
        return timestamp if timestamp.tzinfo else timestamp.replace(tzinfo=UTC)
    return datetime.fromtimestamp(float(timestamp), UTC)


@dataclass
class WriterStats:
    """Counters for /readyz and /metrics."""

    written: int = 0
    dropped: int = 0  # every row not written: overflow plus rejected
    rejected: int = 0  # rows the database refused for their content
    failed_batches: int = 0
    last_error: str | None = None
    pending: int = 0


@dataclass
class _ChatRow:
    conversation_id: str
    channel: str
    role: str
    content: str
    is_error: bool
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class BackgroundWriter:
    """Batches rows onto one daemon thread; thread-safe to call from anywhere."""

    def __init__(
        self,
        session_factory: Callable[[], Session],
        *,
        flush_interval: float = 0.5,
        batch_size: int = 200,
        max_pending: int = 100_000,
        name: str = "jupiter-db-writer",
        clock: Clock | None = None,
    ) -> None:
        self._session_factory = session_factory
        self._flush_interval = flush_interval
        self._batch_size = batch_size
        self._max_pending = max_pending
        self._name = name
        self._cond = threading.Condition()
        self._pending: deque[tuple[int, Any]] = deque()
        self._enqueued = 0  # sequence number of the last queued record
        self._done = 0  # every record up to this sequence number is written or dropped
        self._flush_requested = False
        self._closing = False
        self._thread: threading.Thread | None = None
        self._known_conversations: set[str] = set()
        self._clock = clock or SystemClock()
        # When the current run of failed writes began (monotonic); None while writes succeed.
        self._failing_since: float | None = None
        self.stats = WriterStats()

    # ----- lifecycle -----
    def start(self) -> BackgroundWriter:
        """Start the writer thread (idempotent)."""
        with self._cond:
            if self._thread is None:
                self._closing = False
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        """Whether the writer thread is running."""
        return self._thread is not None and self._thread.is_alive()

    def failing_for(self) -> float:
        """Seconds the writer has been unable to write (0 while writes succeed)."""
        with self._cond:
            since = self._failing_since
        return 0.0 if since is None else max(0.0, self._clock.monotonic() - since)

    def keeping_up(self, stuck_after: float) -> bool:
        """Whether the writer runs and writes: False when its thread is dead, when it has been
        failing for ``stuck_after`` seconds or more, or when its queue overflows."""
        if not self.alive:
            return False
        with self._cond:
            overflowing = len(self._pending) >= self._max_pending
            failing = self._failing_since is not None
        return not overflowing and not (failing and self.failing_for() >= stuck_after)

    def close(self, timeout: float = 10.0) -> None:
        """Write everything still queued, then stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        self._thread = None
        if self._pending:  # never started, or the thread died: write what we can here
            self._drain_once(final=True)

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until every record queued before this call is written; False on timeout."""
        with self._cond:
            target = self._enqueued
            if self._thread is None or not self._thread.is_alive():
                pass
            else:
                self._flush_requested = True
                self._cond.notify_all()
                return self._cond.wait_for(lambda: self._done >= target, timeout)
        self._drain_once(final=True)
        return self._done >= target

    # ----- what callers queue -----
    def record_error(
        self,
        type: str,
        message: str,
        context: dict[str, Any] | None = None,
        timestamp: float | str | datetime | None = None,
    ) -> None:
        """Queue an aggregator record (its context must already be redacted)."""
        self._put(
            (
                ErrorRecord,
                {
                    "occurred_at": _as_datetime(timestamp),
                    "type": clean_text(str(type))[:200],
                    "message": clean_text(str(message)),
                    "context": _jsonable(context or {}),
                },
            )
        )

    def record_state_change(
        self,
        kind: str,
        component: str,
        new_state: str,
        old_state: str | None = None,
        reason: str | None = None,
        timestamp: float | datetime | None = None,
        actor: str | None = None,
    ) -> None:
        """Queue a feature (enabled/disabled) or breaker (closed/open/half_open) change, with
        who made it (``admin``, ``auto`` or ``system``) when known."""
        self._put(
            (
                StateChange,
                {
                    "occurred_at": _as_datetime(timestamp),
                    "kind": _clean(kind),
                    "component": _clean(component),
                    "old_state": _clean(old_state),
                    "new_state": _clean(new_state),
                    "reason": _clean(reason),
                    "actor": _clean(actor),
                },
            )
        )

    def record_chat_message(
        self,
        conversation_id: str,
        role: str,
        content: str,
        *,
        is_error: bool = False,
        channel: str = "rest",
    ) -> None:
        """Queue one chat turn; its conversation row is created on first use."""
        self._put(
            _ChatRow(
                clean_text(conversation_id),
                clean_text(channel),
                clean_text(role),
                clean_text(content),
                is_error,
            )
        )

    # ----- internals -----
    def _put(self, row: Any) -> None:
        with self._cond:
            self._enqueued += 1
            self._pending.append((self._enqueued, row))
            if len(self._pending) > self._max_pending:
                seq, _ = self._pending.popleft()
                self.stats.dropped += 1
                self._done = max(self._done, seq)
            self.stats.pending = len(self._pending)
            if len(self._pending) >= self._batch_size:
                self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(
                    lambda: (
                        self._closing
                        or self._flush_requested
                        or len(self._pending) >= self._batch_size
                    ),
                    timeout=self._flush_interval,
                )
                closing = self._closing
                self._flush_requested = False
            ok = self._drain_once(final=closing)
            if closing and (ok or not self._pending):
                return
            if not ok:
                # The database is failing: wait an interval before trying the same batch again.
                with self._cond:
                    self._cond.wait(timeout=self._flush_interval)
                    if self._closing:
                        self._drain_once(final=True)
                        return

    def _drain_once(self, *, final: bool) -> bool:
        """Write queued rows in batches until none are left; False if the database is failing
        (the unwritten rows stay queued, or are dropped when ``final``)."""
        while True:
            with self._cond:
                if not self._pending:
                    self.stats.pending = 0
                    self._cond.notify_all()
                    return True
                batch = [
                    self._pending.popleft()
                    for _ in range(min(self._batch_size, len(self._pending)))
                ]
            try:
                self._write(batch)
            except Exception as exc:
                if not is_data_error(exc):
                    self._give_back(batch, exc, final=final)
                    return False
                # Some row in the batch is unstorable: find it by writing the rows one by one.
                with self._cond:
                    self.stats.failed_batches += 1
                    self.stats.last_error = type(exc).__name__
                if not self._write_one_by_one(batch, final=final):
                    return False
                continue
            self._written(batch)

    def _write_one_by_one(self, batch: list[tuple[int, Any]], *, final: bool) -> bool:
        for index, item in enumerate(batch):
            try:
                self._write([item])
            except Exception as exc:
                if not is_data_error(exc):
                    self._give_back(batch[index:], exc, final=final)
                    return False
                self._reject(item, exc)
                continue
            self._written([item])
        return True

    def _written(self, rows: list[tuple[int, Any]]) -> None:
        with self._cond:
            self.stats.written += len(rows)
            self._done = max(self._done, rows[-1][0])
            self._failing_since = None
            self.stats.pending = len(self._pending)
            self._cond.notify_all()

    def _reject(self, item: tuple[int, Any], exc: Exception) -> None:
        seq, row = item
        table = "jupiter_chat_messages" if isinstance(row, _ChatRow) else row[0].__tablename__
        with self._cond:
            self.stats.rejected += 1
            self.stats.dropped += 1
            self.stats.last_error = type(exc).__name__
            self._done = max(self._done, seq)
            # A refused row is progress, not an outage: the database answered.
            self._failing_since = None
            self.stats.pending = len(self._pending)
            self._cond.notify_all()
        # Type and table only: the row's content may be what a client sent.
        log.error("❌ database refused a %s row (%s); dropped", table, type(exc).__name__)

    def _give_back(self, rows: list[tuple[int, Any]], exc: Exception, *, final: bool) -> None:
        with self._cond:
            self.stats.failed_batches += 1
            self.stats.last_error = type(exc).__name__
            if self._failing_since is None:
                self._failing_since = self._clock.monotonic()
            if final:
                self.stats.dropped += len(rows)
                self._done = max(self._done, rows[-1][0])
            else:
                self._pending.extendleft(reversed(rows))
            self.stats.pending = len(self._pending)
            self._cond.notify_all()
        log.error("❌ database write failed (%s); %d rows queued", type(exc).__name__, len(rows))

    def _write(self, batch: list[tuple[int, Any]]) -> None:
        with self._session_factory() as session, session.begin():
            new_conversations: set[str] = set()
            for _, row in batch:
                if isinstance(row, _ChatRow):
                    cid = row.conversation_id
                    if cid not in self._known_conversations and cid not in new_conversations:
                        if session.get(Conversation, cid) is None:
                            session.add(
                                Conversation(id=cid, channel=row.channel, created_at=row.created_at)
                            )
                            session.flush()
                        new_conversations.add(cid)
                    session.add(
                        ChatMessage(
                            conversation_id=cid,
                            role=row.role,
                            content=row.content,
                            is_error=row.is_error,
                            created_at=row.created_at,
                        )
                    )
                else:
                    # Rows are built here, per attempt, so a failed batch can be retried cleanly.
                    model, values = row
                    session.add(model(**values))
        self._known_conversations |= new_conversations


def _jsonable(value: Any) -> Any:
    """Make a context JSON-safe (unknown objects become their repr)."""
    if isinstance(value, dict):
        return {clean_text(str(k)): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    if isinstance(value, str):
        return clean_text(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return clean_text(repr(value))
