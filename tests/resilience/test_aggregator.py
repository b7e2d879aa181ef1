"""ErrorAggregator: counts over a window of whole minutes, recent errors, time series, bounds,
redaction, listeners, restore after a restart, and thread safety. All on a fake clock."""

from __future__ import annotations

import enum
import logging
import threading
import tracemalloc
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jupiter.resilience import (
    AggregatorOptions,
    ErrorAggregator,
    ErrorEntry,
    InMemoryAggregatorStore,
    error_aggregator,
)
from jupiter.resilience._aggregator import OTHER_ERROR_TYPE
from jupiter.resilience._redact import REDACTED
from jupiter.resilience.testing import FakeClock

MINUTE_START = 1_700_000_040.0  # a whole UTC minute
assert MINUTE_START % 60 == 0


def aligned_clock() -> FakeClock:
    """A fake clock whose wall time starts exactly at the beginning of a minute."""
    return FakeClock(wall_start=MINUTE_START)


def parse(timestamp: str) -> float:
    moment = datetime.fromisoformat(timestamp)
    offset = moment.utcoffset()
    assert offset is not None
    assert offset.total_seconds() == 0
    return moment.timestamp()


# --------------------------------------------------------------------------- counting


def test_aggregator_counts_accurately():
    """Seed checklist: every recorded error is counted under its type, and in the total."""
    clock = aligned_clock()
    aggregator = ErrorAggregator(window_minutes=60, clock=clock)
    recorded = {"api_failure": 7, "timeout": 3, "parse_error": 1}
    for error_type, count in recorded.items():
        for _ in range(count):
            aggregator.record_error(error_type, "boom")
            clock.advance(5)
    stats = aggregator.get_error_stats()
    assert stats["errors_by_type"] == recorded
    assert stats["total_errors"] == sum(recorded.values())
    assert stats["window_minutes"] == 60
    assert list(stats["errors_by_type"]) == ["api_failure", "timeout", "parse_error"]


@pytest.mark.parametrize(
    ("window", "errors", "rate"),
    [(60, 5, 0.083), (60, 0, 0.0), (15, 1, 0.067), (240, 1000, 4.167), (1, 3, 3.0)],
)
def test_error_rate_is_errors_per_minute_over_the_window(window, errors, rate):
    """error_rate = total / window_minutes, rounded to 3 decimals (5 in 60 minutes -> 0.083)."""
    aggregator = ErrorAggregator(window_minutes=window, clock=aligned_clock())
    for _ in range(errors):
        aggregator.record_error("api_failure", "Connection timeout")
    assert aggregator.get_error_stats()["error_rate"] == rate


def test_the_seed_presets_are_expressible():
    """The seed's 15, 60 and 240 minute windows are plain constructor arguments."""
    for window in (15, 60, 240):
        stats = ErrorAggregator(window_minutes=window).get_error_stats()
        assert stats["window_minutes"] == window


def test_module_level_aggregator_has_a_60_minute_window():
    """The default instance uses the 60-minute window the seed used."""
    assert error_aggregator.window_minutes == 60


# --------------------------------------------------------------------------- the window


def test_errors_expire_exactly_at_the_minute_boundary():
    """An error stays while its minute is among the last window_minutes, and not a tick longer."""
    clock = aligned_clock()
    aggregator = ErrorAggregator(window_minutes=3, clock=clock)
    clock.advance(30)  # 30 s into minute 0
    aggregator.record_error("a", "first")
    clock.advance(2 * 60 + 29.999)  # the last instant of minute 2: minutes 0..2 are the window
    assert aggregator.get_error_stats()["total_errors"] == 1
    assert len(aggregator.get_recent_errors()) == 1
    clock.advance(0.001)  # minute 3 begins: minute 0 leaves the window
    assert aggregator.get_error_stats()["total_errors"] == 0
    assert aggregator.get_recent_errors() == []


def test_expiry_is_per_bucket_and_keeps_later_minutes():
    """Only the minutes that left the window are subtracted; the running totals stay exact."""
    clock = aligned_clock()
    aggregator = ErrorAggregator(window_minutes=2, clock=clock)
    aggregator.record_error("a", "m0")
    clock.advance(60)
    aggregator.record_error("a", "m1")
    aggregator.record_error("b", "m1")
    clock.advance(60)
    assert aggregator.get_error_stats()["errors_by_type"] == {"a": 1, "b": 1}
    clock.advance(60)
    assert aggregator.get_error_stats()["errors_by_type"] == {}


def test_a_long_silence_expires_everything():
    """After more than a whole window without errors nothing is left, memory included."""
    clock = aligned_clock()
    aggregator = ErrorAggregator(window_minutes=5, clock=clock)
    for _ in range(50):
        aggregator.record_error("a", "x")
        clock.advance(7)
    clock.advance(3600)
    assert aggregator.get_error_stats()["total_errors"] == 0
    assert list(aggregator.store.buckets()) == []
    assert list(aggregator.store.recent()) == []


class SteppableWallClock(FakeClock):
    """A fake clock whose wall time can be stepped backwards, like NTP can."""

    def __init__(self) -> None:
        super().__init__(wall_start=MINUTE_START)
        self.wall_shift = 0.0

    def wall(self) -> float:
        return super().wall() + self.wall_shift


