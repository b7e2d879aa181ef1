"""Retry with backoff: one validated options object, one I/O-free decision core, two thin drivers.

* :class:`RetryOptions` holds every setting and its default, validated once.
* :class:`RetryCore` / :class:`RetryState` decide, given what the last attempt did and what the
  clock says, whether to retry and after which delay. They never sleep and never call the
  wrapped function, so every rule is testable without time passing.
* The sync and async drivers only run the attempts, sleep on the injected clock and call the
  ``before_sleep`` hook; they contain no policy.

The success path of a decorated function is a bare ``try``/``except`` around the call: nothing is
allocated and the clock is not read until the first failure (unless a ``deadline`` or a budget
needs the start time).
"""

from __future__ import annotations

import enum
import functools
import inspect
import math
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ParamSpec, TypeAlias, TypeVar, cast

from ._backoff import (
    DelayRequest,
    JitterName,
    JitterStrategy,
    clamp_delay,
    exponential_delay,
    resolve_jitter,
)
from ._budget import RetryBudget
from ._callables import SyncAsyncDecorator
from ._clock import DEFAULT_RANDOM, SYSTEM_CLOCK, Clock, RandomSource
from ._exceptions import CircuitOpenError, ResilienceError
from ._fallback import NEVER_HANDLED
from ._http import hint_to_seconds, retry_after_from_exception

__all__ = [
    "NEVER_RETRIED",
    "BeforeSleepHook",
    "ExceptionFilter",
    "RetryAfterExtractor",
    "RetryAttempt",
    "RetryCore",
    "RetryDecision",
    "RetryError",
    "RetryOptions",
    "RetryPolicy",
    "RetryState",
    "StopReason",
    "retry_with_backoff",
]

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R")

#: Exceptions that are never retried, whatever ``exceptions`` says: an open breaker already
#: decided the dependency is down, and cancellation or interpreter shutdown must propagate
#: (the same stop signals a fallback never handles).
NEVER_RETRIED: tuple[type[BaseException], ...] = (CircuitOpenError, *NEVER_HANDLED)

ExceptionFilter: TypeAlias = (
    type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]
)
RetryAfterExtractor: TypeAlias = Callable[[BaseException], float | datetime | None]


@dataclass(frozen=True, slots=True)
class RetryAttempt:
    """What a ``before_sleep`` hook is told: attempt ``attempt`` failed; we sleep ``delay``.

    ``exception`` is set when the attempt raised; otherwise ``result`` holds the value that
    ``retry_on_result`` rejected. ``elapsed`` is measured on the injected clock from the start of
    the first attempt (from the first failure when neither a deadline nor a budget is set, because
    the success path does not read the clock). ``from_retry_after`` says whether the delay is a
    server's Retry-After hint rather than the computed backoff.
    """

    name: str
    attempt: int
    delay: float
    elapsed: float
    exception: BaseException | None = None
    result: Any = None
    from_retry_after: bool = False


BeforeSleepHook: TypeAlias = Callable[[RetryAttempt], object]


class StopReason(enum.StrEnum):
    """Why the retry loop ended."""

    SUCCESS = "success"
    NOT_RETRYABLE = "not_retryable"
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"
    DEADLINE = "deadline"
    BUDGET_EXHAUSTED = "budget_exhausted"


class RetryError(ResilienceError):
    """Raised when attempts end on a *result* that ``retry_on_result`` rejected and
    ``raise_on_bad_result=True``. It carries the last result, the attempt count and the reason.

    Exceptions are never wrapped: when attempts end on an exception, that exception itself is
    re-raised (stamina and backoff behave the same; tenacity wraps it in its ``RetryError``).
    """

    def __init__(self, last_result: Any, attempts: int, reason: StopReason) -> None:
        self.last_result = last_result
        self.attempts = attempts
        self.reason = reason
        super().__init__(f"gave up after {attempts} attempt(s) ({reason.value}): result rejected")


def _finite(name: str, value: object, *, minimum: float, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value < minimum
    ):
        raise ValueError(f"{name} must be a finite number >= {minimum}, got {value!r}")


