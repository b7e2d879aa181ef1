"""Errors a provider raises. They are also the OpenAI SDK's own error types (so code that already
handles ``openai.APIStatusError`` keeps working) and carry what the resilience core's error mapping
reads: ``status_code``, ``response`` (with its headers) and a parsed ``retry_after``.

Messages are scrubbed of the provider's API key before they are built: an upstream that echoes the
key back (some do, in 401 bodies) must not leak it into logs or error responses.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import openai

from jupiter.limits import InputLimitError
from jupiter.resilience import retry_after_from_headers

REDACTED = "***"


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every non-trivial secret in ``secrets`` replaced by ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return text


def redact_value(value: object, secrets: Iterable[str | None]) -> object:
    """``value`` (a JSON-like structure) with secrets redacted in every string, shape kept."""
    secrets = list(secrets)
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, Mapping):
        return {key: redact_value(item, secrets) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(item, secrets) for item in value]
    return value


def parse_retry_after(
    headers: Mapping[str, str] | None, *, now: float | None = None
) -> float | None:
    """Seconds to wait from ``retry-after-ms``, ``Retry-After`` (seconds or an HTTP date), or None.

    ``retry-after-ms`` is OpenAI's finer-grained variant and wins when both are present. The
    parsing is the resilience core's (:func:`jupiter.resilience.retry_after_from_headers`).
    """
    return retry_after_from_headers(headers, time.time() if now is None else now)


class LLMError(Exception):
    """Base class of every error a provider raises. ``provider`` names the provider."""

    provider: str = ""


class LLMConfigurationError(LLMError, ValueError):
    """The provider cannot be built as configured (unknown provider, missing API key, ...)."""

    def __init__(self, message: str, *, provider: str = "") -> None:
        super().__init__(message)
        self.provider = provider


class LLMRequestError(LLMError, ValueError):
    """The caller's messages are invalid (empty, wrong shape); nothing was sent upstream."""


class LLMStatusError(LLMError, openai.APIStatusError):
    """The upstream answered with an HTTP error status.

    ``status_code`` and ``response`` come from the SDK; ``retry_after`` is the parsed
    ``Retry-After`` in seconds (None when the upstream sent none).
    """

    def __init__(
        self, message: str, *, response: Any, body: object | None, provider: str = ""
    ) -> None:
        openai.APIStatusError.__init__(self, message, response=response, body=body)
        self.provider = provider
        self.retry_after: float | None = parse_retry_after(dict(response.headers))

    @property
    def headers(self) -> Mapping[str, str]:
        """The upstream's response headers."""
        headers: Mapping[str, str] = self.response.headers
        return headers


class LLMAuthenticationError(LLMStatusError, openai.AuthenticationError):
    """401: the API key was refused. Not worth retrying."""


class LLMPermissionDeniedError(LLMStatusError, openai.PermissionDeniedError):
    """403: the key is valid but not allowed to use this model or endpoint."""


class LLMRateLimitError(LLMStatusError, openai.RateLimitError):
    """429: slow down; ``retry_after`` says for how long when the upstream told us."""


class LLMServerError(LLMStatusError, openai.InternalServerError):
    """5xx: the upstream failed."""


class LLMTimeoutError(LLMError, openai.APITimeoutError, TimeoutError):
    """The upstream did not answer within the provider's timeout."""

    def __init__(self, *, request: Any, timeout: float, provider: str = "") -> None:
        openai.APITimeoutError.__init__(self, request=request)
        self.provider = provider
        self.timeout = timeout
        self.message = f"{provider or 'LLM'} request timed out after {timeout:g}s"
        self.args = (self.message,)

    def __str__(self) -> str:
        return self.message


class LLMConnectionError(LLMError, openai.APIConnectionError, ConnectionError):
    """The upstream could not be reached (refused, reset, DNS)."""

    def __init__(self, message: str, *, request: Any, provider: str = "") -> None:
        openai.APIConnectionError.__init__(self, message=message, request=request)
        self.provider = provider


class LLMResponseError(LLMError):
    """The upstream answered with a body that is not a usable chat completion.

    ``status_code`` is 502, as a gateway reports an invalid answer from the server behind it
    (so the resilience core classifies it as a recoverable upstream failure);
    ``upstream_status`` is the HTTP status the upstream actually sent (usually 200).
    ``limit`` is set when the reply was refused for going over a parsing limit.
    """

    status_code = 502

    def __init__(
        self,
        message: str,
        *,
        upstream_status: int | None = None,
        provider: str = "",
        limit: InputLimitError | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.upstream_status = upstream_status
        #: The parsing limit the reply went over (its name, maximum and JSON path), if any.
        self.limit = limit


_STATUS_CLASSES: dict[int, type[LLMStatusError]] = {
    401: LLMAuthenticationError,
    403: LLMPermissionDeniedError,
    429: LLMRateLimitError,
}


def status_error_class(status_code: int) -> type[LLMStatusError]:
    """The most specific ``LLMStatusError`` subclass for an HTTP status."""
    if status_code in _STATUS_CLASSES:
        return _STATUS_CLASSES[status_code]
    if status_code >= 500:
        return LLMServerError
    return LLMStatusError
