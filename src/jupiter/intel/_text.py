"""Untrusted markup to plain text. Feed titles and summaries are text from strangers: Jupiter
keeps the words and drops every tag, so nothing it stores can ever be rendered as HTML.

The markup is scanned once, left to right, with ``str.find``: linear in the input whatever it
holds. The standard library's ``html.parser`` is not (60 KB of ``<a `` takes a minute, 80,000
``<!--`` take more), and neither is feedparser's sanitizer, so neither sees feed text.
Conversion follows what a browser shows: tags and comments vanish, the bodies of ``script``,
``style`` and friends vanish, an unclosed tag or comment hides the rest, a ``<`` that starts
no tag is text, and entities are decoded last.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

__all__ = ["html_to_text", "plain_text"]

_SKIPPED = frozenset({"script", "style", "template", "noscript", "iframe", "object", "svg"})
_BREAKS = frozenset({"br", "p", "div", "li"})
_TAG_NAME = re.compile(r"/?\s*([A-Za-z][A-Za-z0-9:-]*)")


def _text_pieces(markup: str) -> Iterator[str]:
    """The text between the tags of ``markup`` (entities still encoded), in order."""
    lowered: str | None = None  # made once, only if a skipped element needs its end found
    position, size = 0, len(markup)
    while position < size:
        start = markup.find("<", position)
        if start == -1:
            yield markup[position:]
            return
        if start > position:
            yield markup[position:start]
        if markup.startswith("<!--", start):
            end = markup.find("-->", start + 4)
            if end == -1:
                return
            position = end + 3
            continue
        following = markup[start + 1 : start + 2]
        if not (following.isalpha() or following in ("/", "!", "?")):
            yield "<"
            position = start + 1
            continue
        end = markup.find(">", start + 1)
        if end == -1:
            return
        position = end + 1
        match = _TAG_NAME.match(markup, start + 1, end)
        name = match.group(1).lower() if match else ""
        if following != "/" and name in _SKIPPED:
            if lowered is None:
                lowered = markup.lower()
            close = lowered.find("</" + name, position)
            if close == -1:
                return
            close_end = markup.find(">", close)
            position = size if close_end == -1 else close_end + 1
            yield " "
        elif name in _BREAKS:
            yield " "


def plain_text(value: str, limit: int | None = None) -> str:
    """``value`` with control characters removed and whitespace collapsed, cut at ``limit``."""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in value)
    text = " ".join(cleaned.split())
    if limit is not None and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def html_to_text(value: str, limit: int | None = None) -> str:
    """The readable text of an HTML fragment: tags dropped, script/style bodies dropped,
    entities decoded, whitespace collapsed; in time linear in ``len(value)``."""
    return plain_text(html.unescape("".join(_text_pieces(value))), limit)