def _is_exception_type(candidate: object) -> bool:
    return isinstance(candidate, type) and issubclass(candidate, BaseException)


@dataclass(frozen=True, slots=True)
class RetryOptions:
    """Every retry setting, with its default, validated once at construction.

    * ``max_attempts``: total calls, the first included (1 = no retry).
    * ``initial_delay``, ``backoff_factor``, ``max_delay``: the delay before retry *n* is
      ``min(max_delay, initial_delay * backoff_factor ** (n - 1))`` before jitter; the final delay
      is always clamped into ``[0, max_delay]``.
    * ``exceptions``: exception types (a type or a tuple) or a predicate ``exc -> bool`` choosing
      what is retried. :data:`NEVER_RETRIED` is never retried.
    * ``jitter``: ``"none"`` (default, the seed's exact delays), ``"full"``, ``"equal"``,
      ``"decorrelated"``, a strategy object or any ``callable(DelayRequest) -> float``.
    * ``deadline``: seconds, from the first attempt's start, within which every attempt must
      *finish*: a retry is not started when ``elapsed + delay + expected duration`` exceeds it.
    * ``expected_attempt_duration``: that expected duration; None = the last attempt's duration.
    * ``retry_after``: extractor of a server's wait hint from the exception (seconds or an aware
      datetime); None disables hints. A hint replaces the computed backoff.
    * ``max_retry_after``: cap on a hint (None = ``max_delay``).
    * ``retry_on_result``: predicate ``result -> bool``; True means "retry this result".
    * ``raise_on_bad_result``: when attempts end on a rejected result, raise :class:`RetryError`
      instead of returning that result (the default returns it, as backoff does).
    * ``before_sleep``: hook called with a :class:`RetryAttempt` before every sleep; in async
      functions it may be async. Exceptions from the hook propagate.
    * ``budget``: an optional shared :class:`RetryBudget`.
    * ``clock``, ``random``: injected time and randomness (``FakeClock`` makes sleeps instant).
    """

    max_attempts: int = 3
    initial_delay: float = 1.0
    backoff_factor: float = 2.0
    max_delay: float = 30.0
    exceptions: ExceptionFilter = (Exception,)
    jitter: JitterStrategy | JitterName | None = "none"
    deadline: float | None = None
    expected_attempt_duration: float | None = None
    retry_after: RetryAfterExtractor | None = retry_after_from_exception
    max_retry_after: float | None = None
    retry_on_result: Callable[[Any], bool] | None = None
    raise_on_bad_result: bool = False
    before_sleep: BeforeSleepHook | None = None
    budget: RetryBudget | None = None
    clock: Clock = field(default=SYSTEM_CLOCK, repr=False)
    random: RandomSource = field(default=DEFAULT_RANDOM, repr=False)

    def __post_init__(self) -> None:
        if (
            not isinstance(self.max_attempts, int)
            or isinstance(self.max_attempts, bool)
            or self.max_attempts < 1
        ):
            raise ValueError(f"max_attempts must be an int >= 1, got {self.max_attempts!r}")
        _finite("initial_delay", self.initial_delay, minimum=0.0)
        _finite("backoff_factor", self.backoff_factor, minimum=1.0)
        _finite("max_delay", self.max_delay, minimum=0.0)
        _finite("deadline", self.deadline, minimum=0.0, allow_none=True)
        if self.deadline is not None and self.deadline <= 0:
            raise ValueError(f"deadline must be > 0 seconds, got {self.deadline!r}")
        _finite(
            "expected_attempt_duration",
            self.expected_attempt_duration,
            minimum=0.0,
            allow_none=True,
        )
        _finite("max_retry_after", self.max_retry_after, minimum=0.0, allow_none=True)
        exceptions = self.exceptions
        if isinstance(exceptions, tuple):
            if not exceptions or not all(_is_exception_type(e) for e in exceptions):
                raise ValueError(
                    f"exceptions must be a non-empty tuple of exception types, got {exceptions!r}"
                )
        elif not (_is_exception_type(exceptions) or callable(exceptions)):
            raise ValueError(
                "exceptions must be an exception type, a tuple of them or a predicate, "
                f"got {exceptions!r}"
            )
        resolve_jitter(self.jitter)  # raises ValueError for unknown names
        if not callable(self.random):
            raise ValueError(
                f"random must be a callable returning floats in [0, 1), got {self.random!r}"
            )
        for name in ("retry_after", "retry_on_result", "before_sleep"):
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise ValueError(f"{name} must be callable or None, got {value!r}")
        if not isinstance(self.raise_on_bad_result, bool):
            raise ValueError(
                f"raise_on_bad_result must be a bool, got {self.raise_on_bad_result!r}"
            )
        if self.budget is not None and not (
            callable(getattr(self.budget, "deposit", None))
            and callable(getattr(self.budget, "try_withdraw", None))
        ):
            raise ValueError(f"budget must be a RetryBudget, got {self.budget!r}")
        if not isinstance(self.clock, Clock):
            raise ValueError(f"clock must implement the Clock protocol, got {self.clock!r}")


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """The core's answer: retry after ``delay`` seconds (with the hook's info), or stop."""

    retry: bool
    delay: float = 0.0
    reason: StopReason | None = None
    attempt: RetryAttempt | None = None


