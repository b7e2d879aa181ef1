"""The durable journal: every record is on disk before its client is answered, replayed at start.

The background writer commits to the database in batches (every 0.5 s or 200 rows), so on its
own a ``kill -9`` loses what is still queued. The journal closes that gap:

* **Append** (the hot path): :meth:`Journal.append` puts ``(seq, row)`` on an in-memory deque,
  nothing more (a lock-free ``deque.append``), so recording an error stays within its budget.
* **Write before acknowledging**: :func:`before_acknowledge` writes every open journal's buffered
  records with **one** ``os.write`` per journal. The service calls it just before an HTTP
  response starts and before a socket event is sent, so whatever a client is told about is in
  the OS page cache first, and that survives the death of the process. A timer thread writes
  records no client waits on (a breaker tripping in the background) within
  ``flush_interval`` seconds. With ``fsync=True`` each write is also ``fsync``-ed, which
  survives a power loss too, at the disk's latency per write.
* **Release**: once the writer has committed every record up to ``seq`` (the database keeps
  that checkpoint in the same transaction as the rows, see
  :class:`jupiter.storage.models.JournalCheckpoint`), :meth:`Journal.release` deletes the
  segments holding only such records.
* **Replay**: :meth:`Journal.open` reads every segment left by the previous process and returns
  its records; the writer commits them again, skipping those at or below the checkpoint, so a
  record is stored exactly once even when the process is killed during the replay.

On disk: a directory (0700) holding a lock file (one process per journal), an ``id`` file (the
key of this journal's checkpoint row) and segments ``<first seq, 20 digits>.jnl`` (0600). A
segment starts with :data:`MAGIC`; then each record is a frame: payload length and CRC-32
(``<II``, little-endian) and the payload, the JSON array ``[seq, kind, ...fields]``. A frame cut
short (the kill landed mid-write) or failing its checksum ends that segment's replay with a
warning; it is never a crash. The journal is bounded (``max_bytes``): while the database is down
and the journal is full, further records stay in memory only and are counted
(``stats.overflow``), as are failed writes (``stats.write_errors``: disk full); /readyz and
/metrics report both.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import secrets
import struct
import threading
import zlib
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupiter.resilience import Clock, SystemClock

__all__ = [
    "KINDS",
    "MAGIC",
    "Entry",
    "Journal",
    "JournalLockedError",
    "JournalStats",
    "Row",
    "before_acknowledge",
    "decode_frames",
    "encode_frame",
]

log = logging.getLogger("jupiter.storage.journal")

#: The first bytes of every segment (format version 1).
MAGIC = b"JUPJNL1\n"
_FRAME = struct.Struct("<II")  # payload length, CRC-32 of the payload
#: A frame claiming more than this is corrupt: no record comes near it (a chat turn is bounded
#: by chat_max_message_chars, an error's message and context by the aggregator's limits).
MAX_RECORD_BYTES = 16 * 1024 * 1024
_SEGMENT_SUFFIX = ".jnl"
#: Record kinds and how many fields follow the kind (see jupiter.storage.writer for their order).
KINDS: dict[str, int] = {"error": 4, "state": 7, "chat": 6}
#: Overflow and write failures are logged at most this often (they are counted every time).
_WARN_EVERY_SECONDS = 10.0

#: A queued record: the kind, then its fields (JSON-encodable scalars, plus an error's context).
Row = tuple[Any, ...]
#: A record with its sequence number.
Entry = tuple[int, Row]

_encoder = json.JSONEncoder(
    ensure_ascii=True, separators=(",", ":"), check_circular=False, default=repr
)


class JournalLockedError(RuntimeError):
    """Another process holds the journal directory (two servers on one data dir)."""


@dataclass
class JournalStats:
    """Counters for /readyz and /metrics (read without a lock: each is a plain int)."""

    written: int = 0  # records written to a segment
    writes: int = 0  # os.write calls (each carries one batch)
    overflow: int = 0  # records not journaled because the journal was full
    write_errors: int = 0  # records not journaled because the write failed (disk full)
    corrupt: int = 0  # torn or corrupt frames found at open (each ends its segment's replay)
    recovered: int = 0  # records found at open, for the writer to replay
    bytes: int = 0  # the segments' total size now
    segments: int = 0  # segment files now
    last_error: str | None = None
    failing: bool = False  # the last write overflowed or failed: new records are not durable


def encode_frame(seq: int, row: Row) -> bytes:
    """One record's frame: length and CRC-32 of the payload, then the payload."""
    payload = _encoder.encode([seq, *row]).encode("ascii")
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def decode_frames(data: bytes, *, where: str = "journal") -> tuple[list[Entry], int, str | None]:
    """The records of one segment's bytes (after :data:`MAGIC`).

    Returns ``(entries, good_bytes, problem)``: ``good_bytes`` is how far the data was valid;
    ``problem`` says what stopped the reading early (a torn or corrupt frame), else None.
    """
    entries: list[Entry] = []
    offset = 0
    size = len(data)
    while offset < size:
        if size - offset < _FRAME.size:
            return entries, offset, f"{where}: torn frame header at byte {offset}"
        length, checksum = _FRAME.unpack_from(data, offset)
        start = offset + _FRAME.size
        if length > MAX_RECORD_BYTES:
            return entries, offset, f"{where}: frame at byte {offset} claims {length} bytes"
        if start + length > size:
            return entries, offset, f"{where}: torn frame at byte {offset} (kill mid-write?)"
        payload = data[start : start + length]
        if zlib.crc32(payload) != checksum:
            return entries, offset, f"{where}: checksum mismatch in the frame at byte {offset}"
        entry = _parse_payload(payload)
        if entry is None:
            return entries, offset, f"{where}: malformed record in the frame at byte {offset}"
        entries.append(entry)
        offset = start + length
    return entries, offset, None


