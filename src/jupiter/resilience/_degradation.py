"""Graceful degradation: named feature flags with fallbacks, auto-disable and self-recovery.

Each feature is a small state machine. *Enabled*: calls run; ``failure_threshold`` consecutive
failures auto-disable it. *Disabled automatically*: calls get the fallback; once
``recovery_timeout`` seconds have passed, one call at a time is let through as a recovery probe
(the others still get the fallback); the probe's success re-enables the feature, its failure
restarts the cooldown. *Disabled manually*: calls get the fallback until :meth:`enable_feature`;
never probed.

The decision core (:class:`_Feature`) does no I/O and never calls user code; the sync and async
drivers in :class:`GracefulDegradation` only run the call, the fallback and the listeners.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, ParamSpec, TypeVar, cast

from ._clock import SYSTEM_CLOCK, Clock
from ._exceptions import STOP_SIGNALS, CircuitOpenError, ResilienceError
from ._redact import redact_text

__all__ = [
    "FeatureChange",
    "FeatureOptions",
    "GracefulDegradation",
    "UnknownFeatureError",
    "graceful_degradation",
]

P = ParamSpec("P")
R = TypeVar("R")

_log = logging.getLogger("jupiter.resilience")

DEFAULT_FAILURE_THRESHOLD: int | None = 5
DEFAULT_RECOVERY_TIMEOUT = 60.0
DEFAULT_EXCEPTIONS: tuple[type[BaseException], ...] = (Exception,)
DEFAULT_UNCOUNTED_EXCEPTIONS: tuple[type[BaseException], ...] = (CircuitOpenError,)

# Reasons and error texts are cut to this length in snapshots and changes.
_MAX_REASON_LENGTH = 300
_MAX_FALLBACK_REPR = 80

ChangeSource = Literal["manual", "auto"]
FallbackKind = Literal["value", "callable", "async_callable"]


class UnknownFeatureError(ResilienceError, KeyError):
    """No feature of that name was registered. ``name`` holds the name asked for.

    A :class:`KeyError`, so ``except KeyError`` keeps working, with a readable message.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(name)

    def __str__(self) -> str:
        return f"unknown feature {self.name!r}; register it with register_feature() first"

    def __reduce__(self) -> tuple[type[UnknownFeatureError], tuple[str]]:
        return (type(self), (self.name,))


def _exception_types(name: str, value: object) -> tuple[type[BaseException], ...]:
    types = value if isinstance(value, tuple) else (value,)
    for item in types:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise ValueError(f"{name} must be exception types, got {item!r}")
    return cast("tuple[type[BaseException], ...]", types)


@dataclass(frozen=True, slots=True)
class FeatureOptions:
    """Every option of one feature, validated, with its default.

    * ``failure_threshold``: consecutive failures that auto-disable the feature (``None``:
      never auto-disable). Default 5.
    * ``recovery_timeout``: seconds an auto-disabled feature waits before a recovery probe, and
      again after each failed probe. Also how long a probe may stay unanswered before it is
      considered lost and another probe may start. Default 60.
    * ``exceptions``: exceptions that count as a failure and return the fallback. Anything
      else propagates, counts as nothing and resets nothing. Default ``(Exception,)``, so
      cancellation, ``KeyboardInterrupt`` and ``SystemExit`` always propagate.
    * ``uncounted_exceptions``: exceptions that return the fallback but do not count as a
      failure (nor reset the count). Default ``(CircuitOpenError,)``: an open breaker already
      tracks the outage, and counting its instant rejections would disable the feature for an
      extra cooldown on top of the breaker's own.
    """

    failure_threshold: int | None = DEFAULT_FAILURE_THRESHOLD
    recovery_timeout: float = DEFAULT_RECOVERY_TIMEOUT
    exceptions: tuple[type[BaseException], ...] = DEFAULT_EXCEPTIONS
    uncounted_exceptions: tuple[type[BaseException], ...] = DEFAULT_UNCOUNTED_EXCEPTIONS

    def __post_init__(self) -> None:
        threshold = self.failure_threshold
        if threshold is not None and (
            isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1
        ):
            raise ValueError(f"failure_threshold must be an int >= 1 or None, got {threshold!r}")
        timeout = self.recovery_timeout
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not math.isfinite(timeout)
            or timeout <= 0
        ):
            # > 0 because it is also the time after which an unanswered probe counts as lost:
            # zero would let every caller probe at once.
            raise ValueError(f"recovery_timeout must be a finite number > 0, got {timeout!r}")
        object.__setattr__(self, "recovery_timeout", float(timeout))
        object.__setattr__(self, "exceptions", _exception_types("exceptions", self.exceptions))
        object.__setattr__(
            self,
            "uncounted_exceptions",
            _exception_types("uncounted_exceptions", self.uncounted_exceptions),
        )


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")


