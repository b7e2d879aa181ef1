"""``safe_api_call``: retry with backoff, then a fallback; logged, never raising for failures.

It composes the pieces of this package rather than adding policy: the retry core decides the
attempts (so ``CircuitOpenError`` and cancellation are never retried), an optional breaker
guards every attempt (duck-typed: anything with ``call`` / ``call_async``), and a
:class:`~jupiter.resilience._fallback.FallbackSource` produces the fallback.

Logs go to the ``jupiter.resilience`` logger under the caller's ``log_name``. They contain the
exception type and its message scrubbed of secrets; never the call's arguments.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from ._backoff import JitterName, JitterStrategy
from ._budget import RetryBudget
from ._clock import DEFAULT_RANDOM, SYSTEM_CLOCK, Clock, RandomSource
from ._errors import scrub_secrets
from ._exceptions import CircuitOpenError
from ._fallback import FallbackSource
from ._retry import ExceptionFilter, RetryAttempt, RetryOptions, RetryPolicy

__all__ = ["LOGGER", "safe_api_call", "safe_api_call_async"]

T = TypeVar("T")
F = TypeVar("F")

LOGGER = logging.getLogger("jupiter.resilience")
_DEFAULTS = RetryOptions()


def _describe(exc: BaseException) -> str:
    text = scrub_secrets(str(exc), max_length=200)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Attempts:
    """Counts the attempts of one safe call, for the final log line."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


def _policy(
    log: logging.Logger,
    log_name: str,
    max_retries: int,
    *,
    initial_delay: float,
    backoff_factor: float,
    max_delay: float,
    exceptions: ExceptionFilter,
    jitter: JitterStrategy | JitterName | None,
    deadline: float | None,
    budget: RetryBudget | None,
    clock: Clock,
    random: RandomSource,
) -> RetryPolicy:
    def log_retry(attempt: RetryAttempt) -> None:
        if log.isEnabledFor(logging.WARNING):
            cause = _describe(attempt.exception) if attempt.exception else "rejected result"
            log.warning(
                "%s: attempt %d failed (%s); retrying in %.2fs",
                log_name,
                attempt.attempt,
                cause,
                attempt.delay,
            )

    return RetryPolicy(
        RetryOptions(
            max_attempts=max_retries,
            initial_delay=initial_delay,
            backoff_factor=backoff_factor,
            max_delay=max_delay,
            exceptions=exceptions,
            jitter=jitter,
            deadline=deadline,
            budget=budget,
            before_sleep=log_retry,
            clock=clock,
            random=random,
        )
    )


def _log_failure(log: logging.Logger, log_name: str, exc: BaseException, attempts: int) -> None:
    if isinstance(exc, CircuitOpenError):
        log.warning(
            "%s unavailable (circuit %s open, next trial in %.1fs); using fallback",
            log_name,
            scrub_secrets(exc.name, max_length=80),
            exc.retry_after,
        )
    else:
        log.error(
            "%s failed after %d attempt(s) (%s); using fallback",
            log_name,
            attempts,
            _describe(exc),
        )


def _guarded(
    func: Callable[..., Any], breaker: object | None, method: str, attempts: _Attempts
) -> Callable[..., Any]:
    """``func`` counted per attempt and, with a breaker, routed through ``breaker.<method>``."""
    target: Callable[..., Any] = func
    if breaker is not None:
        route = getattr(breaker, method, None)
        if not callable(route):
            raise ValueError(f"breaker must provide a callable {method}(), got {breaker!r}")
        target = functools.partial(route, func)

    def counted(*args: Any, **kwargs: Any) -> Any:
        attempts.count += 1
        return target(*args, **kwargs)

    return counted


