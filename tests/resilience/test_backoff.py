"""Backoff arithmetic and jitter strategies (src/jupiter/resilience/_backoff.py)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jupiter.resilience import (
    DecorrelatedJitter,
    DelayRequest,
    EqualJitter,
    FullJitter,
    NoJitter,
    RetryOptions,
)
from jupiter.resilience._backoff import clamp_delay, exponential_delay, resolve_jitter
from jupiter.resilience._retry import RetryCore


def request(
    exponential: float,
    *,
    previous: float = 0.0,
    initial: float = 1.0,
    cap: float = 30.0,
    draw: float = 0.5,
    retry: int = 1,
) -> DelayRequest:
    """A DelayRequest whose random source always returns ``draw``."""
    return DelayRequest(
        retry=retry,
        exponential=exponential,
        previous=previous,
        initial=initial,
        max_delay=cap,
        random=lambda: draw,
    )


@pytest.mark.parametrize(
    ("initial", "factor", "cap", "expected"),
    [
        (1.0, 2.0, 30.0, [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]),  # standard preset, capped
        (0.5, 1.5, 30.0, [0.5, 0.75, 1.125, 1.6875]),  # quick preset
        (2.0, 2.0, 30.0, [2.0, 4.0, 8.0, 16.0, 30.0]),  # patient preset
        (3.0, 1.0, 30.0, [3.0, 3.0, 3.0]),  # constant
        (0.0, 2.0, 30.0, [0.0, 0.0]),  # no delay at all
    ],
)
def test_exponential_delay_grows_by_factor_until_the_cap(initial, factor, cap, expected):
    """Retry n waits initial * factor ** (n - 1), never more than the cap."""
    got = [exponential_delay(n, initial, factor, cap) for n in range(1, len(expected) + 1)]
    assert got == pytest.approx(expected)


@pytest.mark.parametrize("retry", [10_000, 10**6, 10**100, 10**400, 2**62 + 1, 2**5000])
@pytest.mark.parametrize("factor", [1.01, 2.0, 10.0, 1e300])
def test_exponential_delay_never_overflows(retry, factor):
    """Huge retry numbers and factors give the cap: no OverflowError, no inf."""
    delay = exponential_delay(retry, 1.0, factor, 30.0)
    assert delay == 30.0
    assert math.isfinite(delay)


@pytest.mark.parametrize("retry", [10**6, 10**400, 2**5000])
@pytest.mark.parametrize(("factor", "expected"), [(1.0, 2.0), (0.5, 0.0), (0.0, 0.0)])
def test_a_factor_of_at_most_one_never_overflows_either(retry, factor, expected):
    """Factor 1 keeps the initial delay and a shrinking factor reaches 0, for any retry."""
    assert exponential_delay(retry, 2.0, factor, 30.0) == expected


def test_exponential_delay_with_tiny_initial_and_huge_attempt_stays_finite():
    """A denormal initial delay and attempt 10_000 still land inside [0, cap]."""
    delay = exponential_delay(10_000, 5e-324, 2.0, 30.0)
    assert 0.0 <= delay <= 30.0


def test_no_jitter_returns_the_exponential_delay():
    """NoJitter is deterministic."""
    assert NoJitter()(request(8.0)) == 8.0


@pytest.mark.parametrize(("draw", "expected"), [(0.0, 0.0), (0.25, 2.0), (0.999, 7.992)])
def test_full_jitter_is_uniform_between_zero_and_the_delay(draw, expected):
    """Full jitter: uniform(0, exponential)."""
    assert FullJitter()(request(8.0, draw=draw)) == pytest.approx(expected)


@pytest.mark.parametrize(("draw", "expected"), [(0.0, 4.0), (0.5, 6.0), (0.999, 7.996)])
def test_equal_jitter_keeps_at_least_half_the_delay(draw, expected):
    """Equal jitter: exponential / 2 + uniform(0, exponential / 2)."""
    assert EqualJitter()(request(8.0, draw=draw)) == pytest.approx(expected)


def test_decorrelated_jitter_starts_from_the_initial_delay():
    """Before any sleep, the range is [initial, initial * 3]."""
    low = DecorrelatedJitter()(request(1.0, previous=0.0, initial=1.0, draw=0.0))
    high = DecorrelatedJitter()(request(1.0, previous=0.0, initial=1.0, draw=1.0))
    assert (low, high) == (1.0, 3.0)


def test_decorrelated_jitter_grows_from_the_previous_sleep_and_is_capped():
    """Range [initial, min(cap, previous * 3)], per the AWS post."""
    assert DecorrelatedJitter()(request(1.0, previous=4.0, draw=0.5)) == pytest.approx(6.5)
    assert DecorrelatedJitter()(request(1.0, previous=25.0, draw=1.0, cap=30.0)) == 30.0
    assert DecorrelatedJitter(multiplier=2.0)(request(1.0, previous=4.0, draw=1.0)) == 8.0


def test_decorrelated_jitter_rejects_a_bad_multiplier():
    """A multiplier below 1 would shrink forever: clear error."""
    with pytest.raises(ValueError, match="multiplier"):
        DecorrelatedJitter(multiplier=0.5)


@pytest.mark.parametrize(
    ("delay", "expected"),
    [
        (-5.0, 0.0),
        (0.0, 0.0),
        (3.0, 3.0),
        (31.0, 30.0),
        (math.inf, 30.0),
        (-math.inf, 0.0),
        (math.nan, 30.0),
    ],
)
def test_clamp_delay_forces_any_value_into_range(delay, expected):
    """Negative, infinite and NaN answers are clamped into [0, max_delay]."""
    assert clamp_delay(delay, 30.0) == expected


def test_resolve_jitter_accepts_names_callables_and_none():
    """Names map to the strategy objects; a plain callable is used as is."""
    assert isinstance(resolve_jitter("full"), FullJitter)
    assert isinstance(resolve_jitter("equal"), EqualJitter)
    assert isinstance(resolve_jitter("decorrelated"), DecorrelatedJitter)
    assert isinstance(resolve_jitter(None), NoJitter)

    def half(req: DelayRequest) -> float:
        return req.exponential / 2

    assert resolve_jitter(half) is half


def test_resolve_jitter_rejects_unknown_names():
    """An unknown name lists the valid ones."""
    with pytest.raises(ValueError, match="decorrelated, equal, full, none"):
        resolve_jitter("random")  # type: ignore[arg-type]


STRATEGIES = st.one_of(
    st.sampled_from(["none", "full", "equal", "decorrelated"]),
    st.builds(DecorrelatedJitter, multiplier=st.floats(1.0, 1e6)),
    # A user strategy that returns anything at all, including garbage.
    st.floats(allow_nan=True, allow_infinity=True).map(lambda v: lambda _req: v),
)


@given(
    jitter=STRATEGIES,
    retry=st.integers(min_value=1, max_value=10**12),
    previous=st.floats(min_value=0.0, max_value=1e308),
    draw=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
    initial=st.floats(min_value=0.0, max_value=1e6),
    factor=st.floats(min_value=1.0, max_value=1e6),
    cap=st.floats(min_value=0.0, max_value=1e6),
)
def test_property_delays_always_within_zero_and_max_delay(
    jitter, retry, previous, draw, initial, factor, cap
):
    """Whatever the strategy, attempt number or random draw, the delay is in [0, max_delay]."""
    options = RetryOptions(
        initial_delay=initial,
        backoff_factor=factor,
        max_delay=cap,
        jitter=jitter,
        random=lambda: draw,
    )
    delay = RetryCore(options).delay_for(retry, previous)
    assert 0.0 <= delay <= cap
    assert math.isfinite(delay)
