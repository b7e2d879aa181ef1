"""The durable journal on its own: framing, checksums, torn tails, rotation, release, bounds,
the directory lock, write failures and many threads appending at once."""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from jupiter.resilience.testing import FakeClock
from jupiter.storage import BackgroundWriter
from jupiter.storage import journal as journal_module
from jupiter.storage.journal import (
    MAGIC,
    Journal,
    JournalLockedError,
    before_acknowledge,
    decode_frames,
    encode_frame,
)


def error_row(i: int) -> tuple[object, ...]:
    return ("error", 1_700_000_000.0 + i, "api_failure", f"error {i}", {"i": str(i)})


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.jnl"))


def reopen(directory: Path, **options: object) -> tuple[Journal, list[tuple[int, tuple]]]:
    """Open a journal on a fake clock whose wall time is 0, so numbering starts at 1 (see
    test_numbering_starts_above_the_wall_clock_in_microseconds)."""
    options.setdefault("clock", FakeClock(wall_start=0))
    journal = Journal(directory, flush_interval=None, **options)  # type: ignore[arg-type]
    return journal, journal.open()


@pytest.fixture
def journal_dir(tmp_path: Path) -> Path:
    return tmp_path / "journal"


# ----- framing -------------------------------------------------------------------------------


def test_frames_round_trip_every_kind_and_awkward_text():
    """Each kind decodes to what was encoded: non-ASCII, lone surrogates, NUL, nested context."""
    rows = [
        ("error", 1.5, "t", "ü 😀 \ud800 \x00", {"k": ["v", 1, None, {"deep": True}]}),
        ("state", 2.0, "breaker", "grok_chat", "open", "closed", "5 failures", "auto"),
        ("chat", 3.25, "conv-1", "rest", "user", "What is CWE-89?", False),
    ]
    data = b"".join(encode_frame(seq, row) for seq, row in enumerate(rows, 1))
    entries, good, problem = decode_frames(data)
    assert problem is None
    assert good == len(data)
    assert entries == list(enumerate(rows, 1))


def test_a_torn_last_frame_is_detected_at_every_cut():
    """Cut anywhere inside the last frame, the earlier records come back and the cut is named."""
    first = encode_frame(1, error_row(1))
    last = encode_frame(2, error_row(2))
    for cut in range(1, len(last)):
        entries, good, problem = decode_frames(first + last[:cut], where="seg")
        assert entries == [(1, error_row(1))]
        assert good == len(first)
        assert problem is not None
        assert "torn" in problem


@pytest.mark.parametrize("where", ["payload", "checksum", "length"])
def test_a_corrupt_frame_stops_the_reading_with_the_reason(where):
    """A flipped bit in the payload or checksum fails the CRC; an absurd length is refused."""
    first = encode_frame(1, error_row(1))
    second = bytearray(encode_frame(2, error_row(2)))
    index = {"payload": len(second) - 3, "checksum": 5, "length": 3}[where]
    second[index] ^= 0x40
    entries, good, problem = decode_frames(first + bytes(second))
    assert entries == [(1, error_row(1))]
    assert good == len(first)
    assert problem is not None


@pytest.mark.parametrize(
    "payload",
    [b"not json", b"{}", b'[0, "error"]', b'[1, "nope", 1]', b'[1, "error", 1, 2]'],
)
def test_a_well_framed_but_malformed_record_is_refused(payload):
    """A valid checksum over a payload that is not a record of a known kind is still corrupt."""
    import struct
    import zlib

    frame = struct.pack("<II", len(payload), zlib.crc32(payload)) + payload
    entries, _, problem = decode_frames(frame)
    assert entries == []
    assert problem is not None
    assert "malformed" in problem


# ----- the journal on disk -------------------------------------------------------------------


