"""Streaming reads: byte-counting for progress, and an ijson walker that yields only the parts
a parser asks for, so a 50 MB scan never sits in memory whole.

The walker keeps the concrete JSON path (with array indexes) of everything outside the captured
values, so an error anywhere names its place, e.g. ``$.runs[0].results[1234].locations[*]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import IO, Any

import ijson
from ijson.common import ObjectBuilder

from ._errors import MalformedScanError

__all__ = ["END", "CountingReader", "stream_json"]

#: Value yielded by :func:`stream_json` when a container at a boundary prefix closes.
END = object()

_MAP = 0
_ARRAY = 1


class CountingReader:
    """Wraps a binary file, counting bytes read and reporting them to ``on_read``."""

    def __init__(self, raw: IO[bytes], on_read: Callable[[int], None] | None = None) -> None:
        self._raw = raw
        self._on_read = on_read
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._raw.read(size)
        if chunk:
            self.bytes_read += len(chunk)
            if self._on_read is not None:
                self._on_read(self.bytes_read)
        return chunk

    def close(self) -> None:
        self._raw.close()


def _render(stack: list[list[Any]]) -> str:
    parts = ["$"]
    for kind, key in stack:
        if kind == _ARRAY:
            parts.append(f"[{max(key, 0)}]")
        elif key is not None:
            parts.append(f".{key}")
    return "".join(parts)


def _relative(prefix: str, capture_prefix: str) -> str:
    rest = prefix[len(capture_prefix) :].lstrip(".")
    if not rest:
        return ""
    return "".join("[*]" if part == "item" else f".{part}" for part in rest.split("."))


def _describe_json_error(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "premature eof" in text.lower() or "incomplete" in text.lower():
        return "the JSON ends early; the file looks truncated"
    return f"malformed JSON: {text}"


def stream_json(
    reader: Any,
    captures: frozenset[str],
    *,
    boundaries: frozenset[str] = frozenset(),
    scan_format: str | None = None,
) -> Iterator[tuple[str, str, Any]]:
    """Yield ``(prefix, json_path, value)`` for each complete value at an ijson ``captures``
    prefix (``runs.item.results.item``), and ``(prefix, json_path, END)`` whenever a container
    at a ``boundaries`` prefix closes. The top level must be an object.
    """
    stack: list[list[Any]] = []  # [kind, key-or-index] per open container outside captures
    builder: ObjectBuilder | None = None
    depth = 0
    capture_prefix = ""
    capture_path = ""
    last_prefix = ""
    events = ijson.parse(reader, use_float=True)
    try:
        for prefix, event, value in events:
            last_prefix = prefix
            if builder is not None:
                builder.event(event, value)
                if event == "start_map" or event == "start_array":
                    depth += 1
                elif event == "end_map" or event == "end_array":
                    depth -= 1
                if depth == 0:
                    done, builder = builder.value, None
                    yield capture_prefix, capture_path, done
                continue

            if event == "map_key":
                stack[-1][1] = value
                continue
            if event == "end_map" or event == "end_array":
                stack.pop()
                if prefix in boundaries:
                    yield prefix, _render(stack), END
                continue

            # A value starts: a scalar, a map or an array.
            if not stack:
                if event != "start_map":
                    raise MalformedScanError(
                        "the top level must be a JSON object",
                        json_path="$",
                        scan_format=scan_format,
                    )
            elif stack[-1][0] == _ARRAY:
                stack[-1][1] += 1
            if prefix in captures:
                path = _render(stack)
                if event == "start_map" or event == "start_array":
                    builder = ObjectBuilder()
                    builder.event(event, value)
                    depth = 1
                    capture_prefix, capture_path = prefix, path
                else:
                    yield prefix, path, value
                continue
            if event == "start_map":
                stack.append([_MAP, None])
            elif event == "start_array":
                stack.append([_ARRAY, -1])
    except ijson.JSONError as exc:
        path = capture_path + _relative(last_prefix, capture_prefix) if builder else _render(stack)
        raise MalformedScanError(
            _describe_json_error(exc), json_path=path, scan_format=scan_format
        ) from None
    except UnicodeDecodeError:
        raise MalformedScanError(
            "the file is not valid UTF-8 text", json_path=_render(stack), scan_format=scan_format
        ) from None
