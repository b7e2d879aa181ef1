"""Outbound calls of the intel area: which failures are worth a retry, how long to wait, how to
describe an error without leaking a secret, and the guarded call (breaker around retries).

The decisions (``is_retryable``, ``redact_url``, ``describe_error``) are pure; ``GuardedCaller``
(the core's retry inside the breaker) and ``get_bytes`` are the thin async drivers on top.
``parse_retry_after`` is the core's, re-exported here for the sources.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import httpx

from jupiter.bodies import ACCEPT_ENCODING, aread_body
from jupiter.limits import InputLimitError, InvalidInputError
from jupiter.resilience import (
    CircuitOpenError,
    Clock,
    RetryPolicy,
    SystemClock,
    parse_retry_after,
    redact_text,
    retry_with_backoff,
)

from ._errors import IntelSourceError, UpstreamConnectionError, UpstreamHTTPError
from ._redact import redact_url

__all__ = [
    "GuardedCaller",
    "RetryRunner",
    "ServiceClient",
    "deadline_check",
    "default_retry",
    "describe_error",
    "get_bytes",
    "is_retryable",
    "only_transient",
    "parse_retry_after",
    "redact_url",
    "release_frames",
]

T = TypeVar("T")

#: A retry strategy: given a zero-argument coroutine function, run it (maybe several times).
RetryRunner = Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]]

SYSTEM_CLOCK: Clock = SystemClock()
_URL_IN_TEXT = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")


class _Breaker(Protocol):
    async def call_async(self, func: Callable[..., Awaitable[Any]], *args: Any) -> Any: ...


class _Aggregator(Protocol):
    def record_error(
        self, error_type: str, message: str, context: dict[str, Any] | None = None
    ) -> Any: ...


def _redact_text(text: str) -> str:
    """The core's :func:`~jupiter.resilience.redact_text`, plus every URL cut by :func:`redact_url`.

    URLs first, so a whole query string goes rather than only its secret-looking values.
    """
    return redact_text(_URL_IN_TEXT.sub(lambda match: redact_url(match.group(0)), text))


def is_retryable(exc: BaseException) -> bool:
    """Transient failures only: timeouts, connection and protocol errors, HTTP 5xx and 429.

    Malformed data, 4xx answers and an open breaker are not retried: trying again immediately
    gives the same answer.
    """
    if isinstance(exc, UpstreamHTTPError):
        return exc.retryable
    if isinstance(exc, UpstreamConnectionError):
        return True
    if isinstance(exc, httpx.TransportError):  # timeouts, connect, read, protocol errors
        return True
    try:  # taxii2-client speaks requests
        import requests
    except ImportError:  # pragma: no cover - requests comes with taxii2-client
        return False
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        status = exc.response.status_code
        return status >= 500 or status == 429
    return isinstance(exc, requests.ConnectionError | requests.Timeout)


def default_retry(clock: Clock = SYSTEM_CLOCK) -> Any:
    """The core's ``retry_with_backoff(3, 1.0, 2.0)`` retrying only :func:`is_retryable` failures.

    The core honours ``Retry-After`` through the ``retry_after`` attribute of
    :class:`UpstreamHTTPError` (capped at ``max_delay``).
    """
    return retry_with_backoff(
        max_attempts=3,
        initial_delay=1.0,
        backoff_factor=2.0,
        max_delay=30.0,
        exceptions=is_retryable,
        clock=clock,
    )


def describe_error(exc: BaseException, timeout: float | None = None) -> str:
    """A short operator-facing message with every URL redacted (no query strings, no tokens)."""
    if isinstance(exc, CircuitOpenError):
        return f"circuit breaker open; next trial in {exc.retry_after:.0f}s"
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out after {timeout:g}s" if timeout else "timed out"
    if isinstance(exc, httpx.ConnectError):
        return "connection failed (upstream unreachable)"
    if isinstance(exc, httpx.TransportError):
        return f"transport error ({type(exc).__name__}): {_redact_text(str(exc))[:200]}"
    if isinstance(exc, json.JSONDecodeError):
        return f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
    if isinstance(exc, UnicodeDecodeError):
        return "malformed payload: not valid UTF-8"
    if isinstance(exc, InputLimitError | InvalidInputError | IntelSourceError):
        # Limit errors name the limit and the JSON path or XML line: keep all of it.
        return _redact_text(str(exc))[:500]
    return f"{type(exc).__name__}: {_redact_text(str(exc))[:300]}"


def only_transient(policy: RetryPolicy) -> RetryPolicy:
    """``policy`` retrying only what :func:`is_retryable` calls transient, as well as what it
    already limited itself to. The dashboard hands every component the same policy, which
    retries any error; fetching a malformed or over-limit document again only gets it again
    (and holding each refused attempt until the next one multiplied the memory a document
    near the limits costs)."""
    wider = policy.core.is_retryable

    def transient(exc: BaseException) -> bool:
        return is_retryable(exc) and wider(exc)

    return RetryPolicy(dataclasses.replace(policy.options, exceptions=transient))


def release_frames(exc: BaseException) -> None:
    """Drop the tracebacks of ``exc`` and of every exception chained to it.

    A parser's frames hold the document (up to the byte limit, and what was built from it)
    for as long as anything keeps the error, and breakers and retry policies keep the last
    one: without this a refused 16 MB document stayed in memory until the next failure.
    """
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        current.__traceback__ = None
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)


class ServiceClient:
    """A service's HTTP client: the caller's (borrowed, never closed here) or, when none was
    given, one made on first use (``timeout``, at most 5 s to connect, ``headers``, no proxies
    from the environment) and closed by :meth:`aclose`. Call it to get the client."""

    def __init__(
        self, client: httpx.AsyncClient | None, *, timeout: float, headers: dict[str, str]
    ) -> None:
        self._client = client
        self._owned = client is None
        self._timeout = timeout
        self._headers = headers

    def __call__(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self._timeout, connect=min(self._timeout, 5.0)),
                headers=self._headers,
                trust_env=False,  # proxies from the environment would leak credentials
            )
        return self._client

    async def aclose(self) -> None:
        """Close the client if this object made it (a borrowed one is the caller's to close)."""
        if self._owned and self._client is not None:
            await self._client.aclose()
            self._client = None


class GuardedCaller:
    """The breaker around the retries around the call: one breaker failure per exhausted call.

    ``breaker`` needs ``call_async(fn)`` (``jupiter.resilience.CircuitBreaker``), or is a factory
    ``breaker(name)`` giving one breaker per source/feed; ``retry`` is a core
    ``RetryPolicy`` (anything with ``call_async``) or a :data:`RetryRunner` callable (default:
    :func:`default_retry` on ``clock``).
    """

    def __init__(
        self,
        *,
        breaker: _Breaker | Callable[[str], _Breaker] | None = None,
        retry: Any = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.breaker = breaker
        self.clock = clock
        self._made: dict[str, _Breaker] = {}
        if retry is None:
            retry = default_retry(clock)
        if isinstance(retry, RetryPolicy):
            retry = only_transient(retry)
        if hasattr(retry, "call_async"):  # a jupiter.resilience.RetryPolicy
            policy = retry

            async def run(func: Callable[[], Awaitable[Any]]) -> Any:
                return await policy.call_async(func)

            self.retry: RetryRunner = run
        else:
            self.retry = retry

    def breaker_for(self, name: str) -> _Breaker | None:
        """The breaker guarding ``name``: the one shared breaker, or one from a factory."""
        if self.breaker is None or hasattr(self.breaker, "call_async"):
            return self.breaker
        if callable(self.breaker):
            if name not in self._made:
                self._made[name] = self.breaker(name)
            return self._made[name]
        raise TypeError("breaker must have call_async() or be a factory callable(name)")

    async def call(self, func: Callable[[], Awaitable[T]], *, name: str = "default") -> T:
        async def with_retries() -> T:
            result: T = await self.retry(func)
            return result

        breaker = self.breaker_for(name)
        if breaker is None:
            return await with_retries()
        result: T = await breaker.call_async(with_retries)
        return result


def deadline_check(clock: Clock, max_seconds: float | None, what: str) -> Callable[[], None] | None:
    """A check that raises :class:`InputLimitError` (``max_fetch_seconds``) once
    ``max_seconds`` have passed on ``clock`` since it was made; None for no deadline.

    Run between reads, it bounds a whole download (a server dripping a byte at a time), where
    the HTTP client's timeout only bounds each read.
    """
    if max_seconds is None:
        return None
    limit = max_seconds
    deadline = clock.monotonic() + limit

    def check() -> None:
        if clock.monotonic() > deadline:
            raise InputLimitError("max_fetch_seconds", limit, what=what)

    return check


async def get_bytes(
    client: httpx.AsyncClient,
    url: str,
    *,
    clock: Clock = SYSTEM_CLOCK,
    max_bytes: int = 64 * 1024 * 1024,
    headers: dict[str, str] | None = None,
    what: str = "the document",
    max_seconds: float | None = None,
) -> tuple[bytearray, str]:
    """GET ``url``: ``(body, content_type)``; HTTP errors raise :class:`UpstreamHTTPError`.

    The body is decoded here (gzip, deflate) within ``max_bytes`` *decoded* bytes, in one
    buffer, so neither a large nor a highly compressed answer can exhaust memory; going over
    raises :class:`~jupiter.limits.InputLimitError`, as does the whole download taking longer
    than ``max_seconds`` on ``clock``. Neither is retried: the same document would come back.
    """
    location = redact_url(url)
    check = deadline_check(clock, max_seconds, what)
    request_headers = {"Accept-Encoding": ACCEPT_ENCODING, **(headers or {})}
    async with client.stream(
        "GET", url, headers=request_headers, follow_redirects=True
    ) as response:
        if response.status_code >= 400:
            retry_after = parse_retry_after(response.headers.get("retry-after"), clock.wall())
            raise UpstreamHTTPError(response.status_code, location, retry_after)
        body = await aread_body(response, max_bytes=max_bytes, what=what, after_chunk=check)
        return body, response.headers.get("content-type", "")
