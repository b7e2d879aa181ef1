"""Streaming reads of scan JSON: a walker that yields only the parts a parser asks for, within
explicit limits, so a 50 MB scan never sits in memory whole and a hostile one is refused naming
the limit and the JSON path.

The events come from yajl (ijson's C backend, ``basic_parse(use_float=True)``: no prefixes, so
no per-event path strings, which made memory quadratic in nesting depth), or from the pure-Python
tokenizer in :mod:`._tokenize`. The walk is about three times faster on yajl; yajl cannot hold
an integer of more than 19 digits, so on its "integer overflow" the walk restarts on the Python
tokenizer, skipping what it already yielded: a valid file with a 25-digit ``rank`` imports, and
a 4,301-digit one is refused as over ``max_number_chars``, at its path. Scan files are parsed in
a worker process (see :mod:`._worker`), where a crash of the C code would only end the worker.

The walker keeps the concrete JSON path (with array indexes) of the value being read, as a
stack of keys and indexes (rendered only for an error), e.g. ``$.runs[0].results[1234].level``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import ijson  # type: ignore[import-untyped]

from jupiter.limits import json_path

from ._errors import MalformedScanError, ScanLimitError
from ._limits import DEFAULT_OPTIONS, ParseOptions, ScanLimits
from ._source import CountingReader
from ._tokenize import JsonSyntaxError, TokenLimitError, python_events

__all__ = ["BACKENDS", "END", "CountingReader", "stream_json"]

#: Value yielded by :func:`stream_json` when a container at a boundary prefix closes.
END = object()

#: ``auto``: yajl, then the Python tokenizer for a file yajl cannot hold. ``yajl`` or
#: ``python`` alone (tests and benchmarks).
BACKENDS = ("auto", "yajl", "python")

_BOM = b"\xef\xbb\xbf"
#: Values between two checks of the time budget (and of ``on_tick``).
_TICK = 1 << 16
#: Memory held back during a walk, freed to report running out of memory.
_RESERVE_BYTES = 1 << 20


class _WithoutBom:
    """A reader that drops a leading UTF-8 byte-order mark (some Windows tools write one)."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self._first = True

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._raw.read(size)
        if self._first and data:  # ijson's first call is read(0), to see bytes from str
            self._first = False
            if data.startswith(_BOM):
                data = data[len(_BOM) :] or self._raw.read(size)
        return data

    def close(self) -> None:
        self._raw.close()


class _Node:
    """One step of the capture trie: an object key, or ``item`` for an array's elements."""

    __slots__ = ("boundary", "capture", "children", "is_item", "prefix")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.children: dict[str, _Node] = {}
        self.capture = False
        self.boundary = False
        self.is_item = prefix.endswith("item")


@functools.lru_cache(maxsize=64)
def _trie(captures: frozenset[str], boundaries: frozenset[str]) -> _Node:
    root = _Node("")
    for prefix in captures | boundaries:
        node = root
        for part in prefix.split("."):
            child = node.children.get(part)
            if child is None:
                child = node.children[part] = _Node(
                    f"{node.prefix}.{part}" if node.prefix else part
                )
            node = child
        node.capture = node.capture or prefix in captures
        node.boundary = node.boundary or prefix in boundaries
    return root


class _IntegerOverflow(Exception):
    """yajl met an integer it cannot hold (more than 19 digits)."""


def _yajl_events(reader: Any) -> Iterator[tuple[str, Any]]:
    return ijson.basic_parse(reader, use_float=True)  # type: ignore[no-any-return]


def _yajl_message(exc: Exception) -> tuple[str, bool]:
    """The first line of a yajl error as a sentence (never the file's bytes it quotes), and
    whether it means the file is cut short."""
    text = str(exc).strip()
    lowered = text.lower()
    if "integer overflow" in lowered:
        raise _IntegerOverflow from None
    if "premature eof" in lowered or "incomplete" in lowered:
        return "the JSON ends early; the file looks truncated", True
    if "utf8" in lowered:
        return "the file is not valid UTF-8 text", False
    if "floating point" in lowered:
        return "a number is out of range (over a 64-bit float)", False
    first = text.splitlines()[0] if text else type(exc).__name__
    return "malformed JSON: " + first.removeprefix("b'"), False


def _syntax_message(exc: JsonSyntaxError) -> str:
    if exc.encoding:
        return "the file is not valid UTF-8 text"
    if exc.truncated:
        return "the JSON ends early; the file looks truncated"
    return f"malformed JSON: {exc}"