_STOP_NOT_RETRYABLE = RetryDecision(False, reason=StopReason.NOT_RETRYABLE)
_STOP_EXHAUSTED = RetryDecision(False, reason=StopReason.ATTEMPTS_EXHAUSTED)
_STOP_DEADLINE = RetryDecision(False, reason=StopReason.DEADLINE)
_STOP_BUDGET = RetryDecision(False, reason=StopReason.BUDGET_EXHAUSTED)


class RetryCore:
    """The policy, precomputed from :class:`RetryOptions`. Stateless and shared by all calls."""

    __slots__ = (
        "_exception_predicate",
        "_exception_types",
        "jitter",
        "max_retry_after",
        "needs_start_time",
        "options",
    )

    def __init__(self, options: RetryOptions) -> None:
        self.options = options
        self.jitter: JitterStrategy = resolve_jitter(options.jitter)
        exceptions = options.exceptions
        self._exception_types: tuple[type[BaseException], ...] | None
        self._exception_predicate: Callable[[BaseException], bool] | None
        if isinstance(exceptions, tuple):
            self._exception_types, self._exception_predicate = exceptions, None
        elif _is_exception_type(exceptions):
            self._exception_types = (cast(type[BaseException], exceptions),)
            self._exception_predicate = None
        else:
            self._exception_types = None
            self._exception_predicate = cast(Callable[[BaseException], bool], exceptions)
        self.max_retry_after = (
            options.max_delay if options.max_retry_after is None else options.max_retry_after
        )
        # The deadline and the budget need to know when the first attempt started.
        self.needs_start_time = options.deadline is not None or options.budget is not None

    def is_retryable(self, exc: BaseException) -> bool:
        """Whether ``exc`` may be retried at all (attempt counts and deadlines aside)."""
        if isinstance(exc, NEVER_RETRIED):
            return False
        if self._exception_types is not None:
            return isinstance(exc, self._exception_types)
        assert self._exception_predicate is not None
        return bool(self._exception_predicate(exc))

    def result_is_rejected(self, result: object) -> bool:
        """Whether ``retry_on_result`` asks for another attempt because of this result."""
        predicate = self.options.retry_on_result
        return predicate is not None and bool(predicate(result))

    def delay_for(self, retry: int, previous: float) -> float:
        """The computed backoff before retry number ``retry`` (1-based), within [0, max_delay]."""
        options = self.options
        exponential = exponential_delay(
            retry, options.initial_delay, options.backoff_factor, options.max_delay
        )
        request = DelayRequest(
            retry=retry,
            exponential=exponential,
            previous=previous,
            initial=options.initial_delay,
            max_delay=options.max_delay,
            random=options.random,
        )
        return clamp_delay(float(self.jitter(request)), options.max_delay)

    def hint_for(self, exc: BaseException) -> float | None:
        """A server's Retry-After hint for ``exc``, capped at ``max_retry_after``, or None."""
        extractor = self.options.retry_after
        if extractor is None:
            return None
        raw = extractor(exc)
        if raw is None:
            return None
        wall = self.options.clock.wall() if isinstance(raw, datetime) else 0.0
        seconds = hint_to_seconds(raw, wall)
        return None if seconds is None else min(seconds, self.max_retry_after)

    def start(self, name: str, started: float, first_attempt_ended: float) -> RetryState:
        """The per-call state, created only once the first attempt has failed."""
        return RetryState(self, name, started, first_attempt_ended)