def test_wall_clock_stepping_back_does_not_move_the_window_back():
    """A backwards wall-clock step freezes the timeline instead of reordering it."""
    clock = SteppableWallClock()
    aggregator = ErrorAggregator(window_minutes=2, clock=clock)
    clock.advance(90)
    aggregator.record_error("a", "before the step")
    clock.wall_shift = -3600
    aggregator.record_error("a", "after the step")
    recent = aggregator.get_recent_errors()
    assert [parse(r["timestamp"]) for r in recent] == [MINUTE_START + 90] * 2
    assert aggregator.get_error_stats()["total_errors"] == 2


# --------------------------------------------------------------------------- recent errors


def test_recent_errors_are_newest_first_with_iso_utc_timestamps():
    """Recent errors come newest first, each with an ISO 8601 UTC timestamp of its record time."""
    clock = aligned_clock()
    aggregator = ErrorAggregator(clock=clock)
    for index in range(5):
        aggregator.record_error(f"t{index}", f"message {index}", {"i": index})
        clock.advance(1.5)
    recent = aggregator.get_recent_errors(limit=10)
    assert [r["message"] for r in recent] == [f"message {i}" for i in reversed(range(5))]
    assert [r["type"] for r in recent] == [f"t{i}" for i in reversed(range(5))]
    assert [r["context"] for r in recent] == [{"i": i} for i in reversed(range(5))]
    assert [parse(r["timestamp"]) for r in recent] == [
        MINUTE_START + 1.5 * i for i in reversed(range(5))
    ]
    assert set(recent[0]) == {"timestamp", "type", "message", "context"}


def test_recent_errors_respect_the_limit():
    """limit caps the list; 0 gives an empty list; the default is 10."""
    aggregator = ErrorAggregator(clock=aligned_clock())
    for index in range(30):
        aggregator.record_error("a", str(index))
    assert [r["message"] for r in aggregator.get_recent_errors(limit=3)] == ["29", "28", "27"]
    assert aggregator.get_recent_errors(limit=0) == []
    assert len(aggregator.get_recent_errors()) == 10


@pytest.mark.parametrize("bad", [-1, 2.5, "3"])
def test_recent_errors_refuse_a_bad_limit(bad):
    """A negative or non-integer limit gets a clear ValueError."""
    with pytest.raises(ValueError, match="limit"):
        ErrorAggregator(clock=aligned_clock()).get_recent_errors(limit=bad)


def test_recent_errors_only_include_errors_inside_the_window():
    """Errors whose minute left the window are not returned even while still in the ring."""
    clock = aligned_clock()
    aggregator = ErrorAggregator(window_minutes=2, clock=clock)
    aggregator.record_error("a", "old")
    clock.advance(60)
    aggregator.record_error("a", "new")
    clock.advance(60)
    assert [r["message"] for r in aggregator.get_recent_errors()] == ["new"]


def test_returned_records_are_copies():
    """Mutating a returned record does not change what the aggregator holds."""
    aggregator = ErrorAggregator(clock=aligned_clock())
    aggregator.record_error("a", "x", {"nested": {"k": 1}})
    aggregator.get_recent_errors()[0]["context"]["nested"]["k"] = 99
    assert aggregator.get_recent_errors()[0]["context"] == {"nested": {"k": 1}}


# --------------------------------------------------------------------------- time series


def test_timeseries_has_one_bucket_per_minute_with_counts_in_place():
    """The series has `minutes` buckets, oldest first, each error in the bucket of its minute."""
    clock = aligned_clock()
    aggregator = ErrorAggregator(window_minutes=60, clock=clock)
    aggregator.record_error("a", "minute 0")
    clock.advance(60)
    aggregator.record_error("a", "minute 1")
    aggregator.record_error("b", "minute 1")
    clock.advance(120)
    aggregator.record_error("b", "minute 3")
    aggregator.record_error("b", "minute 3")
    series = aggregator.get_timeseries(minutes=5)
    assert series["window_minutes"] == 5
    assert series["bucket_seconds"] == 60
    starts = [parse(t) for t in series["timestamps"]]
    assert starts == [MINUTE_START + 60 * (i - 1) for i in range(5)]
    assert parse(series["start"]) == starts[0]
    assert parse(series["end"]) == MINUTE_START + 4 * 60
    assert series["series"] == {"b": [0, 0, 1, 0, 2], "a": [0, 1, 1, 0, 0]}
    assert list(series["series"]) == ["b", "a"]  # largest total first, for the legend
    assert series["totals"] == {"b": 3, "a": 2}
    assert series["total"] == [0, 1, 2, 0, 2]
    assert series["max"] == 2


def test_timeseries_type_filter_zero_fills_requested_types():
    """With types=..., only those series appear, each present even without errors."""
    aggregator = ErrorAggregator(window_minutes=10, clock=aligned_clock())
    aggregator.record_error("a", "x")
    aggregator.record_error("b", "y")
    series = aggregator.get_timeseries(minutes=2, types=["a", "never"])
    assert series["series"] == {"a": [0, 1], "never": [0, 0]}
    assert series["total"] == [0, 1]