def stream_json(
    open_stream: Callable[[], Any],
    captures: frozenset[str],
    *,
    boundaries: frozenset[str] = frozenset(),
    scan_format: str | None = None,
    options: ParseOptions = DEFAULT_OPTIONS,
) -> Iterator[tuple[str, str, Any]]:
    """Yield ``(prefix, json_path, value)`` for each complete value at an ijson-style
    ``captures`` prefix (``runs.item.results.item``), and ``(prefix, json_path, END)`` whenever
    a container at a ``boundaries`` prefix closes. The top level must be an object.

    ``open_stream()`` opens the file (it is opened again if the walk restarts on the Python
    tokenizer). ``options`` gives the limits, the backend, the clock of the time budget and
    the ``on_tick`` hook. Raises :class:`MalformedScanError` or :class:`ScanLimitError`,
    naming the JSON path.
    """
    backend = options.json_backend
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}")
    limits = options.limits
    root = _trie(captures, boundaries)
    use_yajl = backend != "python"
    skip = 0
    started = options.clock() if options.started is None else options.started
    while True:
        emitted = 0
        reader = _WithoutBom(open_stream())
        try:
            if use_yajl:
                events = _yajl_events(reader)
            else:
                events = python_events(
                    reader.read,
                    max_string_chars=limits.max_string_chars,
                    max_number_chars=limits.max_number_chars,
                )
            walk = _Walk(root, limits, scan_format, options.clock, started, options.on_tick)
            for item in walk.run(events):
                emitted += 1
                if emitted > skip:
                    yield item
            return
        except _IntegerOverflow:
            if backend == "yajl":
                raise MalformedScanError(
                    "an integer of more than 19 digits (yajl cannot hold it)",
                    scan_format=scan_format,
                ) from None
            # Start again on the exact tokenizer; what was already yielded is skipped.
            use_yajl = False
            skip = max(skip, emitted)
        finally:
            reader.close()


