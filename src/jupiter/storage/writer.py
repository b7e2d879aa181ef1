"""A background writer: requests queue records in memory, one thread commits them in batches.

Requests never wait for the database. The thread commits whenever ``batch_size`` records are
waiting or ``flush_interval`` seconds have passed (0.5 s by default), and once more on
:meth:`BackgroundWriter.close`. A failing database keeps the records queued and retries; past
``max_pending`` the oldest records are dropped and counted.

With a :class:`~jupiter.storage.journal.Journal` attached (:meth:`BackgroundWriter.open_journal`,
what the service does), every queued record is also buffered for the journal, which is written
before the client is answered, so a ``kill -9`` loses nothing acknowledged. Each batch then
advances the journal's checkpoint row in its own transaction, and rows at or below the
checkpoint are skipped: replaying the journal after a crash stores each record exactly once.

Records are queued as plain tuples (see :data:`jupiter.storage.journal.KINDS`) and turned into
rows on the writer's thread, so queuing one costs a lock and two deque appends:

* ``("error", timestamp, type, message, context)``
* ``("state", timestamp, kind, component, new_state, old_state, reason, actor)``
* ``("chat", timestamp, conversation_id, channel, role, content, is_error)``

(timestamps are Unix seconds).

A record the database refuses for what it holds (a data or integrity error, text it cannot
encode) must not block everything queued after it: a failed batch is retried row by row, and
rows refused for their data are logged (by error type only), dropped and counted as
``rejected``. Only failures that look transient (connection lost, database down, missing table)
keep rows queued. Every text is cleaned on the way in as well (see :func:`jupiter.text.clean_text`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from jupiter.resilience import Clock, SystemClock
from jupiter.text import clean_text

from .journal import Entry, Journal, Row
from .models import ChatMessage, Conversation, ErrorRecord, JournalCheckpoint, StateChange

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


def _as_timestamp(timestamp: float | str | datetime | None) -> float:
    """Unix seconds for what callers pass: None (now), seconds, an ISO string or a datetime
    (naive means UTC)."""
    if timestamp is None:
        return time.time()
    if isinstance(timestamp, str):
        timestamp = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    if isinstance(timestamp, datetime):
        return (timestamp if timestamp.tzinfo else timestamp.replace(tzinfo=UTC)).timestamp()
    return float(timestamp)


def _as_datetime(timestamp: float) -> datetime:
    return datetime.fromtimestamp(float(timestamp), UTC)


_TABLES = {
    "error": ErrorRecord.__tablename__,
    "state": StateChange.__tablename__,
    "chat": ChatMessage.__tablename__,
}


@dataclass
class WriterStats:
    """Counters for /readyz and /metrics."""

    written: int = 0
    dropped: int = 0  # every row not written: overflow plus rejected
    rejected: int = 0  # rows the database refused for their content
    failed_batches: int = 0
    last_error: str | None = None
    pending: int = 0
    duplicates: int = 0  # replayed rows the journal's checkpoint says are stored already
    left_in_journal: int = 0  # rows not written at close, kept in the journal for the next start


class _BadRow(ValueError):
    """A queued record that cannot become a row (a malformed tuple): a data error."""


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
        # The hot path takes the lock itself (acquire/release is cheaper than `with cond`).
        # Re-entrant: the thread's last drain at close runs while it holds the condition.
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._pending: deque[Entry] = deque()
        self._enqueued = 0  # sequence number of the last queued record
        self._done = 0  # every record up to this sequence number is written or dropped
        self._flush_requested = False
        self._closing = False
        self._thread: threading.Thread | None = None
        self._known_conversations: set[str] = set()
        self._clock = clock or SystemClock()
        # When the current run of failed writes began (monotonic); None while writes succeed.
        self._failing_since: float | None = None
        self._stats = WriterStats()
        self._journal: Journal | None = None
        # The journal's buffer, appended to directly under the lock (so its order is seq order).
        self._journal_buffer: deque[Entry] | None = None
        self._committed = 0  # the highest seq written or refused: the journal may let it go

    @property
    def stats(self) -> WriterStats:
        """A snapshot of the counters."""
        with self._lock:
            return replace(self._stats, pending=len(self._pending))

    @property
    def journal(self) -> Journal | None:
        """The attached journal, if any."""
        return self._journal

    # ----- lifecycle -----
    def start(self) -> BackgroundWriter:
        """Start the writer thread (idempotent)."""
        with self._cond:
            if self._thread is None:
                self._closing = False
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
        return self

    def open_journal(self, journal: Journal) -> list[Entry]:
        """Open ``journal``, queue the records it recovered (ahead of anything new) and journal
        every record from now on. Returns the recovered records, oldest first.

        Call before :meth:`start`; then :meth:`replay` commits the recovered records.
        Raises what :meth:`Journal.open` raises (e.g. ``JournalLockedError``).
        """
        recovered = journal.open()
        with self._cond:
            queued = [row for _, row in self._pending]
            self._pending.clear()
            self._pending.extend(recovered)
            self._enqueued = max(self._enqueued, journal.last_seq)
            self._done = recovered[0][0] - 1 if recovered else self._enqueued
            self._journal = journal
            self._journal_buffer = journal.buffer
            for row in queued:  # recorded before the journal was open: number and journal them
                self._enqueued += 1
                entry = (self._enqueued, row)
                self._pending.append(entry)
                self._journal_buffer.append(entry)
        return recovered

    def sync_sequence(self) -> int:
        """Number new records above the journal's checkpoint in the database too (a guard for a
        journal directory whose segments were removed by hand). Returns the checkpoint."""
        journal = self._journal
        if journal is None:
            return 0
        with self._session_factory() as session, session.begin():
            checkpoint = session.get(JournalCheckpoint, journal.id)
            if checkpoint is None:
                session.add(JournalCheckpoint(journal_id=journal.id, last_seq=0))
                last = 0
            else:
                last = int(checkpoint.last_seq)
        with self._cond:
            if last > self._enqueued:
                self._enqueued = last
        journal.reserve(last)
        return last

    def replay(self) -> bool:
        """Commit everything queued now (at start: the records the journal recovered), on the
        calling thread. False if the database failed; the rows then stay queued."""
        return self._drain_once(final=False)

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
        """Write everything still queued, then stop the thread. With a journal, what the
        database does not take stays in the journal for the next start."""
        journal = self._journal
        if journal is not None:
            journal.flush()
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
    def record_error_entry(
        self, timestamp: float, type: str, message: str, context: dict[str, object] | None
    ) -> None:
        """Queue an aggregator record as an entry listener receives it (the hot path: see
        ``ErrorAggregator.add_entry_listener``; ``context`` is read, never changed)."""
        self._put(("error", timestamp, type, message, context))

    def record_error(
        self,
        type: str,
        message: str,
        context: dict[str, Any] | None = None,
        timestamp: float | str | datetime | None = None,
    ) -> None:
        """Queue an aggregator record (its context must already be redacted)."""
        self._put(
            ("error", _as_timestamp(timestamp), str(type), str(message), _jsonable(context or {}))
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
                "state",
                _as_timestamp(timestamp),
                kind,
                component,
                new_state,
                old_state,
                reason,
                actor,
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
        self._put(("chat", time.time(), conversation_id, channel, role, content, bool(is_error)))

    # ----- internals -----
    def _put(self, row: Row) -> None:
        lock = self._lock
        lock.acquire()
        try:
            seq = self._enqueued = self._enqueued + 1
            entry = (seq, row)
            pending = self._pending
            pending.append(entry)
            buffer = self._journal_buffer
            if buffer is not None:
                buffer.append(entry)
            size = len(pending)
            if size > self._max_pending:
                dropped, _ = pending.popleft()
                self._stats.dropped += 1
                if dropped > self._done:
                    self._done = dropped
            elif size == self._batch_size:
                # Crossing the batch size wakes the thread; it re-checks before it waits.
                self._cond.notify_all()
        finally:
            lock.release()

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
        journal = self._journal
        while True:
            if journal is not None:
                # Nothing reaches the database before the journal: the journal's numbering
                # (its floor) then always covers the checkpoint.
                journal.flush()
            with self._cond:
                if not self._pending:
                    self._cond.notify_all()
                    return True
                batch = [
                    self._pending.popleft()
                    for _ in range(min(self._batch_size, len(self._pending)))
                ]
            try:
                stored = self._write(batch)
            except Exception as exc:
                if not is_data_error(exc):
                    self._give_back(batch, exc, final=final)
                    return False
                # Some row in the batch is unstorable: find it by writing the rows one by one.
                with self._cond:
                    self._stats.failed_batches += 1
                    self._stats.last_error = type(exc).__name__
                if not self._write_one_by_one(batch, final=final):
                    return False
                continue
            self._written(batch, stored)

    def _write_one_by_one(self, batch: list[Entry], *, final: bool) -> bool:
        for index, item in enumerate(batch):
            try:
                stored = self._write([item])
            except Exception as exc:
                if not is_data_error(exc):
                    self._give_back(batch[index:], exc, final=final)
                    return False
                self._reject(item, exc)
                continue
            self._written([item], stored)
        return True

    def _written(self, rows: list[Entry], stored: int) -> None:
        with self._cond:
            self._stats.written += stored
            self._stats.duplicates += len(rows) - stored
            self._done = max(self._done, rows[-1][0])
            self._committed = max(self._committed, rows[-1][0])
            self._failing_since = None
            self._cond.notify_all()
        self._release_journal()

    def _release_journal(self) -> None:
        # Outside the writer's lock: the journal's lock may wait for a write in progress, and
        # the hot path must not wait behind that.
        journal = self._journal
        if journal is not None:
            journal.release(self._committed)

    def _reject(self, item: Entry, exc: Exception) -> None:
        seq, row = item
        table = _TABLES.get(row[0], "unknown") if row else "unknown"
        with self._cond:
            self._stats.rejected += 1
            self._stats.dropped += 1
            self._stats.last_error = type(exc).__name__
            self._done = max(self._done, seq)
            self._committed = max(self._committed, seq)
            # A refused row is progress, not an outage: the database answered.
            self._failing_since = None
            self._cond.notify_all()
        self._release_journal()
        # Type and table only: the row's content may be what a client sent.
        log.error("❌ database refused a %s row (%s); dropped", table, type(exc).__name__)

    def _give_back(self, rows: list[Entry], exc: Exception, *, final: bool) -> None:
        with self._cond:
            self._stats.failed_batches += 1
            self._stats.last_error = type(exc).__name__
            if self._failing_since is None:
                self._failing_since = self._clock.monotonic()
            if final:
                if self._journal is not None:
                    # Not lost: the journal keeps them and the next start replays them.
                    self._stats.left_in_journal += len(rows)
                else:
                    self._stats.dropped += len(rows)
                self._done = max(self._done, rows[-1][0])
            else:
                self._pending.extendleft(reversed(rows))
            self._cond.notify_all()
        log.error("❌ database write failed (%s); %d rows queued", type(exc).__name__, len(rows))

    def _write(self, batch: list[Entry]) -> int:
        """Commit ``batch`` in one transaction; returns how many rows it stored (the rest were
        at or below the journal's checkpoint: stored before)."""
        journal = self._journal
        duplicates = 0
        with self._session_factory() as session, session.begin():
            checkpoint: JournalCheckpoint | None = None
            stored_through = 0
            if journal is not None:
                # Read (and on PostgreSQL lock) the checkpoint in this transaction: rows at or
                # below it were committed before (a replay after a crash), the rest are new.
                checkpoint = session.get(JournalCheckpoint, journal.id, with_for_update=True)
                if checkpoint is None:
                    checkpoint = JournalCheckpoint(journal_id=journal.id, last_seq=0)
                    session.add(checkpoint)
                stored_through = int(checkpoint.last_seq or 0)
            new_conversations: set[str] = set()
            for seq, row in batch:
                if seq <= stored_through:
                    duplicates += 1
                    continue
                # Rows are built here, per attempt, so a failed batch can be retried cleanly.
                self._add_row(session, row, new_conversations)
            if checkpoint is not None and batch[-1][0] > stored_through:
                checkpoint.last_seq = batch[-1][0]
                checkpoint.updated_at = datetime.now(UTC)
        self._known_conversations |= new_conversations
        return len(batch) - duplicates

    def _add_row(self, session: Session, row: Row, new_conversations: set[str]) -> None:
        try:
            kind = row[0]
            if kind == "error":
                _, at, error_type, message, context = row
                session.add(
                    ErrorRecord(
                        occurred_at=_as_datetime(at),
                        type=clean_text(str(error_type))[:200],
                        message=clean_text(str(message)),
                        context=_jsonable(context or {}),
                    )
                )
            elif kind == "state":
                _, at, change_kind, component, new_state, old_state, reason, actor = row
                session.add(
                    StateChange(
                        occurred_at=_as_datetime(at),
                        kind=_clean(change_kind),
                        component=_clean(component),
                        old_state=_clean(old_state),
                        new_state=_clean(new_state),
                        reason=_clean(reason),
                        actor=_clean(actor),
                    )
                )
            elif kind == "chat":
                _, at, conversation_id, channel, role, content, is_error = row
                created_at = _as_datetime(at)
                cid = clean_text(str(conversation_id))
                if cid not in self._known_conversations and cid not in new_conversations:
                    if session.get(Conversation, cid) is None:
                        session.add(
                            Conversation(
                                id=cid, channel=clean_text(str(channel)), created_at=created_at
                            )
                        )
                        session.flush()
                    new_conversations.add(cid)
                session.add(
                    ChatMessage(
                        conversation_id=cid,
                        role=clean_text(str(role)),
                        content=clean_text(str(content)),
                        is_error=bool(is_error),
                        created_at=created_at,
                    )
                )
            else:
                raise _BadRow(f"unknown record kind {kind!r}")
        except (IndexError, KeyError, TypeError, ValueError, OverflowError) as exc:
            if isinstance(exc, _BadRow):
                raise
            raise _BadRow(f"malformed {type(exc).__name__}") from exc


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
