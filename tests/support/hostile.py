"""Hostile documents for the parsers of outside input: the cases issue 9 names (nesting to
depth 10^5, numbers of 10^4 digits, 16 MB strings, billion laughs, XXE, truncated documents,
gzip bombs, invalid UTF-8, NUL bytes), built cheaply and deterministically.

Each ``*_cases()`` function gives ``(name, body, headers, limit)``: what to serve, with which
headers, and the limit (or error wording) the refusal must name.
"""

from __future__ import annotations

import functools
import json
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

__all__ = [
    "JSON_INSERTIONS",
    "MB",
    "XML_INSERTIONS",
    "Case",
    "billion_laughs",
    "deep_json",
    "gzip_bomb",
    "json_cases",
    "mutated",
    "xml_cases",
    "xxe",
]

MB = 1024 * 1024
GZIP = {"Content-Encoding": "gzip"}


@dataclass(frozen=True)
class Case:
    """One hostile answer: its body, extra headers, and the words its refusal must contain."""

    name: str
    body: bytes
    expect: str
    headers: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:  # pytest ids and failure messages stay short
        return f"Case({self.name!r}, {len(self.body):,} bytes)"


def deep_json(depth: int, *, key: str | None = None) -> bytes:
    """``[[[...]]]`` (or ``{"key": {"key": ...}}``) nested ``depth`` times."""
    if key is None:
        return b"[" * depth + b"]" * depth
    opener = json.dumps({key: 0})[:-2].encode()  # b'{"key": '
    return opener * depth + b"0" + b"}" * depth


@functools.lru_cache(maxsize=8)
def gzip_bomb(decoded_size: int, *, wrap: bytes = b"") -> bytes:
    """``wrap`` then spaces (JSON and XML whitespace), ``decoded_size`` bytes in all, gzipped
    (under a hundredth of that on the wire); compressed in 1 MB steps, never held whole."""
    packer = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # fast; 0.4% of the size
    parts = [packer.compress(wrap)]
    spaces, left = b" " * MB, decoded_size - len(wrap)
    while left > 0:
        parts.append(packer.compress(spaces[: min(left, MB)]))
        left -= MB
    parts.append(packer.flush())
    return b"".join(parts)


def billion_laughs(levels: int = 9) -> bytes:
    """The classic entity-expansion bomb: 10^levels "lol"s from a few hundred bytes."""
    entities = ['<!ENTITY lol0 "lol">']
    entities += [f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, levels + 1)]
    return (
        '<?xml version="1.0"?>\n<!DOCTYPE rss [\n'
        + "\n".join(entities)
        + "\n]>\n"
        + f'<rss version="2.0"><channel><title>&lol{levels};</title>'
        + f"<item><title>&lol{levels};</title></item></channel></rss>"
    ).encode()


def xxe(target: str = "file:///etc/passwd") -> bytes:
    """An external entity pointing at a local file."""
    return (
        '<?xml version="1.0"?>\n'
        f'<!DOCTYPE rss [<!ENTITY xxe SYSTEM "{target}">]>\n'
        '<rss version="2.0"><channel><title>&xxe;</title>'
        "<item><title>&xxe;</title><link>https://x.example/</link></item></channel></rss>"
    ).encode()


