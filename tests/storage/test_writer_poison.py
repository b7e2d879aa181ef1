"""Rows the database refuses never block the writer; a database that is down still does."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from sqlalchemy import func, select

from jupiter.resilience.testing import FakeClock
from jupiter.storage import (
    BackgroundWriter,
    Database,
    load_conversation,
    load_recent_errors,
    load_state_changes,
)
from jupiter.storage import writer as writer_module
from jupiter.storage.models import StateChange
from jupiter.text import clean_text


def count(database: Database, model) -> int:
    """Rows of ``model`` in the database."""
    with database.session_factory() as session:
        return session.scalar(select(func.count()).select_from(model))


def wait_for(predicate, seconds: float = 10.0) -> bool:
    """Poll ``predicate`` until it holds (the writer is a real thread)."""
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("\ud800", "\ufffd"),
        ("a\x00b", "ab"),
        ("tab\tnew\nline\r", "tab\tnew\nline\r"),
        ("bell\x07 esc\x1b", "bell esc"),
        ("ok 😀 ü", "ok 😀 ü"),
        ("lone \udfff low", "lone \ufffd low"),
    ],
)
def test_clean_text_replaces_surrogates_and_drops_control_characters(raw, cleaned):
    """Lone surrogates become U+FFFD, C0 controls but tab/newline/CR vanish, the rest stays."""
    assert clean_text(raw) == cleaned
    clean_text(raw).encode("utf-8")  # always encodable


def test_surrogate_and_nul_texts_are_cleaned_and_stored(database):
    """A lone surrogate chat message and a NUL reason are stored cleaned, with later rows."""
    writer = BackgroundWriter(database.session_factory, flush_interval=60).start()
    writer.record_chat_message("conv-\x00", "user", "\ud800 question\x00")
    writer.record_state_change("feature", "community_pulse", "disabled", reason="x\x00y")
    writer.record_error("api_failure", "bad \ud800", {"k\x00": ["v\x00", "\udc00"]})
    writer.record_error("api_failure", "later")
    assert writer.flush(10)
    assert writer.stats.rejected == 0
    assert load_conversation(database.session_factory, "conv-") == [
        {"role": "user", "content": "\ufffd question", "is_error": False}
    ]
    assert load_state_changes(database.session_factory)[0]["reason"] == "xy"
    errors = load_recent_errors(database.session_factory)
    assert [e["message"] for e in errors] == ["bad \ufffd", "later"]
    assert errors[0]["context"] == {"k": ["v", "\ufffd"]}
    writer.close()


@pytest.mark.parametrize("poison", ["\ud800", "x\x00y"])
def test_a_row_the_database_refuses_is_dropped_counted_and_never_blocks_later_rows(
    database, monkeypatch, caplog, poison
):
    """With the edge cleaning bypassed, an unstorable row in a batch is dropped and counted
    (logged by type, never content) while every other row of that batch and later is written."""
    if poison == "x\x00y" and database.dialect == "sqlite":
        pytest.skip("SQLite stores NUL; only PostgreSQL refuses it")
    monkeypatch.setattr(writer_module, "clean_text", lambda text: text)
    monkeypatch.setattr(writer_module, "_clean", lambda value: value)
    writer = BackgroundWriter(database.session_factory, flush_interval=60, batch_size=50).start()
    caplog.set_level(logging.ERROR, logger="jupiter.storage.writer")
    writer.record_error("api_failure", "before")
    writer.record_chat_message("conv-1", "user", f"secret {poison}")
    writer.record_state_change("feature", "community_pulse", "disabled", reason=f"r {poison}")
    writer.record_chat_message("conv-1", "assistant", "answer")
    writer.record_error("api_failure", "after")
    assert writer.flush(10)
    writer.record_state_change("feature", "community_pulse", "enabled", reason="fixed")
    assert writer.flush(10)
    assert [e["message"] for e in load_recent_errors(database.session_factory)] == [
        "before",
        "after",
    ]
    assert load_conversation(database.session_factory, "conv-1") == [
        {"role": "assistant", "content": "answer", "is_error": False}
    ]
    assert [c["reason"] for c in load_state_changes(database.session_factory)] == ["fixed"]
    assert writer.stats.rejected == 2
    assert writer.stats.dropped == 2
    assert writer.stats.pending == 0
    assert writer.keeping_up(0)
    assert "refused" in caplog.text
    assert "secret" not in caplog.text
    writer.close()


def test_a_row_violating_a_constraint_is_dropped_on_every_database(database):
    """A NOT NULL violation (IntegrityError) is a data failure: dropped, the rest written."""
    writer = BackgroundWriter(database.session_factory, flush_interval=60).start()
    writer.record_state_change("breaker", "grok_chat", None)  # new_state is NOT NULL
    writer.record_state_change("breaker", "grok_chat", "open")
    assert writer.flush(10)
    assert [c["new_state"] for c in load_state_changes(database.session_factory)] == ["open"]
    assert writer.stats.rejected == 1
    writer.close()


def test_many_threads_mixing_poison_and_good_rows_lose_no_good_row(database, monkeypatch):
    """Concurrent writers with unstorable rows interleaved: every good row lands."""
    monkeypatch.setattr(writer_module, "_clean", lambda value: value)
    writer = BackgroundWriter(database.session_factory, flush_interval=0.01, batch_size=7).start()

    def work(worker: int) -> None:
        for i in range(20):
            writer.record_state_change("feature", f"c{worker}", "disabled", reason=f"{i}")
            if i % 5 == 0:
                writer.record_state_change("feature", f"c{worker}", None)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert writer.flush(20)
    assert count(database, StateChange) == 8 * 20
    assert writer.stats.rejected == 8 * 4
    writer.close()


def test_a_database_down_keeps_rows_queued_and_the_writer_reports_stuck(database_url):
    """Missing tables are transient: rows stay queued (not dropped) and after the stuck
    threshold keeping_up is False; once the database is fixed everything lands."""
    clock = FakeClock()
    database = Database(database_url)
    writer = BackgroundWriter(database.session_factory, flush_interval=0.02, clock=clock).start()
    writer.record_state_change("breaker", "threat_intelligence", "open", old_state="closed")
    writer.record_chat_message("conv-1", "user", "\ud800")
    assert wait_for(lambda: writer.stats.failed_batches >= 2)
    assert writer.stats.rejected == 0
    assert writer.stats.pending == 2
    assert writer.keeping_up(30)
    clock.advance(29.9)
    assert writer.keeping_up(30)
    clock.advance(0.2)
    assert writer.failing_for() >= 30
    assert not writer.keeping_up(30)
    database.create_all()
    assert writer.flush(10)
    assert count(database, StateChange) == 1
    assert writer.stats.dropped == 0
    assert writer.failing_for() == 0
    assert writer.keeping_up(30)
    writer.close()
    assert not writer.keeping_up(30)  # a stopped writer is not keeping up either
    database.dispose()


def test_an_overflowing_queue_is_not_keeping_up(database):
    """At max_pending the writer reports not keeping up, even before any write failed."""
    writer = BackgroundWriter(database.session_factory, flush_interval=60, max_pending=3)
    writer.start()  # a 60 s interval and a 200-row batch: nothing is written until flush
    for i in range(3):
        writer.record_error("api_failure", f"e{i}")
    assert not writer.keeping_up(30)
    assert writer.flush(10)
    assert writer.keeping_up(30)
    writer.close()
