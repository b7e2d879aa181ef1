"""Where an :class:`~jupiter.resilience.ErrorAggregator` keeps its state.

The aggregator owns the policy (the window, the clock, which type an error is counted under,
redaction); a store only keeps the numbers and the recent entries. The default
:class:`InMemoryAggregatorStore` is a few plain dict and deque operations, so the hot path stays
in-process. A shared store (for example Redis hashes per minute with ``HINCRBY`` and ``EXPIRE``
plus a capped list for the recent entries) can implement the same Protocol later and be passed
as ``ErrorAggregator(store=...)`` without touching any caller.

Two cutoffs move with the clock: the *window* (the minutes whose errors are counted in the totals
and listed as recent) and the *history* (the minutes whose per-minute counts are kept for the time
series). The history is never shorter than the window. A minute that leaves the window leaves the
totals but keeps its bucket until it leaves the history too.

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
        """Count one error under ``counted_type`` in ``minute``, a minute inside the window (so in
        its bucket and in the totals), and keep ``entry`` as recent."""
        ...

    def add_history(self, minute: int, counted_type: str) -> None:
        """Count one error under ``counted_type`` in the bucket of ``minute``, a minute that has
        already left the window but not the history (errors restored by ``load``): the time series
        shows it; the totals do not, and no recent entry is kept."""
        ...

    def expire(self, oldest_minute: int, oldest_history_minute: int | None = None) -> None:
        """Move both cutoffs on.

        Every minute before ``oldest_minute`` leaves the window: its counts are subtracted from
        the totals and its recent entries are dropped. Its bucket is kept for the time series
        until the minute is also before ``oldest_history_minute`` (``None``: the same as
        ``oldest_minute``, so nothing outlives the window), then forgotten. The aggregator
        guarantees ``oldest_history_minute <= oldest_minute`` and that neither goes back.
        """
        ...

    def totals(self) -> Mapping[str, int]:
        """Counts per type over the minutes inside the window (types with a zero count are absent).

        The aggregator only reads the mapping and copies what it hands out, so a store may
        return its live internal mapping.
        """
        ...

    def buckets(self) -> Iterable[tuple[int, Mapping[str, int]]]:
        """Every kept ``(minute, counts per type)``, in the window and in the history, in any
        order."""
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
    totals are maintained incrementally (added on :meth:`add`, subtracted when a minute leaves the
    window), so reading them never walks the buckets. The buckets of the window and those of the
    history are two dicts: the totals are exactly the sum of the first, and a minute leaving the
    window moves its bucket (the same dict object, not a copy) to the second.
    """

    __slots__ = ("_buckets", "_history", "_recent", "_totals")

    def __init__(self, max_recent: int = DEFAULT_MAX_RECENT) -> None:
        if isinstance(max_recent, bool) or not isinstance(max_recent, int) or max_recent < 0:
            raise ValueError(f"max_recent must be an int >= 0, got {max_recent!r}")
        # The aggregator's hot path writes these three directly when this exact class is its
        # store (see ErrorAggregator.record_error): keep their layout in step with it. The ring
        # holds plain tuples in ErrorEntry's field order; building the NamedTuple on every record
        # would cost more than the rest of the bookkeeping, so it is built when read.
        self._buckets: dict[int, dict[str, int]] = {}  # minutes inside the window
        self._history: dict[int, dict[str, int]] = {}  # minutes that left it, kept for charts
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

    def add_history(self, minute: int, counted_type: str) -> None:
        bucket = self._history.get(minute)
        if bucket is None:
            bucket = self._history[minute] = {}
        bucket[counted_type] = bucket.get(counted_type, 0) + 1

    def expire(self, oldest_minute: int, oldest_history_minute: int | None = None) -> None:
        forget_before = oldest_minute if oldest_history_minute is None else oldest_history_minute
        history = self._history
        # Runs once per minute, not per error: a scan of at most the history's minutes.
        for minute in [minute for minute in history if minute < forget_before]:
            del history[minute]
        buckets = self._buckets
        totals = self._totals
        for minute in [minute for minute in buckets if minute < oldest_minute]:
            counts = buckets.pop(minute)
            for error_type, count in counts.items():
                remaining = totals[error_type] - count
                if remaining:
                    totals[error_type] = remaining
                else:
                    del totals[error_type]
            if minute >= forget_before:
                # The aggregator never has both for one minute (load adds history only for
                # minutes already out of the window), but a direct caller might: merge them.
                kept = history.get(minute)
                if kept is None:
                    history[minute] = counts
                else:
                    for error_type, count in counts.items():
                        kept[error_type] = kept.get(error_type, 0) + count
        # Entries arrive in time order, so the expired ones sit at the left end.
        recent = self._recent
        cutoff = oldest_minute * 60
        while recent and recent[0][0] < cutoff:
            recent.popleft()

    def totals(self) -> Mapping[str, int]:
        return self._totals

    def buckets(self) -> Iterable[tuple[int, Mapping[str, int]]]:
        return [*self._history.items(), *self._buckets.items()]

    def recent(self) -> Iterable[ErrorEntry]:
        return map(ErrorEntry._make, reversed(self._recent))

    def clear(self) -> None:
        self._buckets.clear()
        self._history.clear()
        self._totals.clear()
        self._recent.clear()
