"""Spooling an upload to a temporary file as it arrives, so a 50 MB scan never sits in memory.

Accepts a raw body (the file itself) or ``multipart/form-data`` (a file part plus optional
``format`` and ``asset`` fields). Enforces the size limit while reading and tells a truncated
upload (fewer bytes than announced, or a multipart body without its closing boundary) from a
complete one. A form is bounded too: at most 16 parts, 8 headers per part and 4 KiB per header
line (python-multipart's own checks, set explicitly), 4 KiB per text field; going over one is a
413 ``input_limit_exceeded`` naming the limit, so nothing of a form piles up in memory.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header

from ._errors import MalformedScanError, ScanLimitError, TruncatedUploadError, UploadTooLargeError

__all__ = ["SpooledUpload", "spool_upload"]

# Room for multipart boundaries and headers on top of the file size limit.
_MULTIPART_OVERHEAD = 64 * 1024
_MAX_FIELD_BYTES = 4096
#: A form needs one file part and two small fields; these leave room for browsers' extras.
_MAX_PARTS = 16
_MAX_PART_HEADERS = 8
_MAX_PART_HEADER_BYTES = 4096
#: python-multipart's messages for its header limits, and the limit each is.
_PARSER_LIMITS = {
    "maximum header count exceeded": ("max_part_headers", _MAX_PART_HEADERS),
    "maximum header size exceeded": ("max_part_header_bytes", _MAX_PART_HEADER_BYTES),
}
_FORM_SUGGESTION = "Send the scan as one 'file' part, with optional 'format' and 'asset' fields."


def _form_limit(limit: str, maximum: int) -> ScanLimitError:
    return ScanLimitError(limit, maximum, what="the multipart upload", suggestion=_FORM_SUGGESTION)


@dataclass
class SpooledUpload:
    """The uploaded file on disk (delete it when done) and any form fields that came with it."""

    path: Path
    size: int
    filename: str | None = None
    fields: dict[str, str] = field(default_factory=dict)

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


class _Spool:
    """A temp file that refuses to grow past ``limit`` bytes."""

    def __init__(self, directory: Path | None, limit: int) -> None:
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix="scan-", suffix=".upload", dir=directory)
        self.path = Path(name)
        self.file: IO[bytes] = os.fdopen(handle, "wb")
        self.limit = limit
        self.size = 0

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise UploadTooLargeError(self.limit)
        self.file.write(data)

    def close(self) -> None:
        self.file.close()

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
        self.path.unlink(missing_ok=True)


class _MultipartCollector:
    """Callbacks for python-multipart: the first part with a filename (or named ``file``) goes
    to the spool; small text parts become fields."""

    def __init__(self, spool: _Spool) -> None:
        self.spool = spool
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.file_seen = False
        self.finished = False
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[str, bytes] = {}
        self._target: str | None = None  # "file", a field name, or None (ignored part)
        self._buffer = bytearray()
        self._parts = 0

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field_data,
            "on_header_value": self._header_value_data,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        self._parts += 1
        if self._parts > _MAX_PARTS:
            raise _form_limit("max_parts", _MAX_PARTS)
        self._headers, self._target, self._buffer = {}, None, bytearray()

    # Header lines are bounded by python-multipart (max_header_size, max_header_count).
    def _header_field_data(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_field.decode("latin-1").lower()] = self._header_value
        self._header_field, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        _kind, options = parse_options_header(self._headers.get("content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        if (filename is not None or name == "file") and not self.file_seen:
            self.file_seen = True
            self._target = "file"
            if filename:
                self.filename = os.path.basename(filename.decode("utf-8", "replace"))
        elif filename is None and name:
            self._target = name

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._target == "file":
            self.spool.write(data[start:end])
        elif self._target is not None:
            self._buffer += data[start:end]
            if len(self._buffer) > _MAX_FIELD_BYTES:
                raise MalformedScanError(f"the form field {self._target!r} is too long")

    def _part_end(self) -> None:
        if self._target not in (None, "file"):
            self.fields[self._target] = self._buffer.decode("utf-8", "replace").strip()

    def _end(self) -> None:
        self.finished = True


async def spool_upload(
    chunks: AsyncIterator[bytes],
    *,
    content_type: str | None,
    content_length: int | None,
    limit: int,
    directory: Path | None = None,
) -> SpooledUpload:
    """Write the request body to a temp file. Raises (and leaves nothing behind) on an oversize,
    truncated or malformed upload."""
    is_multipart = (content_type or "").lower().startswith("multipart/form-data")
    body_limit = limit + _MULTIPART_OVERHEAD if is_multipart else limit
    if content_length is not None and content_length > body_limit:
        raise UploadTooLargeError(limit)
    spool = _Spool(directory, limit)
    received = 0
    try:
        if is_multipart:
            _kind, options = parse_options_header(content_type or "")
            boundary = options.get(b"boundary")
            if not boundary:
                raise MalformedScanError("the multipart upload has no boundary in its Content-Type")
            collector = _MultipartCollector(spool)
            parser = MultipartParser(
                boundary,
                collector.callbacks(),
                max_header_count=_MAX_PART_HEADERS,
                max_header_size=_MAX_PART_HEADER_BYTES,
            )
            async for chunk in chunks:
                received += len(chunk)
                if received > body_limit:
                    raise UploadTooLargeError(limit)
                try:
                    parser.write(chunk)
                except MultipartParseError as exc:
                    over = _PARSER_LIMITS.get(str(exc).strip().lower())
                    if over is not None:
                        raise _form_limit(*over) from None
                    raise MalformedScanError(f"the multipart body is malformed: {exc}") from None
            _check_length(received, content_length)
            if not collector.finished:
                raise TruncatedUploadError(
                    f"the multipart upload ended after {received} bytes, before its closing"
                    " boundary"
                )
            if not collector.file_seen:
                raise MalformedScanError(
                    "the multipart upload has no file part (send the scan as the 'file' field)"
                )
            upload = SpooledUpload(spool.path, spool.size, collector.filename, collector.fields)
        else:
            async for chunk in chunks:
                received += len(chunk)
                spool.write(chunk)
            _check_length(received, content_length)
            upload = SpooledUpload(spool.path, spool.size)
        if upload.size == 0:
            raise MalformedScanError("the uploaded file is empty")
        spool.close()
        return upload
    except BaseException:
        spool.discard()
        raise


def _check_length(received: int, announced: int | None) -> None:
    if announced is not None and received < announced:
        raise TruncatedUploadError(
            f"the upload ended after {received} of the {announced} bytes announced"
        )