def test_records_survive_a_reopen_in_order_with_private_modes(journal_dir):
    """What was flushed comes back oldest first; the directory is 0700, every file 0600, the
    id is kept, and a new process numbers its records above everything it found."""
    journal, recovered = reopen(journal_dir)
    assert recovered == []
    for seq in range(1, 6):
        journal.append(seq, error_row(seq))
    assert journal.flush()
    journal_id = journal.id
    # No close: the process "died" (its lock goes with its file descriptors).
    os.close(journal._fd)  # type: ignore[arg-type]
    journal._fd = None
    journal._unlock()
    again, recovered = reopen(journal_dir)
    assert recovered == [(seq, error_row(seq)) for seq in range(1, 6)]
    assert again.id == journal_id
    assert again.last_seq == 5
    assert stat.S_IMODE(journal_dir.stat().st_mode) == 0o700
    for path in journal_dir.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    again.close()


def test_a_torn_tail_on_disk_is_skipped_with_a_warning(journal_dir, caplog):
    """The kill landed mid-write: the partial last frame is skipped (warned, counted), the
    records before it are replayed, and the next segment starts clean."""
    journal, _ = reopen(journal_dir)
    for seq in (1, 2, 3):
        journal.append(seq, error_row(seq))
    journal.flush()
    path = journal._active.path  # type: ignore[union-attr]
    journal.close()
    with path.open("ab") as segment:
        segment.write(encode_frame(4, error_row(4))[:-5])
    caplog.set_level(logging.WARNING, logger="jupiter.storage.journal")
    again, recovered = reopen(journal_dir)
    assert [seq for seq, _ in recovered] == [1, 2, 3]
    assert again.stats.corrupt == 1
    assert "torn frame" in caplog.text
    again.append(5, error_row(5))
    again.flush()
    again.close()
    third, recovered = reopen(journal_dir)
    assert [seq for seq, _ in recovered] == [1, 2, 3, 5]
    third.close()


def test_a_file_that_is_not_a_segment_is_ignored_with_a_warning(journal_dir, caplog):
    """Garbage named like a segment never crashes the open."""
    journal_dir.mkdir(mode=0o700)
    (journal_dir / f"{1:020d}.jnl").write_bytes(b"\x00garbage")
    caplog.set_level(logging.WARNING, logger="jupiter.storage.journal")
    journal, recovered = reopen(journal_dir)
    assert recovered == []
    assert journal.stats.corrupt == 1
    assert "not a journal segment" in caplog.text
    journal.close()


def test_segments_rotate_and_are_deleted_once_released(journal_dir):
    """Small segments rotate as they fill; release(n) deletes those holding only records up to
    n, and the active one once all of it is committed; close leaves one empty segment whose name
    carries the sequence to the next process."""
    journal, _ = reopen(journal_dir, segment_bytes=64 * 1024, max_bytes=1024 * 1024)
    big = "x" * 10_000
    for seq in range(1, 31):
        journal.append(seq, ("error", 1.0, "t", big, None))
        journal.flush()
    assert len(segments(journal_dir)) >= 4
    journal.release(10)
    left = segments(journal_dir)
    assert len(left) >= 3
    # Every record above 10 is still on disk (read straight from the files).
    seen = set()
    for path in left:
        entries, _, problem = decode_frames(path.read_bytes()[len(MAGIC) :])
        assert problem is None
        seen |= {seq for seq, _ in entries}
    assert set(range(11, 31)) <= seen
    journal.release(30)
    assert len(segments(journal_dir)) == 1
    assert journal.stats.segments == 1
    assert journal.stats.bytes == len(MAGIC)
    journal.close()
    again, recovered = reopen(journal_dir)
    assert recovered == []
    assert again.last_seq >= 30  # numbering continues above everything ever used
    again.close()


