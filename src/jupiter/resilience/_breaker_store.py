"""Where a breaker's state lives between transitions: a small protocol and an in-memory default.

A breaker reads its store once, when it is built (to resume an open circuit), and writes it on
every transition. The per-call path never touches the store, so a store may do network I/O
(a Redis-backed store, for example) without slowing calls down. Times in a record are wall-clock
seconds since the epoch, because monotonic readings mean nothing to another process.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ._breaker_options import CircuitState

__all__ = ["BreakerStateRecord", "BreakerStateStore", "InMemoryBreakerStateStore"]


@dataclass(frozen=True, slots=True)
class BreakerStateRecord:
    """A breaker's state as persisted after a transition."""

    state: CircuitState
    reason: str
    changed_at: float
    #: Wall time the circuit last opened, or None when closed.
    opened_at: float | None = None
    #: Wall time at which a trial call becomes allowed (only meaningful while open).
    open_until: float | None = None
    #: Opened by ``force_open()``: stays open until ``reset()``.
    forced: bool = False
    #: Openings since the circuit last closed; drives the growing open duration.
    openings: int = 0
    #: While open: the failures that opened it (``CircuitBreaker.failures``).
    failures: int = 0


@runtime_checkable
class BreakerStateStore(Protocol):
    """Persistence for breaker state, keyed by breaker name. Implementations must be thread-safe."""

    def load(self, name: str) -> BreakerStateRecord | None: ...

    def save(self, name: str, record: BreakerStateRecord) -> None: ...


class InMemoryBreakerStateStore:
    """The default store: a dict. Share one instance between breakers to list them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, BreakerStateRecord] = {}

    def load(self, name: str) -> BreakerStateRecord | None:
        with self._lock:
            return self._records.get(name)

    def save(self, name: str, record: BreakerStateRecord) -> None:
        with self._lock:
            self._records[name] = record

    def names(self) -> list[str]:
        """Every breaker name saved so far, sorted."""
        with self._lock:
            return sorted(self._records)
