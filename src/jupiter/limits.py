"""Explicit limits for everything Jupiter parses, and the errors that say which limit was hit.

Every parser of outside input (request bodies, socket frames, scan files, threat feeds, RSS,
LLM replies) runs with a :class:`JsonLimits` or :class:`XmlLimits`: total bytes, nesting depth,
string length, number length, number of values or elements. Going over one raises
:class:`InputLimitError`, which names the limit, its maximum and where it was hit (a JSON path
such as ``$.runs[0].results[12].rank`` or an XML line), so the HTTP answer can be a 413 that
says exactly what to change.

:func:`parse_json` is the bounded in-memory parser for documents that fit a byte limit (bodies,
frames, feeds). It never lets the standard library see something it handles badly:

* the byte limit is checked first;
* a pass at C speed (regular expressions over the text with its strings removed) counts values
  and finds over-long numbers *before* anything is built, so ``[[],[],...]`` cannot expand a
  few megabytes into gigabytes of lists, and a 10,000-digit integer never reaches ``int()``
  (CPython refuses more than 4,300 digits with a ``ValueError``; ijson's C backend crashed on it);
* :func:`json.loads` then builds the value, and an iterative walk checks depth and string
  lengths with the path of the first offender. Nesting deeper than the interpreter's recursion
  limit is reported as the depth limit, located by a small tokenizer.

:func:`check_xml` is the same idea for XML documents read whole: expat (with every entity
declaration and external reference refused, never expanded) walks the document once, counting
elements, depth, attribute and text sizes, and names the line and column of the first offence.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from xml.parsers import expat

__all__ = [
    "InputLimitError",
    "InvalidInputError",
    "InvalidJsonError",
    "InvalidXmlError",
    "JsonLimits",
    "UnsafeXmlError",
    "XmlLimits",
    "check_xml",
    "json_path",
    "parse_json",
]

#: What each limit measures, for messages ("nesting depth 65 is over the limit of 64").
LIMIT_DESCRIPTIONS: dict[str, str] = {
    "max_bytes": "size in bytes",
    "max_depth": "nesting depth",
    "max_string_chars": "string length in characters",
    "max_number_chars": "number length in characters",
    "max_values": "number of values",
    "max_elements": "number of elements",
    "max_attribute_chars": "attribute length in characters",
    "max_text_chars": "text length in characters",
    "max_seconds": "parse time in seconds",
    "max_items": "number of items",
    "max_pages": "number of pages",
    "max_entries": "number of entries",
    "max_fetch_seconds": "time to fetch in seconds",
    "max_memory_bytes": "memory in bytes",
    "max_item_bytes": "size of one item's data in bytes",
}


class InputLimitError(ValueError):
    """Input went over one of Jupiter's explicit parsing limits.

    ``limit`` is the limit's name (``max_depth``, ``max_bytes``...), ``maximum`` its value,
    ``actual`` what was seen when known, and ``json_path`` or ``line``/``column`` where.
    ``what`` names the input ("the request body", "the KEV feed"). HTTP answers use 413.
    """

    status_code = 413
    problem = "input_limit_exceeded"

    def __init__(
        self,
        limit: str,
        maximum: float,
        *,
        what: str = "the input",
        actual: float | None = None,
        json_path: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.limit = limit
        self.maximum = maximum
        self.actual = actual
        self.what = what
        self.json_path = json_path
        self.line = line
        self.column = column
        super().__init__(self._describe())

    def _describe(self) -> str:
        measure = LIMIT_DESCRIPTIONS.get(self.limit, self.limit)
        seen = f" ({_number(self.actual)})" if self.actual is not None else ""
        text = f"{self.what}: {measure}{seen} is over the limit of {_number(self.maximum)}"
        where = self.location_text()
        return f"{text} (at {where})" if where else text

    def __reduce__(self) -> tuple[Any, ...]:
        # Picklable, so a parser run in a worker process can send its error back whole.
        return (_restore, (type(self), self.args, self.__dict__))

    def location_text(self) -> str:
        """``$.a[1].b`` or ``line 3, column 7``; empty when the position is not known."""
        if self.json_path:
            return self.json_path
        if self.line is not None:
            return f"line {self.line}" + (f", column {self.column}" if self.column else "")
        return ""

    def location(self) -> dict[str, Any] | None:
        """The machine-readable position for an error body, or None."""
        if self.json_path:
            return {"json_path": self.json_path}
        if self.line is not None:
            return {"line": self.line, "column": self.column}
        return None

    def to_dict(self) -> dict[str, Any]:
        """Fields for an error body or an ``error`` event: the limit, its maximum and where."""
        body: dict[str, Any] = {"limit": self.limit, "maximum": self.maximum}
        if self.actual is not None:
            body["actual"] = self.actual
        where = self.location()
        if where:
            body["location"] = where
        return body


class InvalidInputError(ValueError):
    """The input is not in its format at all; ``line``/``column`` say where, when known."""

    #: How the message names the format: "is not {wording}".
    wording = "valid input"

    def __init__(
        self,
        message: str,
        *,
        what: str = "the input",
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.detail = message
        self.what = what
        self.line = line
        self.column = column
        where = f" at line {line}, column {column}" if line is not None else ""
        super().__init__(f"{what} is not {self.wording}: {message}{where}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Picklable, so a parser run in a worker process can send its error back whole.
        return (_restore, (type(self), self.args, self.__dict__))


def _restore(cls: type[Exception], args: tuple[Any, ...], state: dict[str, Any]) -> Exception:
    """Rebuild a limit or input error from its fields, without calling its ``__init__``."""
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class InvalidJsonError(InvalidInputError):
    """The text is not JSON, or not UTF-8."""

    wording = "valid JSON"


class InvalidXmlError(InvalidInputError):
    """The document is not well-formed XML."""

    wording = "well-formed XML"


class UnsafeXmlError(InvalidXmlError):
    """The document declares entities or reaches outside itself (billion laughs, XXE).
    Refused, never expanded."""

    # Such a document may well be well-formed: the message says what is wrong with it.
    wording = "XML Jupiter accepts"


def _number(value: float) -> str:
    if isinstance(value, float) and not value.is_integer():
        return f"{value:g}"
    return f"{int(value):,}"


# ----- JSON ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JsonLimits:
    """Bounds for one JSON document. The defaults suit small API bodies; callers with bigger
    documents (feeds, scans) pass their own."""

    max_bytes: int = 1024 * 1024
    max_depth: int = 64
    #: Characters in one string (keys included).
    max_string_chars: int = 1024 * 1024
    #: Characters in one number literal: enough for any float's repr and 64-bit integer, far
    #: below the 4,300 digits at which CPython's ``int()`` refuses.
    max_number_chars: int = 100
    #: Every value counts: objects, arrays, strings, numbers, literals.
    max_values: int = 100_000

    def __post_init__(self) -> None:
        for name in (
            "max_bytes",
            "max_depth",
            "max_string_chars",
            "max_number_chars",
            "max_values",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")


# A JSON string, escapes included (the "unrolled loop" form, so long strings stay fast).
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
# The tokens that matter for structure, for locating a problem (slow path only).
_STRUCTURE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},:]', re.DOTALL)


def json_path(parts: list[str | int] | tuple[str | int, ...]) -> str:
    """``["runs", 0, "results"]`` as ``$.runs[0].results``; odd keys as ``$["a b"]``."""
    out = ["$"]
    for part in parts:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif part.isidentifier():
            out.append(f".{part}")
        else:
            out.append("[" + json.dumps(part[:60], ensure_ascii=True) + "]")
    return "".join(out)


def _line_column(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column


def _path_of_offset(text: str, offset: int, max_depth: int | None = None) -> str:
    """The JSON path of what is at ``offset`` or, with ``max_depth``, of the first container
    nested deeper than that. A small tokenizer, used only to locate a problem."""
    # Per open container: [is_array, index-or-key, expecting_a_key].
    stack: list[list[Any]] = []
    for match in _STRUCTURE.finditer(text):
        if max_depth is None and match.start() >= offset:
            break
        token = match.group()
        first = token[0]
        if first in "[{":
            stack.append([first == "[", 0 if first == "[" else None, first == "{"])
            if max_depth is not None and len(stack) > max_depth:
                return json_path(_parts(stack[:-1]))
        elif first in "]}":
            if stack:
                stack.pop()
        elif first == ",":
            if stack:
                if stack[-1][0]:
                    stack[-1][1] += 1
                else:
                    stack[-1][2] = True
        elif first == ":":
            if stack:
                stack[-1][2] = False
        elif stack and not stack[-1][0] and stack[-1][2]:
            try:
                stack[-1][1] = json.loads(token)
            except ValueError:
                stack[-1][1] = token[1:-1]
    return json_path(_parts(stack))


def _parts(stack: list[list[Any]]) -> list[str | int]:
    return [entry[1] for entry in stack if entry[1] is not None]


class _NotJson(ValueError):
    """A literal json.loads takes that JSON does not have: NaN, Infinity, 1e999."""

    def __init__(self, message: str, literal: str) -> None:
        super().__init__(message)
        self.literal = literal


def _reject_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not JSON", name)


def _finite_float(literal: str) -> float:
    number = float(literal)
    if number in (float("inf"), float("-inf")):
        raise _NotJson(f"the number {literal[:20]} is out of range", literal)
    return number


def parse_json(
    data: bytes | bytearray | memoryview | str,
    limits: JsonLimits = JsonLimits(),
    *,
    what: str = "the input",
) -> Any:
    """Parse one JSON document within ``limits``.

    Raises :class:`InputLimitError` naming the limit and the JSON path, or
    :class:`InvalidJsonError` (not UTF-8, not JSON, NaN/Infinity) with the line and column.
    ``str`` input is measured in UTF-8 bytes like ``bytes`` input.
    """
    if isinstance(data, str):
        text = data
        size = len(data) if data.isascii() else len(data.encode("utf-8", "surrogatepass"))
    else:
        size = len(data)
        if size > limits.max_bytes:  # before decoding: nothing over the limit is copied
            raise InputLimitError("max_bytes", limits.max_bytes, what=what, actual=size)
        try:
            # str(buffer, codec) decodes bytes, bytearray and memoryview alike without first
            # copying them: a document near the byte limit is held twice, not three times.
            text = str(data, "utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidJsonError(
                f"the bytes are not UTF-8 (at byte {exc.start})", what=what
            ) from None
    if size > limits.max_bytes:
        raise InputLimitError("max_bytes", limits.max_bytes, what=what, actual=size)
    if text.startswith("\ufeff"):
        text = text[1:]

    # Counted before anything is built: strings removed, every value is at most one of
    # "[", "{", "," or the document itself.
    skeleton = _STRING.sub("", text)
    values = skeleton.count(",") + skeleton.count("[") + skeleton.count("{") + 1
    if values > limits.max_values:
        raise InputLimitError("max_values", limits.max_values, what=what, json_path="$")
    long_number = re.search(f"[-+0-9.eE]{{{limits.max_number_chars + 1}}}", skeleton)
    if long_number is not None:
        # Locate it in the real text: the first run of that length outside a string.
        offset = _offset_outside_strings(text, f"[-+0-9.eE]{{{limits.max_number_chars + 1}}}")
        line, column = _line_column(text, offset)
        raise InputLimitError(
            "max_number_chars",
            limits.max_number_chars,
            what=what,
            json_path=_path_of_offset(text, offset),
            line=line,
            column=column,
        )
    del skeleton

    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise InputLimitError(
            "max_depth",
            limits.max_depth,
            what=what,
            json_path=_path_of_offset(text, len(text), limits.max_depth),
        ) from None
    except json.JSONDecodeError as exc:
        raise InvalidJsonError(exc.msg, what=what, line=exc.lineno, column=exc.colno) from None
    except _NotJson as exc:
        line, column = _line_column(text, _offset_outside_strings(text, re.escape(exc.literal)))
        raise InvalidJsonError(str(exc), what=what, line=line, column=column) from None
    _check_tree(value, limits, what)
    return value


def _offset_outside_strings(text: str, pattern: str) -> int:
    """Where ``pattern`` first matches outside every string (0 if nowhere)."""
    wanted = re.compile(pattern)
    position = 0
    for match in _STRING.finditer(text):
        found = wanted.search(text, position, match.start())
        if found is not None:
            return found.start()
        position = match.end()
    found = wanted.search(text, position)
    return found.start() if found is not None else 0


def _check_tree(value: Any, limits: JsonLimits, what: str) -> None:
    """Depth and string lengths, iteratively, with the path of the first offender."""
    max_depth = limits.max_depth
    max_chars = limits.max_string_chars
    # (value, depth, parent entry, key): parents are kept so a path is built only on error.
    stack: list[tuple[Any, int, Any, Any]] = [(value, 1, None, None)]

    def path_of(entry: tuple[Any, int, Any, Any] | None, last: Any = None) -> str:
        parts: list[str | int] = [] if last is None else [last]
        while entry is not None and entry[2] is not None:
            parts.append(entry[3])
            entry = entry[2]
        return json_path(parts[::-1])

    while stack:
        entry = stack.pop()
        node, depth = entry[0], entry[1]
        if isinstance(node, dict):
            if depth > max_depth:
                raise InputLimitError("max_depth", max_depth, what=what, json_path=path_of(entry))
            for key, child in node.items():
                if len(key) > max_chars:
                    raise InputLimitError(
                        "max_string_chars",
                        max_chars,
                        what=what,
                        actual=len(key),
                        json_path=path_of(entry, key[:40]),
                    )
                if isinstance(child, dict | list):
                    stack.append((child, depth + 1, entry, key))
                elif isinstance(child, str) and len(child) > max_chars:
                    raise InputLimitError(
                        "max_string_chars",
                        max_chars,
                        what=what,
                        actual=len(child),
                        json_path=path_of(entry, key),
                    )
        elif isinstance(node, list):
            if depth > max_depth:
                raise InputLimitError("max_depth", max_depth, what=what, json_path=path_of(entry))
            for index, child in enumerate(node):
                if isinstance(child, dict | list):
                    stack.append((child, depth + 1, entry, index))
                elif isinstance(child, str) and len(child) > max_chars:
                    raise InputLimitError(
                        "max_string_chars",
                        max_chars,
                        what=what,
                        actual=len(child),
                        json_path=path_of(entry, index),
                    )
        elif isinstance(node, str) and len(node) > max_chars:
            raise InputLimitError(
                "max_string_chars", max_chars, what=what, actual=len(node), json_path="$"
            )


# ----- XML ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class XmlLimits:
    """Bounds for one XML document read whole (an RSS or Atom feed, say)."""

    max_bytes: int = 10 * 1024 * 1024
    max_depth: int = 64
    max_elements: int = 200_000
    #: Characters in one attribute value (and, summed, in one start tag's attributes).
    max_attribute_chars: int = 64 * 1024
    #: Characters of text directly inside one element.
    max_text_chars: int = 1024 * 1024

    def __post_init__(self) -> None:
        for name in (
            "max_bytes",
            "max_depth",
            "max_elements",
            "max_attribute_chars",
            "max_text_chars",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")


def check_xml(
    data: bytes | bytearray | memoryview,
    limits: XmlLimits = XmlLimits(),
    *,
    what: str = "the document",
) -> None:
    """Walk ``data`` once with expat and raise at the first broken limit.

    Raises :class:`InputLimitError` (with the line and column), :class:`UnsafeXmlError` for an
    entity declaration or an external reference (refused, never expanded: billion laughs, XXE),
    and :class:`InvalidXmlError` when the document is not well-formed. A plain
    ``<!DOCTYPE rss ...>`` without an internal subset is allowed (RSS 0.91 feeds carry one);
    nothing it points at is ever fetched.
    """
    size = len(data)
    if size > limits.max_bytes:
        raise InputLimitError("max_bytes", limits.max_bytes, what=what, actual=size)
    parser = expat.ParserCreate()
    # Expat must never read anything outside the document.
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    state = {"depth": 0, "elements": 0, "text": 0}

    def where() -> dict[str, Any]:
        return {"line": parser.CurrentLineNumber, "column": parser.CurrentColumnNumber + 1}

    def start(name: str, attributes: dict[str, str]) -> None:
        state["depth"] += 1
        state["elements"] += 1
        state["text"] = 0
        if state["depth"] > limits.max_depth:
            raise InputLimitError("max_depth", limits.max_depth, what=what, **where())
        if state["elements"] > limits.max_elements:
            raise InputLimitError("max_elements", limits.max_elements, what=what, **where())
        total = sum(len(key) + len(value) for key, value in attributes.items())
        if total > limits.max_attribute_chars:
            raise InputLimitError(
                "max_attribute_chars",
                limits.max_attribute_chars,
                what=what,
                actual=total,
                **where(),
            )

    def end(name: str) -> None:
        state["depth"] -= 1
        state["text"] = 0

    def text(chunk: str) -> None:
        state["text"] += len(chunk)
        if state["text"] > limits.max_text_chars:
            raise InputLimitError("max_text_chars", limits.max_text_chars, what=what, **where())

    def refuse_entity(*_args: Any) -> None:
        raise UnsafeXmlError("entity declarations are not allowed", what=what, **where())

    def refuse_external(*_args: Any) -> int:
        raise UnsafeXmlError("external entity references are not allowed", what=what, **where())

    def doctype(_name: str, _system: str | None, _public: str | None, internal: int) -> None:
        if internal:
            raise UnsafeXmlError(
                "a DOCTYPE with an internal subset is not allowed", what=what, **where()
            )

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    parser.EntityDeclHandler = refuse_entity
    parser.UnparsedEntityDeclHandler = refuse_entity
    parser.ExternalEntityRefHandler = refuse_external
    parser.StartDoctypeDeclHandler = doctype
    try:
        parser.Parse(data, True)  # any bytes-like object, uncopied
    except expat.ExpatError as exc:
        raise InvalidXmlError(
            expat.ErrorString(exc.code), what=what, line=exc.lineno, column=exc.offset + 1
        ) from None