def _cut(text: str, limit: int = _MAX_REASON_LENGTH) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return _cut(redact_text(text))


@dataclass(frozen=True, slots=True)
class FeatureChange:
    """One enable/disable change of a feature, as listeners receive it.

    ``by`` is ``"manual"`` (:meth:`GracefulDegradation.disable_feature` /
    :meth:`~GracefulDegradation.enable_feature`) or ``"auto"`` (auto-disable after failures,
    re-enable after a successful recovery probe). ``at`` is wall-clock Unix seconds.
    """

    name: str
    enabled: bool
    by: ChangeSource
    reason: str | None
    at: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form, ``at`` as an ISO 8601 UTC string."""
        return {
            "feature": self.name,
            "enabled": self.enabled,
            "by": self.by,
            "reason": self.reason,
            "at": _iso(self.at),
        }


FeatureListener = Callable[[FeatureChange], object]

_NOT_A_PROBE = False


class _Feature:
    """The decision core of one feature. Every method that changes state runs under the lock.

    A *ticket* is the generation a call was admitted under. Every transition (and every probe
    start) moves the generation on, so the outcome of a call admitted before a change (a slow
    call, a lost probe) can never act on the new state.
    """

    __slots__ = (
        "admit_generation",
        "consecutive_failures",
        "disabled_at",
        "disabled_by",
        "disabled_reason",
        "fallback",
        "fallback_kind",
        "generation",
        "last_error",
        "last_failure_at",
        "name",
        "options",
        "probe_not_before",
        "probe_started",
        "total_failures",
    )

    def __init__(self, name: str, enabled: bool, fallback: object, options: FeatureOptions) -> None:
        self.name = name
        self.fallback = fallback
        self.fallback_kind: FallbackKind = (
            "async_callable"
            if inspect.iscoroutinefunction(fallback)
            else "callable"
            if callable(fallback)
            else "value"
        )
        self.options = options
        self.generation = 0
        # The generation an enabled feature admits calls under; None while disabled. Read
        # without the lock on every call: one attribute read, atomic.
        self.admit_generation: int | None = 0 if enabled else None
        self.consecutive_failures = 0
        self.total_failures = 0
        self.last_error: str | None = None
        self.last_failure_at: float | None = None
        self.disabled_by: ChangeSource | None = None if enabled else "manual"
        self.disabled_reason: str | None = None if enabled else "registered disabled"
        self.disabled_at: float | None = None
        # Monotonic time before which a disabled feature admits no probe (inf: never).
        self.probe_not_before = math.inf
        self.probe_started: float | None = None

    # --- transitions (under the lock) ------------------------------------------------------

    def _move_on(self) -> int:
        self.generation += 1
        return self.generation

    def enable(self, by: ChangeSource, wall: float) -> FeatureChange | None:
        if self.admit_generation is not None:
            return None
        self.admit_generation = self._move_on()
        self.consecutive_failures = 0
        self.disabled_by = None
        self.disabled_reason = None
        self.disabled_at = None
        self.probe_not_before = math.inf
        self.probe_started = None
        reason = "recovery probe succeeded" if by == "auto" else None
        return FeatureChange(self.name, True, by, reason, wall)

    def disable(
        self, by: ChangeSource, reason: str, now: float, wall: float
    ) -> FeatureChange | None:
        if self.disabled_by == "manual" and by == "manual" and self.disabled_reason == reason:
            return None
        self._move_on()
        self.admit_generation = None
        self.disabled_by = by
        self.disabled_reason = reason
        self.disabled_at = wall
        self.probe_started = None
        self.probe_not_before = now + self.options.recovery_timeout if by == "auto" else math.inf
        return FeatureChange(self.name, False, by, reason, wall)

    def start_probe(self, now: float) -> int | None:
        """Admit a recovery probe if one is due; return its ticket."""
        if self.admit_generation is not None or self.disabled_by != "auto":
            return None
        if now < self.probe_not_before:
            return None
        self.probe_started = now
        # While this probe is out, nobody else probes until it is considered lost.
        self.probe_not_before = now + self.options.recovery_timeout
        return self._move_on()

    def on_success(self, ticket: int, probe: bool, wall: float) -> FeatureChange | None:
        if ticket != self.generation:
            return None
        if probe:
            return self.enable("auto", wall)
        self.consecutive_failures = 0
        return None

    def on_failure(
        self, ticket: int, probe: bool, exc: BaseException, now: float, wall: float
    ) -> FeatureChange | None:
        self.total_failures += 1
        self.last_error = _describe(exc)
        self.last_failure_at = wall
        if ticket != self.generation:
            return None
        if probe:
            self.probe_started = None
            self.probe_not_before = now + self.options.recovery_timeout
            self.disabled_reason = _cut(f"recovery probe failed: {self.last_error}")
            self._move_on()
            return None
        self.consecutive_failures += 1
        threshold = self.options.failure_threshold
        if threshold is not None and self.consecutive_failures >= threshold:
            reason = _cut(
                f"{self.consecutive_failures} consecutive failures; last: {self.last_error}"
            )
            return self.disable("auto", reason, now, wall)
        return None

    def on_neutral(self, ticket: int, probe: bool, now: float) -> None:
        """The call ended in a way that is neither success nor failure: free its probe slot."""
        if probe and ticket == self.generation:
            self.probe_started = None
            self.probe_not_before = now

    # --- reading ---------------------------------------------------------------------------

    def snapshot(self, now: float, wall: float) -> dict[str, Any]:
        enabled = self.admit_generation is not None
        probing = (
            not enabled
            and self.probe_started is not None
            and now - self.probe_started < self.options.recovery_timeout
        )
        next_probe: float | None = None
        if self.disabled_by == "auto" and not probing:
            next_probe = max(self.probe_not_before - now, 0.0)
        return {
            "enabled": enabled,
            "state": "enabled" if enabled else "probing" if probing else "disabled",
            "fallback": {"kind": self.fallback_kind, "repr": _fallback_repr(self.fallback)},
            "failure_threshold": self.options.failure_threshold,
            "recovery_timeout": self.options.recovery_timeout,
            "consecutive_failures": self.consecutive_failures,
            "total_failures": self.total_failures,
            "last_error": self.last_error,
            "last_failure_at": _iso(self.last_failure_at),
            "disabled_by": self.disabled_by,
            "disabled_reason": self.disabled_reason,
            "disabled_at": _iso(self.disabled_at),
            "probe_in_flight": probing,
            "seconds_until_probe": None if next_probe is None else round(next_probe, 3),
            "next_probe_at": None if next_probe is None else _iso(wall + next_probe),
        }


def _fallback_repr(fallback: object) -> str:
    if callable(fallback):
        name = getattr(fallback, "__qualname__", None) or type(fallback).__qualname__
        return _cut(f"<callable {name}>", _MAX_FALLBACK_REPR)
    try:
        text = repr(fallback)
    except Exception:  # a broken __repr__ must not break the status API
        text = f"<{type(fallback).__qualname__}>"
    return _cut(redact_text(text), _MAX_FALLBACK_REPR)


class GracefulDegradation:
    """A registry of named features, each with a fallback, auto-disable and self-recovery.

    Thread-safe and asyncio-safe: one short lock guards transitions, never held while a call, a
    fallback or a listener runs. Admission of an enabled feature takes no lock at all.
    """

    def __init__(self, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._features: dict[str, _Feature] = {}
        self._listeners: tuple[FeatureListener, ...] = ()

    # --- registration and manual control --------------------------------------------------

    def register_feature(
        self,
        name: str,
        enabled: bool = True,
        fallback: object = None,
        *,
        failure_threshold: int | None = DEFAULT_FAILURE_THRESHOLD,
        recovery_timeout: float = DEFAULT_RECOVERY_TIMEOUT,
        exceptions: tuple[type[BaseException], ...] = DEFAULT_EXCEPTIONS,
        uncounted_exceptions: tuple[type[BaseException], ...] = DEFAULT_UNCOUNTED_EXCEPTIONS,
    ) -> None:
        """Register (or re-register, replacing its configuration and state) a feature.

        ``fallback`` is what a call returns when the feature is disabled or the call fails: a
        plain value, or a callable that is called with the same arguments as the call it
        replaces (``async def`` callables are awaited by :meth:`execute_with_fallback_async`).
        To return a callable itself as the value, wrap it: ``fallback=lambda *a, **k: fn``.
        A feature registered with ``enabled=False`` counts as manually disabled.
        Registration notifies no listener.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"a feature name must be a non-empty str, got {name!r}")
        options = FeatureOptions(
            failure_threshold=failure_threshold,
            recovery_timeout=recovery_timeout,
            exceptions=exceptions,
            uncounted_exceptions=uncounted_exceptions,
        )
        feature = _Feature(name, bool(enabled), fallback, options)
        if not enabled:
            feature.disabled_at = self._clock.wall()
        with self._lock:
            self._features[name] = feature

    def is_registered(self, name: str) -> bool:
        """Whether a feature of that name exists."""
        return name in self._features

    def feature_names(self) -> list[str]:
        """The registered feature names, in registration order."""
        return list(self._features)

    def options(self, name: str) -> FeatureOptions:
        """The options of a feature."""
        return self._feature(name).options

    def _feature(self, name: str) -> _Feature:
        try:
            return self._features[name]
        except KeyError:
            raise UnknownFeatureError(name) from None

    def is_enabled(self, name: str) -> bool:
        """Whether calls to the feature run now. An auto-disabled feature stays ``False`` until
        a recovery probe succeeds, even once a probe is due."""
        return self._feature(name).admit_generation is not None

    def get_fallback(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """The feature's fallback: the value, or the callable's result for these arguments
        (for an ``async def`` fallback, the awaitable to await)."""
        feature = self._feature(name)
        if feature.fallback_kind == "value":
            return feature.fallback
        return cast("Callable[..., Any]", feature.fallback)(*args, **kwargs)

    def disable_feature(self, name: str, reason: str = "disabled manually") -> None:
        """Disable a feature by hand, recording ``reason`` and the time. It stays disabled (no
        recovery probes) until :meth:`enable_feature`."""
        feature = self._feature(name)
        text = _cut(redact_text(str(reason))) or "disabled manually"
        now, wall = self._clock.monotonic(), self._clock.wall()
        with self._lock:
            change = feature.disable("manual", text, now, wall)
        self._notify(change)

    def enable_feature(self, name: str) -> None:
        """Enable a feature by hand (manually or automatically disabled), clearing its failures."""
        feature = self._feature(name)
        wall = self._clock.wall()
        with self._lock:
            change = feature.enable("manual", wall)
        self._notify(change)

    # --- listeners --------------------------------------------------------------------------

    def add_listener(self, listener: FeatureListener) -> None:
        """Call ``listener(FeatureChange)`` after every enable/disable change of any feature.

        Listeners run synchronously in the thread that caused the change, outside the lock, so
        they should be quick (hand the change to a queue or ``loop.call_soon_threadsafe``).
        Exceptions they raise are logged and swallowed.
        """
        with self._lock:
            self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: FeatureListener) -> None:
        """Stop calling ``listener`` (no error if it was not added)."""
        with self._lock:
            # == rather than `is`: a bound method is a new object on every attribute access.
            self._listeners = tuple(known for known in self._listeners if known != listener)

    def _notify(self, change: FeatureChange | None) -> None:
        if change is None:
            return
        for listener in self._listeners:
            try:
                listener(change)
            except Exception as exc:  # a listener must never break a call path
                _log.error(
                    "degradation listener %r failed on %s: %s",
                    listener,
                    change.name,
                    _describe(exc),
                )

    # --- snapshot ---------------------------------------------------------------------------

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every feature's state, JSON-friendly, for the status API (see the docs for keys)."""
        now, wall = self._clock.monotonic(), self._clock.wall()
        with self._lock:
            return {name: feature.snapshot(now, wall) for name, feature in self._features.items()}

    # --- the drivers ------------------------------------------------------------------------

    def _admit(self, feature: _Feature) -> tuple[int, bool] | None:
        """Decide whether a call runs: ``(ticket, is_probe)``, or ``None`` for the fallback."""
        ticket = feature.admit_generation
        if ticket is not None:
            return ticket, _NOT_A_PROBE
        now = self._clock.monotonic()
        if now < feature.probe_not_before:  # unlocked pre-check: the common disabled case
            return None
        with self._lock:
            probe_ticket = feature.start_probe(now)
        return None if probe_ticket is None else (probe_ticket, True)

    def _succeeded(self, feature: _Feature, ticket: int, probe: bool) -> None:
        if not probe and not feature.consecutive_failures:
            return  # nothing to reset: the common success path takes no lock
        wall = self._clock.wall()
        with self._lock:
            change = feature.on_success(ticket, probe, wall)
        self._notify(change)

    def _failed(self, feature: _Feature, ticket: int, probe: bool, exc: BaseException) -> None:
        now, wall = self._clock.monotonic(), self._clock.wall()
        with self._lock:
            change = feature.on_failure(ticket, probe, exc, now, wall)
        self._notify(change)

    def _neutral(self, feature: _Feature, ticket: int, probe: bool) -> None:
        if probe:
            now = self._clock.monotonic()
            with self._lock:
                feature.on_neutral(ticket, probe, now)

    def execute_with_fallback(
        self, name: str, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Run ``fn(*args, **kwargs)`` if the feature is enabled, else return its fallback.

        A failure (an exception in ``exceptions``) is counted, may auto-disable the feature,
        and returns the fallback. The fallback is returned as if ``fn`` had returned it, so it
        should be of the same type. A fallback that raises propagates its exception.
        """
        feature = self._feature(name)
        admission = self._admit(feature)
        if admission is None:
            return cast(R, self._fallback_sync(feature, args, kwargs))
        ticket, probe = admission
        try:
            result = fn(*args, **kwargs)
        except STOP_SIGNALS:  # before the user's lists, so even BaseException cannot catch them
            self._neutral(feature, ticket, probe)
            raise
        except feature.options.uncounted_exceptions:
            self._neutral(feature, ticket, probe)
            return cast(R, self._fallback_sync(feature, args, kwargs))
        except feature.options.exceptions as exc:
            self._failed(feature, ticket, probe, exc)
            return cast(R, self._fallback_sync(feature, args, kwargs))
        except BaseException:
            self._neutral(feature, ticket, probe)
            raise
        self._succeeded(feature, ticket, probe)
        return result

    async def execute_with_fallback_async(
        self, name: str, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """The async twin of :meth:`execute_with_fallback`: awaits ``fn(*args, **kwargs)`` and
        awaits the fallback's result when it is awaitable. Cancellation propagates uncounted."""
        feature = self._feature(name)
        admission = self._admit(feature)
        if admission is None:
            return cast(R, await self._fallback_async(feature, args, kwargs))
        ticket, probe = admission
        try:
            result = await fn(*args, **kwargs)
        except STOP_SIGNALS:  # before the user's lists, so even BaseException cannot catch them
            self._neutral(feature, ticket, probe)
            raise
        except feature.options.uncounted_exceptions:
            self._neutral(feature, ticket, probe)
            return cast(R, await self._fallback_async(feature, args, kwargs))
        except feature.options.exceptions as exc:
            self._failed(feature, ticket, probe, exc)
            return cast(R, await self._fallback_async(feature, args, kwargs))
        except BaseException:
            self._neutral(feature, ticket, probe)
            raise
        self._succeeded(feature, ticket, probe)
        return result

    def _fallback_sync(
        self, feature: _Feature, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> Any:
        if feature.fallback_kind == "value":
            return feature.fallback
        if feature.fallback_kind == "async_callable":
            raise TypeError(
                f"feature {feature.name!r} has an async fallback; use execute_with_fallback_async"
            )
        result = cast("Callable[..., Any]", feature.fallback)(*args, **kwargs)
        if inspect.isawaitable(result):
            if inspect.iscoroutine(result):
                result.close()  # never leave a "coroutine was never awaited" warning behind
            raise TypeError(
                f"feature {feature.name!r} has a fallback returning an awaitable; "
                "use execute_with_fallback_async"
            )
        return result

    async def _fallback_async(
        self, feature: _Feature, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> Any:
        if feature.fallback_kind == "value":
            return feature.fallback
        result = cast("Callable[..., Any]", feature.fallback)(*args, **kwargs)
        if inspect.isawaitable(result):
            return await result
        return result

    # --- decorator --------------------------------------------------------------------------

    def feature(self, name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Decorate a function (``def`` or ``async def``) so each call goes through
        :meth:`execute_with_fallback` (or its async twin) for feature ``name``.

        The feature is looked up at call time, so it may be registered after decorating.
        """

        def decorate(fn: Callable[P, R]) -> Callable[P, R]:
            if inspect.iscoroutinefunction(fn):
                async_fn = cast("Callable[P, Awaitable[Any]]", fn)

                @functools.wraps(fn)
                async def run_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                    return await self.execute_with_fallback_async(name, async_fn, *args, **kwargs)

                return cast("Callable[P, R]", run_async)

            @functools.wraps(fn)
            def run(*args: P.args, **kwargs: P.kwargs) -> R:
                return self.execute_with_fallback(name, fn, *args, **kwargs)

            return run

        return decorate


#: The module-level default instance (system clock).
graceful_degradation = GracefulDegradation()
