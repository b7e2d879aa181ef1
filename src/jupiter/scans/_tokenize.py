"""A pure-Python JSON tokenizer: the events of ``ijson.basic_parse`` from a byte stream, with
the lengths of numbers and strings bounded before anything is built from them.

It is the exact path next to the C parser (yajl, through ijson): the server uses it to sniff a
file's format from its first 64 KB, and the parser worker falls back to it when yajl refuses a
valid file (an integer of more than 19 digits, which yajl cannot hold but Python can). The walk
of a 50 MB SARIF file takes about three times as long on it as on yajl (11 s against 4 s), so
it is not the first choice for whole files.

Strings are decoded by the standard library's ``json.decoder.scanstring`` (C, and strict: raw
control characters and bad escapes are refused); everything else is a small state machine.
Events are ``("start_map", None)``, ``("map_key", key)``, ``("string", text)``,
``("number", int | float)``, ``("boolean", bool)``, ``("null", None)``, ``("end_map", None)``,
``("start_array", None)``, ``("end_array", None)``.
"""

from __future__ import annotations

import codecs
import json.decoder
import re
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["JsonSyntaxError", "TokenLimitError", "python_events", "top_level_keys"]

Event = tuple[str, Any]

#: The standard library's string decoder (C): ``scanstring(text, after_quote) -> (str, end)``.
_scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]

_WHITESPACE = re.compile(r"[ \t\n\r]+")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_NUMBER_RUN = re.compile(r"[-+0-9.eE]+")
_SURROGATE = re.compile("[\ud800-\udfff]")

_START_MAP: Event = ("start_map", None)
_END_MAP: Event = ("end_map", None)
_START_ARRAY: Event = ("start_array", None)
_END_ARRAY: Event = ("end_array", None)
_LITERALS: tuple[tuple[str, Event], ...] = (
    ("true", ("boolean", True)),
    ("false", ("boolean", False)),
    ("null", ("null", None)),
)

# What the tokenizer expects next.
_VALUE, _KEY_OR_END, _KEY, _COLON, _COMMA_OR_END, _VALUE_OR_END, _DONE = range(7)


class JsonSyntaxError(ValueError):
    """Not JSON. ``truncated`` when the text simply stopped; ``encoding`` when it is not UTF-8."""

    def __init__(self, message: str, *, truncated: bool = False, encoding: bool = False) -> None:
        self.truncated = truncated
        self.encoding = encoding
        super().__init__(message)


class TokenLimitError(ValueError):
    """A string or number longer than its limit (the walker adds where it was)."""

    def __init__(self, limit: str, maximum: int, actual: int | None = None) -> None:
        self.limit = limit
        self.maximum = maximum
        self.actual = actual
        super().__init__(f"{limit} {maximum}")


