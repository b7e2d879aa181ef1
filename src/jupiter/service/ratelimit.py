"""Token buckets on the injected clock: the per-connection chat limit and frame flood guard."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from jupiter.resilience import Clock
from jupiter.resilience._clock import SYSTEM_CLOCK

__all__ = ["FloodGuard", "FrameVerdict", "TokenBucket"]


class TokenBucket:
    """``capacity`` tokens, refilled at ``refill_per_second``; one token per chat message."""

    def __init__(
        self, capacity: int, refill_per_second: float, *, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        if capacity < 1 or refill_per_second <= 0:
            raise ValueError("capacity must be >= 1 and refill_per_second > 0")
        self.capacity = capacity
        self.refill_per_second = refill_per_second
        self._clock = clock
        self._tokens = float(capacity)
        self._updated = clock.monotonic()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock.monotonic()
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self.capacity, self._tokens + elapsed * self.refill_per_second)
        self._updated = now

    def try_acquire(self) -> tuple[bool, float]:
        """Take a token if one is there; otherwise say how many seconds until one will be."""
        with self._lock:
            self._refill()
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True, 0.0
            return False, (1.0 - self._tokens) / self.refill_per_second


@dataclass(frozen=True, slots=True)
class FrameVerdict:
    """What to do with one incoming frame (see :class:`FloodGuard`)."""

    #: Handle the frame.
    admitted: bool
    #: Dropped, and this is the first drop of the notice interval: tell the client.
    notify: bool = False
    #: Dropped, and the flood went past the second threshold: close the socket.
    close: bool = False
    #: Seconds until the next frame would be admitted.
    retry_after: float = 0.0


_ADMITTED = FrameVerdict(admitted=True)


class FloodGuard:
    """A per-connection budget over *all* frames, on the injected clock.

    * Every frame takes a token from a bucket of ``burst`` tokens refilled at
      ``per_second``; a frame that finds none is dropped unhandled (not even parsed).
    * The first drop in each ``notice_interval`` seconds says ``notify``, so the client is told
      once per interval (not once per dropped frame).
    * Drops themselves drain a second bucket: ``close_after_drops`` of them within
      ``close_window`` seconds (it refills at ``close_after_drops / close_window`` per second)
      say ``close``: the flood is sustained and the socket is closed.
    """

    def __init__(
        self,
        *,
        burst: int,
        per_second: float,
        notice_interval: float,
        close_after_drops: int,
        close_window: float,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if notice_interval <= 0 or close_window <= 0:
            raise ValueError("notice_interval and close_window must be > 0")
        self._frames = TokenBucket(burst, per_second, clock=clock)
        self._drops = TokenBucket(close_after_drops, close_after_drops / close_window, clock=clock)
        self._clock = clock
        self.notice_interval = notice_interval
        self._next_notice = float("-inf")
        #: Frames dropped on this connection so far.
        self.dropped = 0

    def admit(self) -> FrameVerdict:
        """Judge one incoming frame."""
        allowed, wait = self._frames.try_acquire()
        if allowed:
            return _ADMITTED
        self.dropped += 1
        within_threshold, _ = self._drops.try_acquire()
        if not within_threshold:
            return FrameVerdict(admitted=False, close=True, retry_after=wait)
        now = self._clock.monotonic()
        notify = now >= self._next_notice
        if notify:
            self._next_notice = now + self.notice_interval
        return FrameVerdict(admitted=False, notify=notify, retry_after=wait)
