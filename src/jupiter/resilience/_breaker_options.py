"""The circuit breaker's vocabulary: its states, its one validated options object, and the
classification of outcomes. No state and no I/O here."""

from __future__ import annotations

import enum
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypedDict, cast

from ._clock import DEFAULT_RANDOM, SYSTEM_CLOCK, Clock, RandomSource
from ._exceptions import STOP_SIGNALS

if TYPE_CHECKING:
    from ._breaker_store import BreakerStateStore

__all__ = [
    "CircuitBreakerOptions",
    "CircuitState",
    "ExceptionMatcher",
    "StateChange",
    "StateListener",
    "WindowType",
]


class CircuitState(enum.StrEnum):
    """Where a breaker stands. The values are the strings the status API shows."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class StateChange:
    """One transition, as listeners see it. ``at`` is wall-clock time (seconds since the epoch)."""

    name: str
    old: CircuitState
    new: CircuitState
    reason: str
    at: float


#: A listener receives every :class:`StateChange`; it may be a plain function or ``async def``.
StateListener: TypeAlias = Callable[[StateChange], Awaitable[None] | None]

#: An exception type, or a predicate that decides whether an exception matches.
ExceptionMatcher: TypeAlias = type[BaseException] | Callable[[BaseException], bool]

WindowType: TypeAlias = Literal["count", "time"]

#: Exceptions that are never a verdict on the guarded service: the caller gave up or the
#: process is stopping. They are neutral whatever the options say.
NEVER_COUNTED = STOP_SIGNALS


#: The seed's defaults (its "moderate" preset); the only place they are written down.
DEFAULT_FAILURE_THRESHOLD = 5
DEFAULT_TIMEOUT = 60.0


def _no_listeners() -> tuple[StateListener, ...]:
    return ()


@dataclass(frozen=True, slots=True)
class CircuitBreakerOptions:
    """Everything a :class:`~jupiter.resilience.CircuitBreaker` can be told, validated once.

    The defaults here are the only defaults; the breaker's keyword arguments build one of these.
    See ``docs/resilience/breaker.md`` for the meaning of every field.
    """

    failure_threshold: int = DEFAULT_FAILURE_THRESHOLD
    timeout: float = DEFAULT_TIMEOUT
    name: str = "default"
    # Opening policy: consecutive failures unless a failure rate threshold is given.
    failure_rate_threshold: float | None = None
    window_type: WindowType = "count"
    window_size: int = 100
    window_duration: float = 60.0
    window_buckets: int = 10
    minimum_calls: int = 10
    slow_call_duration: float | None = None
    # Half-open behaviour.
    success_threshold: int = 1
    half_open_max_calls: int = 1
    half_open_max_wait: float = 60.0
    # Growing open duration: timeout * timeout_multiplier ** (openings - 1), capped, jittered.
    timeout_multiplier: float = 1.0
    max_timeout: float | None = None
    timeout_jitter: float = 0.0
    # Classification.
    failure_exceptions: tuple[ExceptionMatcher, ...] = (Exception,)
    excluded_exceptions: tuple[ExceptionMatcher, ...] = ()
    failure_result: Callable[[Any], bool] | None = None
    # Collaborators.
    listeners: tuple[StateListener, ...] = field(default_factory=_no_listeners)
    store: BreakerStateStore | None = None
    clock: Clock = SYSTEM_CLOCK
    random: RandomSource = DEFAULT_RANDOM

    def __post_init__(self) -> None:
        # Accept a lone type or predicate where a tuple is expected (tenacity style).
        for name in ("failure_exceptions", "excluded_exceptions", "listeners"):
            value = getattr(self, name)
            if not isinstance(value, tuple):
                value = tuple(value) if isinstance(value, list) else (value,)
                object.__setattr__(self, name, value)
        self._validate()

    def _validate(self) -> None:
        _require_int("failure_threshold", self.failure_threshold, minimum=1)
        _require_seconds("timeout", self.timeout, allow_zero=True)
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        if self.failure_rate_threshold is not None:
            rate = self.failure_rate_threshold
            if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 < rate <= 1.0:
                raise ValueError(
                    f"failure_rate_threshold must be a fraction in (0, 1], got {rate!r} "
                    "(use 0.5 for 50%)"
                )
        if self.window_type not in ("count", "time"):
            raise ValueError(f"window_type must be 'count' or 'time', got {self.window_type!r}")
        _require_int("window_size", self.window_size, minimum=1)
        _require_seconds("window_duration", self.window_duration)
        _require_int("window_buckets", self.window_buckets, minimum=1)
        _require_int("minimum_calls", self.minimum_calls, minimum=1)
        if self.slow_call_duration is not None:
            _require_seconds("slow_call_duration", self.slow_call_duration)
        _require_int("success_threshold", self.success_threshold, minimum=1)
        _require_int("half_open_max_calls", self.half_open_max_calls, minimum=1)
        _require_seconds("half_open_max_wait", self.half_open_max_wait, allow_infinite=True)
        multiplier = self.timeout_multiplier
        if isinstance(multiplier, bool) or not isinstance(multiplier, int | float):
            raise ValueError(f"timeout_multiplier must be a number, got {multiplier!r}")
        if not (math.isfinite(multiplier) and multiplier >= 1.0):
            raise ValueError(f"timeout_multiplier must be >= 1, got {multiplier!r}")
        if self.max_timeout is not None:
            _require_seconds("max_timeout", self.max_timeout)
            if self.max_timeout < self.timeout:
                raise ValueError(
                    f"max_timeout ({self.max_timeout}) must not be below timeout ({self.timeout})"
                )
        elif multiplier > 1.0:
            raise ValueError("timeout_multiplier > 1 needs max_timeout, the cap on the growth")
        jitter = self.timeout_jitter
        if (
            isinstance(jitter, bool)
            or not isinstance(jitter, int | float)
            or not 0.0 <= jitter < 1.0
        ):
            raise ValueError(f"timeout_jitter must be a fraction in [0, 1), got {jitter!r}")
        for name in ("failure_exceptions", "excluded_exceptions"):
            for matcher in getattr(self, name):
                if not (_is_exception_type(matcher) or callable(matcher)):
                    raise ValueError(f"{name} takes exception types or predicates, got {matcher!r}")
        if self.failure_result is not None and not callable(self.failure_result):
            raise ValueError(f"failure_result must be a predicate, got {self.failure_result!r}")
        for listener in self.listeners:
            if not callable(listener):
                raise ValueError(f"a listener must be callable, got {listener!r}")
        if not isinstance(self.clock, Clock):
            raise ValueError(
                f"clock must provide monotonic(), wall() and sleeps, got {self.clock!r}"
            )
        if not callable(self.random):
            raise ValueError(f"random must be a callable returning [0, 1), got {self.random!r}")

    @property
    def uses_failure_rate(self) -> bool:
        """Whether the breaker opens on a failure rate over a window (else on consecutive ones)."""
        return self.failure_rate_threshold is not None


class OptionOverrides(TypedDict, total=False):
    """The keyword arguments of ``CircuitBreaker`` besides ``failure_threshold`` and ``timeout``.

    Kept equal to :class:`CircuitBreakerOptions`' fields (a test pins it).
    """

    name: str
    failure_rate_threshold: float | None
    window_type: WindowType
    window_size: int
    window_duration: float
    window_buckets: int
    minimum_calls: int
    slow_call_duration: float | None
    success_threshold: int
    half_open_max_calls: int
    half_open_max_wait: float
    timeout_multiplier: float
    max_timeout: float | None
    timeout_jitter: float
    failure_exceptions: tuple[ExceptionMatcher, ...]
    excluded_exceptions: tuple[ExceptionMatcher, ...]
    failure_result: Callable[[Any], bool] | None
    listeners: tuple[StateListener, ...]
    store: BreakerStateStore | None
    clock: Clock
    random: RandomSource


def _is_exception_type(value: object) -> bool:
    return isinstance(value, type) and issubclass(value, BaseException)


def _require_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def _require_seconds(
    name: str, value: object, *, allow_zero: bool = False, allow_infinite: bool = False
) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}")
    if math.isnan(value) or (math.isinf(value) and not allow_infinite):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound} seconds, got {value!r}")


class Classifier:
    """Decides what an outcome means for the breaker: failure, success, or neutral."""

    __slots__ = ("_excluded_predicates", "_excluded_types", "_failure_predicates", "_failure_types")

    def __init__(
        self,
        failure_exceptions: tuple[ExceptionMatcher, ...],
        excluded_exceptions: tuple[ExceptionMatcher, ...],
    ) -> None:
        self._failure_types, self._failure_predicates = _split(failure_exceptions)
        self._excluded_types, self._excluded_predicates = _split(excluded_exceptions)

    def is_failure(self, exc: BaseException) -> bool:
        """True when ``exc`` counts against the service; False when it is neutral."""
        if isinstance(exc, NEVER_COUNTED):
            return False
        if _matches(exc, self._excluded_types, self._excluded_predicates):
            return False
        return _matches(exc, self._failure_types, self._failure_predicates)


def _split(
    matchers: tuple[ExceptionMatcher, ...],
) -> tuple[tuple[type[BaseException], ...], tuple[Callable[[BaseException], bool], ...]]:
    types: list[type[BaseException]] = []
    predicates: list[Callable[[BaseException], bool]] = []
    for matcher in matchers:
        if isinstance(matcher, type) and issubclass(matcher, BaseException):
            types.append(matcher)
        else:
            predicates.append(cast("Callable[[BaseException], bool]", matcher))
    return tuple(types), tuple(predicates)


def _matches(
    exc: BaseException,
    types: tuple[type[BaseException], ...],
    predicates: tuple[Callable[[BaseException], bool], ...],
) -> bool:
    if types and isinstance(exc, types):
        return True
    return any(predicate(exc) for predicate in predicates)