def test_timeseries_defaults_to_and_is_capped_at_the_window():
    """No minutes means the window; more minutes than the window are capped to it."""
    aggregator = ErrorAggregator(window_minutes=15, clock=aligned_clock())
    assert len(aggregator.get_timeseries()["timestamps"]) == 15
    capped = aggregator.get_timeseries(minutes=600)
    assert capped["window_minutes"] == 15
    assert len(capped["total"]) == 15
    assert capped["series"] == {}
    assert capped["max"] == 0


@pytest.mark.parametrize("bad", [0, -5, 1.5])
def test_timeseries_refuses_bad_minutes(bad):
    """minutes < 1 or not an int gets a clear ValueError."""
    with pytest.raises(ValueError, match="minutes"):
        ErrorAggregator(clock=aligned_clock()).get_timeseries(minutes=bad)


def test_timeseries_drops_expired_minutes():
    """Buckets older than the window contribute nothing to the series."""
    clock = aligned_clock()
    aggregator = ErrorAggregator(window_minutes=3, clock=clock)
    aggregator.record_error("a", "x")
    clock.advance(3 * 60)
    assert aggregator.get_timeseries()["series"] == {}


# --------------------------------------------------------------------------- bounds


def test_distinct_types_beyond_the_limit_are_counted_as_other():
    """At most max_types named types are counted; the rest go to "other", totals stay exact."""
    aggregator = ErrorAggregator(clock=aligned_clock(), max_types=5)
    for index in range(50):
        aggregator.record_error(f"type_{index}", "x")
    stats = aggregator.get_error_stats()
    assert stats["total_errors"] == 50
    assert len(stats["errors_by_type"]) == 6
    assert stats["errors_by_type"][OTHER_ERROR_TYPE] == 45
    # The recent entry keeps the real type.
    assert aggregator.get_recent_errors(limit=1)[0]["type"] == "type_49"


def test_type_slots_free_up_when_types_expire():
    """Once a type leaves the window its slot can be used by a new type."""
    clock = aligned_clock()
    aggregator = ErrorAggregator(window_minutes=1, clock=clock, max_types=1)
    aggregator.record_error("first", "x")
    clock.advance(60)
    aggregator.record_error("second", "x")
    assert aggregator.get_error_stats()["errors_by_type"] == {"second": 1}


def test_messages_types_and_contexts_are_bounded():
    """Long messages, type names and contexts are cut to their limits."""
    aggregator = ErrorAggregator(clock=aligned_clock(), max_message_length=100)
    huge_context = {f"k{i}": {"deep": {"deeper": {"deepest": {"bottom": 1}}}} for i in range(500)}
    aggregator.record_error("t" * 1000, "m" * 1_000_000, huge_context)
    record = aggregator.get_recent_errors(limit=1)[0]
    assert record["message"] == "m" * 100 + "…"
    assert record["type"] == "t" * 100
    assert len(record["context"]) == 50
    assert record["context"]["k0"] == {"deep": {"deeper": {"deepest": "[...]"}}}