class _Walk:
    """One pass over the events: the path stack, the limits and the captured value in build."""

    def __init__(
        self,
        root: _Node,
        limits: ScanLimits,
        scan_format: str | None,
        clock: Callable[[], float],
        started: float,
        on_tick: Callable[[], None] | None,
    ) -> None:
        self.root = root
        self.limits = limits
        self.scan_format = scan_format
        self.clock = clock
        self.started = started
        self.on_tick = on_tick
        # Per open container outside a capture: [trie node or None, is_array, key or index].
        self.stack: list[list[Any]] = []
        # The captured value in build: its containers, and per container the pending key.
        self.build: list[Any] | None = None
        self.keys: list[Any] = []
        self.capture_parts: list[str | int] = []
        self.values = 0
        self.items = 0
        # Address space kept back for reporting a MemoryError (see run).
        self.reserve: bytearray | None = bytearray(_RESERVE_BYTES)

    # ----- where -----
    def parts(self) -> list[str | int]:
        parts: list[str | int] = []
        for _node, is_array, key in self.stack:
            if is_array:
                parts.append(max(key, 0))
            elif key is not None:
                parts.append(key)
        return parts

    def path(self) -> str:
        if self.build is None:
            return json_path(self.parts())
        parts = list(self.capture_parts)
        for container, key in zip(self.build, self.keys, strict=True):
            if isinstance(container, list):
                if container:
                    parts.append(len(container) - 1)
            elif key is not None:
                parts.append(key)
        return json_path(parts)

    def limit(self, name: str, maximum: float, actual: float | None = None) -> ScanLimitError:
        return ScanLimitError(
            name, maximum, actual=actual, json_path=self.path(), scan_format=self.scan_format
        )

    def check(self, next_tick: int) -> int:
        """The periodic checks (values, time, ``on_tick``); returns the next count to check at."""
        if self.values > self.limits.max_values:
            raise self.limit("max_values", self.limits.max_values)
        self.tick()
        return min(next_tick + _TICK, self.limits.max_values + 1)

    def tick(self) -> None:
        spent = self.clock() - self.started
        if spent > self.limits.max_seconds:
            raise self.limit("max_seconds", self.limits.max_seconds, round(spent, 1))
        if self.on_tick is not None:
            self.on_tick()

    # ----- the walk -----
    def run(self, events: Iterator[tuple[str, Any]]) -> Iterator[tuple[str, str, Any]]:
        try:
            yield from self._events(events)
        except ijson.JSONError as exc:
            message, _truncated = _yajl_message(exc)
            raise MalformedScanError(
                message, json_path=self.path(), scan_format=self.scan_format
            ) from None
        except JsonSyntaxError as exc:
            raise MalformedScanError(
                _syntax_message(exc), json_path=self.path(), scan_format=self.scan_format
            ) from None
        except TokenLimitError as exc:
            raise self.limit(exc.limit, exc.maximum, exc.actual) from None
        except UnicodeDecodeError:
            raise MalformedScanError(
                "the file is not valid UTF-8 text",
                json_path=self.path(),
                scan_format=self.scan_format,
            ) from None
        except MemoryError:
            # Freed first, so that naming the path (a few small objects) cannot fail too.
            self.reserve = None
            try:
                where = self.path()
            except MemoryError:  # not even that: give up the value in build
                self.build = None
                where = self.path()
            self.build = None
            raise ScanLimitError(
                "max_memory_bytes",
                self.limits.max_memory_bytes,
                json_path=where,
                scan_format=self.scan_format,
            ) from None

    def _events(self, events: Iterator[tuple[str, Any]]) -> Iterator[tuple[str, str, Any]]:
        limits = self.limits
        max_depth = limits.max_depth
        max_chars = limits.max_string_chars
        max_values = limits.max_values
        max_items = limits.max_items
        stack = self.stack
        keys = self.keys
        capture: _Node | None = None
        # The next value count at which to check the budgets: every _TICK values, and exactly
        # one past max_values.
        next_tick = min(_TICK, max_values + 1)
        for event, value in events:
            build = self.build
            if build is not None:
                # Inside a captured value: build it (iteratively: no recursion, any depth).
                if event == "map_key":
                    if len(value) > max_chars:
                        raise self.limit("max_string_chars", max_chars, len(value))
                    keys[-1] = value.replace("\x00", "\ufffd") if "\x00" in value else value
                    continue
                if event == "end_map" or event == "end_array":
                    done = build.pop()
                    keys.pop()
                    if not build:
                        self.build = None
                        assert capture is not None
                        yield capture.prefix, json_path(self.capture_parts), done
                    continue
                self.values += 1
                if event == "start_map" or event == "start_array":
                    container: Any = {} if event == "start_map" else []
                    top = build[-1]
                    if type(top) is list:
                        top.append(container)
                    else:
                        top[keys[-1]] = container
                    build.append(container)
                    keys.append(None)
                    if len(stack) + len(build) > max_depth:
                        raise self.limit("max_depth", max_depth)
                else:
                    if event == "string":
                        if len(value) > max_chars:
                            raise self.limit("max_string_chars", max_chars, len(value))
                        if "\x00" in value:
                            value = value.replace("\x00", "\ufffd")
                    top = build[-1]
                    if type(top) is list:
                        top.append(value)
                    else:
                        top[keys[-1]] = value
                if self.values >= next_tick:
                    next_tick = self.check(next_tick)
                continue

            if event == "map_key":
                if len(value) > max_chars:
                    raise self.limit("max_string_chars", max_chars, len(value))
                stack[-1][2] = value
                continue
            if event == "end_map" or event == "end_array":
                node = stack.pop()[0]
                if node is not None and node.boundary:
                    yield node.prefix, json_path(self.parts()), END
                continue

            # A value starts: a scalar, an object or an array.
            self.values += 1
            if self.values >= next_tick:
                next_tick = self.check(next_tick)
            child: _Node | None
            if stack:
                frame = stack[-1]
                parent: _Node | None = frame[0]
                if frame[1]:
                    frame[2] += 1
                    child = parent.children.get("item") if parent is not None else None
                else:
                    child = parent.children.get(frame[2]) if parent is not None else None
            else:
                if event != "start_map":
                    raise MalformedScanError(
                        "the top level must be a JSON object",
                        json_path="$",
                        scan_format=self.scan_format,
                    )
                child = self.root
            starts = event == "start_map" or event == "start_array"
            if starts and len(stack) >= max_depth:
                raise self.limit("max_depth", max_depth)
            if event == "string":
                if len(value) > max_chars:
                    raise self.limit("max_string_chars", max_chars, len(value))
                if "\x00" in value:
                    value = value.replace("\x00", "\ufffd")
            if child is not None and child.capture:
                if child.is_item:
                    self.items += 1
                    if self.items > max_items:
                        raise self.limit("max_items", max_items)
                if starts:
                    capture = child
                    self.capture_parts = self.parts()
                    self.build = [{} if event == "start_map" else []]
                    keys.append(None)
                else:
                    yield child.prefix, json_path(self.parts()), value
                continue
            if starts:
                is_array = event == "start_array"
                stack.append([child, is_array, -1 if is_array else None])
