"""Where an :class:`~jupiter.resilience.ErrorAggregator` keeps its state.

The aggregator owns the policy (the window, the clock, which type an error is counted under,
redaction); a store only keeps the numbers and the recent entries. The default
:class:`InMemoryAggregatorStore` is a few plain dict and deque operations, so the hot path stays
in-process. A shared store (for example Redis hashes per minute with ``HINCRBY`` and ``EXPIRE``
plus a capped list for the recent entries) can implement the same Protocol later and be passed
as ``ErrorAggregator(store=...)`` without touching any caller.

Contract: the aggregator calls every method while holding its own lock, so an in-process store
needs no lock of its own. A store shared between processes must make each method atomic on its
side. ``minute`` is a whole UTC minute: ``int(unix_seconds // 60)``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from typing import NamedTuple, Protocol, runtime_checkable

__all__ = ["AggregatorStore", "ErrorEntry", "InMemoryAggregatorStore"]

#: Default number of recent errors kept (the ring of full entries; counts are kept separately).
DEFAULT_MAX_RECENT = 200


class ErrorEntry(NamedTuple):
    """One recorded error, already bounded and redacted by the aggregator."""

    timestamp: float
    """Wall-clock seconds since the Unix epoch (UTC)."""
    type: str
    message: str
    context: dict[str, object] | None


#: ErrorEntry's fields as a plain tuple: what the in-memory ring holds.
_EntryFields = tuple[float, str, str, dict[str, object] | None]


@runtime_checkable
class AggregatorStore(Protocol):
    """The state behind an :class:`~jupiter.resilience.ErrorAggregator`."""

    def add(self, minute: int, counted_type: str, entry: ErrorEntry) -> None:
        """Count one error under ``counted_type`` in ``minute`` and keep ``entry`` as recent."""
        ...

    def expire(self, oldest_minute: int) -> None:
        """Forget the counts of every minute before ``oldest_minute`` (and its recent entries)."""
        ...

    def totals(self) -> Mapping[str, int]:
        """Counts per type over every minute kept (types with a zero count are absent).

        The aggregator only reads the mapping and copies what it hands out, so a store may
        return its live internal mapping.
        """
        ...

    def buckets(self) -> Iterable[tuple[int, Mapping[str, int]]]:
        """Every kept ``(minute, counts per type)``, in any order."""
        ...

    def recent(self) -> Iterable[ErrorEntry]:
        """The kept recent entries, newest first (as far as insertion order tells)."""
        ...

    def clear(self) -> None:
        """Forget everything."""
        ...


class InMemoryAggregatorStore:
    """The default store: per-minute dicts, running totals and a bounded deque.

    Memory is ``O(minutes kept × types + max_recent)``, whatever the number of errors. The running
    totals are maintained incrementally (added on :meth:`add`, subtracted when a minute expires),
    so reading them never walks the buckets.
    """

    __slots__ = ("_buckets", "_recent", "_totals")

    def __init__(self, max_recent: int = DEFAULT_MAX_RECENT) -> None:
        if isinstance(max_recent, bool) or not isinstance(max_recent, int) or max_recent < 0:
            raise ValueError(f"max_recent must be an int >= 0, got {max_recent!r}")
        # The aggregator's hot path writes these three directly when this exact class is its
        # store (see ErrorAggregator.record_error): keep their layout in step with it. The ring
        # holds plain tuples in ErrorEntry's field order; building the NamedTuple on every record
        # would cost more than the rest of the bookkeeping, so it is built when read.
        self._buckets: dict[int, dict[str, int]] = {}
        self._totals: dict[str, int] = {}
        self._recent: deque[_EntryFields] = deque(maxlen=max_recent)

    @property
    def max_recent(self) -> int:
        """How many recent entries the ring keeps."""
        return self._recent.maxlen or 0

    def add(self, minute: int, counted_type: str, entry: ErrorEntry) -> None:
        bucket = self._buckets.get(minute)
        if bucket is None:
            bucket = self._buckets[minute] = {}
        bucket[counted_type] = bucket.get(counted_type, 0) + 1
        totals = self._totals
        totals[counted_type] = totals.get(counted_type, 0) + 1
        self._recent.append(entry)

    def expire(self, oldest_minute: int) -> None:
        stale = [minute for minute in self._buckets if minute < oldest_minute]
        totals = self._totals
        for minute in stale:
            for error_type, count in self._buckets.pop(minute).items():
                remaining = totals[error_type] - count
                if remaining:
                    totals[error_type] = remaining
                else:
                    del totals[error_type]
        # Entries arrive in time order, so the expired ones sit at the left end.
        recent = self._recent
        cutoff = oldest_minute * 60
        while recent and recent[0][0] < cutoff:
            recent.popleft()

    def totals(self) -> Mapping[str, int]:
        return self._totals

    def buckets(self) -> Iterable[tuple[int, Mapping[str, int]]]:
        return list(self._buckets.items())

    def recent(self) -> Iterable[ErrorEntry]:
        return map(ErrorEntry._make, reversed(self._recent))

    def clear(self) -> None:
        self._buckets.clear()
        self._totals.clear()
        self._recent.clear()