class RetryState:
    """Per-call bookkeeping. ``after_exception`` / ``after_rejected_result`` return decisions.

    It reads no clock: the driver passes ``now`` (monotonic seconds) in.
    """

    __slots__ = (
        "attempt_started",
        "attempts",
        "core",
        "last_duration",
        "name",
        "previous",
        "started",
    )

    def __init__(self, core: RetryCore, name: str, started: float, now: float) -> None:
        self.core = core
        self.name = name
        self.started = started
        self.attempt_started = started
        self.attempts = 1
        self.last_duration = max(0.0, now - started)
        self.previous = 0.0

    def attempt_starting(self, now: float) -> RetryDecision | None:
        """The driver is about to run the next attempt: ``None`` to go ahead, or the stop when
        the hook or the sleep took so long that the attempt could no longer end by the deadline
        (the check in :meth:`_decide` could only assume they would take the planned delay)."""
        if self._misses_deadline(now, 0.0):
            return _STOP_DEADLINE
        self.attempts += 1
        self.attempt_started = now
        return None

    def _misses_deadline(self, now: float, delay: float) -> bool:
        """Would an attempt started ``delay`` seconds after ``now`` end after the deadline?"""
        options = self.core.options
        if options.deadline is None:
            return False
        expected = options.expected_attempt_duration
        duration = self.last_duration if expected is None else expected
        return max(0.0, now - self.started) + delay + duration > options.deadline

    def after_exception(self, exc: BaseException, now: float) -> RetryDecision:
        """Decide after an attempt raised ``exc``."""
        if not self.core.is_retryable(exc):
            return _STOP_NOT_RETRYABLE
        return self._decide(now, exc, None)

    def after_rejected_result(self, result: object, now: float) -> RetryDecision:
        """Decide after an attempt returned a value that ``retry_on_result`` rejected."""
        return self._decide(now, None, result)

    def _decide(self, now: float, exc: BaseException | None, result: object) -> RetryDecision:
        core = self.core
        options = core.options
        if self.attempts > 1:
            self.last_duration = max(0.0, now - self.attempt_started)
        if self.attempts >= options.max_attempts:
            return _STOP_EXHAUSTED
        hint = core.hint_for(exc) if exc is not None else None
        delay = hint if hint is not None else core.delay_for(self.attempts, self.previous)
        elapsed = max(0.0, now - self.started)
        if self._misses_deadline(now, delay):
            return _STOP_DEADLINE
        if options.budget is not None and not options.budget.try_withdraw():
            return _STOP_BUDGET
        self.previous = delay
        info = RetryAttempt(
            name=self.name,
            attempt=self.attempts,
            delay=delay,
            elapsed=elapsed,
            exception=exc,
            result=result,
            from_retry_after=hint is not None,
        )
        return RetryDecision(True, delay=delay, attempt=info)


def _name_of(func: object) -> str:
    return str(getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or func)


def _decide(state: RetryState, exc: BaseException | None, result: Any, now: float) -> RetryDecision:
    """The decision at the top of each resume step: the failed attempt raised ``exc`` or, when
    ``exc`` is None, returned the rejected ``result``."""
    if exc is not None:
        return state.after_exception(exc, now)
    return state.after_rejected_result(result, now)


def _give_up(
    core: RetryCore,
    state: RetryState,
    decision: RetryDecision,
    exc: BaseException | None,
    result: R,
) -> R:
    """End the loop: re-raise the last exception itself, or settle the last rejected result."""
    assert decision.reason is not None
    if exc is not None:
        raise exc
    if core.options.raise_on_bad_result:
        raise RetryError(result, state.attempts, decision.reason)
    return result