def test_many_errors_keep_memory_bounded():
    """50,000 errors over 3.5 hours leave at most a window of buckets and max_recent entries."""
    clock = aligned_clock()
    aggregator = ErrorAggregator(window_minutes=60, clock=clock, max_recent=100)
    types = [f"type_{i}" for i in range(20)]
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        for index in range(50_000):
            aggregator.record_error(types[index % 20], "Connection timeout", {"i": index})
            clock.advance(0.25)  # about three and a half hours, in exactly representable steps
        used = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    assert len(list(aggregator.store.buckets())) <= 60
    assert len(list(aggregator.store.recent())) == 100
    assert used < 2_000_000
    stats = aggregator.get_error_stats()
    # Exactly the errors recorded in the last 60 whole minutes remain.
    now = clock.wall()
    first_kept = (int(now // 60) - 59) * 60
    expected = sum(1 for i in range(50_000) if MINUTE_START + i * 0.25 >= first_kept)
    assert stats["total_errors"] == expected


# --------------------------------------------------------------------------- redaction


def test_secret_context_values_are_redacted_at_record_time():
    """Secret-looking keys are redacted at any depth and in any case before anything is kept."""
    aggregator = ErrorAggregator(clock=aligned_clock())
    seen: list[dict[str, object]] = []
    aggregator.add_listener(seen.append)
    aggregator.record_error(
        "api_failure",
        "upstream refused Authorization: Bearer abcdefghijkl",
        {
            "endpoint": "/api/chat",
            "Authorization": "Bearer abcdefghijkl",
            "request": {"headers": {"X-Api-Key": "k", "Cookie": "c"}, "params": [{"TOKEN": "t"}]},
            "client_secret": "s",
        },
    )
    record = aggregator.get_recent_errors(limit=1)[0]
    assert record["context"] == {
        "endpoint": "/api/chat",
        "Authorization": REDACTED,
        "request": {
            "headers": {"X-Api-Key": REDACTED, "Cookie": REDACTED},
            "params": [{"TOKEN": REDACTED}],
        },
        "client_secret": REDACTED,
    }
    assert record["message"] == f"upstream refused Authorization: {REDACTED}"
    assert "abcdefghijkl" not in repr(seen) + repr(list(aggregator.store.recent()))


def test_non_mapping_context_and_odd_values_are_kept_json_friendly():
    """A non-mapping context is wrapped, and foreign objects become strings."""
    aggregator = ErrorAggregator(clock=aligned_clock())
    aggregator.record_error("a", "x", ["token=abcdef", 3])  # type: ignore[arg-type]
    aggregator.record_error("a", "y", {"when": object})
    first, second = aggregator.get_recent_errors()
    assert second["context"] == {"value": [f"token={REDACTED}", 3]}
    assert first["context"] == {"when": repr(object)}


# --------------------------------------------------------------------------- listeners


def test_listeners_receive_each_recorded_error():
    """Every listener gets the stored record dict, in recording order."""
    aggregator = ErrorAggregator(clock=aligned_clock())
    seen: list[dict[str, object]] = []
    aggregator.add_listener(seen.append)
    aggregator.record_error("a", "one", {"k": 1})
    aggregator.record_error("b", "two")
    assert [(r["type"], r["message"], r["context"]) for r in seen] == [
        ("a", "one", {"k": 1}),
        ("b", "two", None),
    ]
    assert seen == list(reversed(aggregator.get_recent_errors()))


def test_a_failing_listener_is_logged_and_does_not_stop_recording(caplog):
    """A listener that raises is logged (without secrets) and the others still run."""
    aggregator = ErrorAggregator(clock=aligned_clock())
    seen: list[dict[str, object]] = []

    def broken(record: dict[str, object]) -> None:
        raise RuntimeError("db down, password=hunter2")

    aggregator.add_listener(broken)
    aggregator.add_listener(seen.append)
    with caplog.at_level(logging.ERROR, logger="jupiter.resilience"):
        aggregator.record_error("a", "x")
    assert len(seen) == 1
    assert aggregator.get_error_stats()["total_errors"] == 1
    assert "db down" in caplog.text
    assert "hunter2" not in caplog.text


def test_removed_listeners_are_not_called():
    """remove_listener stops the calls; removing an unknown listener is harmless."""
    aggregator = ErrorAggregator(clock=aligned_clock())
    seen: list[dict[str, object]] = []
    aggregator.add_listener(seen.append)
    aggregator.remove_listener(seen.append)
    aggregator.remove_listener(print)
    aggregator.record_error("a", "x")
    assert seen == []


def test_entry_listeners_get_the_stored_values_without_a_record_dict():
    """add_entry_listener: (Unix seconds, type, message, context) as stored, redacted, in
    order; a failing one is logged and neither recording nor the other listeners stop."""
    clock = aligned_clock()
    aggregator = ErrorAggregator(clock=clock)
    seen: list[tuple[float, str, str, object]] = []
    records: list[dict[str, object]] = []

    def broken(*entry: object) -> None:
        raise RuntimeError("journal full, token=hunter2")

    aggregator.add_entry_listener(broken)
    aggregator.add_entry_listener(lambda *entry: seen.append(entry))  # type: ignore[arg-type]
    aggregator.add_listener(records.append)
    aggregator.record_error("a", "password=hunter2", {"k": 1})
    clock.advance(1.5)
    aggregator.record_error("b", "two")
    assert [(t, m, c) for _, t, m, c in seen] == [
        ("a", "password=[REDACTED]", {"k": 1}),
        ("b", "two", None),
    ]
    assert seen[1][0] - seen[0][0] == pytest.approx(1.5)
    assert [r["message"] for r in records] == ["password=[REDACTED]", "two"]
    aggregator.remove_entry_listener(broken)
    aggregator.remove_entry_listener(print)
    aggregator.record_error("c", "three")
    assert len(seen) == 3
    assert aggregator.get_error_stats()["total_errors"] == 3


# --------------------------------------------------------------------------- restore


def test_load_restores_counts_and_recent_errors_after_a_restart():
    """Records persisted through a listener re-seed a fresh aggregator to the same state."""
    clock = aligned_clock()
    before = ErrorAggregator(window_minutes=60, clock=clock)
    persisted: list[dict[str, object]] = []
    before.add_listener(persisted.append)
    for index in range(30):
        before.record_error(f"t{index % 3}", f"error {index}", {"i": index})
        clock.advance(150)  # 75 minutes in total: the first ones fall out of the window
    after = ErrorAggregator(window_minutes=60, clock=clock)  # "restarted", same wall time
    kept = after.load(persisted)
    assert after.get_error_stats() == before.get_error_stats()
    assert after.get_recent_errors(limit=50) == before.get_recent_errors(limit=50)
    assert kept == before.get_error_stats()["total_errors"] < 30
    assert after.get_timeseries() == before.get_timeseries()


def test_load_accepts_epoch_seconds_and_datetimes_and_skips_bad_records():
    """Timestamps may be ISO strings, Unix seconds or datetimes; malformed records are skipped."""
    clock = aligned_clock()
    aggregator = ErrorAggregator(window_minutes=10, clock=clock)
    now = clock.wall()
    records = [
        {"timestamp": now - 30, "type": "a", "message": "epoch"},
        {"timestamp": datetime.fromtimestamp(now - 20).astimezone(), "type": "a", "message": "dt"},
        {"timestamp": "2023-11-14T22:13:00", "type": "a", "message": "naive ISO is UTC"},
        {"timestamp": now - 3600, "type": "a", "message": "outside the window"},
        {"timestamp": "not a time", "type": "a", "message": "bad"},
        {"type": "a", "message": "no timestamp"},
        {"timestamp": float("nan"), "type": "a"},
        {
            "timestamp": now + 600,
            "type": "b",
            "message": "future, taken as now",
            "context": {"token": "t"},
        },
    ]
    assert aggregator.load(records) == 4
    assert aggregator.get_error_stats()["errors_by_type"] == {"a": 3, "b": 1}
    newest = aggregator.get_recent_errors(limit=1)[0]
    assert parse(newest["timestamp"]) == now
    assert newest["context"] == {"token": REDACTED}


def test_load_does_not_notify_listeners():
    """Re-seeding from history must not persist the history a second time."""
    clock = aligned_clock()
    aggregator = ErrorAggregator(clock=clock)
    seen: list[dict[str, object]] = []
    aggregator.add_listener(seen.append)
    aggregator.load([{"timestamp": clock.wall(), "type": "a", "message": "x"}])
    assert seen == []
    assert aggregator.get_error_stats()["total_errors"] == 1


def test_clear_forgets_all_errors():
    """clear() empties counts and recent errors."""
    aggregator = ErrorAggregator(clock=aligned_clock())
    aggregator.record_error("a", "x")
    aggregator.clear()
    assert aggregator.get_error_stats()["total_errors"] == 0
    assert aggregator.get_recent_errors() == []


# --------------------------------------------------------------------------- options, store


@pytest.mark.parametrize(
    "kwargs",
    [
        {"window_minutes": 0},
        {"window_minutes": 1.5},
        {"window_minutes": True},
        {"max_recent": -1},
        {"max_types": 0},
        {"max_message_length": 0},
        {"history_minutes": 0},
        {"history_minutes": 120.5},
        {"history_minutes": True},
        {"history_minutes": 59},
    ],
)
def test_options_are_validated(kwargs):
    """Every option is checked when the aggregator is built, with a clear message."""
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        ErrorAggregator(**kwargs)


def test_a_custom_store_receives_the_state():
    """The aggregator keeps its state only in the store it is given."""
    store = InMemoryAggregatorStore(max_recent=2)
    aggregator = ErrorAggregator(clock=aligned_clock(), store=store)
    for index in range(5):
        aggregator.record_error("a", str(index))
    assert dict(store.totals()) == {"a": 5}
    assert [e.message for e in store.recent()] == ["4", "3"]
    assert aggregator.store is store


# --------------------------------------------------------------------------- concurrency


def test_32_threads_recording_at_once_keep_exact_totals():
    """32 threads recording concurrently lose no count, by type and in total."""
    clock = aligned_clock()
    aggregator = ErrorAggregator(clock=clock)
    per_thread = 2_000
    start = threading.Barrier(32)

    def work(worker: int) -> None:
        start.wait()
        for index in range(per_thread):
            aggregator.record_error(f"type_{worker % 4}", "x", {"i": index})
            if worker == 0 and index % 100 == 0:
                clock.advance(1)  # minutes roll over while others record

    threads = [threading.Thread(target=work, args=(w,)) for w in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = aggregator.get_error_stats()
    assert stats["total_errors"] == 32 * per_thread
    assert stats["errors_by_type"] == {f"type_{t}": 8 * per_thread for t in range(4)}


# --------------------------------------------------------------------------- property


steps = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=200, allow_nan=False),
        st.sampled_from(["a", "b", "c", "d"]),
    ),
    max_size=80,
)