def json_cases(valid: Mapping[str, Any], *, string_path: list[str | int]) -> list[Case]:
    """Hostile variants of the JSON document ``valid``; ``string_path`` leads to one of its
    strings (where a 16 MB string, a NUL and a 10^4-digit number are put)."""
    text = json.dumps(valid).encode()

    def with_value(value: Any) -> bytes:
        document = json.loads(text)
        node = document
        for step in string_path[:-1]:
            node = node[step]
        node[string_path[-1]] = value
        return json.dumps(document).encode()

    long_number = with_value(0).replace(b": 0", b": " + b"9" * 10_000, 1)
    return [
        Case("nested-1e5", deep_json(100_000), "nesting depth"),
        Case("nested-objects-1e5", deep_json(100_000, key="vulnerabilities"), "nesting depth"),
        Case("number-1e4-digits", long_number, "number length"),
        Case("string-16MB", with_value("A" * (16 * MB)), "string length"),
        Case("truncated", text[: len(text) // 2], "malformed"),
        Case(
            "gzip-bomb",
            gzip_bomb(128 * MB, wrap=b"[1,"),
            "size in bytes",
            {"Content-Encoding": "gzip"},
        ),
        Case("invalid-utf8", text[:20] + b"\xff\xfe\xc3\x28" + text[20:], "UTF-8"),
        Case("nul-bytes", text[:20] + b"\x00\x00" + text[20:], "malformed"),
        Case("many-values", b"[" + b"0," * 3_000_000 + b"0]", "number of values"),
        Case("brotli", b"\x1b\x03\x00\xf8", "content encoding", {"Content-Encoding": "br"}),
    ]


def xml_cases(valid: bytes) -> list[Case]:
    """Hostile variants of the RSS or Atom document ``valid``."""
    head, _, _ = valid.partition(b"<item>") if b"<item>" in valid else valid.partition(b"<entry>")
    close = b"</channel></rss>" if b"<rss" in valid else b"</feed>"
    item = b"<item><title>x</title><link>https://x.example/</link></item>"

    def titled(text: bytes) -> bytes:
        return b"<item><title>" + text + b"</title></item>"

    return [
        Case("billion-laughs", billion_laughs(), "is not XML Jupiter accepts"),
        Case("xxe", xxe(), "is not XML Jupiter accepts"),
        Case("nested-1e5", head + b"<x>" * 100_000 + b"</x>" * 100_000 + close, "nesting depth"),
        Case(
            "text-16MB",
            head + b"<item><title>" + b"A" * (16 * MB) + b"</title></item>" + close,
            "size in bytes",
        ),
        Case(
            "text-2MB",
            head + b"<item><title>" + b"A" * (2 * MB) + b"</title></item>" + close,
            "text length",
        ),
        Case("many-entries", head + item * 5000 + close, "number of entries"),
        Case("truncated", valid[: len(valid) // 2], "not well-formed"),
        Case(
            "gzip-bomb",
            gzip_bomb(128 * MB, wrap=b"<rss>"),
            "size in bytes",
            {"Content-Encoding": "gzip"},
        ),
        Case("invalid-utf8", valid[:60] + b"\xff\xfe" + valid[60:], "not well-formed"),
        Case("nul-bytes", valid[:60] + b"\x00" + valid[60:], "not well-formed"),
        Case("not-xml", b"\x00\x01 this is not a feed {]", "not well-formed"),
    ]


#: What :func:`mutated` may insert into JSON and into XML: the seeds of the hand-written cases.
JSON_INSERTIONS = (b"[", b"{", b'"', b"\x00", b"\xff\xfe", b"9" * 150, b"\\u0000",
                   b"\\ud800", b"[" * 100, b'"choices": null, ')  # fmt: skip
XML_INSERTIONS = (b"<", b"&", b"\x00", b"\xff\xfe", b"]]>", b"<!ENTITY x 'y'>", b"<x>" * 200,
                  b"&nbsp;", b"&#0;")  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn, valid: bytes, insertions: Sequence[bytes]) -> bytes:
    """Hypothesis: ``valid`` with one to four bytes flipped, runs inserted (from
    ``insertions``), deleted or repeated, or the end cut off."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 4))):
        operation = draw(st.sampled_from(["flip", "insert", "delete", "repeat", "cut"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if operation == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif operation == "insert":
            data[at:at] = draw(st.sampled_from(list(insertions)))
        elif operation == "delete":
            del data[at : at + draw(st.integers(1, 32))]
        elif operation == "repeat":
            data[at:at] = bytes(data[at : at + draw(st.integers(1, 64))]) * draw(st.integers(2, 50))
        else:
            del data[at:]
    return bytes(data)
