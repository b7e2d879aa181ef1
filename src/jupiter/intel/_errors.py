"""Errors raised by intel sources, worded for operators (they reach the status API as-is)."""

from __future__ import annotations

__all__ = ["IntelSourceError", "KevFormatError", "UpstreamConnectionError", "UpstreamHTTPError"]


class IntelSourceError(Exception):
    """A source could not deliver usable data (bad file, unknown format, malformed payload)."""


class KevFormatError(IntelSourceError):
    """A KEV catalog does not have the shape of CISA's schema; ``problems`` lists each violation."""

    def __init__(self, problems: list[str], total: int | None = None) -> None:
        self.problems = problems
        shown = "; ".join(problems[:5])
        more = (total or len(problems)) - min(len(problems), 5)
        suffix = f" (and {more} more)" if more > 0 else ""
        super().__init__(f"malformed KEV catalog: {shown}{suffix}")


class UpstreamHTTPError(IntelSourceError):
    """An upstream answered an HTTP error status; ``retry_after`` is its Retry-After, if any."""

    def __init__(self, status_code: int, location: str, retry_after: float | None = None) -> None:
        self.status_code = status_code
        self.location = location
        self.retry_after = retry_after
        super().__init__(f"upstream {location} answered HTTP {status_code}")

    @property
    def retryable(self) -> bool:
        """5xx and 429 are worth another try; other 4xx will not change on their own."""
        return self.status_code >= 500 or self.status_code == 429


class UpstreamConnectionError(IntelSourceError):
    """An upstream could not be reached (connection refused, reset or timed out); retryable."""

    retryable = True

    def __init__(self, location: str, reason: str) -> None:
        self.location = location
        super().__init__(f"could not reach {location}: {reason}")