@settings(max_examples=150, deadline=None)
@given(window=st.integers(min_value=1, max_value=5), steps=steps, tail=st.floats(0, 400))
def test_totals_equal_what_was_recorded_inside_the_window(window, steps, tail):
    """Property: after any sequence of records and clock advances, the counts per type equal a
    recount of the errors whose minute is one of the last `window` minutes."""
    clock = FakeClock(wall_start=MINUTE_START + 17.25)
    aggregator = ErrorAggregator(window_minutes=window, clock=clock)
    recorded: list[tuple[float, str]] = []

    def expected() -> dict[str, int]:
        current = int(clock.wall() // 60)
        counts: dict[str, int] = {}
        for moment, error_type in recorded:
            if current - int(moment // 60) < window:
                counts[error_type] = counts.get(error_type, 0) + 1
        return counts

    for advance, error_type in steps:
        clock.advance(advance)
        aggregator.record_error(error_type, "x")
        recorded.append((clock.wall(), error_type))
        if len(recorded) % 7 == 0:
            assert aggregator.get_error_stats()["errors_by_type"] == expected()
    clock.advance(tail)
    stats = aggregator.get_error_stats()
    assert stats["errors_by_type"] == expected()
    assert stats["total_errors"] == sum(expected().values())
    assert sum(aggregator.get_timeseries()["total"]) == stats["total_errors"]


def test_a_store_subclass_is_called_through_the_protocol():
    """Only the exact default store is written inline; a subclass gets every add() call."""

    class CountingStore(InMemoryAggregatorStore):
        def __init__(self) -> None:
            super().__init__()
            self.added: list[tuple[str, ErrorEntry]] = []

        def add(self, minute: int, counted_type: str, entry: ErrorEntry) -> None:
            self.added.append((counted_type, entry))
            super().add(minute, counted_type, entry)

    store = CountingStore()
    aggregator = ErrorAggregator(clock=aligned_clock(), max_types=1, store=store)
    aggregator.record_error("a", "first", {"endpoint": "/x"})
    aggregator.record_error("b", "second")
    assert [(counted, entry.type, entry.message) for counted, entry in store.added] == [
        ("a", "a", "first"),
        (OTHER_ERROR_TYPE, "b", "second"),
    ]
    assert all(type(entry) is ErrorEntry for _, entry in store.added)
    assert aggregator.get_error_stats()["errors_by_type"] == {"a": 1, OTHER_ERROR_TYPE: 1}


@pytest.mark.parametrize("recorded", [10, 20_000])
def test_stats_read_only_the_running_totals_however_many_errors(recorded):
    """get_error_stats never walks the recorded errors: it reads one total per type."""

    class ReadCountingStore(InMemoryAggregatorStore):
        def __init__(self) -> None:
            super().__init__()
            self.reads: list[str] = []

        def totals(self):
            self.reads.append("totals")
            return super().totals()

        def buckets(self):
            self.reads.append("buckets")
            return super().buckets()

        def recent(self):
            self.reads.append("recent")
            return super().recent()

    clock = aligned_clock()
    store = ReadCountingStore()
    aggregator = ErrorAggregator(window_minutes=60, clock=clock, store=store)
    for index in range(recorded):
        aggregator.record_error(f"type_{index % 3}", "boom")
        clock.advance(0.1)
    store.reads.clear()
    stats = aggregator.get_error_stats()
    assert store.reads == ["totals"]
    assert len(store.totals()) == 3
    assert stats["total_errors"] == sum(stats["errors_by_type"].values())


def test_the_default_store_hands_out_error_entries():
    """Entries recorded on the inlined path read back from the store as ErrorEntry values."""
    clock = aligned_clock()
    aggregator = ErrorAggregator(clock=clock)
    aggregator.record_error("api_failure", "Connection timeout", {"endpoint": "/api/chat"})
    clock.advance(1.5)
    aggregator.record_error("db", "down")
    entries = list(aggregator.store.recent())
    assert all(type(entry) is ErrorEntry for entry in entries)
    assert [(e.timestamp, e.type, e.message, e.context) for e in entries] == [
        (MINUTE_START + 1.5, "db", "down", None),
        (MINUTE_START, "api_failure", "Connection timeout", {"endpoint": "/api/chat"}),
    ]


def test_a_str_subclass_context_value_is_stored_as_a_plain_str():
    """A StrEnum value is kept as the plain string, whether or not it was seen before."""

    class Color(enum.StrEnum):
        RED = "a-colour-never-recorded-before"

    aggregator = ErrorAggregator(clock=aligned_clock())
    aggregator.record_error("a", "m", {"color": Color.RED})
    aggregator.record_error("a", "m", {"color": Color.RED})
    for record in aggregator.get_recent_errors():
        assert type(record["context"]["color"]) is str
        assert record["context"]["color"] == "a-colour-never-recorded-before"


def test_repeated_contexts_are_kept_as_they_were_when_recorded():
    """A context recorded again, changed in between, or holding a secret, is stored right."""
    aggregator = ErrorAggregator(clock=aligned_clock())
    context = {"endpoint": "/api/chat", "model": "grok"}
    aggregator.record_error("a", "m", context)
    context["endpoint"] = "/api/pulse"
    aggregator.record_error("a", "m", context)
    aggregator.record_error("a", "m", {"endpoint": "/api/chat", "model": "grok"})
    for _ in range(2):
        aggregator.record_error("a", "m", {"endpoint": "/x", "api_key": "sk-live-abcdefghijklmnop"})
    contexts = [record["context"] for record in aggregator.get_recent_errors()]
    assert contexts == [
        {"endpoint": "/x", "api_key": REDACTED},
        {"endpoint": "/x", "api_key": REDACTED},
        {"endpoint": "/api/chat", "model": "grok"},
        {"endpoint": "/api/pulse", "model": "grok"},
        {"endpoint": "/api/chat", "model": "grok"},
    ]
    contexts[2]["endpoint"] = "changed by a reader"
    assert aggregator.get_recent_errors()[2]["context"]["endpoint"] == "/api/chat"
    assert aggregator.get_recent_errors()[4]["context"]["endpoint"] == "/api/chat"


# --------------------------------------------------------------------------- history


def test_history_defaults_to_the_window():
    """Without history_minutes the counts are kept exactly as long as the window."""
    aggregator = ErrorAggregator(window_minutes=15)
    assert aggregator.history_minutes == 15
    assert aggregator.options.history_minutes == 15
    assert aggregator.options == AggregatorOptions(window_minutes=15, history_minutes=15)


def test_a_history_shorter_than_the_window_is_refused_with_both_values():
    """history_minutes < window_minutes raises a ValueError naming both and the value given."""
    with pytest.raises(
        ValueError, match=r"history_minutes must be >= window_minutes \(60\), got 30"
    ):
        ErrorAggregator(window_minutes=60, history_minutes=30)
    with pytest.raises(ValueError, match="history_minutes"):
        AggregatorOptions(window_minutes=10, history_minutes=9)
    assert ErrorAggregator(window_minutes=60, history_minutes=60).history_minutes == 60


def test_a_bucket_leaves_the_totals_with_the_window_and_the_chart_with_the_history():
    """Window 3, history 5: an error stops counting at minute 3 but stays charted until minute 5."""
    clock = aligned_clock()
    aggregator = ErrorAggregator(window_minutes=3, history_minutes=5, clock=clock)
    clock.advance(30)
    aggregator.record_error("a", "minute 0")
    clock.advance(2 * 60 + 29.999)  # the last instant of minute 2
    assert aggregator.get_error_stats()["total_errors"] == 1
    assert len(aggregator.get_recent_errors()) == 1
    clock.advance(0.001)  # minute 3: minute 0 leaves the window, not the history
    assert aggregator.get_error_stats()["total_errors"] == 0
    assert aggregator.get_error_stats()["errors_by_type"] == {}
    assert aggregator.get_recent_errors() == []
    assert aggregator.get_timeseries(minutes=5)["series"] == {"a": [0, 1, 0, 0, 0]}
    assert aggregator.get_timeseries()["series"] == {}  # the default span is the window
    clock.advance(60 + 59.999)  # the last instant of minute 4: minute 0 is the oldest kept
    assert aggregator.get_timeseries(minutes=5)["series"] == {"a": [1, 0, 0, 0, 0]}
    clock.advance(0.001)  # minute 5: minute 0 leaves the history
    assert aggregator.get_timeseries(minutes=5)["series"] == {}
    assert list(aggregator.store.buckets()) == []


def test_a_type_slot_frees_up_when_the_type_leaves_the_window_not_the_history():
    """The max_types cap counts the window's types only, whatever the history still charts."""
    clock = aligned_clock()
    aggregator = ErrorAggregator(window_minutes=1, history_minutes=10, clock=clock, max_types=1)
    aggregator.record_error("first", "x")
    clock.advance(60)
    aggregator.record_error("second", "x")
    assert aggregator.get_error_stats()["errors_by_type"] == {"second": 1}
    assert aggregator.get_timeseries(minutes=2)["series"] == {"first": [1, 0], "second": [0, 1]}


def test_stats_and_recent_errors_are_the_same_whatever_the_history():
    """The same records on a window-only and a 240-minute-history aggregator read back the same."""
    clocks = [aligned_clock(), aligned_clock()]
    plain = ErrorAggregator(window_minutes=60, clock=clocks[0])
    long = ErrorAggregator(window_minutes=60, history_minutes=240, clock=clocks[1])
    for index in range(600):
        for aggregator, clock in ((plain, clocks[0]), (long, clocks[1])):
            aggregator.record_error(f"t{index % 7}", f"error {index}", {"i": index})
            clock.advance(23.5)  # 235 minutes in all, so plenty leaves the window
        if index % 50 == 0:
            assert long.get_error_stats() == plain.get_error_stats()
            assert long.get_recent_errors(limit=200) == plain.get_recent_errors(limit=200)
    assert long.get_error_stats() == plain.get_error_stats()
    assert long.get_recent_errors(limit=200) == plain.get_recent_errors(limit=200)
    assert long.get_timeseries(minutes=60) == plain.get_timeseries(minutes=60)
    assert 0 < long.get_error_stats()["total_errors"] < 600


def test_timeseries_of_240_minutes_with_a_60_minute_window():
    """A 60-minute window with a 240-minute history charts 240 minutes; stats stay at 60."""
    clock = aligned_clock()
    aggregator = ErrorAggregator(window_minutes=60, history_minutes=240, clock=clock)
    start = clock.wall()
    recorded: list[tuple[float, str]] = []
    for minute in range(300):  # five hours: the first hour leaves even the history
        for count in range(minute % 4):
            error_type = "timeout" if count % 2 else "api_failure"
            aggregator.record_error(error_type, "x")
            recorded.append((clock.wall(), error_type))
        clock.advance(60)
    current = int(clock.wall() // 60)

    def recount(minutes: int) -> list[int]:
        per_minute = [0] * minutes
        for moment, _ in recorded:
            age = current - int(moment // 60)
            if age < minutes:
                per_minute[minutes - 1 - age] += 1
        return per_minute

    series = aggregator.get_timeseries(minutes=240)
    assert series["window_minutes"] == 240
    assert len(series["timestamps"]) == len(series["total"]) == 240
    assert parse(series["timestamps"][0]) == (current - 239) * 60
    assert parse(series["timestamps"][0]) > start
    assert series["total"] == recount(240)
    assert sum(series["totals"].values()) == sum(recount(240))
    stats = aggregator.get_error_stats()
    assert stats["window_minutes"] == 60
    assert stats["total_errors"] == sum(recount(60)) < sum(recount(240))
    assert stats["error_rate"] == round(sum(recount(60)) / 60, 3)
    assert aggregator.get_timeseries()["total"] == recount(60)
    assert aggregator.get_timeseries(minutes=15)["total"] == recount(15)
    capped = aggregator.get_timeseries(minutes=10_000)
    assert capped["window_minutes"] == 240
    assert capped["total"] == recount(240)
    assert len(list(aggregator.store.buckets())) <= 240


def test_load_restores_the_history_for_the_chart_but_not_for_the_stats():
    """Restored records older than the window but inside the history only fill the chart."""
    clock = aligned_clock()
    aggregator = ErrorAggregator(window_minutes=60, history_minutes=240, clock=clock, max_types=2)
    now = clock.wall()
    records = [
        {"timestamp": now - 10 * 60, "type": "a", "message": "in the window"},
        {"timestamp": now - 120 * 60, "type": "a", "message": "in the history"},
        {"timestamp": now - 120 * 60 + 5, "type": "b", "message": "in the history"},
        {"timestamp": now - 120 * 60 + 9, "type": "c", "message": "beyond max_types"},
        {"timestamp": now - 300 * 60, "type": "a", "message": "too old"},
    ]
    assert aggregator.load(records) == 4
    assert aggregator.get_error_stats()["errors_by_type"] == {"a": 1}
    assert [r["message"] for r in aggregator.get_recent_errors()] == ["in the window"]
    series = aggregator.get_timeseries(minutes=240)
    assert series["totals"] == {"a": 2, "b": 1, OTHER_ERROR_TYPE: 1}
    assert series["total"][239 - 120] == 3
    assert series["total"][239 - 10] == 1


def test_the_store_is_given_both_cutoffs():
    """A custom store sees the window's and the history's oldest minute on every expiry."""

    class RecordingStore(InMemoryAggregatorStore):
        def __init__(self) -> None:
            super().__init__()
            self.cutoffs: list[tuple[int, int | None]] = []

        def expire(self, oldest_minute: int, oldest_history_minute: int | None = None) -> None:
            self.cutoffs.append((oldest_minute, oldest_history_minute))
            super().expire(oldest_minute, oldest_history_minute)

    store = RecordingStore()
    clock = aligned_clock()
    aggregator = ErrorAggregator(window_minutes=2, history_minutes=4, clock=clock, store=store)
    aggregator.record_error("a", "x")
    clock.advance(3 * 60)
    aggregator.record_error("a", "y")
    minute = int(MINUTE_START // 60)
    assert store.cutoffs == [(minute - 1, minute - 3), (minute + 2, minute)]
    assert aggregator.get_error_stats()["errors_by_type"] == {"a": 1}
    assert aggregator.get_timeseries(minutes=4)["series"] == {"a": [1, 0, 0, 1]}


@settings(max_examples=150, deadline=None)
@given(
    window=st.integers(min_value=1, max_value=5),
    extra=st.integers(min_value=0, max_value=8),
    steps=steps,
    tail=st.floats(0, 600),
)
def test_totals_equal_the_window_and_the_chart_the_history(window, extra, steps, tail):
    """Property: with any history >= window, the totals still equal a recount of the window, and
    the chart over the whole history equals a recount per minute of the history."""
    history = window + extra
    clock = FakeClock(wall_start=MINUTE_START + 17.25)
    aggregator = ErrorAggregator(window_minutes=window, history_minutes=history, clock=clock)
    recorded: list[tuple[float, str]] = []

    def recount(minutes: int) -> dict[str, int]:
        current = int(clock.wall() // 60)
        counts: dict[str, int] = {}
        for moment, error_type in recorded:
            if current - int(moment // 60) < minutes:
                counts[error_type] = counts.get(error_type, 0) + 1
        return counts

    def per_minute() -> list[int]:
        current = int(clock.wall() // 60)
        row = [0] * history
        for moment, _ in recorded:
            age = current - int(moment // 60)
            if age < history:
                row[history - 1 - age] += 1
        return row

    for advance, error_type in steps:
        clock.advance(advance)
        aggregator.record_error(error_type, "x")
        recorded.append((clock.wall(), error_type))
        if len(recorded) % 7 == 0:
            assert aggregator.get_error_stats()["errors_by_type"] == recount(window)
    clock.advance(tail)
    stats = aggregator.get_error_stats()
    assert stats["errors_by_type"] == recount(window)
    assert stats["total_errors"] == sum(recount(window).values())
    assert len(aggregator.get_recent_errors(limit=200)) == min(200, stats["total_errors"])
    chart = aggregator.get_timeseries(minutes=history)
    assert chart["totals"] == dict(sorted(recount(history).items(), key=lambda i: (-i[1], i[0])))
    assert chart["total"] == per_minute()
    assert len(list(aggregator.store.buckets())) <= history