def _run_hook_sync(hook: BeforeSleepHook | None, info: RetryAttempt | None) -> None:
    if hook is None or info is None:
        return
    outcome = hook(info)
    if inspect.isawaitable(outcome):
        if inspect.iscoroutine(outcome):
            outcome.close()
        raise TypeError("an async before_sleep hook cannot run in a sync function; use a sync hook")


async def _run_hook_async(hook: BeforeSleepHook | None, info: RetryAttempt | None) -> None:
    if hook is None or info is None:
        return
    outcome = hook(info)
    if inspect.isawaitable(outcome):
        await outcome


def _resume_sync(
    core: RetryCore,
    func: Callable[..., R],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    started: float | None,
    exc: BaseException | None,
    result: Any,
) -> R:
    """Continue after a failed first attempt (``exc`` set, or ``result`` rejected)."""
    options = core.options
    clock = options.clock
    now = clock.monotonic()
    state = core.start(_name_of(func), now if started is None else started, now)
    while True:
        decision = _decide(state, exc, result, now)
        if not decision.retry:
            return _give_up(core, state, decision, exc, cast(R, result))
        _run_hook_sync(options.before_sleep, decision.attempt)
        clock.sleep(decision.delay)
        late = state.attempt_starting(clock.monotonic())
        if late is not None:
            return _give_up(core, state, late, exc, cast(R, result))
        try:
            result = func(*args, **kwargs)
        except BaseException as error:
            exc = error
        else:
            exc = None
            if not core.result_is_rejected(result):
                return cast(R, result)
        now = clock.monotonic()


