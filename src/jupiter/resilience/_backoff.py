"""Backoff delays: overflow-proof exponential growth and small, composable jitter strategies.

A jitter strategy is anything callable as ``strategy(request: DelayRequest) -> float``: the four
classes below, or a plain function (tenacity style). Whatever a strategy returns, the retry core
clamps it into ``[0, max_delay]`` with :func:`clamp_delay`, so a buggy strategy cannot produce a
negative, infinite or NaN sleep.

The jitter formulas follow the AWS Architecture Blog post "Exponential Backoff And Jitter"
(Marc Brooker, 2015), where ``exponential = min(max_delay, initial * factor ** (n - 1))``:

* none:          ``exponential``
* full:          ``uniform(0, exponential)``
* equal:         ``exponential / 2 + uniform(0, exponential / 2)``
* decorrelated:  ``min(max_delay, uniform(initial, previous * 3))`` (``previous`` starts at initial)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeAlias

from ._clock import RandomSource

__all__ = [
    "DecorrelatedJitter",
    "DelayRequest",
    "EqualJitter",
    "FullJitter",
    "JitterName",
    "JitterStrategy",
    "NoJitter",
    "clamp_delay",
    "exponential_delay",
    "resolve_jitter",
]


@dataclass(frozen=True, slots=True)
class DelayRequest:
    """Everything a jitter strategy may use to pick the delay before retry number ``retry``.

    ``exponential`` is already capped at ``max_delay``; ``previous`` is the delay actually
    slept before the previous retry (0.0 before the first retry).
    """

    retry: int
    exponential: float
    previous: float
    initial: float
    max_delay: float
    random: RandomSource


JitterStrategy: TypeAlias = Callable[[DelayRequest], float]
JitterName: TypeAlias = Literal["none", "full", "equal", "decorrelated"]


_LARGEST_EXPONENT = 2**62


def exponential_delay(retry: int, initial: float, factor: float, max_delay: float) -> float:
    """``min(max_delay, initial * factor ** (retry - 1))`` without overflow for any ``retry``.

    The comparison with the cap happens in log space, so retry number 10_000 (or 10**400)
    yields ``max_delay`` instead of raising OverflowError or returning ``inf``.
    """
    if initial <= 0.0 or max_delay <= 0.0:
        return 0.0
    # Python ints beyond about 2**1024 cannot become floats (OverflowError in ``factor ** n``
    # and ``n * log``); no loop retries 2**62 times, and past that the answer no longer moves.
    exponent = min(max(retry - 1, 0), _LARGEST_EXPONENT)
    if factor <= 1.0 or exponent == 0:
        # A factor below 1 only shrinks the delay; factor ** exponent cannot overflow then.
        return min(max_delay, initial * factor**exponent)
    if math.log(initial) + exponent * math.log(factor) >= math.log(max_delay):
        return max_delay
    return min(max_delay, initial * factor**exponent)


def clamp_delay(delay: float, max_delay: float) -> float:
    """Force any strategy's answer into ``[0, max_delay]``; NaN counts as the cap."""
    if delay != delay:  # NaN
        return max_delay
    if delay <= 0.0:
        return 0.0
    return min(delay, max_delay)


class NoJitter:
    """The plain exponential delay: deterministic, as in the seed."""

    __slots__ = ()

    def __call__(self, request: DelayRequest) -> float:
        return request.exponential

    def __repr__(self) -> str:
        return "NoJitter()"


class FullJitter:
    """``uniform(0, exponential)``: the least contention, occasionally a very short wait."""

    __slots__ = ()

    def __call__(self, request: DelayRequest) -> float:
        return request.random() * request.exponential

    def __repr__(self) -> str:
        return "FullJitter()"


class EqualJitter:
    """``exponential / 2 + uniform(0, exponential / 2)``: never less than half the backoff."""

    __slots__ = ()

    def __call__(self, request: DelayRequest) -> float:
        half = request.exponential / 2.0
        return half + request.random() * half

    def __repr__(self) -> str:
        return "EqualJitter()"


class DecorrelatedJitter:
    """``min(max_delay, uniform(initial, previous * multiplier))``, growing from the last sleep.

    It ignores ``backoff_factor``: the growth comes from ``multiplier`` (3 in the AWS post).
    """

    __slots__ = ("multiplier",)

    def __init__(self, multiplier: float = 3.0) -> None:
        if not (math.isfinite(multiplier) and multiplier >= 1.0):
            raise ValueError(f"multiplier must be a finite number >= 1, got {multiplier!r}")
        self.multiplier = multiplier

    def __call__(self, request: DelayRequest) -> float:
        low = min(request.initial, request.max_delay)
        previous = request.previous if request.previous > 0.0 else low
        # Cap the upper bound before multiplying by random, so it stays finite.
        high = min(request.max_delay, previous * self.multiplier)
        if high <= low:
            return low
        return low + request.random() * (high - low)

    def __repr__(self) -> str:
        return f"DecorrelatedJitter(multiplier={self.multiplier!r})"


_NAMED: dict[str, JitterStrategy] = {
    "none": NoJitter(),
    "full": FullJitter(),
    "equal": EqualJitter(),
    "decorrelated": DecorrelatedJitter(),
}


def resolve_jitter(jitter: JitterStrategy | JitterName | None) -> JitterStrategy:
    """Accept a strategy object, a plain callable, one of the four names, or None (= "none")."""
    if jitter is None:
        return _NAMED["none"]
    if isinstance(jitter, str):
        try:
            return _NAMED[jitter]
        except KeyError:
            names = ", ".join(sorted(_NAMED))
            raise ValueError(f"unknown jitter {jitter!r}; expected one of: {names}") from None
    if not callable(jitter):
        raise ValueError(f"jitter must be a name or a callable(DelayRequest), got {jitter!r}")
    return jitter
