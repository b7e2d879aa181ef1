"""The writer with its journal on SQLite and PostgreSQL: replay after a crash stores each
record exactly once, also when the crash lands during the replay itself."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from jupiter.resilience.testing import FakeClock
from jupiter.storage import BackgroundWriter, Database
from jupiter.storage import journal as journal_module
from jupiter.storage.journal import Journal, before_acknowledge
from jupiter.storage.models import (
    ChatMessage,
    Conversation,
    ErrorRecord,
    JournalCheckpoint,
    StateChange,
)


def count(database: Database, model: type) -> int:
    with database.session_factory() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def error_messages(database: Database) -> list[str]:
    with database.session_factory() as session:
        return list(session.scalars(select(ErrorRecord.message).order_by(ErrorRecord.id)))


def checkpoint(database: Database, journal_id: str) -> int:
    with database.session_factory() as session:
        row = session.get(JournalCheckpoint, journal_id)
        return 0 if row is None else int(row.last_seq)


class CrashAfter:
    """A session factory that works for ``commits`` sessions, then fails as if the process had
    died (nothing after it reaches the database)."""

    def __init__(self, factory: Callable[[], Session], commits: int) -> None:
        self.factory = factory
        self.left = commits

    def __call__(self) -> Session:
        if self.left <= 0:
            raise sa_exc.OperationalError("BEGIN", {}, ConnectionError("process killed"))
        self.left -= 1
        return self.factory()


def kill(journal: Journal) -> None:
    """What SIGKILL does to a journal: its descriptors and lock go, nothing is flushed first."""
    journal._stop.set()
    journal_module._register(journal, open_=False)
    if journal._fd is not None:
        import os

        os.close(journal._fd)
        journal._fd = None
    journal._unlock()


def start(directory: Path, factory: Callable[[], Session], **options: object) -> BackgroundWriter:
    writer = BackgroundWriter(factory, flush_interval=60, **options)  # type: ignore[arg-type]
    # Wall time 0: numbering starts at 1, so the counts below are the sequence numbers.
    writer.open_journal(Journal(directory, flush_interval=None, clock=FakeClock(wall_start=0)))
    return writer


def record_traffic(writer: BackgroundWriter, errors: int) -> None:
    for i in range(errors):
        writer.record_error_entry(1_700_000_000.0 + i, "scan_rejected", f"e{i}", {"i": str(i)})
    writer.record_state_change("breaker", "grok_chat", "open", old_state="closed", actor="admin")
    writer.record_chat_message("conv-1", "user", "What is CWE-89?")
    writer.record_chat_message("conv-1", "assistant", "SQL injection.")
    before_acknowledge()  # the responses went out: all of it is journaled


def test_a_crash_after_some_commits_replays_the_rest_exactly_once(database, tmp_path):
    """Killed after 3 of 11 batches were committed: the journal still holds everything (the
    committed part too, it was not released yet); the replay skips what the checkpoint covers."""
    directory = tmp_path / "journal"
    writer = start(directory, CrashAfter(database.session_factory, 3), batch_size=10)
    writer.sync_sequence()  # (one session)
    record_traffic(writer, 100)
    assert not writer.replay()  # two batches land, then the "process dies"
    kill(writer.journal)  # type: ignore[arg-type]
    assert count(database, ErrorRecord) == 20
    again = start(directory, database.session_factory, batch_size=10)
    assert again.sync_sequence() == 20
    assert again.replay()
    assert error_messages(database) == [f"e{i}" for i in range(100)]
    assert count(database, StateChange) == 1
    assert count(database, ChatMessage) == 2
    assert count(database, Conversation) == 1
    stats = again.stats
    assert stats.duplicates == 20
    assert stats.written == 83
    again.close()
    again.journal.close()  # type: ignore[union-attr]
    assert checkpoint(database, again.journal.id) == 103  # type: ignore[union-attr]


def test_a_crash_during_the_replay_then_another_replay_still_stores_each_record_once(
    database, tmp_path
):
    """Nothing committed, killed; the replay is killed half-way; the replay after that
    finishes: every record once, none twice."""
    directory = tmp_path / "journal"
    writer = start(directory, CrashAfter(database.session_factory, 0), batch_size=7)
    record_traffic(writer, 60)
    kill(writer.journal)  # type: ignore[arg-type]
    assert count(database, ErrorRecord) == 0
    replaying = start(directory, CrashAfter(database.session_factory, 4), batch_size=7)
    assert len(replaying._pending) == 63
    assert not replaying.replay()  # killed during the replay, after 4 batches
    kill(replaying.journal)  # type: ignore[arg-type]
    assert count(database, ErrorRecord) == 28
    final = start(directory, database.session_factory, batch_size=7)
    assert final.replay()
    assert error_messages(database) == [f"e{i}" for i in range(60)]
    assert count(database, ChatMessage) == 2
    assert final.stats.duplicates == 28
    final.close()
    final.journal.close()  # type: ignore[union-attr]


def test_records_made_after_the_replay_are_numbered_above_it_and_released(database, tmp_path):
    """New records after a restart get higher numbers; once committed, the segments holding
    them are released, so a clean stop leaves nothing to replay."""
    directory = tmp_path / "journal"
    writer = start(directory, CrashAfter(database.session_factory, 0))
    record_traffic(writer, 5)
    kill(writer.journal)  # type: ignore[arg-type]
    again = start(directory, database.session_factory)
    again.replay()
    again.start()
    again.record_error_entry(1_700_000_100.0, "scan_rejected", "after restart", None)
    assert again.flush(10)
    assert error_messages(database)[-1] == "after restart"
    assert checkpoint(database, again.journal.id) == 9  # type: ignore[union-attr]
    again.close()
    again.journal.close()  # type: ignore[union-attr]
    third = start(directory, database.session_factory)
    assert third._pending == type(third._pending)()  # nothing recovered
    third.journal.close()  # type: ignore[union-attr]


def test_numbering_follows_the_checkpoint_when_the_segments_were_removed(database, tmp_path):
    """Segments deleted by hand (the id kept): the checkpoint in the database still stops the
    next records from reusing committed numbers, which the replay would skip as stored."""
    directory = tmp_path / "journal"
    writer = start(directory, database.session_factory)
    writer.sync_sequence()
    record_traffic(writer, 5)
    assert writer.replay()
    writer.journal.close()  # type: ignore[union-attr]
    for segment in directory.glob("*.jnl"):
        segment.unlink()
    again = start(directory, database.session_factory)
    assert again.sync_sequence() == 8
    again.record_error_entry(1_700_000_200.0, "scan_rejected", "numbered above 8", None)
    assert again.replay()
    assert error_messages(database)[-1] == "numbered above 8"
    assert again.stats.duplicates == 0
    again.journal.close()  # type: ignore[union-attr]
    # The journal's own floor caught up too: without the database, numbering stays above 9.
    offline = Journal(directory, flush_interval=None, clock=FakeClock(wall_start=0))
    offline.open()
    assert offline.last_seq >= 9
    offline.close()


def test_a_database_down_at_close_leaves_the_rows_in_the_journal(database_url, tmp_path):
    """Stopping while the database is unreachable loses nothing: the rows are counted as left
    in the journal (not dropped) and the next start with a database stores them."""
    directory = tmp_path / "journal"
    broken = Database(database_url)  # no tables yet: every write fails as transient
    writer = start(directory, broken.session_factory)
    writer.start()
    record_traffic(writer, 4)
    writer.close(timeout=5)
    writer.journal.close()  # type: ignore[union-attr]
    assert writer.stats.left_in_journal == 7
    assert writer.stats.dropped == 0
    broken.create_all()
    again = start(directory, broken.session_factory)
    again.sync_sequence()
    assert again.replay()
    assert error_messages(broken) == [f"e{i}" for i in range(4)]
    again.journal.close()  # type: ignore[union-attr]
    broken.dispose()


@pytest.mark.parametrize("kind", ["state", "chat"])
def test_state_changes_and_chat_turns_replay_with_their_fields(database, tmp_path, kind):
    """The journal keeps every field: a replayed change or chat turn reads back as recorded."""
    from jupiter.storage import load_conversation, load_state_changes

    directory = tmp_path / "journal"
    writer = start(directory, CrashAfter(database.session_factory, 0))
    if kind == "state":
        writer.record_state_change(
            "feature",
            "community_pulse",
            "disabled",
            "enabled",
            "maintenance",
            1_700_000_000.5,
            actor="admin",
        )
    else:
        writer.record_chat_message("conv-9", "assistant", "ü answer", is_error=True, channel="ws")
    before_acknowledge()
    kill(writer.journal)  # type: ignore[arg-type]
    again = start(directory, database.session_factory)
    assert again.replay()
    if kind == "state":
        [change] = load_state_changes(database.session_factory)
        assert change == {
            "timestamp": 1_700_000_000.5,
            "kind": "feature",
            "component": "community_pulse",
            "old_state": "enabled",
            "new_state": "disabled",
            "reason": "maintenance",
            "actor": "admin",
        }
    else:
        assert load_conversation(database.session_factory, "conv-9") == [
            {"role": "assistant", "content": "ü answer", "is_error": True}
        ]
        with database.session_factory() as session:
            assert session.get(Conversation, "conv-9").channel == "ws"  # type: ignore[union-attr]
    again.journal.close()  # type: ignore[union-attr]


@pytest.mark.parametrize(("fsync", "level"), [(False, 1), (True, 2)])
def test_an_fsynced_journal_makes_sqlite_commits_power_safe_too(tmp_path, fsync, level):
    """journal_fsync=true: SQLite commits with synchronous=FULL (2), else NORMAL (1), so the
    commits that release journal segments survive what the journal survives."""
    from sqlalchemy import text

    from jupiter.settings import Settings

    settings = Settings(data_dir=tmp_path, journal_fsync=fsync)
    database = Database.from_settings(settings)
    with database.engine.connect() as connection:
        assert connection.execute(text("PRAGMA synchronous")).scalar() == level
    database.dispose()


async def test_the_app_starts_on_a_database_from_before_the_journal(database_url, tmp_path):
    """An existing SQLite file or PostgreSQL schema without the checkpoint table: start-up
    creates it, old rows stay, new ones are stored with a checkpoint."""
    from datetime import UTC, datetime

    from sqlalchemy import create_engine, inspect

    from jupiter.storage.base import Base
    from jupiter.storage.database import import_models
    from support.jupiter_app import ADMIN, fast_settings, running_app

    import_models()
    engine = create_engine(database_url)
    older = [t for n, t in Base.metadata.tables.items() if n != JournalCheckpoint.__tablename__]
    Base.metadata.create_all(engine, tables=older)
    with engine.begin() as connection:
        connection.execute(
            ErrorRecord.__table__.insert().values(
                occurred_at=datetime.now(UTC), type="old", message="before the journal", context={}
            )
        )
    assert not inspect(engine).has_table(JournalCheckpoint.__tablename__)
    settings = fast_settings(tmp_path, database_url=database_url)
    async with running_app(settings) as (app, client):
        client.headers.update(ADMIN)
        await client.post("/api/features/pulse/disable", json={"reason": "after the journal"})
        assert app.state.dashboard.writer.flush(10)
        journal_id = app.state.dashboard.writer.journal.id
    database = Database(database_url)
    assert checkpoint(database, journal_id) > 0
    assert error_messages(database) == ["before the journal"]
    assert count(database, StateChange) == 1
    database.dispose()
    engine.dispose()
