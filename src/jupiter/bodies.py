"""Reading an HTTP body from outside within a size limit that holds *after* content decoding.

httpx, httpx2 (under the ``openai`` SDK) and urllib3 (under ``requests``) all decode
``Content-Encoding`` for their callers, and each hands over whatever one network read inflates
to: 64 KB of gzip can become 64 MB in a single chunk, so a cap checked per chunk is checked too
late, and a list of chunks joined at the end holds the body twice. Here the *raw* bytes are
decoded by :mod:`zlib` with ``max_length``, so no decoded piece is larger than :data:`PIECE`;
the total is counted as it grows and the first piece over the limit stops the read; the body is
one ``bytearray``. Peak memory is the limit plus one piece, whatever the upstream sends.

Only the encodings Jupiter asks for (:data:`ACCEPT_ENCODING`: gzip and deflate, alone or
stacked) are decoded; anything else (``br``, ``zstd``) is refused rather than passed on
undecoded. A compressed stream that ends early is refused too: half a catalog is not a catalog.

    body = BoundedBody(response.headers.get("content-encoding"), max_bytes=..., what="the KEV feed")
    for chunk in raw_chunks:
        body.feed(chunk)
    data = body.finish()

:func:`aread_body` does this for an httpx/httpx2 streaming response.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from jupiter.limits import InputLimitError, InvalidInputError

__all__ = [
    "ACCEPT_ENCODING",
    "PIECE",
    "BoundedBody",
    "ContentEncodingError",
    "aread_body",
    "check_declared_length",
]

#: What Jupiter sends as ``Accept-Encoding``: exactly the encodings it decodes within limits.
ACCEPT_ENCODING = "gzip, deflate"
#: The largest piece one decompression step may produce.
PIECE = 64 * 1024

_ALIASES = {"gzip": "gzip", "x-gzip": "gzip", "deflate": "deflate"}


class ContentEncodingError(InvalidInputError):
    """The body's ``Content-Encoding`` is one Jupiter does not read, or its data is corrupt or
    cut short."""

    wording = "correctly encoded"


class _Inflater:
    """One gzip or deflate layer, producing pieces of at most :data:`PIECE` bytes."""

    def __init__(self, kind: str, what: str) -> None:
        self.kind = kind
        self.what = what
        self.started = False
        self._fresh()

    def _fresh(self) -> None:
        # 16 + MAX_WBITS: a gzip header and trailer. "deflate" in HTTP means a zlib stream,
        # but some servers send raw deflate: which one is decided by the first two bytes.
        self._zlib: Any = zlib.decompressobj(16 + zlib.MAX_WBITS) if self.kind == "gzip" else None
        self._head = b""

    def _start_deflate(self, data: bytes) -> bytes:
        """Buffer the first two bytes of a deflate body, then pick zlib or raw deflate."""
        self._head += data
        if len(self._head) < 2:
            return b""
        first, second = self._head[0], self._head[1]
        wrapped = first & 0x0F == 8 and (first << 8 | second) % 31 == 0  # RFC 1950 header
        self._zlib = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        data, self._head = self._head, b""
        return data

    def decode(self, data: bytes) -> Iterator[bytes]:
        if data:
            self.started = True
        if self._zlib is None:
            data = self._start_deflate(data)
            if self._zlib is None:
                return
        while True:
            try:
                out = self._zlib.decompress(data, PIECE)
            except zlib.error as exc:
                raise ContentEncodingError(
                    f"the {self.kind} data is corrupt ({exc})", what=self.what
                ) from None
            if out:
                yield out
            if self._zlib.eof:
                rest = self._zlib.unused_data
                if self.kind == "gzip" and rest:
                    self._fresh()  # the next member of a multi-member gzip stream
                    data = rest
                    continue
                return  # trailing bytes after a deflate stream are ignored, as browsers do
            data = self._zlib.unconsumed_tail
            # A full piece may leave output pending inside zlib: ask again until it is drained.
            if not data and len(out) < PIECE:
                return

    def check_complete(self) -> None:
        if self.started and (self._zlib is None or not self._zlib.eof):
            raise ContentEncodingError(
                f"the {self.kind} stream ends early (truncated)", what=self.what
            )


def _layers(content_encoding: str | None, what: str) -> list[_Inflater]:
    """The decoders to apply, outermost (last applied by the sender) first."""
    names = [part.strip().lower() for part in (content_encoding or "").split(",")]
    layers: list[_Inflater] = []
    for name in reversed([name for name in names if name and name != "identity"]):
        kind = _ALIASES.get(name)
        if kind is None:
            raise ContentEncodingError(
                f"{name[:40]!r} is not a content encoding Jupiter accepts "
                f"(it asks for {ACCEPT_ENCODING})",
                what=what,
            )
        layers.append(_Inflater(kind, what))
    return layers


def check_declared_length(headers: Mapping[str, Any], max_bytes: int, what: str) -> None:
    """Refuse at once a body whose ``Content-Length`` already says it is over ``max_bytes``
    (the encoded size: a compressed body over the limit would only be bigger decoded)."""
    declared = headers.get("content-length")
    if declared is None:
        return
    try:
        size = int(str(declared).strip())
    except ValueError:
        return  # the transport refuses a broken Content-Length itself
    if size > max_bytes:
        raise InputLimitError("max_bytes", max_bytes, what=what, actual=size)


class BoundedBody:
    """A body decoded as it arrives, refused at the first byte over ``max_bytes``.

    ``max_bytes`` bounds the decoded body; the raw (encoded) bytes are bounded by the same
    number, since a legitimate compressed body is smaller than its decoded form.
    """

    def __init__(self, content_encoding: str | None, *, max_bytes: int, what: str) -> None:
        self.max_bytes = max_bytes
        self.what = what
        self.raw_bytes = 0
        self.body = bytearray()
        self._layers = _layers(content_encoding, what)

    def feed(self, raw: bytes) -> None:
        """Take the next raw chunk; raises :class:`InputLimitError` or
        :class:`ContentEncodingError`."""
        self.raw_bytes += len(raw)
        if self.raw_bytes > self.max_bytes:
            raise InputLimitError(
                "max_bytes", self.max_bytes, what=self.what, actual=self.raw_bytes
            )
        for piece in self._through(0, raw):
            size = len(self.body) + len(piece)
            if size > self.max_bytes:
                raise InputLimitError("max_bytes", self.max_bytes, what=self.what, actual=size)
            self.body += piece

    def _through(self, index: int, data: bytes) -> Iterator[bytes]:
        if index == len(self._layers):
            yield data
            return
        for piece in self._layers[index].decode(data):
            yield from self._through(index + 1, piece)

    def finish(self) -> bytearray:
        """The whole decoded body, once every compressed layer has ended."""
        for layer in self._layers:
            layer.check_complete()
        return self.body


async def aread_body(
    response: Any,
    *,
    max_bytes: int,
    what: str,
    after_chunk: Callable[[], None] | None = None,
) -> bytearray:
    """Read an httpx or httpx2 response opened with ``stream=True``, within ``max_bytes``.

    The raw bytes (``aiter_raw``) are decoded here, never by the client library.
    ``after_chunk`` runs after every chunk (a deadline check, say) and may raise.
    """
    check_declared_length(response.headers, max_bytes, what)
    body = BoundedBody(response.headers.get("content-encoding"), max_bytes=max_bytes, what=what)
    async for chunk in response.aiter_raw():
        body.feed(chunk)
        if after_chunk is not None:
            after_chunk()
    return body.finish()
