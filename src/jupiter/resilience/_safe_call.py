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
from typing import Any, TypeVar, cast

from ._backoff import JitterName, JitterStrategy
from ._budget import RetryBudget
from ._callables import is_async_callable
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


class _SafeCall:
    """One safe call, built from the arguments: the retry policy, the guarded target, the
    attempt count and the failure handling shared by both drivers.

    The drivers :func:`safe_api_call` and :func:`safe_api_call_async` only differ in calling or
    awaiting the policy, the ``on_error`` outcome and the fallback.
    """

    __slots__ = ("args", "attempts", "kwargs", "log", "log_name", "on_error", "policy", "target")

    def __init__(
        self,
        func: Callable[..., Any],
        max_retries: int,
        log_name: str,
        *,
        method: str,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any] | None,
        breaker: object | None,
        on_error: Callable[[BaseException], object] | None,
        initial_delay: float,
        backoff_factor: float,
        max_delay: float,
        exceptions: ExceptionFilter,
        jitter: JitterStrategy | JitterName | None,
        deadline: float | None,
        budget: RetryBudget | None,
        logger: logging.Logger | None,
        clock: Clock,
        random: RandomSource,
    ) -> None:
        self.log = logger or LOGGER
        self.log_name = log_name
        self.on_error = on_error
        self.args = args
        self.kwargs: Mapping[str, Any] = kwargs or {}
        self.attempts = 0
        self.policy = RetryPolicy(
            RetryOptions(
                max_attempts=max_retries,
                initial_delay=initial_delay,
                backoff_factor=backoff_factor,
                max_delay=max_delay,
                exceptions=exceptions,
                jitter=jitter,
                deadline=deadline,
                budget=budget,
                before_sleep=self._log_retry,
                clock=clock,
                random=random,
            )
        )
        self.target = self._guarded(func, breaker, method)

    def _guarded(
        self, func: Callable[..., Any], breaker: object | None, method: str
    ) -> Callable[..., Any]:
        """``func`` counted per attempt and, with a breaker, routed through ``breaker.<method>``."""
        target: Callable[..., Any] = func
        if breaker is not None:
            route = getattr(breaker, method, None)
            if not callable(route):
                raise ValueError(f"breaker must provide a callable {method}(), got {breaker!r}")
            target = functools.partial(route, func)

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.attempts += 1
            return target(*args, **kwargs)

        return counted

    def _log_retry(self, attempt: RetryAttempt) -> None:
        log = self.log
        if log.isEnabledFor(logging.WARNING):
            cause = _describe(attempt.exception) if attempt.exception else "rejected result"
            log.warning(
                "%s: attempt %d failed (%s); retrying in %.2fs",
                self.log_name,
                attempt.attempt,
                cause,
                attempt.delay,
            )

    def failed(self, exc: BaseException) -> object:
        """Log the final failure and tell ``on_error``; returns what the hook returned (for the
        driver to finish: the async one awaits it, the sync one refuses a coroutine)."""
        log, log_name = self.log, self.log_name
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
                self.attempts,
                _describe(exc),
            )
        if self.on_error is None:
            return None
        try:
            return self.on_error(exc)
        except Exception as hook_error:
            self.hook_failed(hook_error)
            return None

    def hook_failed(self, hook_error: BaseException) -> None:
        """An exception inside ``on_error`` is logged (its type only) and otherwise ignored."""
        self.log.error("%s: on_error hook failed (%s)", self.log_name, type(hook_error).__name__)


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

    Given an ``async`` function it returns the awaitable of :func:`safe_api_call_async` with the
    same arguments, so ``await safe_api_call(func=fetch, ...)`` retries and falls back too
    (calling the coroutine function here would only create a coroutine that never fails).
    """
    if is_async_callable(func):
        return cast(
            "T | F | None",
            safe_api_call_async(
                cast("Callable[..., Awaitable[Any]]", func),
                fallback,
                max_retries,
                log_name,
                args=args,
                kwargs=kwargs,
                breaker=breaker,
                on_error=on_error,
                initial_delay=initial_delay,
                backoff_factor=backoff_factor,
                max_delay=max_delay,
                exceptions=exceptions,
                jitter=jitter,
                deadline=deadline,
                budget=budget,
                logger=logger,
                clock=clock,
                random=random,
            ),
        )
    source: FallbackSource[F | None] = FallbackSource(fallback)
    call = _SafeCall(
        func,
        max_retries,
        log_name,
        method="call",
        args=args,
        kwargs=kwargs,
        breaker=breaker,
        on_error=on_error,
        initial_delay=initial_delay,
        backoff_factor=backoff_factor,
        max_delay=max_delay,
        exceptions=exceptions,
        jitter=jitter,
        deadline=deadline,
        budget=budget,
        logger=logger,
        clock=clock,
        random=random,
    )
    try:
        result: T = call.policy.call(call.target, *call.args, **call.kwargs)
        return result
    except Exception as exc:
        outcome = call.failed(exc)
        if inspect.iscoroutine(outcome):
            outcome.close()
            call.hook_failed(TypeError("on_error is async; use safe_api_call_async"))
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
    source: FallbackSource[F | None] = FallbackSource(fallback)
    call = _SafeCall(
        func,
        max_retries,
        log_name,
        method="call_async",
        args=args,
        kwargs=kwargs,
        breaker=breaker,
        on_error=on_error,
        initial_delay=initial_delay,
        backoff_factor=backoff_factor,
        max_delay=max_delay,
        exceptions=exceptions,
        jitter=jitter,
        deadline=deadline,
        budget=budget,
        logger=logger,
        clock=clock,
        random=random,
    )
    try:
        result: T = await call.policy.call_async(call.target, *call.args, **call.kwargs)
        return result
    except Exception as exc:
        outcome = call.failed(exc)
        if inspect.isawaitable(outcome):
            try:
                await outcome
            except Exception as hook_error:
                call.hook_failed(hook_error)
        return await source.resolve_async(exc)
