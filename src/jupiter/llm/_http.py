"""The HTTP clients the provider gives the ``openai`` SDK: every reply is read within limits.

The SDK reads a whole body (httpx inflating gzip without bound on the way) and hands it to
:func:`json.loads`, and its timeout bounds each read, not the reply: an upstream dripping a
byte every few seconds holds a chat for ever. These clients subclass the SDK's own
(``openai.DefaultAsyncHttpxClient`` and ``DefaultHttpxClient``) and override ``send``:

* the raw body is decoded by :class:`~jupiter.bodies.BoundedBody` within
  ``llm_max_reply_bytes`` *decoded* bytes, in one buffer;
* a successful reply is checked by :func:`~jupiter.limits.parse_json` (nesting, each string,
  so the reply text, each number, number of values) before the SDK parses it; an error
  reply over a limit is passed on without its body, so its status still counts;
* the whole exchange (connect, headers, body) runs under one deadline,
  ``llm_timeout_seconds``; the sync client checks it between reads (at most one read
  timeout more).

Going over a limit raises :class:`ReplyRefused`, the deadline :class:`ReplyDeadline`; both
carry the request, and the provider turns them into ``LLMResponseError`` and
``LLMTimeoutError``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import anyio
import openai

from jupiter.bodies import ACCEPT_ENCODING, BoundedBody, aread_body, check_declared_length
from jupiter.limits import InputLimitError, InvalidInputError, InvalidJsonError, JsonLimits
from jupiter.limits import parse_json as _parse_json

__all__ = [
    "BoundedAsyncClient",
    "BoundedClient",
    "ReplyDeadline",
    "ReplyLimits",
    "ReplyRefused",
]

WHAT = "the LLM reply"
MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ReplyLimits:
    """Limits of one chat reply (``llm_max_reply_*``)."""

    json: JsonLimits = field(
        default_factory=lambda: JsonLimits(
            max_bytes=2 * MB,
            max_depth=32,
            max_string_chars=200_000,
            max_number_chars=100,
            max_values=20_000,
        )
    )

    @classmethod
    def from_settings(cls, settings: Any) -> ReplyLimits:
        """The limits ``settings`` configure (defaults for any it does not have)."""
        base = cls().json

        def get(name: str, default: int) -> int:
            return int(getattr(settings, f"llm_max_reply_{name}", default))

        return cls(
            json=JsonLimits(
                max_bytes=get("bytes", base.max_bytes),
                max_depth=get("depth", base.max_depth),
                max_string_chars=get("chars", base.max_string_chars),
                max_number_chars=get("number_chars", base.max_number_chars),
                max_values=get("values", base.max_values),
            )
        )


class ReplyRefused(Exception):
    """The reply went over a limit or is not JSON; ``error`` says which and where."""

    def __init__(self, error: InputLimitError | InvalidInputError, request: Any) -> None:
        super().__init__(str(error))
        self.error = error
        self.request = request
        self.status_code: int | None = None


class ReplyDeadline(Exception):
    """The whole exchange took longer than ``timeout`` seconds."""

    def __init__(self, timeout: float, request: Any) -> None:
        super().__init__(f"the LLM reply took longer than {timeout:g}s")
        self.timeout = timeout
        self.request = request


def _checked(response: Any, body: bytearray, limits: ReplyLimits) -> Any:
    """A new, fully read response with ``body`` once it passed ``limits``."""
    status = int(response.status_code)
    content = bytes(body)
    if 200 <= status < 300:
        try:
            _parse_json(content, limits.json, what=WHAT)
        except InputLimitError as exc:
            refused = ReplyRefused(exc, response.request)
            refused.status_code = status
            raise refused from None
        except InvalidJsonError as exc:
            if "json" in response.headers.get("content-type", "").lower():
                refused = ReplyRefused(exc, response.request)
                refused.status_code = status
                raise refused from None
            # Not JSON and not claiming to be: the SDK reports that itself.
    else:
        try:
            _parse_json(content, limits.json, what=WHAT)
        except InputLimitError:
            content = b""  # the status speaks; a hostile error body does not travel further
        except InvalidJsonError:
            pass  # plain text (an HTML error page): the SDK shows it as text
    headers = [
        (name, value)
        for name, value in response.headers.raw
        if name.lower() not in (b"content-encoding", b"content-length", b"transfer-encoding")
    ]
    extensions = {
        key: response.extensions[key]
        for key in ("http_version", "reason_phrase")
        if key in response.extensions
    }
    return type(response)(
        status_code=status,
        headers=headers,
        content=content,
        request=response.request,
        extensions=extensions,
    )


def _asking_only_for_ours(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The client's keyword arguments with ``Accept-Encoding`` set to what BoundedBody reads."""
    headers = dict(kwargs.pop("headers", None) or {})
    headers.setdefault("Accept-Encoding", ACCEPT_ENCODING)
    return {**kwargs, "headers": headers}


class BoundedAsyncClient(openai.DefaultAsyncHttpxClient):
    """The SDK's async client, reading every reply within ``limits`` and ``deadline``."""

    def __init__(self, *, limits: ReplyLimits, deadline: float, **kwargs: Any) -> None:
        super().__init__(**_asking_only_for_ours(kwargs))
        self.reply_limits = limits
        self.deadline = deadline

    async def send(self, request: Any, *, stream: bool = False, **kwargs: Any) -> Any:
        # Always read here, bounded, whatever ``stream`` asks: Jupiter never streams replies.
        try:
            with anyio.fail_after(self.deadline):
                response = await super().send(request, stream=True, **kwargs)
                try:
                    body = await aread_body(
                        response, max_bytes=self.reply_limits.json.max_bytes, what=WHAT
                    )
                finally:
                    await response.aclose()
        except TimeoutError:
            raise ReplyDeadline(self.deadline, request) from None
        except (InputLimitError, InvalidInputError) as exc:
            raise ReplyRefused(exc, request) from None
        return _checked(response, body, self.reply_limits)


class BoundedClient(openai.DefaultHttpxClient):
    """The SDK's sync client, reading every reply within ``limits``; ``deadline`` is checked
    between reads (a blocking read cannot be cut short from the same thread, so a drip ends
    at most one read timeout after the deadline)."""

    def __init__(self, *, limits: ReplyLimits, deadline: float, **kwargs: Any) -> None:
        super().__init__(**_asking_only_for_ours(kwargs))
        self.reply_limits = limits
        self.deadline = deadline

    def send(self, request: Any, *, stream: bool = False, **kwargs: Any) -> Any:
        ends = time.monotonic() + self.deadline
        max_bytes = self.reply_limits.json.max_bytes
        response = super().send(request, stream=True, **kwargs)
        try:
            check_declared_length(response.headers, max_bytes, WHAT)
            body = BoundedBody(
                response.headers.get("content-encoding"), max_bytes=max_bytes, what=WHAT
            )
            for chunk in response.iter_raw():  # as they arrive: a chunk size would wait to fill
                body.feed(chunk)
                if time.monotonic() > ends:
                    raise ReplyDeadline(self.deadline, request)
            decoded = body.finish()
        except (InputLimitError, InvalidInputError) as exc:
            raise ReplyRefused(exc, request) from None
        finally:
            response.close()
        return _checked(response, decoded, self.reply_limits)
