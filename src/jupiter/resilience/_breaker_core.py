"""The circuit breaker's decision core: one state machine shared by every way of calling.

Protocol for a driver (``call``, ``call_async``, the decorator and the context managers)::

    ticket = core.acquire()            # raises CircuitOpenError when the call is not permitted
    ... run the guarded call, without any lock ...
    core.on_result(ticket, result, duration)      # or on_success(ticket, duration)
    core.on_failure(ticket, exc, duration)        # classifies exc: failure or neutral

(The built-in drivers call ``_admit()``, which returns the refusal instead of raising it, and
raise it from their own frame; see there why.)

A ticket is the breaker's *generation* when the call was admitted. Every transition bumps the
generation, so an outcome whose ticket is not the current generation is counted in the metrics
but never changes the state: a call that began before a change cannot count against the new state.

Concurrency. The closed-state success path of the default (consecutive) policy takes no lock:
drivers read two flags, ``_closed_fast`` and ``_clean`` (the core a third, ``_settled``), which
are only written under ``_lock``, and count the success with ``next()`` on an
``itertools.count`` (a single C call, atomic under the GIL, so exact without a lock). Refusals
of an open breaker take no lock either. Failures, transitions, half-open permits and the rate
windows take ``_lock``; it is never held while a guarded call runs, nor while listeners or the
store run.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from ._breaker_events import EventDispatcher
from ._breaker_options import (
    CircuitBreakerOptions,
    CircuitState,
    Classifier,
    StateChange,
    StateListener,
)
from ._breaker_store import BreakerStateRecord, InMemoryBreakerStateStore
from ._breaker_windows import CountWindow, OutcomeWindow, TimeWindow
from ._clock import SystemClock
from ._exceptions import CircuitOpenError

__all__ = ["BreakerCore", "CircuitBreakerMetrics"]

CLOSED = CircuitState.CLOSED
OPEN = CircuitState.OPEN
HALF_OPEN = CircuitState.HALF_OPEN
_INFINITY = math.inf


@dataclass(frozen=True, slots=True)
class CircuitBreakerMetrics:
    """Counters since the breaker was built (``reset()`` does not clear them).

    Every call ends in exactly one of ``succeeded``, ``failed``, ``rejected`` or ``ignored``.
    ``slow`` counts the non-neutral calls that took at least ``slow_call_duration``; they are all
    among ``failed`` (a slow call is a failure even when it returned).
    """

    succeeded: int
    failed: int
    rejected: int
    ignored: int
    slow: int
    consecutive_failures: int
    #: Failures / (successes + failures): over the window in a rate policy, else since creation.
    failure_rate: float
    #: Calls currently in the rate window (0 in the consecutive policy).
    window_calls: int
    window_failures: int

    @property
    def calls(self) -> int:
        """Every call that asked for permission and has finished (or was refused)."""
        return self.succeeded + self.failed + self.rejected + self.ignored

    @property
    def permitted(self) -> int:
        return self.succeeded + self.failed + self.ignored


class RefusedCall(CircuitOpenError):
    """The :class:`CircuitOpenError` a breaker raises: same attributes, same message, built for
    speed. The base class formats its message eagerly (a float format and a ``max``), which
    would triple the cost of refusing a call; here the C ``BaseException.__init__`` stores
    ``args == (name, retry_after)``, the attributes read them, and the message is formatted only
    when someone reads it. Pickles as the public class.
    """

    __slots__ = ()
    if TYPE_CHECKING:

        def __init__(self, name: str, retry_after: float) -> None: ...

    else:
        __init__ = BaseException.__init__

    @property
    def name(self) -> str:
        return cast(str, self.args[0])

    @name.setter
    def name(self, value: str) -> None:
        self.args = (value, *self.args[1:])

    @property
    def retry_after(self) -> float:
        return cast(float, self.args[1])

    @retry_after.setter
    def retry_after(self, value: float) -> None:
        self.args = (self.args[0], value)

    def __str__(self) -> str:
        return f"circuit breaker {self.name!r} is open; next trial in {self.retry_after:.1f}s"

    def __reduce__(self) -> tuple[type[CircuitOpenError], tuple[str, float]]:
        return (CircuitOpenError, (self.name, self.retry_after))


RefusedCall.__name__ = RefusedCall.__qualname__ = "CircuitOpenError"


def _counter_value(counter: itertools.count[int]) -> int:
    # itertools.count exposes its position only through repr ("count(42)"); reading it this way
    # does not advance it.
    return int(repr(counter)[6:-1])


class BreakerCore:
    """State, counters and decisions. Free of I/O: the clock is injected, listeners and the store
    are reached only through the event dispatcher after the lock is released."""

    # Slots keep attribute reads on the hot path at their cheapest (no instance dict).
    __slots__ = (
        "_classifier",
        "_clean",
        "_clock",
        "_closed_fast",
        "_consecutive_failures",
        "_events",
        "_failed",
        "_failure_result",
        "_fast_policy",
        "_forced",
        "_forced_hint",
        "_generation",
        "_half_open_in_flight",
        "_half_open_progress_at",
        "_half_open_successes",
        "_ignored",
        "_lock",
        "_monotonic",
        "_name",
        "_open_duration",
        "_open_until",
        "_opened_at",
        "_opened_by",
        "_openings",
        "_options",
        "_random",
        "_rejected",
        "_settled",
        "_slow",
        "_slow_threshold",
        "_state",
        "_store",
        "_succeeded",
        "_timed",
        "_window",
    )

    def __init__(self, options: CircuitBreakerOptions) -> None:
        self._options = options
        self._name = options.name
        self._clock = options.clock
        # The system clock's method only forwards to time.monotonic; skip that hop.
        self._monotonic: Callable[[], float] = (
            time.monotonic if type(options.clock) is SystemClock else options.clock.monotonic
        )
        self._random = options.random
        self._classifier = Classifier(options.failure_exceptions, options.excluded_exceptions)
        self._failure_result = options.failure_result
        # Drivers time calls only when slow-call detection is on; untimed calls report 0.0,
        # which never reaches an infinite threshold.
        self._timed = options.slow_call_duration is not None
        self._slow_threshold = (
            options.slow_call_duration if options.slow_call_duration is not None else math.inf
        )
        # The closed state may skip the lock only for the consecutive policy without timing.
        self._fast_policy = not options.uses_failure_rate and not self._timed
        self._window: OutcomeWindow | None = None
        if options.uses_failure_rate:
            if options.window_type == "count":
                self._window = CountWindow(options.window_size)
            else:
                self._window = TimeWindow(options.window_duration, options.window_buckets)
        self._lock = threading.Lock()

        self._succeeded = itertools.count()
        self._failed = itertools.count()
        self._rejected = itertools.count()
        self._ignored = itertools.count()
        self._slow = itertools.count()

        # Forced open has no scheduled trial; refusals report the base timeout as a finite hint
        # (an infinite retry_after would break JSON error bodies).
        self._forced_hint = float(options.timeout)
        self._state = CLOSED
        self._generation = 0
        self._consecutive_failures = 0
        self._openings = 0
        # The failures that opened the circuit (plus failed trials since), shown while open.
        self._opened_by = 0
        self._forced = False
        self._open_until = 0.0
        self._open_duration = 0.0
        self._opened_at: float | None = None
        self._half_open_in_flight = 0
        self._half_open_successes = 0
        self._half_open_progress_at = 0.0
        # _settled: closed, lock-free policy, no failure pending (a success changes nothing).
        # _clean: _settled and no result predicate to run (drivers may skip the core entirely).
        self._closed_fast = self._fast_policy
        self._settled = self._fast_policy
        self._clean = self._fast_policy and self._failure_result is None

        store = options.store if options.store is not None else InMemoryBreakerStateStore()
        self._store = store
        self._events = EventDispatcher(store)
        for listener in options.listeners:
            self._events.add(listener)
        self._restore(store.load(self._name))

    # ------------------------------------------------------------------ public reading

    @property
    def name(self) -> str:
        return self._name

    @property
    def options(self) -> CircuitBreakerOptions:
        return self._options

    @property
    def state(self) -> CircuitState:
        """The current state. Time-driven changes (OPEN -> HALF_OPEN once ``timeout`` has passed,
        HALF_OPEN -> OPEN when a trial hangs) happen lazily, when someone looks."""
        state = self._state
        if state is CLOSED or (state is OPEN and self._open_until > self._monotonic()):
            return state
        with self._lock:
            self._advance(self._monotonic())
            state = self._state
        self._events.deliver()
        return state

    @property
    def generation(self) -> int:
        """Bumped by every transition (and by ``reset()``)."""
        return self._generation

    @property
    def is_forced_open(self) -> bool:
        return self._forced

    @property
    def consecutive_failures(self) -> int:
        return self._consecutive_failures

    @property
    def failures(self) -> int:
        """The failures that count now. Closed or half-open: those toward opening (consecutive,
        or in the failure-rate window). Open: those that opened it, plus failed trial calls
        since, so an open breaker never reads 0 unless it was forced open without any."""
        if self.state is OPEN:
            return self._opened_by
        if self._window is not None:
            with self._lock:
                return self._window.totals(self._monotonic())[1]
        return self._consecutive_failures

    @property
    def half_open_in_flight(self) -> int:
        """Trial calls admitted in the current half-open period and not finished yet."""
        return self._half_open_in_flight if self._state is HALF_OPEN else 0

    @property
    def retry_after(self) -> float:
        """Seconds until a trial call is permitted (0.0 unless open; the base timeout if forced)."""
        state = self.state
        if state is not OPEN:
            return 0.0
        if self._forced:
            return self._options.timeout
        return max(0.0, self._open_until - self._monotonic())

    @property
    def metrics(self) -> CircuitBreakerMetrics:
        succeeded = _counter_value(self._succeeded)
        failed = _counter_value(self._failed)
        window_calls = window_failures = 0
        if self._window is not None:
            with self._lock:
                window_calls, window_failures = self._window.totals(self._monotonic())
            rate = window_failures / window_calls if window_calls else 0.0
        else:
            judged = succeeded + failed
            rate = failed / judged if judged else 0.0
        return CircuitBreakerMetrics(
            succeeded=succeeded,
            failed=failed,
            rejected=_counter_value(self._rejected),
            ignored=_counter_value(self._ignored),
            slow=_counter_value(self._slow),
            consecutive_failures=self._consecutive_failures,
            failure_rate=rate,
            window_calls=window_calls,
            window_failures=window_failures,
        )

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready picture of the breaker for the status API."""
        state = self.state
        metrics = self.metrics
        options = self._options
        retry_after: float | None
        if state is OPEN:
            retry_after = None if self._forced else max(0.0, self._open_until - self._monotonic())
        else:
            retry_after = 0.0
        if options.uses_failure_rate:
            policy = f"failure_rate_{options.window_type}_window"
            failures = metrics.window_failures
        else:
            policy = "consecutive_failures"
            failures = metrics.consecutive_failures
        if state is OPEN:
            failures = self._opened_by
        return {
            "name": self._name,
            "state": state.value,
            "policy": policy,
            "failures": failures,
            "consecutive_failures": metrics.consecutive_failures,
            "failure_threshold": options.failure_threshold,
            "failure_rate": metrics.failure_rate,
            "failure_rate_threshold": options.failure_rate_threshold,
            "timeout": options.timeout,
            "open_duration": (self._open_duration if state is OPEN and not self._forced else None),
            "opened_at": self._opened_at,
            "retry_after": retry_after,
            "forced_open": self._forced,
            "generation": self._generation,
            "half_open_in_flight": self.half_open_in_flight,
            "calls": {
                "succeeded": metrics.succeeded,
                "failed": metrics.failed,
                "rejected": metrics.rejected,
                "ignored": metrics.ignored,
                "slow": metrics.slow,
                "total": metrics.calls,
            },
        }

    # ------------------------------------------------------------------ listeners

    def add_listener(self, listener: StateListener) -> StateListener:
        """Call ``listener(change)`` on every state change; returns it (usable as a decorator)."""
        if not callable(listener):
            raise TypeError(f"a listener must be callable, got {listener!r}")
        self._events.add(listener)
        return listener

    def remove_listener(self, listener: StateListener) -> None:
        self._events.remove(listener)

    # ------------------------------------------------------------------ the decision protocol

    def acquire(self) -> int:
        """Permission for one call: returns its ticket, or raises :class:`CircuitOpenError`."""
        admitted = self._admit()
        if type(admitted) is int:
            return admitted
        raise RefusedCall(self._name, admitted)

    def _admit(self) -> int | float:
        """The admission decision: an ``int`` ticket, or a ``float``: refused (already counted),
        with the seconds until a trial.

        Drivers build and raise the error themselves, straight from their own frame: every
        frame an exception unwinds through costs a frame object and a traceback entry, and an
        error kept in a local variable of a frame in its own traceback would be a reference
        cycle, left for the garbage collector.
        """
        generation = self._generation  # read before the state: see _transition
        state = self._state
        if state is OPEN:
            remaining = self._open_until - self._monotonic()
            if remaining > 0.0:
                # Inlined _refuse: this path is hot while a dependency is down.
                next(self._rejected)
                if remaining == _INFINITY:
                    remaining = self._forced_hint
                return remaining
        elif state is CLOSED:
            return generation
        return self._admit_locked()

    def on_success(self, ticket: int, duration: float = 0.0) -> None:
        """The call returned normally (``duration`` matters only with ``slow_call_duration``)."""
        if duration >= self._slow_threshold:
            next(self._slow)
            next(self._failed)
            self._record_failure(ticket, "slow call")
            return
        next(self._succeeded)
        if self._settled:
            return
        self._record_success(ticket)

    def on_result(self, ticket: int, result: object, duration: float = 0.0) -> None:
        """The call returned ``result``; ``failure_result(result)`` may still make it a failure."""
        predicate = self._failure_result
        if predicate is not None:
            try:
                failed = predicate(result)
            except BaseException:
                self.on_neutral(ticket)
                raise
            if failed:
                next(self._failed)
                self._record_failure(ticket, "failure result")
                return
        self.on_success(ticket, duration)

    def on_failure(self, ticket: int, exc: BaseException, duration: float = 0.0) -> None:
        """The call raised ``exc``. Neutral exceptions only release a half-open permit."""
        if not self._classifier.is_failure(exc):
            self.on_neutral(ticket)
            return
        if duration >= self._slow_threshold:
            next(self._slow)
        next(self._failed)
        self._record_failure(ticket, f"failure: {type(exc).__name__}")

    def on_neutral(self, ticket: int) -> None:
        """The call ended without a verdict (cancelled, excluded exception): nothing counts."""
        next(self._ignored)
        if self._state is not HALF_OPEN:
            return
        with self._lock:
            if ticket == self._generation and self._state is HALF_OPEN:
                self._release_trial()

    # ------------------------------------------------------------------ manual control

    def reset(self) -> None:
        """Close the breaker and forget failures (also ends ``force_open``)."""
        with self._lock:
            self._transition(CLOSED, "reset", self._monotonic())
        self._events.deliver()

    def force_open(self) -> None:
        """Open the breaker until ``reset()`` (Polly's Isolate); no trial call is ever admitted."""
        with self._lock:
            self._forced = True
            self._transition(OPEN, "forced open", self._monotonic())
        self._events.deliver()

    # ------------------------------------------------------------------ internals (lock held
    # where noted)

    def _refuse(self, retry_after: float) -> float:
        next(self._rejected)
        if retry_after == _INFINITY:
            retry_after = self._forced_hint
        return float(max(retry_after, 0.0))

    def _admit_locked(self) -> int | float:
        ticket: int | None = None
        retry_after = 0.0
        with self._lock:
            now = self._monotonic()
            self._advance(now)
            state = self._state
            if state is CLOSED:
                ticket = self._generation
            elif state is OPEN:
                retry_after = self._open_until - now
            elif self._half_open_in_flight < self._options.half_open_max_calls:
                if self._half_open_in_flight == 0:
                    self._half_open_progress_at = now
                self._half_open_in_flight += 1
                ticket = self._generation
        self._events.deliver()
        if ticket is None:
            return self._refuse(retry_after)
        return ticket

    def _record_success(self, ticket: int) -> None:
        with self._lock:
            if ticket != self._generation:
                return
            state = self._state
            if state is CLOSED:
                if self._window is not None:
                    now = self._monotonic()
                    self._window.record(False, now)
                    self._open_if_rate_exceeded(now)
                else:
                    self._consecutive_failures = 0
                    self._settled = self._closed_fast
                    self._clean = self._closed_fast and self._failure_result is None
            elif state is HALF_OPEN:
                self._release_trial()
                self._half_open_successes += 1
                if self._half_open_successes >= self._options.success_threshold:
                    self._transition(CLOSED, "trial calls succeeded", self._monotonic())
        self._events.deliver()

    def _record_failure(self, ticket: int, reason: str) -> None:
        with self._lock:
            if ticket != self._generation:
                return
            state = self._state
            now = self._monotonic()
            if state is CLOSED:
                if self._window is not None:
                    self._window.record(True, now)
                    self._open_if_rate_exceeded(now)
                else:
                    # Clear the flags before counting so the lock-free path cannot miss it.
                    self._clean = False
                    self._settled = False
                    self._consecutive_failures += 1
                    if self._consecutive_failures >= self._options.failure_threshold:
                        self._transition(
                            OPEN,
                            f"{self._consecutive_failures} consecutive failures ({reason})",
                            now,
                        )
            elif state is HALF_OPEN:
                self._release_trial()
                self._transition(OPEN, f"trial call failed ({reason})", now)
        self._events.deliver()

    def _open_if_rate_exceeded(self, now: float) -> None:  # lock held
        assert self._window is not None
        assert self._options.failure_rate_threshold is not None
        calls, failures = self._window.totals(now)
        if calls >= self._options.minimum_calls:
            rate = failures / calls
            if rate >= self._options.failure_rate_threshold:
                self._transition(OPEN, f"failure rate {rate:.0%} over the last {calls} calls", now)

    def _release_trial(self) -> None:  # lock held, state HALF_OPEN
        if self._half_open_in_flight > 0:
            self._half_open_in_flight -= 1
        self._half_open_progress_at = self._monotonic()

    def _advance(self, now: float) -> None:  # lock held
        """Apply the transitions that the passing of time makes due."""
        state = self._state
        if state is OPEN:
            if not self._forced and now >= self._open_until:
                self._transition(HALF_OPEN, "timeout elapsed", now)
        elif (
            state is HALF_OPEN
            and self._half_open_in_flight > 0
            and now - self._half_open_progress_at >= self._options.half_open_max_wait
        ):
            self._transition(OPEN, "trial call did not finish within half_open_max_wait", now)

    def _next_open_duration(self) -> float:  # lock held, after _openings was incremented
        options = self._options
        duration = options.timeout
        if options.timeout_multiplier > 1.0 and options.max_timeout is not None:
            try:
                duration = options.timeout * options.timeout_multiplier ** (self._openings - 1)
            except OverflowError:
                duration = math.inf
            duration = min(duration, options.max_timeout)
        if options.timeout_jitter:
            draw = min(max(self._random(), 0.0), 1.0)
            duration *= 1.0 - options.timeout_jitter * draw
        return duration

    def _transition(self, new: CircuitState, reason: str, now: float) -> None:  # lock held
        old = self._state
        if new is OPEN:
            if old is HALF_OPEN:
                self._opened_by += 1  # the failed trial call
            elif self._window is not None:
                self._opened_by = self._window.totals(now)[1]
            else:
                self._opened_by = self._consecutive_failures
        elif new is CLOSED:
            self._opened_by = 0
        # Leaving the lock-free path first, and entering it last, keeps lock-free readers safe:
        # they read the generation before the flags, so they can only hold a stale ticket.
        self._closed_fast = False
        self._clean = False
        self._settled = False
        self._generation += 1
        self._consecutive_failures = 0
        self._half_open_in_flight = 0
        self._half_open_successes = 0
        self._half_open_progress_at = now
        if self._window is not None:
            self._window.clear()
        if new is OPEN:
            if self._forced:
                self._open_until = math.inf
                self._open_duration = math.inf
            else:
                self._openings += 1
                self._open_duration = self._next_open_duration()
                # Always a float: _admit tells refusals (float) from tickets (int) by type.
                self._open_until = float(now + self._open_duration)
            if old is not OPEN or self._opened_at is None:
                self._opened_at = self._clock.wall()
        elif new is CLOSED:
            self._forced = False
            self._openings = 0
            self._opened_at = None
            self._open_until = 0.0
        self._state = new
        if new is CLOSED:
            self._closed_fast = self._fast_policy
            self._settled = self._fast_policy
            self._clean = self._fast_policy and self._failure_result is None
        wall = self._clock.wall()
        change = StateChange(self._name, old, new, reason, wall) if new is not old else None
        self._events.queue(change, self._name, self._record(reason, now, wall))

    def _record(self, reason: str, now: float, wall: float) -> BreakerStateRecord:
        open_until: float | None = None
        if self._state is OPEN and not self._forced:
            open_until = wall + (self._open_until - now)
        return BreakerStateRecord(
            state=self._state,
            reason=reason,
            changed_at=wall,
            opened_at=self._opened_at,
            open_until=open_until,
            forced=self._forced,
            openings=self._openings,
            failures=self._opened_by,
        )

    def _restore(self, record: BreakerStateRecord | None) -> None:
        """Resume an open circuit from the store (no listener is told: nothing changed)."""
        if record is None or record.state is CLOSED:
            return
        now = self._monotonic()
        self._closed_fast = False
        self._clean = False
        self._settled = False
        self._state = OPEN
        self._forced = record.forced
        self._openings = max(record.openings, 1)
        self._opened_by = record.failures
        self._opened_at = record.opened_at
        if record.forced:
            self._open_until = self._open_duration = math.inf
        else:
            # A persisted HALF_OPEN means a trial was due: resume as OPEN with the trial due now.
            wall = self._clock.wall()
            remaining = 0.0
            if record.state is OPEN and record.open_until is not None:
                remaining = max(0.0, record.open_until - wall)
            self._open_until = float(now + remaining)
            self._open_duration = remaining