def test_a_full_journal_counts_the_overflow_and_recovers_when_released(journal_dir, caplog):
    """Past max_bytes new records are not journaled: counted, reported as failing, warned at
    most every 10 s (on the fake clock); once the database commits, journaling resumes."""
    clock = FakeClock(wall_start=0)
    journal = Journal(
        journal_dir,
        max_bytes=1024 * 1024,
        segment_bytes=64 * 1024,
        flush_interval=None,
        clock=clock,
    )
    journal.open()
    caplog.set_level(logging.WARNING, logger="jupiter.storage.journal")
    payload = "y" * 50_000
    seq = 0
    while journal.flush():
        seq += 1
        journal.append(seq, ("chat", 1.0, "c", "rest", "user", payload, False))
    assert journal.stats.overflow == 1
    assert journal.stats.failing
    assert journal.stats.bytes <= 1024 * 1024
    seq += 1
    journal.append(seq, ("chat", 1.0, "c", "rest", "user", payload, False))
    assert not journal.flush()
    assert journal.stats.overflow == 2
    assert caplog.text.count("journal full") == 1  # rate-limited
    clock.advance(10)
    seq += 1
    journal.append(seq, ("chat", 1.0, "c", "rest", "user", payload, False))
    assert not journal.flush()
    assert caplog.text.count("journal full") == 2
    journal.release(seq)
    journal.append(seq + 1, error_row(1))
    assert journal.flush()
    assert not journal.stats.failing
    journal.close()


def test_a_second_process_cannot_open_the_same_journal(journal_dir):
    """The directory lock: one journal per data dir at a time; free again after close."""
    first, _ = reopen(journal_dir)
    with pytest.raises(JournalLockedError):
        Journal(journal_dir, flush_interval=None).open()
    first.close()
    second, _ = reopen(journal_dir)
    second.close()


def test_a_failed_write_leaves_no_partial_frame_and_is_counted(journal_dir, caplog):
    """Disk full, for real: the segment's descriptor is pointed at /dev/full, whose writes fail
    with ENOSPC. The records are counted, the journal reports failing, and the next write goes
    to a fresh segment that replays cleanly."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    journal, _ = reopen(journal_dir)
    journal.append(1, error_row(1))
    journal.flush()
    full = os.open("/dev/full", os.O_WRONLY)
    os.dup2(full, journal._fd)  # type: ignore[arg-type]
    os.close(full)
    caplog.set_level(logging.WARNING, logger="jupiter.storage.journal")
    journal.append(2, error_row(2))
    assert not journal.flush()
    assert journal.stats.write_errors == 1
    assert journal.stats.failing
    assert journal.stats.last_error == "ENOSPC"
    assert "journal write failed (ENOSPC)" in caplog.text
    journal.append(3, error_row(3))
    assert journal.flush()
    assert not journal.stats.failing
    journal.close()
    again, recovered = reopen(journal_dir)
    assert [seq for seq, _ in recovered] == [1, 3]
    assert again.stats.corrupt == 0
    again.close()


def test_a_record_that_cannot_be_encoded_is_counted_not_raised(journal_dir, caplog):
    """A context that refers to itself cannot become JSON: the flush (run where a response is
    about to go out) counts and logs it and writes the other records."""
    journal, _ = reopen(journal_dir)
    cyclic: dict[str, object] = {}
    cyclic["self"] = cyclic
    journal.append(1, error_row(1))
    journal.append(2, ("error", 1.0, "t", "m", cyclic))
    journal.append(3, error_row(3))
    caplog.set_level(logging.ERROR, logger="jupiter.storage.journal")
    assert not journal.flush()
    assert journal.stats.write_errors == 1
    assert "cannot be encoded (RecursionError)" in caplog.text
    journal.close()
    again, recovered = reopen(journal_dir)
    assert [seq for seq, _ in recovered] == [1, 3]
    again.close()


def test_records_no_one_acknowledges_reach_the_disk_by_the_timer(journal_dir):
    """A record appended with no acknowledgement after it (a background breaker transition) is
    written by the journal's own timer."""
    journal = Journal(journal_dir, flush_interval=0.01, clock=FakeClock(wall_start=0))
    journal.open()
    journal.append(1, error_row(1))
    deadline = time.monotonic() + 10
    while journal.stats.written == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert journal.stats.written == 1
    journal.close()