def _parse_payload(payload: bytes) -> Entry | None:
    try:
        value = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(value, list) or len(value) < 2:
        return None
    seq, kind = value[0], value[1]
    if type(seq) is not int or seq <= 0 or not isinstance(kind, str):
        return None
    if KINDS.get(kind) != len(value) - 2:
        return None
    return seq, tuple(value[1:])


@dataclass
class _Segment:
    path: Path
    first_seq: int
    last_seq: int = 0  # the highest seq written to it (0: none)
    size: int = 0


def _segment_name(first_seq: int) -> str:
    return f"{first_seq:020d}{_SEGMENT_SUFFIX}"


def _segment_first_seq(path: Path) -> int | None:
    stem = path.name[: -len(_SEGMENT_SUFFIX)]
    return int(stem) if path.name.endswith(_SEGMENT_SUFFIX) and stem.isdigit() else None


#: Every journal open in this process; before_acknowledge writes each one's buffer. A tuple,
#: replaced whole under the lock, so the hot path reads it without one.
_OPEN: tuple[Journal, ...] = ()
_OPEN_LOCK = threading.Lock()


def _register(journal: Journal, *, open_: bool) -> None:
    global _OPEN
    with _OPEN_LOCK:
        others = tuple(j for j in _OPEN if j is not journal)
        _OPEN = (*others, journal) if open_ else others


def before_acknowledge() -> None:
    """Write every open journal's buffered records now (one ``os.write`` each).

    Call it just before telling a client anything (an HTTP response starts, a socket event is
    sent): the records that client's request made are then durable against a kill of the
    process. Costs a look at each open journal when nothing is buffered; never raises.
    """
    for journal in _OPEN:
        # A flush in progress elsewhere may carry this caller's record: wait for it too.
        if journal._buffer or journal._flushing:
            journal.flush()


