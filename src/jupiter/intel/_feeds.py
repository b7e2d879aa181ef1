"""Reading one RSS or Atom document within limits: checked first (:func:`check_feed`: the XML
limits, no entity declarations or external entities, well-formed, at most ``max_entries``
entries), then read by feedparser (:func:`entries_of`), in the parser worker process when one
is given, and reduced to plain-text entries.

This module stays light (no database, no HTTP client): the worker process imports it to run
:func:`entries_of`.
"""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import html.entities
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jupiter.limits import InputLimitError, InvalidXmlError, UnsafeXmlError, check_xml

from ._errors import IntelSourceError
from ._items import safe_http_url
from ._limits import FeedLimits
from ._redact import redact_url
from ._text import html_to_text, plain_text

if TYPE_CHECKING:
    from ._worker import ParserWorker

__all__ = [
    "SUMMARY_LIMIT",
    "TITLE_LIMIT",
    "PulseEntry",
    "check_feed",
    "entries_of",
    "parse_feed",
]

TITLE_LIMIT = 300
SUMMARY_LIMIT = 500
DEFAULT_LIMITS = FeedLimits()


@dataclass(frozen=True, slots=True)
class PulseEntry:
    """One feed entry as plain text. ``link`` is an http(s) URL or ``None``."""

    key: str
    title: str
    link: str | None
    published: str | None
    summary: str


def _field_text(entry: Mapping[str, Any], name: str, limit: int) -> str:
    value = entry.get(name)
    if not isinstance(value, str):
        return ""
    detail = entry.get(f"{name}_detail") or {}
    kind = str(detail.get("type", "")) if isinstance(detail, Mapping) else ""
    if "html" in kind or "xml" in kind:
        return html_to_text(value, limit)
    return plain_text(value, limit)


def _entry_date(entry: Mapping[str, Any]) -> str | None:
    for name in ("published_parsed", "updated_parsed", "created_parsed"):
        parsed = entry.get(name)
        if parsed:
            stamp = dt.datetime.fromtimestamp(calendar.timegm(parsed), dt.UTC)
            return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    return None


def entries_of(
    body: bytes, content_type: str, feed_url: str, shown_url: str, max_entries: int
) -> tuple[str, list[PulseEntry], int]:
    """feedparser's part of :func:`parse_feed`, on a document already checked: what the
    worker process runs. ``shown_url`` is ``feed_url`` redacted, for messages."""
    import feedparser  # type: ignore[import-untyped]

    parsed = feedparser.parse(
        body,
        response_headers={"content-type": content_type or "application/xml"},
        # Off: feedparser's sanitizer is quadratic on hostile markup. Text is reduced to plain
        # words by html_to_text (linear) instead, and never stored or served as HTML.
        sanitize_html=False,
        resolve_relative_uris=False,
    )
    if not parsed.get("version") and not parsed.entries:
        reason = parsed.get("bozo_exception")
        detail = f" ({type(reason).__name__})" if reason else ""
        raise IntelSourceError(f"{shown_url} is not an RSS or Atom feed{detail}")
    if len(parsed.entries) > max_entries:
        raise InputLimitError(
            "max_entries", max_entries, what="the feed", actual=len(parsed.entries)
        )
    feed_title = (
        _field_text(parsed.feed, "title", 200) or (shown_url.split("://", 1)[-1].split("/", 1)[0])
    )
    entries: list[PulseEntry] = []
    rejected = 0
    seen: set[str] = set()
    for entry in parsed.entries:
        raw_link = entry.get("link")
        link = safe_http_url(raw_link)
        if raw_link and link is None:
            rejected += 1
        title = _field_text(entry, "title", TITLE_LIMIT)
        if not title and link is None:
            continue
        identity = str(entry.get("id") or raw_link or title)
        key = hashlib.sha256(f"{feed_url}\n{identity}".encode(errors="replace")).hexdigest()
        if key in seen:
            continue
        seen.add(key)
        entries.append(
            PulseEntry(
                key=key,
                title=title or link or "(untitled)",
                link=link,
                published=_entry_date(entry),
                summary=_field_text(entry, "summary", SUMMARY_LIMIT),
            )
        )
    return feed_title, entries, rejected