async def _resume_async(
    core: RetryCore,
    func: Callable[..., Awaitable[R]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    started: float | None,
    exc: BaseException | None,
    result: Any,
) -> R:
    """The async twin of :func:`_resume_sync`: same decisions, awaited sleeps and hooks."""
    options = core.options
    clock = options.clock
    now = clock.monotonic()
    state = core.start(_name_of(func), now if started is None else started, now)
    while True:
        decision = _decide(state, exc, result, now)
        if not decision.retry:
            return _give_up(core, state, decision, exc, cast(R, result))
        await _run_hook_async(options.before_sleep, decision.attempt)
        await clock.sleep_async(decision.delay)
        late = state.attempt_starting(clock.monotonic())
        if late is not None:
            return _give_up(core, state, late, exc, cast(R, result))
        try:
            result = await func(*args, **kwargs)
        except BaseException as error:
            exc = error
        else:
            exc = None
            if not core.result_is_rejected(result):
                return cast(R, result)
        now = clock.monotonic()


class RetryPolicy(SyncAsyncDecorator):
    """A reusable retry policy: a decorator for sync *and* async functions, plus call helpers.

    ``@policy`` on a ``def`` or an ``async def`` (the wrapper keeps its signature, ParamSpec);
    ``policy.call(fn, *args, **kwargs)`` and ``await policy.call_async(fn, *args, **kwargs)``
    retry one call without decorating.
    """

    decorator_name = "retry_with_backoff"
    __slots__ = ("core", "options")

    def __init__(self, options: RetryOptions | None = None) -> None:
        self.options = options if options is not None else RetryOptions()
        self.core = RetryCore(self.options)

    def __repr__(self) -> str:
        return f"RetryPolicy({self.options!r})"

    def _wrap_sync(self, func: Callable[P, T]) -> Callable[P, T]:
        hook = self.options.before_sleep
        if hook is not None and inspect.iscoroutinefunction(hook):
            raise ValueError(
                f"before_sleep {_name_of(hook)} is async but {_name_of(func)} is sync; "
                "use a sync hook for sync functions"
            )
        core = self.core
        if not core.needs_start_time and core.options.retry_on_result is None:

            @functools.wraps(func)
            def fast_wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
                try:
                    return func(*args, **kwargs)
                except BaseException as exc:
                    return _resume_sync(core, func, args, kwargs, None, exc, None)

            return fast_wrapper

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            return self._run_sync(func, args, kwargs)

        return wrapper

    def _wrap_async(self, func: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        core = self.core
        if not core.needs_start_time and core.options.retry_on_result is None:

            @functools.wraps(func)
            async def fast_wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
                try:
                    return await func(*args, **kwargs)
                except BaseException as exc:
                    return await _resume_async(core, func, args, kwargs, None, exc, None)

            return fast_wrapper

        @functools.wraps(func)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            return await self._run_async(func, args, kwargs)

        return wrapper

    def _run_sync(self, func: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        core = self.core
        options = core.options
        started = options.clock.monotonic() if core.needs_start_time else None
        if options.budget is not None:
            options.budget.deposit()
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            return _resume_sync(core, func, args, kwargs, started, exc, None)
        if core.result_is_rejected(result):
            return _resume_sync(core, func, args, kwargs, started, None, result)
        return result

    async def _run_async(
        self, func: Callable[..., Awaitable[R]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> R:
        core = self.core
        options = core.options
        started = options.clock.monotonic() if core.needs_start_time else None
        if options.budget is not None:
            options.budget.deposit()
        try:
            result = await func(*args, **kwargs)
        except BaseException as exc:
            return await _resume_async(core, func, args, kwargs, started, exc, None)
        if core.result_is_rejected(result):
            return await _resume_async(core, func, args, kwargs, started, None, result)
        return result

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` under this policy (sync)."""
        return self._run_sync(fn, args, kwargs)

    async def call_async(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Await ``fn(*args, **kwargs)`` under this policy; a fresh awaitable per attempt."""
        return await self._run_async(fn, args, kwargs)


_DEFAULTS = RetryOptions()


def retry_with_backoff(
    max_attempts: int = _DEFAULTS.max_attempts,
    initial_delay: float = _DEFAULTS.initial_delay,
    backoff_factor: float = _DEFAULTS.backoff_factor,
    max_delay: float = _DEFAULTS.max_delay,
    exceptions: ExceptionFilter = _DEFAULTS.exceptions,
    *,
    jitter: JitterStrategy | JitterName | None = _DEFAULTS.jitter,
    deadline: float | None = _DEFAULTS.deadline,
    expected_attempt_duration: float | None = _DEFAULTS.expected_attempt_duration,
    retry_after: RetryAfterExtractor | None = _DEFAULTS.retry_after,
    max_retry_after: float | None = _DEFAULTS.max_retry_after,
    retry_on_result: Callable[[Any], bool] | None = _DEFAULTS.retry_on_result,
    raise_on_bad_result: bool = _DEFAULTS.raise_on_bad_result,
    before_sleep: BeforeSleepHook | None = _DEFAULTS.before_sleep,
    budget: RetryBudget | None = _DEFAULTS.budget,
    clock: Clock = _DEFAULTS.clock,
    random: RandomSource = _DEFAULTS.random,
) -> RetryPolicy:
    """Retry a sync or async function with exponential backoff (see :class:`RetryOptions`).

    >>> @retry_with_backoff(max_attempts=3, initial_delay=1.0, backoff_factor=2.0)
    ... def fetch() -> str: ...

    Presets from the seed: quick ``(3, 0.5, 1.5)``, standard ``(3, 1.0, 2.0)``,
    patient ``(5, 2.0, 2.0, max_delay=30.0)``.
    """
    if callable(max_attempts):
        raise TypeError(
            "retry_with_backoff must be called: use @retry_with_backoff() with parentheses"
        )
    return RetryPolicy(
        RetryOptions(
            max_attempts=max_attempts,
            initial_delay=initial_delay,
            backoff_factor=backoff_factor,
            max_delay=max_delay,
            exceptions=exceptions,
            jitter=jitter,
            deadline=deadline,
            expected_attempt_duration=expected_attempt_duration,
            retry_after=retry_after,
            max_retry_after=max_retry_after,
            retry_on_result=retry_on_result,
            raise_on_bad_result=raise_on_bad_result,
            before_sleep=before_sleep,
            budget=budget,
            clock=clock,
            random=random,
        )
    )
