"""What the threat-intel and community-pulse services share: settings, database sessions, the
injected resilience parts, an HTTP client, one lock per source and error reporting."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy.orm import Session

from jupiter.resilience import Clock

from ._http import SYSTEM_CLOCK, GuardedCaller, ServiceClient

__all__ = ["OutboundService"]

log = logging.getLogger("jupiter.intel")

DEFAULT_FAILURE_RETRY_SECONDS = 30.0


class OutboundService:
    """The base of a service that fetches from outside behind a breaker and retries.

    Subclasses set :attr:`error_type` (the aggregator's type) and :attr:`error_subject` (for
    the log line when the aggregator itself fails).
    """

    error_type = "intel_error"
    error_subject = "an intel error"

    def __init__(
        self,
        settings: Any,
        session_factory: Callable[[], Session],
        *,
        breaker: Any,
        aggregator: Any,
        http_client: httpx.AsyncClient | None,
        clock: Clock | None,
        retry: Any,
        timeout: float | None,
        headers: dict[str, str],
    ) -> None:
        self.settings = settings
        self.session_factory = session_factory
        self.aggregator = aggregator
        self.clock: Clock = clock or SYSTEM_CLOCK
        self.timeout = float(
            timeout if timeout is not None else getattr(settings, "intel_timeout_seconds", 15.0)
        )
        #: After a failed fetch, an unforced refresh tries that source again no sooner than this.
        self.failure_retry_seconds = float(
            getattr(settings, "intel_failure_retry_seconds", DEFAULT_FAILURE_RETRY_SECONDS)
        )
        self._guard = GuardedCaller(breaker=breaker, retry=retry, clock=self.clock)
        self._http = ServiceClient(http_client, timeout=self.timeout, headers=headers)
        self._locks: dict[str, asyncio.Lock] = {}

    async def aclose(self) -> None:
        """Close the HTTP client if this service created it."""
        await self._http.aclose()

    def _lock(self, name: str) -> asyncio.Lock:
        """The lock that keeps two syncs of one source from running at once."""
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = asyncio.Lock()
        return lock

    def _report(self, message: str, context: dict[str, Any]) -> None:
        """Tell the aggregator (if any); a failing aggregator never breaks the service."""
        if self.aggregator is None:
            return
        try:
            self.aggregator.record_error(self.error_type, message, context)
        except Exception:
            log.exception("❌ could not record %s", self.error_subject)