class Journal:
    """An append-only, segmented record journal in ``directory``; thread-safe.

    ``open()`` it (which returns the previous process's records), ``append`` from anywhere,
    ``flush`` (or :func:`before_acknowledge`) before acknowledging, ``release`` what the database
    has committed, ``close()`` on the way out.
    """

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int = 64 * 1024 * 1024,
        segment_bytes: int = 4 * 1024 * 1024,
        fsync: bool = False,
        flush_interval: float | None = 0.05,
        clock: Clock | None = None,
    ) -> None:
        if segment_bytes > max_bytes:
            raise ValueError("segment_bytes must not exceed max_bytes")
        self.directory = Path(directory)
        self._max_bytes = max_bytes
        self._segment_bytes = segment_bytes
        self._fsync = fsync
        self._flush_interval = flush_interval
        self._clock = clock or SystemClock()
        # Producers append, flushers pop from the left: both are atomic on a deque, so the hot
        # path takes no lock. The flush lock keeps one flusher at a time, which matters for
        # correctness: a caller that finds the buffer empty must still wait for a flush in
        # progress elsewhere that took its record.
        self._buffer: deque[Entry] = deque()
        self._flush_lock = threading.Lock()
        # True from before a flush takes records off the buffer until they are written, so a
        # caller that finds the buffer empty knows whether to wait (see before_acknowledge).
        self._flushing = False
        self._closed_segments: list[_Segment] = []
        self._active: _Segment | None = None
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._released = 0  # every record up to this seq is committed (or given up)
        self._last_seq = 0  # the highest seq this journal has seen, across restarts
        self._last_warning = -float("inf")
        self._timer: threading.Thread | None = None
        self._stop = threading.Event()
        self.id = ""
        self.stats = JournalStats()

    # ----- lifecycle -----
    @property
    def is_open(self) -> bool:
        return self._fd is not None

    @property
    def last_seq(self) -> int:
        """The highest sequence number used so far (new records must be numbered above it)."""
        return self._last_seq

    def open(self) -> list[Entry]:
        """Lock the directory, read what the last process left (oldest first) and start a fresh
        segment. Raises :class:`JournalLockedError` if another process holds the journal."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)
        lock_fd = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise JournalLockedError(
                f"another process uses the journal in {self.directory}"
            ) from None
        self._lock_fd = lock_fd
        try:
            self.id = self._read_or_create_id()
            entries = self._recover()
            # Numbers also start no lower than the wall clock in microseconds. Should every trace
            # of the last ones be gone (segments removed by hand, or records the database took
            # while the journal was full), a new process still cannot reuse a number the
            # checkpoint covers, unless the last one recorded a million records a second.
            self._last_seq = max(self._last_seq, int(self._clock.wall() * 1_000_000))
            self._start_segment()
            for segment in [s for s in self._closed_segments if s.last_seq == 0]:
                self._delete(segment)  # empty: the new segment's name carries the sequence on
        except BaseException:
            self._unlock()
            raise
        _register(self, open_=True)
        if self._flush_interval is not None:
            self._stop.clear()
            self._timer = threading.Thread(target=self._tick, name="jupiter-journal", daemon=True)
            self._timer.start()
        return entries

    def close(self) -> None:
        """Write what is buffered, stop the timer and unlock; segments with records the database
        has not committed stay for the next start."""
        self._stop.set()
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.join(5)
        _register(self, open_=False)
        if self._fd is None:
            return
        self.flush()
        with self._flush_lock:
            active = self._active
            if active is not None and 0 < active.last_seq <= self._released:
                # All committed: leave an empty segment, whose name carries the sequence on.
                self._rotate()
            fd, self._fd = self._fd, None
            if fd is not None:
                os.close(fd)
        self._unlock()

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def _tick(self) -> None:
        interval = self._flush_interval
        assert interval is not None
        while not self._stop.wait(interval):
            if self._buffer:
                self.flush()

    # ----- the hot path and the acknowledgement points -----
    def append(self, seq: int, row: Row) -> None:
        """Buffer one record (numbered by the caller, strictly increasing). Lock-free."""
        self._buffer.append((seq, row))

    @property
    def buffer(self) -> deque[Entry]:
        """The records appended and not yet written (the writer appends to it directly)."""
        return self._buffer

    def flush(self) -> bool:
        """Write every buffered record with one ``os.write`` (and ``fsync`` if configured).

        Returns False when records could not be journaled (the journal is full or the write
        failed); they are counted, and still reach the database through the writer's queue.
        """
        with self._flush_lock:
            if not self._buffer or self._fd is None:
                return True
            self._flushing = True
            try:
                return self._flush_locked()
            finally:
                self._flushing = False

    def _flush_locked(self) -> bool:
        buffer = self._buffer
        popleft = buffer.popleft
        entries = [popleft() for _ in range(len(buffer))]
        released = self._released
        frames: list[bytes] = []
        size = 0
        last = 0
        room = self._max_bytes - self.stats.bytes
        written = 0
        overflow = 0
        unencodable = 0
        for seq, row in entries:
            if seq <= released:
                continue  # the database has it already
            if overflow:
                overflow += 1
                continue
            try:
                frame = encode_frame(seq, row)
            except (TypeError, ValueError, RecursionError) as exc:  # never a crash for the caller
                unencodable += 1
                self.stats.write_errors += 1
                self.stats.last_error = type(exc).__name__
                log.error(
                    "❌ journal: a %s record cannot be encoded (%s)", row[0], self.stats.last_error
                )
                continue
            if size + len(frame) > room:
                overflow = 1
                continue
            frames.append(frame)
            size += len(frame)
            last = seq
            written += 1
        ok = True
        if frames:
            ok = self._write(b"".join(frames), written, last)
        if overflow:
            self.stats.overflow += overflow
            self.stats.failing = True
            self._warn(
                "⚠️ journal full (%d bytes, database not keeping up): %d records kept in "
                "memory only (%d so far)",
                self._max_bytes,
                overflow,
                self.stats.overflow,
            )
            return False
        if ok and frames:
            self.stats.failing = False
        return ok and not unencodable

    def _write(self, data: bytes, count: int, last: int) -> bool:
        segment = self._active
        fd = self._fd
        assert segment is not None
        assert fd is not None
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if self._fsync:
                os.fsync(fd)
        except OSError as exc:
            self.stats.write_errors += count
            self.stats.failing = True
            self.stats.last_error = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
            self._warn(
                "❌ journal write failed (%s): %d records kept in memory only",
                self.stats.last_error,
                count,
            )
            # A partial frame must not stay in front of the next one: cut it off, or else
            # continue in a new segment (the reader stops at the torn frame, which was never
            # acknowledged).
            try:
                os.ftruncate(fd, segment.size)
            except OSError:
                self._rotate()  # if even that fails, the next open warns at the torn frame
            return False
        segment.size += len(data)
        segment.last_seq = max(segment.last_seq, last)
        self.stats.bytes += len(data)
        self.stats.written += count
        self.stats.writes += 1
        if segment.size >= self._segment_bytes:
            self._rotate()
        return True

    def reserve(self, seq: int) -> None:
        """Numbers up to ``seq`` are taken (the database's checkpoint says so): make the active
        segment's name, the floor the next process numbers above, say so too."""
        with self._flush_lock:
            if seq <= self._last_seq:
                return
            self._last_seq = seq
            active = self._active
            if active is not None and self._fd is not None and active.first_seq <= seq:
                self._rotate()

    def release(self, done: int) -> None:
        """Every record up to ``done`` is committed: delete the segments that hold only such
        records (the active one is replaced by a fresh segment)."""
        with self._flush_lock:
            if done <= self._released:
                return
            self._released = done
            for segment in list(self._closed_segments):
                if segment.last_seq <= done:
                    self._delete(segment)
            active = self._active
            if active is not None and self._fd is not None and 0 < active.last_seq <= done:
                self._rotate()

    # ----- segments -----
    def _read_or_create_id(self) -> str:
        path = self.directory / "id"
        with contextlib.suppress(FileNotFoundError):
            text = path.read_text(encoding="ascii").strip()
            if text.isalnum() and 8 <= len(text) <= 64:
                return text
        journal_id = secrets.token_hex(16)
        temporary = self.directory / "id.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, journal_id.encode("ascii") + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
        self._sync_directory()
        return journal_id

    def _recover(self) -> list[Entry]:
        found: dict[int, Row] = {}
        segments: list[_Segment] = []
        for path in sorted(self.directory.glob(f"*{_SEGMENT_SUFFIX}")):
            first = _segment_first_seq(path)
            if first is None:
                continue
            segment = _Segment(path, first)
            try:
                data = path.read_bytes()
            except OSError as exc:
                self.stats.corrupt += 1
                log.warning("⚠️ journal: cannot read %s (%s); skipped", path.name, exc.strerror)
                continue
            segment.size = len(data)
            self._last_seq = max(self._last_seq, first - 1)
            if not data.startswith(MAGIC):
                if data:  # an empty file is a segment whose header never got written
                    self.stats.corrupt += 1
                    log.warning("⚠️ journal: %s is not a journal segment; discarded", path.name)
                segments.append(segment)
                continue
            entries, _good, problem = decode_frames(data[len(MAGIC) :], where=path.name)
            if problem is not None:
                self.stats.corrupt += 1
                log.warning("⚠️ journal: %s; the rest of that segment is skipped", problem)
            for seq, row in entries:
                found[seq] = row
                segment.last_seq = max(segment.last_seq, seq)
            self._last_seq = max(self._last_seq, segment.last_seq)
            segments.append(segment)
        self._closed_segments = segments
        self.stats.bytes = sum(s.size for s in segments)
        self.stats.segments = len(segments)
        self.stats.recovered = len(found)
        if found:
            log.info(
                "📼 journal: %d records to replay from %d segment(s)", len(found), len(segments)
            )
        return sorted(found.items())

    def _start_segment(self) -> None:
        """Open a new active segment. Its name is a floor for the sequence: every number below
        it is taken, so the next process numbers above it even once older segments are gone."""
        first = self._last_seq + 1
        while (self.directory / _segment_name(first)).exists():
            first += 1  # never reuse a name (an empty segment left by the last clean stop)
        path = self.directory / _segment_name(first)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, MAGIC)
            if self._fsync:
                os.fsync(fd)
                self._sync_directory()
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                path.unlink()
            raise
        self._fd = fd
        self._active = _Segment(path, first, size=len(MAGIC))
        self.stats.bytes += len(MAGIC)
        self.stats.segments += 1

    def _rotate(self) -> bool:
        """Close the active segment (deleting it if the database has all of it), start another.
        If no new segment can be created (disk full), the active one stays: False."""
        old, fd = self._active, self._fd
        assert old is not None
        assert fd is not None
        self._last_seq = max(self._last_seq, old.last_seq, self._released)
        try:
            self._start_segment()
        except OSError as exc:
            self.stats.last_error = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
            self._warn("❌ journal: cannot start a new segment (%s)", self.stats.last_error)
            return False
        os.close(fd)
        if old.last_seq <= self._released:
            self._delete(old)
        else:
            self._closed_segments.append(old)
        return True

    def _delete(self, segment: _Segment) -> None:
        try:
            segment.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:  # it is replayed (and skipped as stored) at the next start
            self._warn("⚠️ journal: cannot delete %s (%s)", segment.path.name, exc.strerror)
        if segment in self._closed_segments:
            self._closed_segments.remove(segment)
        self.stats.bytes -= segment.size
        self.stats.segments -= 1

    def _sync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _warn(self, message: str, *args: object) -> None:
        now = self._clock.monotonic()
        if now - self._last_warning >= _WARN_EVERY_SECONDS:
            self._last_warning = now
            log.warning(message, *args)


def journal_from_settings(settings: Any, *, clock: Clock | None = None) -> Journal | None:
    """The journal the settings ask for (``data_dir/journal``), or None when it is off."""
    if not settings.journal_enabled:
        return None
    return Journal(
        Path(settings.data_dir) / "journal",
        max_bytes=settings.journal_max_bytes,
        segment_bytes=settings.journal_segment_bytes,
        fsync=settings.journal_fsync,
        flush_interval=settings.journal_flush_interval_seconds,
        clock=clock,
    )
