"""Error aggregation over a sliding window of whole minutes, in bounded memory.

Errors are counted in per-minute buckets (one small dict of type -> count per minute) with
running totals kept up to date as minutes leave the window, plus a bounded ring of the most
recent full entries. Buckets may outlive the window for a longer chart history. So
``record_error`` and ``get_error_stats`` cost the same whether ten or ten million errors were
recorded, and memory is ``O(history_minutes × types + max_recent)``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from ._clock import SYSTEM_CLOCK, Clock, SystemClock
from ._redact import _CACHEABLE_LENGTH, _TEXT_CACHE, _redact_short_text, _Walker, redact_text
from ._store import DEFAULT_MAX_RECENT, AggregatorStore, ErrorEntry, InMemoryAggregatorStore

__all__ = ["OTHER_ERROR_TYPE", "AggregatorOptions", "ErrorAggregator", "error_aggregator"]

_log = logging.getLogger("jupiter.resilience")

#: The type under which errors of any type beyond ``max_types`` distinct ones are counted.
OTHER_ERROR_TYPE = "other"

DEFAULT_WINDOW_MINUTES = 60
DEFAULT_MAX_TYPES = 100
DEFAULT_MAX_MESSAGE_LENGTH = 1000
DEFAULT_MAX_TYPE_LENGTH = 100
DEFAULT_MAX_CONTEXT_ITEMS = 50
DEFAULT_MAX_CONTEXT_DEPTH = 4
BUCKET_SECONDS = 60

# Contexts that come out of redaction unchanged (see ErrorAggregator._clean_dict) are kept, up
# to this many per aggregator, when they have at most _FLAT_CONTEXT_ITEMS string items of at
# most _FLAT_CONTEXT_LENGTH characters: at most ~0.5 MB, usually a few KB.
_FLAT_CONTEXTS = 128
_FLAT_CONTEXT_ITEMS = 8
_FLAT_CONTEXT_LENGTH = 256

#: Receives every recorded error as ``{"timestamp", "type", "message", "context"}``.
ErrorListener = Callable[[dict[str, Any]], object]
#: Receives every recorded error as ``(timestamp, type, message, context)``: Unix seconds and the
#: stored (redacted) values themselves, shared with the aggregator, so it must not mutate them.
EntryListener = Callable[[float, str, str, "dict[str, object] | None"], object]


def _positive_int(name: str, value: object, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


@dataclass(frozen=True, slots=True)
class AggregatorOptions:
    """Every option of an :class:`ErrorAggregator`, validated, with its default.

    * ``window_minutes``: the window, in whole minutes (see :class:`ErrorAggregator`).
    * ``history_minutes``: how many minutes of per-minute counts are kept for
      :meth:`ErrorAggregator.get_timeseries`; at least ``window_minutes``. ``None`` (the
      default) means ``window_minutes``, and is resolved to it on validation.
    * ``max_recent``: how many full recent entries the default store keeps.
    * ``max_types``: distinct error types counted separately; further types in the same window
      are counted under ``"other"``.
    * ``max_message_length``: messages are cut to this many characters (plus ``"…"``).
    * ``max_type_length``: error type names are cut to this many characters.
    * ``max_context_items`` / ``max_context_depth``: the context kept per error is cut to this
      many items per container and this nesting depth; its strings to ``max_message_length``.
    """

    window_minutes: int = DEFAULT_WINDOW_MINUTES
    history_minutes: int | None = None
    max_recent: int = DEFAULT_MAX_RECENT
    max_types: int = DEFAULT_MAX_TYPES
    max_message_length: int = DEFAULT_MAX_MESSAGE_LENGTH
    max_type_length: int = DEFAULT_MAX_TYPE_LENGTH
    max_context_items: int = DEFAULT_MAX_CONTEXT_ITEMS
    max_context_depth: int = DEFAULT_MAX_CONTEXT_DEPTH

    def __post_init__(self) -> None:
        _positive_int("window_minutes", self.window_minutes)
        if self.history_minutes is None:
            # Frozen: resolve the default once, so every reader sees the minutes in force.
            object.__setattr__(self, "history_minutes", self.window_minutes)
        else:
            _positive_int("history_minutes", self.history_minutes)
            if self.history_minutes < self.window_minutes:
                raise ValueError(
                    f"history_minutes must be >= window_minutes ({self.window_minutes}), "
                    f"got {self.history_minutes!r}"
                )
        _positive_int("max_recent", self.max_recent, minimum=0)
        _positive_int("max_types", self.max_types)
        _positive_int("max_message_length", self.max_message_length)
        _positive_int("max_type_length", self.max_type_length)
        _positive_int("max_context_items", self.max_context_items)
        _positive_int("max_context_depth", self.max_context_depth)


def _copy_plain(value: Any) -> Any:
    """Deep-copy the plain dict/list/scalar data a cleaned context is made of."""
    if type(value) is dict:
        return {key: _copy_plain(item) for key, item in value.items()}
    if type(value) is list:
        return [_copy_plain(item) for item in value]
    return value


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")


def _parse_timestamp(value: object) -> float:
    if isinstance(value, bool):
        raise TypeError("a bool is not a timestamp")
    if isinstance(value, int | float):
        result = float(value)
    elif isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        result = moment.timestamp()
    elif isinstance(value, str):
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        result = moment.timestamp()
    else:
        raise TypeError(f"unsupported timestamp {type(value).__name__}")
    if not math.isfinite(result):
        raise ValueError("timestamp is not finite")
    return result


class ErrorAggregator:
    """Counts errors by type over the last ``window_minutes`` minutes and keeps the recent ones.

    **The window.** Time is the injected clock's *wall* time (records are persisted and restored
    across restarts, and a shared store would span processes: only wall time is common to them),
    made non-decreasing so that a clock stepped backwards cannot reorder anything. It is cut into
    whole UTC minutes. An error belongs to the minute it was recorded in and stays counted while
    that minute is one of the last ``window_minutes`` minutes, the current one included: with a
    60-minute window, an error recorded at 12:00:30 is counted until 12:59:59.999 and gone at
    13:00:00. So an error stays between ``window_minutes - 1`` and ``window_minutes`` minutes.

    **The history.** :meth:`get_error_stats` and :meth:`get_recent_errors` only ever see the
    window. The per-minute counts are kept longer, for ``history_minutes`` minutes (the window by
    default), so that :meth:`get_timeseries` can chart more than the window: for example a
    60-minute window with a 240-minute history. A minute leaving the window is subtracted from
    the running totals, and its bucket is dropped when it leaves the history.

    **Bounds.** Messages are scrubbed of secrets and cut to ``max_message_length``; type names to
    ``max_type_length``; context values under secret-looking keys are replaced by
    ``"[REDACTED]"`` and the context is cut in size and depth. At most ``max_types`` distinct
    types are counted in the window; errors of further types are counted under ``"other"``
    (their recent entries keep the real type).

    Thread-safe: one short lock guards each operation; listeners run outside it.
    """

    def __init__(
        self,
        window_minutes: int = DEFAULT_WINDOW_MINUTES,
        *,
        clock: Clock = SYSTEM_CLOCK,
        history_minutes: int | None = None,
        max_recent: int = DEFAULT_MAX_RECENT,
        max_types: int = DEFAULT_MAX_TYPES,
        max_message_length: int = DEFAULT_MAX_MESSAGE_LENGTH,
        store: AggregatorStore | None = None,
    ) -> None:
        options = AggregatorOptions(
            window_minutes=window_minutes,
            history_minutes=history_minutes,
            max_recent=max_recent,
            max_types=max_types,
            max_message_length=max_message_length,
        )
        self._options = options
        # Resolved by AggregatorOptions (None -> window_minutes); kept as a plain int here.
        self._history_minutes = (
            options.window_minutes if options.history_minutes is None else options.history_minutes
        )
        self._clock = clock
        # max_recent sizes the default store; a store passed in bounds its own ring, and reads
        # are additionally cut to max_recent.
        self._store: AggregatorStore = (
            store if store is not None else InMemoryAggregatorStore(options.max_recent)
        )
        self._context_walker = _Walker(
            max_len=options.max_message_length,
            max_items=options.max_context_items,
            stringify=True,
        )
        # Messages up to this length need no cut and go through redact_text's cache directly.
        self._short_message = min(_CACHEABLE_LENGTH, options.max_message_length)
        # The hot path reads these straight from the instance rather than through options.
        self._max_type_length = options.max_type_length
        self._max_types = options.max_types
        self._context_depth = options.max_context_depth
        # The walker makes every key a string (stringify=True).
        self._clean_mapping = cast(
            "Callable[[Mapping[Any, object], int], dict[str, object]]",
            self._context_walker.mapping,
        )
        # Flat contexts known to need no redaction, by their items, each with the one cleaned
        # copy that every entry recording that context shares (entries are never mutated:
        # readers get copies). No secret is ever a key here: those contexts are not kept.
        self._clean_contexts: dict[tuple[tuple[str, str], ...], dict[str, object]] = {}
        # The system clock's wall() is time.time behind a method call; skip the call.
        self._wall = time.time if type(clock) is SystemClock else clock.wall
        # The default store (this exact class, so no overridden method is skipped) is written
        # directly by record_error: no method calls and no NamedTuple built per error.
        self._memory_store = self._store if type(self._store) is InMemoryAggregatorStore else None
        self._lock = threading.Lock()
        self._listeners: tuple[ErrorListener, ...] = ()
        self._entry_listeners: tuple[EntryListener, ...] = ()
        self._latest = -math.inf  # the latest wall time seen: time never goes back
        self._minute = -(2**62)  # the current minute; expiry runs when it moves on
        # Wall time at which the current minute ends: one float comparison per record tells
        # whether the minute moved on, instead of recomputing the minute every time.
        self._minute_end = -math.inf

    # ------------------------------------------------------------------ properties

    @property
    def window_minutes(self) -> int:
        """The window length in minutes."""
        return self._options.window_minutes

    @property
    def history_minutes(self) -> int:
        """How many minutes of per-minute counts :meth:`get_timeseries` can show."""
        return self._history_minutes

    @property
    def options(self) -> AggregatorOptions:
        """The validated options in force."""
        return self._options

    @property
    def store(self) -> AggregatorStore:
        """The store holding the counts and recent entries."""
        return self._store

    # ------------------------------------------------------------------ recording

    def record_error(
        self, error_type: str, message: str, context: Mapping[str, Any] | None = None
    ) -> None:
        """Count one error of ``error_type`` now and keep it as a recent error.

        ``message`` is scrubbed with :func:`redact_text` and cut; ``context`` (a mapping; any
        other value is kept as ``{"value": ...}``) is redacted with :func:`redact` and cut.
        Listeners then receive the stored record.
        """
        # The common case (short str type and message, a dict context) skips the cleaning
        # methods' call cost.
        if type(error_type) is not str or not 0 < len(error_type) <= self._max_type_length:
            error_type = self._clean_type(error_type)
        if type(message) is str and len(message) <= self._short_message:
            cleaned = _TEXT_CACHE.get(message)
            message = _redact_short_text(message) if cleaned is None else cleaned
        else:
            message = self._clean_message(message)
        clean_context = None
        if context is not None:
            if type(context) is dict and len(context) <= _FLAT_CONTEXT_ITEMS:
                try:
                    clean_context = self._clean_contexts.get(tuple(context.items()))
                except Exception:  # an unhashable (or oddly comparing) value: not a flat context
                    clean_context = None
                if clean_context is None:
                    clean_context = self._clean_dict(context)
            else:
                clean_context = self._clean_context(context)
        memory = self._memory_store
        lock = self._lock
        # acquire/release rather than `with`: measurably cheaper on 3.11, and this is the hot path.
        lock.acquire()
        try:
            now = self._wall()
            if now < self._latest:
                now = self._latest
            else:
                self._latest = now
            if now >= self._minute_end:
                self._advance(int(now // BUCKET_SECONDS))
            if memory is not None:
                # InMemoryAggregatorStore.add with the type cap, inlined (see __init__).
                totals = memory._totals
                counted_type = error_type
                count = totals.get(error_type)
                if count is None:
                    if len(totals) >= self._max_types:
                        counted_type = OTHER_ERROR_TYPE
                        count = totals.get(OTHER_ERROR_TYPE, 0)
                    else:
                        count = 0
                totals[counted_type] = count + 1
                bucket = memory._buckets.get(self._minute)
                if bucket is None:
                    memory._buckets[self._minute] = {counted_type: 1}
                else:
                    bucket[counted_type] = bucket.get(counted_type, 0) + 1
                memory._recent.append((now, error_type, message, clean_context))
            else:
                self._add_to_store(now, error_type, message, clean_context)
        finally:
            lock.release()
        for entry_listener in self._entry_listeners:
            try:
                entry_listener(now, error_type, message, clean_context)
            except Exception as exc:  # a listener must never break recording
                self._listener_failed(entry_listener, exc)
        if self._listeners:
            self._notify(ErrorEntry(now, error_type, message, clean_context))

    def _add_to_store(
        self, now: float, error_type: str, message: str, context: dict[str, object] | None
    ) -> None:
        """Count one error in the current minute through the store protocol (under the lock)."""
        store = self._store
        totals = store.totals()
        counted_type = (
            error_type
            if error_type in totals or len(totals) < self._max_types
            else OTHER_ERROR_TYPE
        )
        store.add(self._minute, counted_type, ErrorEntry(now, error_type, message, context))

    def _clean_type(self, error_type: object) -> str:
        if type(error_type) is not str:
            error_type = str(error_type)
        limit = self._options.max_type_length
        if len(error_type) > limit:
            error_type = error_type[:limit]
        return error_type or "unknown"

    def _clean_message(self, message: object) -> str:
        if type(message) is not str:
            message = str(message)
        limit = self._options.max_message_length
        if len(message) > limit:
            # Scrub a generous slice before cutting, so a secret across the cut is still found,
            # without letting a megabyte message cost a megabyte regex scan.
            return redact_text(message[: limit * 4])[:limit] + "…"
        return redact_text(message)

    def _clean_dict(self, context: dict[Any, Any]) -> dict[str, object]:
        """Redact and cut a small dict; remember it if it is flat and needed no change."""
        cleaned = self._clean_mapping(context, self._context_depth)
        # Types first: comparing arbitrary values (a numpy array, say) could raise.
        if (
            all(
                type(key) is str
                and type(value) is str
                and len(key) <= _FLAT_CONTEXT_LENGTH
                and len(value) <= _FLAT_CONTEXT_LENGTH
                for key, value in context.items()
            )
            and cleaned == context
        ):
            # Equal items mean equal strings (only strings compare equal to strings), so any
            # context that finds this entry would be cleaned to the same dict.
            known = self._clean_contexts
            if len(known) >= _FLAT_CONTEXTS:
                known.clear()
            known[tuple(context.items())] = cleaned
        return cleaned

    def _clean_context(self, context: object) -> dict[str, object]:
        if type(context) is not dict and not isinstance(context, Mapping):
            context = {"value": context}
        cleaned = self._context_walker.mapping(context, self._options.max_context_depth)
        return cast("dict[str, object]", cleaned)  # keys are made strings by the walker

    def _advance(self, minute: int) -> None:
        """Move the current minute on (under the lock): minutes that fell out of the window leave
        the totals, and those that fell out of the history are forgotten."""
        if minute > self._minute:
            self._minute = minute
            self._minute_end = (minute + 1) * BUCKET_SECONDS
            self._store.expire(
                minute - self._options.window_minutes + 1, minute - self._history_minutes + 1
            )

    def _now_minute(self) -> int:
        """Advance to the clock's current minute (under the lock) and return it."""
        now = self._clock.wall()
        if now < self._latest:
            now = self._latest
        else:
            self._latest = now
        minute = int(now // BUCKET_SECONDS)
        if minute != self._minute:
            self._advance(minute)
        return self._minute

    # ------------------------------------------------------------------ reading

    def get_error_stats(self) -> dict[str, Any]:
        """Counts over the window.

        ``{"total_errors": int, "errors_by_type": {type: count}, "window_minutes": int,
        "error_rate": float}``: ``error_rate`` is errors per minute over the whole window,
        ``total_errors / window_minutes`` rounded to 3 decimals (5 in 60 minutes -> 0.083).
        ``errors_by_type`` is ordered by count, largest first.
        """
        with self._lock:
            self._now_minute()
            by_type = dict(self._store.totals())
        total = sum(by_type.values())
        window = self._options.window_minutes
        ordered = dict(sorted(by_type.items(), key=lambda item: (-item[1], item[0])))
        return {
            "total_errors": total,
            "errors_by_type": ordered,
            "window_minutes": window,
            "error_rate": round(total / window, 3),
        }

    def get_recent_errors(self, limit: int = 10) -> list[dict[str, Any]]:
        """Up to ``limit`` recent errors inside the window, newest first.

        Each is ``{"timestamp": ISO 8601 UTC string with milliseconds, "type", "message",
        "context"}``; ``limit`` is capped at ``max_recent``.
        """
        _positive_int("limit", limit, minimum=0)
        with self._lock:
            cutoff = (self._now_minute() - self._options.window_minutes + 1) * BUCKET_SECONDS
            entries = [entry for entry in self._store.recent() if entry.timestamp >= cutoff]
        # Stable sort: insertion order already is time order except after load().
        entries.sort(key=lambda entry: entry.timestamp, reverse=True)
        return [self._as_record(entry) for entry in entries[: min(limit, self._options.max_recent)]]

    def get_timeseries(
        self, minutes: int | None = None, types: Iterable[str] | None = None
    ) -> dict[str, Any]:
        """Per-minute counts per type over the last ``minutes`` minutes, oldest first, for charts.

        ``minutes`` defaults to the window and is capped at ``history_minutes`` (it must be
        >= 1); ``"window_minutes"`` in the result is the number of minutes shown. ``types``
        restricts the series to those types (each present, zero-filled). Returns::

            {"window_minutes": n, "bucket_seconds": 60,
             "start": ISO of the first minute, "end": ISO of the end of the current minute,
             "timestamps": [ISO start of each minute] (n items),
             "series": {type: [count per minute] (n items)},  # largest total first
             "totals": {type: count over the n minutes},
             "total": [sum of the shown series per minute], "max": largest value of "total"}
        """
        span = self._options.window_minutes if minutes is None else minutes
        _positive_int("minutes", span)
        span = min(span, self._history_minutes)
        wanted = None if types is None else [self._clean_type(name) for name in types]
        with self._lock:
            current = self._now_minute()
            first = current - span + 1
            buckets = [
                (minute, dict(counts))
                for minute, counts in self._store.buckets()
                if first <= minute <= current
            ]
        series: dict[str, list[int]] = {name: [0] * span for name in wanted or ()}
        for minute, counts in buckets:
            for name, count in counts.items():
                if wanted is None:
                    row = series.get(name)
                    if row is None:
                        row = series[name] = [0] * span
                else:
                    found = series.get(name)
                    if found is None:
                        continue
                    row = found
                row[minute - first] += count
        totals = {name: sum(row) for name, row in series.items()}
        order = sorted(series, key=lambda name: (-totals[name], name))
        per_minute = [sum(column) for column in zip(*series.values(), strict=True)] or [0] * span
        return {
            "window_minutes": span,
            "bucket_seconds": BUCKET_SECONDS,
            "start": _iso(first * BUCKET_SECONDS),
            "end": _iso((current + 1) * BUCKET_SECONDS),
            "timestamps": [_iso((first + index) * BUCKET_SECONDS) for index in range(span)],
            "series": {name: series[name] for name in order},
            "totals": {name: totals[name] for name in order},
            "total": per_minute,
            "max": max(per_minute),
        }

    @staticmethod
    def _as_record(entry: ErrorEntry) -> dict[str, Any]:
        context = entry.context
        return {
            "timestamp": _iso(entry.timestamp),
            "type": entry.type,
            "message": entry.message,
            "context": None if context is None else _copy_plain(context),
        }

    # ------------------------------------------------------------------ listeners

    def add_listener(self, listener: ErrorListener) -> None:
        """Call ``listener(record)`` after every :meth:`record_error` (not on :meth:`load`).

        ``record`` is ``{"timestamp", "type", "message", "context"}`` exactly as
        :meth:`get_recent_errors` returns it (already redacted). Listeners run synchronously in
        the recording thread, outside the aggregator's lock, so they should only hand the record
        on (for example to a queue); exceptions they raise are logged and swallowed.
        """
        with self._lock:
            self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: ErrorListener) -> None:
        """Stop calling ``listener`` (no error if it was not added)."""
        with self._lock:
            # == rather than `is`: a bound method is a new object on every attribute access.
            self._listeners = tuple(known for known in self._listeners if known != listener)

    def add_entry_listener(self, listener: EntryListener) -> None:
        """Call ``listener(timestamp, type, message, context)`` after every :meth:`record_error`.

        The cheap form of :meth:`add_listener` for a hot path that hands every error on (the
        service's durable journal): no record dict, ISO timestamp or context copy is built.
        ``timestamp`` is Unix seconds; ``message`` and ``context`` are already redacted and are
        the stored objects themselves (readers get copies of them), so the listener must treat
        them as read-only. Entry listeners run before dict listeners,
        in the recording thread, outside the lock; exceptions they raise are logged and
        swallowed.
        """
        with self._lock:
            self._entry_listeners = (*self._entry_listeners, listener)

    def remove_entry_listener(self, listener: EntryListener) -> None:
        """Stop calling an entry ``listener`` (no error if it was not added)."""
        with self._lock:
            self._entry_listeners = tuple(
                known for known in self._entry_listeners if known != listener
            )

    def _notify(self, entry: ErrorEntry) -> None:
        record = self._as_record(entry)
        for listener in self._listeners:
            try:
                listener(record)
            except Exception as exc:  # a listener must never break recording
                self._listener_failed(listener, exc)

    @staticmethod
    def _listener_failed(listener: object, exc: Exception) -> None:
        _log.error(
            "error aggregator listener %r failed: %s",
            listener,
            redact_text(f"{type(exc).__name__}: {exc}"),
        )

    # ------------------------------------------------------------------ persistence

    def load(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Re-seed from persisted records (for example after a restart); returns how many were kept.

        Each record is a mapping like those :meth:`get_recent_errors` and listeners produce:
        ``"timestamp"`` (ISO 8601 string, Unix seconds or ``datetime``; naive means UTC),
        ``"type"``, ``"message"``, optional ``"context"``. Records inside the window are counted
        and kept as recent; older ones still inside the history only fill the time series;
        records older than that are skipped, as are malformed ones. Timestamps in the future are
        taken as now. Records are redacted and bounded like live ones; listeners are not called.
        Best called at start-up, before new errors are recorded (counts are right either way;
        the recent ring keeps the entries added last).
        """
        parsed: list[tuple[float, str, str, object]] = []
        for record in records:
            try:
                timestamp = _parse_timestamp(record["timestamp"])
                error_type = self._clean_type(record["type"])
                message = self._clean_message(record.get("message", ""))
            except (KeyError, TypeError, ValueError, OverflowError, AttributeError):
                continue
            parsed.append((timestamp, error_type, message, record.get("context")))
        parsed.sort(key=lambda item: item[0])
        kept = 0
        max_types = self._options.max_types
        # Types counted per restored history minute: the same max_types cap as live minutes.
        history_types: dict[int, set[str]] = {}
        with self._lock:
            current = self._now_minute()
            oldest = current - self._options.window_minutes + 1
            oldest_history = current - self._history_minutes + 1
            for timestamp, error_type, message, context in parsed:
                stamp = min(timestamp, self._latest)
                minute = int(stamp // BUCKET_SECONDS)
                if minute < oldest_history:
                    continue
                if minute < oldest:
                    seen = history_types.setdefault(minute, set())
                    if error_type not in seen and len(seen) >= max_types:
                        error_type = OTHER_ERROR_TYPE
                    seen.add(error_type)
                    self._store.add_history(minute, error_type)
                    kept += 1
                    continue
                clean_context = None if context is None else self._clean_context(context)
                totals = self._store.totals()
                counted_type = (
                    error_type
                    if error_type in totals or len(totals) < self._options.max_types
                    else OTHER_ERROR_TYPE
                )
                entry = ErrorEntry(stamp, error_type, message, clean_context)
                self._store.add(minute, counted_type, entry)
                kept += 1
        return kept

    def clear(self) -> None:
        """Forget every error (listeners stay)."""
        with self._lock:
            self._store.clear()


#: The module-level default aggregator (60-minute window, system clock).
error_aggregator = ErrorAggregator(window_minutes=60)
