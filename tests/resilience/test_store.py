"""The in-memory aggregator store: per-minute buckets, running totals, a bounded recent ring."""

from __future__ import annotations

import pytest

from jupiter.resilience import AggregatorStore, ErrorEntry, InMemoryAggregatorStore


def entry(timestamp: float, error_type: str = "a") -> ErrorEntry:
    return ErrorEntry(timestamp, error_type, "message", None)


def test_in_memory_store_satisfies_the_protocol():
    """The default store is an AggregatorStore, so callers can swap in another one."""
    assert isinstance(InMemoryAggregatorStore(), AggregatorStore)


def test_totals_follow_adds_across_buckets():
    """Running totals equal the sum of every bucket's counts."""
    store = InMemoryAggregatorStore()
    for minute, error_type in [(10, "a"), (10, "a"), (11, "b"), (12, "a")]:
        store.add(minute, error_type, entry(minute * 60.0, error_type))
    assert dict(store.totals()) == {"a": 3, "b": 1}
    assert sorted((m, dict(c)) for m, c in store.buckets()) == [
        (10, {"a": 2}),
        (11, {"b": 1}),
        (12, {"a": 1}),
    ]


def test_expire_subtracts_old_buckets_from_the_totals():
    """Expiring minutes removes their counts, and types that reach zero disappear."""
    store = InMemoryAggregatorStore()
    store.add(10, "a", entry(600.0))
    store.add(11, "b", entry(660.0))
    store.add(12, "a", entry(720.0))
    store.expire(12)
    assert dict(store.totals()) == {"a": 1}
    assert [m for m, _ in store.buckets()] == [12]
    assert [e.timestamp for e in store.recent()] == [720.0]


def test_expire_with_a_history_keeps_buckets_out_of_the_totals_until_they_are_forgotten():
    """A minute leaving the window leaves the totals and the recent ring, not the buckets."""
    store = InMemoryAggregatorStore()
    store.add(10, "a", entry(600.0))
    store.add(11, "b", entry(660.0))
    store.add(12, "a", entry(720.0))
    store.expire(12, 10)
    assert dict(store.totals()) == {"a": 1}
    assert sorted((m, dict(c)) for m, c in store.buckets()) == [
        (10, {"a": 1}),
        (11, {"b": 1}),
        (12, {"a": 1}),
    ]
    assert [e.timestamp for e in store.recent()] == [720.0]
    store.expire(13, 11)
    assert dict(store.totals()) == {}
    assert sorted(m for m, _ in store.buckets()) == [11, 12]
    store.expire(13, 13)
    assert list(store.buckets()) == []


def test_add_history_fills_a_bucket_only():
    """A restored minute outside the window is charted but neither totalled nor listed."""
    store = InMemoryAggregatorStore()
    store.expire(20, 10)
    store.add_history(15, "a")
    store.add_history(15, "a")
    store.add(20, "a", entry(1200.0))
    assert dict(store.totals()) == {"a": 1}
    assert sorted((m, dict(c)) for m, c in store.buckets()) == [(15, {"a": 2}), (20, {"a": 1})]
    assert [e.timestamp for e in store.recent()] == [1200.0]
    store.expire(21, 16)
    assert sorted((m, dict(c)) for m, c in store.buckets()) == [(20, {"a": 1})]
    store.clear()
    assert list(store.buckets()) == []


def test_recent_is_newest_first_and_bounded():
    """The ring keeps only max_recent entries, newest first."""
    store = InMemoryAggregatorStore(max_recent=3)
    for second in range(10):
        store.add(0, "a", entry(float(second)))
    assert [e.timestamp for e in store.recent()] == [9.0, 8.0, 7.0]
    assert store.max_recent == 3


def test_clear_forgets_everything():
    """After clear there are no counts, buckets or recent entries."""
    store = InMemoryAggregatorStore()
    store.add(1, "a", entry(60.0))
    store.clear()
    assert (dict(store.totals()), list(store.buckets()), list(store.recent())) == ({}, [], [])


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_max_recent_is_validated(bad):
    """A negative or non-integer ring size is refused with a clear error."""
    with pytest.raises(ValueError, match="max_recent"):
        InMemoryAggregatorStore(max_recent=bad)
