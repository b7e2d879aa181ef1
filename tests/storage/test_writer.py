"""The background writer and the reads, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from jupiter.storage import (
    BackgroundWriter,
    Database,
    load_conversation,
    load_recent_errors,
    load_state_changes,
)
from jupiter.storage.models import ChatMessage, ErrorRecord, StateChange


def count(database: Database, model) -> int:
    """Rows of ``model`` in the database."""
    with database.session_factory() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_errors_state_changes_and_chat_round_trip(database):
    """What the writer stores reads back with its fields and order intact."""
    writer = BackgroundWriter(database.session_factory, flush_interval=60).start()
    base = datetime(2025, 8, 25, 12, 0, tzinfo=UTC)
    for i in range(5):
        writer.record_error("timeout", f"error {i}", {"attempt": i}, base + timedelta(seconds=i))
    writer.record_state_change(
        "breaker", "grok_chat", "open", old_state="closed", reason="5 failures"
    )
    writer.record_state_change("feature", "community_pulse", "disabled", reason="maintenance")
    writer.record_chat_message("conv-1", "user", "What is CWE-89?", channel="ws")
    writer.record_chat_message(
        "conv-1", "assistant", "SQL injection.", is_error=False, channel="ws"
    )
    assert writer.flush(10)
    errors = load_recent_errors(database.session_factory, limit=3)
    assert [e["message"] for e in errors] == ["error 2", "error 3", "error 4"]
    assert errors[-1]["context"] == {"attempt": 4}
    assert errors[-1]["timestamp"] == (base + timedelta(seconds=4)).timestamp()
    changes = load_state_changes(database.session_factory)
    assert [(c["kind"], c["component"], c["new_state"]) for c in changes] == [
        ("breaker", "grok_chat", "open"),
        ("feature", "community_pulse", "disabled"),
    ]
    assert (
        load_state_changes(database.session_factory, component="community_pulse")[0]["reason"]
        == "maintenance"
    )
    assert load_conversation(database.session_factory, "conv-1") == [
        {"role": "user", "content": "What is CWE-89?", "is_error": False},
        {"role": "assistant", "content": "SQL injection.", "is_error": False},
    ]
    writer.close()


def test_close_writes_everything_still_queued(database):
    """With a long interval nothing is written yet; close() flushes all of it."""
    writer = BackgroundWriter(
        database.session_factory, flush_interval=60, batch_size=10_000
    ).start()
    for i in range(300):
        writer.record_error("api_failure", f"e{i}")
    assert count(database, ErrorRecord) == 0
    writer.close()
    assert count(database, ErrorRecord) == 300
    assert writer.stats.written == 300
    assert not writer.alive


def test_a_full_batch_is_written_without_waiting_for_the_interval(database):
    """batch_size records wake the writer even though the interval is a minute."""
    writer = BackgroundWriter(database.session_factory, flush_interval=60, batch_size=20).start()
    for i in range(20):
        writer.record_error("api_failure", f"e{i}")
    deadline = time.monotonic() + 10
    while count(database, ErrorRecord) < 20 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert count(database, ErrorRecord) == 20
    writer.close()


def test_many_threads_writing_at_once_lose_nothing(database):
    """8 threads x 200 records, queued concurrently, are all written exactly once."""
    writer = BackgroundWriter(database.session_factory, flush_interval=0.02, batch_size=50).start()
    barrier = threading.Barrier(8)

    def produce(worker: int) -> None:
        barrier.wait()
        for i in range(200):
            writer.record_error("api_failure", f"w{worker}-{i}")
            if i % 50 == 0:
                writer.record_chat_message(f"conv-{worker}", "user", f"q{i}")

    threads = [threading.Thread(target=produce, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()
    with database.session_factory() as session:
        messages = session.scalars(select(ErrorRecord.message)).all()
    assert len(messages) == 1600
    assert len(set(messages)) == 1600
    assert count(database, ChatMessage) == 32


def test_a_failing_database_keeps_rows_queued_and_retries(database_url):
    """Before the tables exist writes fail; the rows wait and land once the database is fixed."""
    database = Database(database_url)
    writer = BackgroundWriter(database.session_factory, flush_interval=0.02).start()
    writer.record_state_change("breaker", "threat_intelligence", "open", old_state="closed")
    deadline = time.monotonic() + 10
    while writer.stats.failed_batches == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert writer.stats.failed_batches >= 1
    assert writer.stats.pending == 1
    database.create_all()
    assert writer.flush(10)
    assert count(database, StateChange) == 1
    assert writer.stats.dropped == 0
    writer.close()
    database.dispose()


def test_overflow_drops_the_oldest_rows_and_counts_them(database):
    """Past max_pending the oldest queued rows are dropped (never the newest) and counted."""
    writer = BackgroundWriter(database.session_factory, flush_interval=60, max_pending=5)
    for i in range(8):
        writer.record_error("api_failure", f"e{i}")
    assert writer.stats.dropped == 3
    writer.close()
    stored = [e["message"] for e in load_recent_errors(database.session_factory)]
    assert stored == ["e3", "e4", "e5", "e6", "e7"]


def test_load_conversation_returns_the_last_messages_oldest_first(database):
    """Only the last ``limit`` turns are loaded, in order."""
    writer = BackgroundWriter(database.session_factory, flush_interval=60).start()
    for i in range(14):
        writer.record_chat_message("c", "user" if i % 2 == 0 else "assistant", f"m{i}")
    writer.close()
    history = load_conversation(database.session_factory, "c", limit=10)
    assert [m["content"] for m in history] == [f"m{i}" for i in range(4, 14)]


def test_load_recent_errors_since_filters_old_rows(database):
    """``since`` keeps only errors at or after it."""
    writer = BackgroundWriter(database.session_factory, flush_interval=60)
    now = datetime.now(UTC)
    writer.record_error("old", "a day ago", timestamp=now - timedelta(days=1))
    writer.record_error("new", "just now", timestamp=now)
    writer.close()
    recent = load_recent_errors(database.session_factory, since=now - timedelta(hours=1))
    assert [e["type"] for e in recent] == ["new"]