# An entry's start tag, any namespace prefix: counted before feedparser sees the document.
_ENTRY_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(?:item|entry)[\s/>]")
# A named character reference; XML itself only knows amp, lt, gt, quot and apos.
_NAMED_REFERENCE = re.compile(rb"&([A-Za-z][A-Za-z0-9]{1,31});")
_XML_NAMES = frozenset({b"amp", b"lt", b"gt", b"quot", b"apos"})


def _numeric_references(body: bytes | bytearray) -> bytes | bytearray:
    """``body`` with HTML's named references (``&nbsp;``, ``&mdash;``: feeds use them without
    declaring them, which makes the XML ill-formed) written as numeric ones (``&#160;``), so
    the strict check can accept the feed. Unknown names are left for the check to refuse."""

    def numeric(match: re.Match[bytes]) -> bytes:
        name = match.group(1)
        if name in _XML_NAMES:
            return match.group(0)
        codepoint = html.entities.name2codepoint.get(name.decode("ascii"))
        return b"&#%d;" % codepoint if codepoint is not None else match.group(0)

    if _NAMED_REFERENCE.search(body) is None:
        return body
    return _NAMED_REFERENCE.sub(numeric, body)


def check_feed(body: bytes | bytearray, feed_url: str, limits: FeedLimits = DEFAULT_LIMITS) -> None:
    """Refuse a document before feedparser reads it: over an XML limit, with an entity
    declaration or external entity (billion laughs, XXE), not well-formed, or with more than
    ``limits.max_entries`` entries. Raises :class:`InputLimitError` or
    :class:`~jupiter.limits.UnsafeXmlError` naming the line, or :class:`IntelSourceError`.
    """
    try:
        check_xml(body, limits.xml, what="the feed")
    except UnsafeXmlError:
        raise
    except InvalidXmlError as exc:
        where = f" at line {exc.line}, column {exc.column}" if exc.line is not None else ""
        raise IntelSourceError(
            f"{redact_url(feed_url)} is not an RSS or Atom feed "
            f"(not well-formed XML: {exc.detail}{where})"
        ) from None
    for count, match in enumerate(_ENTRY_TAG.finditer(body), start=1):
        if count > limits.max_entries:
            line = body.count(b"\n", 0, match.start()) + 1
            column = match.start() - (body.rfind(b"\n", 0, match.start()) + 1) + 1
            raise InputLimitError(
                "max_entries", limits.max_entries, what="the feed", line=line, column=column
            )


def parse_feed(
    body: bytes | bytearray,
    content_type: str,
    feed_url: str,
    limits: FeedLimits = DEFAULT_LIMITS,
    worker: ParserWorker | None = None,
) -> tuple[str, list[PulseEntry], int]:
    """``(feed title, entries, rejected links)`` of an RSS or Atom document.

    The document is checked first (:func:`check_feed`); feedparser then runs in ``worker``
    (a process killed past ``limits.max_parse_seconds``), or here when ``worker`` is None.
    Raises :class:`IntelSourceError` when the body is not a feed at all, and
    :class:`InputLimitError` past a limit. Links that are not absolute http(s) URLs
    (``javascript:``, ``data:``...) are dropped and counted.
    """
    body = _numeric_references(body)
    check_feed(body, feed_url, limits)
    data = bytes(body)
    arguments = (data, content_type, feed_url, redact_url(feed_url), limits.max_entries)
    if worker is None:
        return entries_of(*arguments)
    result: tuple[str, list[PulseEntry], int] = worker.run(
        entries_of,
        *arguments,
        timeout=limits.max_parse_seconds,
        what="the feed",
    )
    return result
