"""A scan file on disk (spooled upload or CLI argument), opened for one counted main pass
and, when a format needs it, uncounted side passes for headers written after the findings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = ["CountingReader", "ScanSource"]


class CountingReader:
    """Wraps a binary file, counting bytes read and reporting them to ``on_read``."""

    def __init__(self, raw: IO[bytes], on_read: Callable[[int], None] | None = None) -> None:
        self._raw = raw
        self._on_read = on_read
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._raw.read(size)
        if chunk:
            self.bytes_read += len(chunk)
            if self._on_read is not None:
                self._on_read(self.bytes_read)
        return chunk

    def close(self) -> None:
        self._raw.close()


class ScanSource:
    """``path`` plus its size; ``on_bytes(read, total)`` reports progress of the main pass."""

    def __init__(
        self,
        path: Path | str,
        *,
        name: str | None = None,
        on_bytes: Callable[[int, int], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.name = name or self.path.name
        self.size = self.path.stat().st_size
        self._on_bytes = on_bytes

    def open(self) -> CountingReader:
        """The main pass: every byte read is reported as progress."""
        total = self.size
        report = self._on_bytes
        callback = (lambda read: report(read, total)) if report is not None else None
        return CountingReader(self.path.open("rb"), callback)

    def open_side(self) -> IO[bytes]:
        """A second, independent handle for a look-ahead pass (not counted as progress)."""
        return self.path.open("rb")

    def head(self, size: int = 65536) -> bytes:
        """The first ``size`` bytes, for format detection."""
        with self.path.open("rb") as handle:
            return handle.read(size)
