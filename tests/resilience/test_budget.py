"""The shared retry budget (src/jupiter/resilience/_budget.py)."""

from __future__ import annotations

import threading

import pytest

from jupiter.resilience import RetryBudget, retry_with_backoff
from jupiter.resilience.testing import FakeClock

THREADS = 16


def run_in_threads(target, count: int = THREADS) -> None:
    """Start ``count`` threads on ``target`` together (barrier) and join them."""
    barrier = threading.Barrier(count)

    def body() -> None:
        barrier.wait()
        target()

    threads = [threading.Thread(target=body) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_a_full_budget_pays_for_capacity_retries_then_refuses():
    """Starting full, exactly ``capacity`` withdrawals succeed without deposits or refill."""
    budget = RetryBudget(ratio=0.2, capacity=3.0, refill_per_second=0.0, clock=FakeClock())
    assert [budget.try_withdraw() for _ in range(5)] == [True, True, True, False, False]


def test_deposits_earn_ratio_tokens_and_are_capped_at_capacity():
    """Each deposit adds ``ratio``; the balance never exceeds ``capacity``."""
    budget = RetryBudget(
        ratio=0.2, capacity=2.0, refill_per_second=0.0, initial_tokens=0.0, clock=FakeClock()
    )
    for _ in range(5):
        budget.deposit()
    assert budget.available == pytest.approx(1.0)
    assert budget.try_withdraw() is True
    assert budget.try_withdraw() is False
    for _ in range(100):
        budget.deposit()
    assert budget.available == 2.0


def test_refill_follows_the_injected_clock():
    """Tokens trickle in at refill_per_second of clock time, up to capacity."""
    clock = FakeClock()
    budget = RetryBudget(
        ratio=0.0, capacity=5.0, refill_per_second=0.5, initial_tokens=0.0, clock=clock
    )
    assert budget.try_withdraw() is False
    clock.advance(2.0)
    assert budget.try_withdraw() is True
    assert budget.try_withdraw() is False
    clock.advance(1_000.0)
    assert budget.available == 5.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ratio": -0.1}, "ratio"),
        ({"capacity": 0.5}, "capacity"),
        ({"capacity": float("inf")}, "capacity"),
        ({"refill_per_second": float("nan")}, "refill_per_second"),
        ({"initial_tokens": 20.0}, "initial_tokens"),
    ],
)
def test_budget_rejects_bad_settings(kwargs, message):
    """Invalid settings raise ValueError naming the setting."""
    with pytest.raises(ValueError, match=message):
        RetryBudget(**kwargs)


def test_many_threads_never_overspend_the_budget():
    """16 threads × 500 deposits of 0.5, then 16 threads withdrawing: exactly 4,000 succeed."""
    budget = RetryBudget(
        ratio=0.5, capacity=1e9, refill_per_second=0.0, initial_tokens=0.0, clock=FakeClock()
    )
    run_in_threads(lambda: [budget.deposit() for _ in range(500)])
    assert budget.available == 4_000.0
    granted = []
    lock = threading.Lock()

    def spend() -> None:
        mine = sum(budget.try_withdraw() for _ in range(1_000))
        with lock:
            granted.append(mine)

    run_in_threads(spend)
    assert sum(granted) == 4_000
    assert budget.available == 0.0


def test_interleaved_deposits_and_withdrawals_keep_exact_accounting():
    """Concurrent mixing: granted + remaining == initial + deposits × ratio."""
    budget = RetryBudget(
        ratio=0.25, capacity=1e9, refill_per_second=0.0, initial_tokens=10.0, clock=FakeClock()
    )
    granted = []
    lock = threading.Lock()

    def mixed() -> None:
        mine = 0
        for _ in range(400):
            budget.deposit()
            mine += budget.try_withdraw()
        with lock:
            granted.append(mine)

    run_in_threads(mixed)
    assert sum(granted) + budget.available == pytest.approx(10.0 + THREADS * 400 * 0.25)


def test_retry_storm_is_bounded_by_a_shared_budget():
    """16 threads calling a dead service share 5 tokens: exactly 5 retries happen in total."""
    clock = FakeClock()
    budget = RetryBudget(ratio=0.0, capacity=5.0, refill_per_second=0.0, clock=clock)
    calls = []
    lock = threading.Lock()

    @retry_with_backoff(max_attempts=10, budget=budget, clock=clock)
    def dead_service() -> None:
        with lock:
            calls.append(1)
        raise ConnectionError("down")

    def caller() -> None:
        with pytest.raises(ConnectionError):
            dead_service()

    run_in_threads(caller)
    assert len(calls) == THREADS + 5