def safe_api_call(
    func: Callable[..., T],
    fallback: F | Callable[..., F] | None = None,
    max_retries: int = _DEFAULTS.max_attempts,
    log_name: str = "External API",
    *,
    args: tuple[Any, ...] = (),
    kwargs: Mapping[str, Any] | None = None,
    breaker: object | None = None,
    on_error: Callable[[BaseException], object] | None = None,
    initial_delay: float = _DEFAULTS.initial_delay,
    backoff_factor: float = _DEFAULTS.backoff_factor,
    max_delay: float = _DEFAULTS.max_delay,
    exceptions: ExceptionFilter = _DEFAULTS.exceptions,
    jitter: JitterStrategy | JitterName | None = _DEFAULTS.jitter,
    deadline: float | None = _DEFAULTS.deadline,
    budget: RetryBudget | None = _DEFAULTS.budget,
    logger: logging.Logger | None = None,
    clock: Clock = SYSTEM_CLOCK,
    random: RandomSource = DEFAULT_RANDOM,
) -> T | F | None:
    """Call ``func(*args, **kwargs)`` with up to ``max_retries`` attempts; on failure return
    ``fallback`` (a value, or a callable given the exception / nothing) instead of raising.

    ``max_retries`` is the total number of attempts, as in the seed (3 = one call + 2 retries).
    With ``breaker``, each attempt runs as ``breaker.call(func, ...)``; a ``CircuitOpenError``
    goes straight to the fallback. ``on_error(exc)`` is told about the final failure (for an
    ``ErrorAggregator``); an exception inside it is logged and ignored. Any ``Exception`` ends in
    the fallback; cancellation, ``KeyboardInterrupt`` and ``SystemExit`` propagate.
    """
    log = logger or LOGGER
    attempts = _Attempts()
    source: FallbackSource[F | None] = FallbackSource(fallback)
    policy = _policy(
        log,
        log_name,
        max_retries,
        initial_delay=initial_delay,
        backoff_factor=backoff_factor,
        max_delay=max_delay,
        exceptions=exceptions,
        jitter=jitter,
        deadline=deadline,
        budget=budget,
        clock=clock,
        random=random,
    )
    target = _guarded(func, breaker, "call", attempts)
    try:
        result: T = policy.call(target, *args, **(kwargs or {}))
        return result
    except Exception as exc:
        _log_failure(log, log_name, exc, attempts.count)
        if on_error is not None:
            try:
                outcome = on_error(exc)
                if inspect.iscoroutine(outcome):
                    outcome.close()
                    raise TypeError("on_error is async; use safe_api_call_async")
            except Exception as hook_error:
                log.error("%s: on_error hook failed (%s)", log_name, type(hook_error).__name__)
        return source.resolve_sync(exc)


async def safe_api_call_async(
    func: Callable[..., Awaitable[T]],
    fallback: F | Callable[..., F] | Callable[..., Awaitable[F]] | None = None,
    max_retries: int = _DEFAULTS.max_attempts,
    log_name: str = "External API",
    *,
    args: tuple[Any, ...] = (),
    kwargs: Mapping[str, Any] | None = None,
    breaker: object | None = None,
    on_error: Callable[[BaseException], object] | None = None,
    initial_delay: float = _DEFAULTS.initial_delay,
    backoff_factor: float = _DEFAULTS.backoff_factor,
    max_delay: float = _DEFAULTS.max_delay,
    exceptions: ExceptionFilter = _DEFAULTS.exceptions,
    jitter: JitterStrategy | JitterName | None = _DEFAULTS.jitter,
    deadline: float | None = _DEFAULTS.deadline,
    budget: RetryBudget | None = _DEFAULTS.budget,
    logger: logging.Logger | None = None,
    clock: Clock = SYSTEM_CLOCK,
    random: RandomSource = DEFAULT_RANDOM,
) -> T | F | None:
    """The async twin of :func:`safe_api_call`: awaits ``func``, ``breaker.call_async``, an async
    ``fallback`` factory and an async ``on_error`` hook; sleeps with ``clock.sleep_async``."""
    log = logger or LOGGER
    attempts = _Attempts()
    source: FallbackSource[F | None] = FallbackSource(fallback)
    policy = _policy(
        log,
        log_name,
        max_retries,
        initial_delay=initial_delay,
        backoff_factor=backoff_factor,
        max_delay=max_delay,
        exceptions=exceptions,
        jitter=jitter,
        deadline=deadline,
        budget=budget,
        clock=clock,
        random=random,
    )
    target = _guarded(func, breaker, "call_async", attempts)
    try:
        result: T = await policy.call_async(target, *args, **(kwargs or {}))
        return result
    except Exception as exc:
        _log_failure(log, log_name, exc, attempts.count)
        if on_error is not None:
            try:
                outcome = on_error(exc)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception as hook_error:
                log.error("%s: on_error hook failed (%s)", log_name, type(hook_error).__name__)
        return await source.resolve_async(exc)