def test_fsync_mode_writes_the_same_records(journal_dir):
    """journal_fsync: each write is fsync-ed; what is written reads back the same."""
    journal, _ = reopen(journal_dir, fsync=True)
    journal.append(1, error_row(1))
    assert journal.flush()
    journal.close()
    again, recovered = reopen(journal_dir)
    assert recovered == [(1, error_row(1))]
    again.close()


def test_numbering_starts_above_the_wall_clock_in_microseconds(journal_dir):
    """Even with every segment gone, a new process numbers above the old one's numbers: they
    start at the wall clock in microseconds (the floor in the segment names covers the rest)."""
    clock = FakeClock(wall_start=1_700_000_000.0)
    first, _ = reopen(journal_dir, clock=clock)
    assert first.last_seq == 1_700_000_000_000_000
    first.close()
    for segment in segments(journal_dir):
        segment.unlink()
    clock.advance(0.5)
    second, _ = reopen(journal_dir, clock=clock)
    assert second.last_seq == 1_700_000_000_500_000
    second.close()
    # The wall clock stepped back a quarter of an hour: the segment's name still holds.
    third, _ = reopen(journal_dir, clock=FakeClock(wall_start=1_699_999_100.0))
    assert third.last_seq >= 1_700_000_000_500_000
    third.close()


def test_segment_bytes_above_max_bytes_is_refused(journal_dir):
    with pytest.raises(ValueError, match="segment_bytes"):
        Journal(journal_dir, max_bytes=1024 * 1024, segment_bytes=2 * 1024 * 1024)


# ----- concurrency ---------------------------------------------------------------------------


def test_many_threads_appending_and_acknowledging_at_once_lose_and_mix_nothing(journal_dir):
    """16 threads record through the writer (which numbers and buffers under its lock) while
    each also acknowledges after every record, as requests do: every record is written exactly
    once, in whole frames, and numbered without gaps."""
    writer = BackgroundWriter(lambda: None, flush_interval=60)  # type: ignore[arg-type,return-value]
    journal = Journal(
        journal_dir, flush_interval=0.001, segment_bytes=256 * 1024, clock=FakeClock(wall_start=0)
    )
    writer.open_journal(journal)
    threads, per_thread = 16, 500
    barrier = threading.Barrier(threads)

    def work(worker: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            writer.record_error_entry(1.0, "api_failure", f"w{worker}-{i}", {"worker": worker})
            before_acknowledge()

    pool = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    journal.close()
    assert journal.stats.written == threads * per_thread
    again, recovered = reopen(journal_dir)
    assert [seq for seq, _ in recovered] == list(range(1, threads * per_thread + 1))
    messages = [row[3] for _, row in recovered]
    assert len(set(messages)) == threads * per_thread
    assert again.stats.corrupt == 0
    again.close()


def test_an_acknowledgement_waits_for_a_flush_already_carrying_its_record(journal_dir, monkeypatch):
    """If another thread's flush took this thread's record, before_acknowledge must not return
    until that flush has written it (finding the buffer empty is not enough)."""
    journal, _ = reopen(journal_dir)
    in_write = threading.Event()
    release = threading.Event()
    real_write = os.write

    def slow_write(fd: int, data: object) -> int:
        if fd == journal._fd and not in_write.is_set():
            in_write.set()
            release.wait(10)
        return real_write(fd, data)  # type: ignore[arg-type]

    monkeypatch.setattr(journal_module.os, "write", slow_write)
    journal.append(1, error_row(1))
    flusher = threading.Thread(target=journal.flush)
    flusher.start()
    assert in_write.wait(10)
    assert not journal.buffer  # the flusher has taken record 1 off the buffer
    calling = threading.Event()
    acknowledged = threading.Event()

    def acknowledge() -> None:
        calling.set()
        before_acknowledge()
        acknowledged.set()

    waiter = threading.Thread(target=acknowledge)
    waiter.start()
    assert calling.wait(10)
    assert not acknowledged.wait(0.2)  # blocked behind the write that carries record 1
    release.set()
    flusher.join(10)
    waiter.join(10)
    assert acknowledged.is_set()
    assert journal.stats.written == 1
    journal.close()