def python_events(
    read: Callable[[int], bytes],
    *,
    max_string_chars: int,
    max_number_chars: int,
    chunk_size: int = 1 << 20,
    errors: str = "strict",
) -> Iterator[Event]:
    """The JSON events of the bytes ``read(n)`` returns, until it returns ``b""``.

    Raises :class:`JsonSyntaxError` or :class:`TokenLimitError`. A string's raw text is read
    only up to six times its limit (every character could be a ``\\uXXXX`` escape) before it
    is refused, so memory stays bounded by the limits, not by the file. ``errors`` is the
    UTF-8 decoder's (``replace`` for a sniff that only wants keys).
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors)
    buffer = ""
    position = 0
    eof = False
    stack: list[bool] = []  # True: an object
    expect = _VALUE
    max_raw_string = 6 * max_string_chars + 2
    skip_space = _WHITESPACE.match
    match_number = _NUMBER.fullmatch
    match_number_run = _NUMBER_RUN.match

    def more(at_least: int = 0) -> None:
        """Drop what was consumed and append the next chunk (bigger when a token needs it)."""
        nonlocal buffer, position, eof
        data = read(max(chunk_size, at_least))
        try:
            text = decoder.decode(data, final=not data)
        except UnicodeDecodeError:
            raise JsonSyntaxError(
                "the file is not valid UTF-8 text", encoding=True, truncated=not data
            ) from None
        if not data:
            eof = True
        buffer = buffer[position:] + text
        position = 0

    while True:
        if position >= len(buffer):
            if eof:
                if expect == _DONE:
                    return
                raise JsonSyntaxError("the JSON ends early", truncated=True)
            more()
            continue
        char = buffer[position]
        if char in " \t\n\r":
            space = skip_space(buffer, position)
            position = space.end() if space is not None else position + 1
            continue
        if expect == _COMMA_OR_END:
            if char == ",":
                position += 1
                expect = _KEY if stack[-1] else _VALUE
                continue
            if char == ("}" if stack[-1] else "]"):
                position += 1
                yield _END_MAP if stack.pop() else _END_ARRAY
                expect = _COMMA_OR_END if stack else _DONE
                continue
            raise JsonSyntaxError(f"expected ',' or '{'}' if stack[-1] else ']'}', found {char!r}")
        if expect == _COLON:
            if char == ":":
                position += 1
                expect = _VALUE
                continue
            raise JsonSyntaxError(f"expected ':' after an object key, found {char!r}")
        if expect == _DONE:
            raise JsonSyntaxError(f"unexpected {char!r} after the end of the document")
        if char == '"':
            try:
                text, end = _scanstring(buffer, position + 1)
            except ValueError as exc:
                raw = len(buffer) - position
                if raw > max_raw_string:
                    raise TokenLimitError("max_string_chars", max_string_chars) from None
                cut = (
                    str(exc).startswith("Unterminated") or getattr(exc, "pos", 0) >= len(buffer) - 6
                )
                if cut and not eof:
                    more(raw)
                    continue
                if cut:
                    raise JsonSyntaxError("the JSON ends inside a string", truncated=True) from None
                reason = str(exc).split(":")[0].split(" at ")[0].lower()
                raise JsonSyntaxError(f"bad string ({reason})") from None
            if len(text) > max_string_chars:
                raise TokenLimitError("max_string_chars", max_string_chars, len(text))
            if not text.isascii() and _SURROGATE.search(text):
                # A lone \\ud800 escape: not text; stored as U+FFFD like yajl does.
                text = _SURROGATE.sub("\ufffd", text)
            position = end
            if expect in (_KEY, _KEY_OR_END):
                expect = _COLON
                yield ("map_key", text)
            else:
                expect = _COMMA_OR_END if stack else _DONE
                yield ("string", text)
            continue
        if expect == _KEY:
            raise JsonSyntaxError(f"expected an object key (a string), found {char!r}")
        if expect == _KEY_OR_END:
            if char == "}":
                position += 1
                stack.pop()
                expect = _COMMA_OR_END if stack else _DONE
                yield _END_MAP
                continue
            raise JsonSyntaxError(f"expected an object key (a string), found {char!r}")
        # A value (or the end of an array that may be empty).
        if char == "{":
            position += 1
            stack.append(True)
            expect = _KEY_OR_END
            yield _START_MAP
            continue
        if char == "[":
            position += 1
            stack.append(False)
            expect = _VALUE_OR_END
            yield _START_ARRAY
            continue
        if char == "]" and expect == _VALUE_OR_END:
            position += 1
            stack.pop()
            expect = _COMMA_OR_END if stack else _DONE
            yield _END_ARRAY
            continue
        if char in "-0123456789":
            # The whole run of number characters: a number cut by the end of a chunk ("0" of
            # "0.5") must not be taken for a complete one.
            run = match_number_run(buffer, position)
            end = run.end() if run is not None else position + 1
            literal = buffer[position:end]
            is_float = "." in literal or "e" in literal or "E" in literal
            if end == len(buffer) and not eof:
                if end - position > max_number_chars + max_string_chars:
                    raise _number_limit(is_float, max_number_chars, max_string_chars)
                more(end - position)
                continue
            # An integer is held exactly (int() is quadratic in its digits): max_number_chars.
            # A float parses in linear time to 64 bits (as yajl does): bounded like a string.
            if end - position > (max_string_chars if is_float else max_number_chars):
                raise _number_limit(is_float, max_number_chars, max_string_chars)
            if not match_number(literal):
                raise JsonSyntaxError(f"bad number {literal[:30]!r}")
            position = end
            expect = _COMMA_OR_END if stack else _DONE
            if is_float:
                number = float(literal)
                if number in (float("inf"), float("-inf")):
                    raise JsonSyntaxError("a number is out of range (over a 64-bit float)")
                yield ("number", number)
            else:
                yield ("number", int(literal))
            continue
        for word, event in _LITERALS:
            if buffer.startswith(word, position):
                position += len(word)
                expect = _COMMA_OR_END if stack else _DONE
                yield event
                break
        else:
            if len(buffer) - position < 5 and not eof:
                more()
                continue
            if char == "\x00":
                raise JsonSyntaxError("a NUL byte where a value should be")
            raise JsonSyntaxError(f"unexpected {char!r} where a value should be")


def _number_limit(is_float: bool, max_number_chars: int, max_string_chars: int) -> TokenLimitError:
    if is_float:
        return TokenLimitError("max_string_chars", max_string_chars)
    return TokenLimitError("max_number_chars", max_number_chars)


def top_level_keys(
    head: bytes, *, max_depth: int = 64, max_number_chars: int = 100
) -> tuple[list[str], JsonSyntaxError | None]:
    """The keys of the top-level object readable within ``head`` (a prefix of a file, so it
    may stop anywhere), and the syntax error that stopped the reading early, if any (a
    ``truncated`` one is just the end of the head).

    Bounded: the head is small, nothing nested deeper than ``max_depth`` is read, and a long
    number or string ends the reading instead of being built.
    """
    chunks = [head]

    def read(_size: int) -> bytes:
        return chunks.pop() if chunks else b""

    keys: list[str] = []
    depth = 0
    try:
        # Bad UTF-8 is the worker's to report, at its path; here it only hides keys.
        for event, value in python_events(
            read, max_string_chars=len(head), max_number_chars=max_number_chars, errors="replace"
        ):
            if event == "map_key":
                if depth == 1:
                    keys.append(value)
            elif event in ("start_map", "start_array"):
                depth += 1
                if depth > max_depth:
                    break
            elif event in ("end_map", "end_array"):
                depth -= 1
    except JsonSyntaxError as exc:
        return keys, exc
    except TokenLimitError:
        pass
    return keys, None
