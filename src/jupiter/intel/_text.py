"""Untrusted markup to plain text. Feed titles and summaries are text from strangers: Jupiter
keeps the words and drops every tag, so nothing it stores can ever be rendered as HTML.
"""

from __future__ import annotations

from html.parser import HTMLParser

__all__ = ["html_to_text", "plain_text"]

_SKIPPED = frozenset({"script", "style", "template", "noscript", "iframe", "object", "svg"})


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self._skipping += 1
        elif tag in ("br", "p", "div", "li"):
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED and self._skipping:
            self._skipping -= 1

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def plain_text(value: str, limit: int | None = None) -> str:
    """``value`` with control characters removed and whitespace collapsed, cut at ``limit``."""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in value)
    text = " ".join(cleaned.split())
    if limit is not None and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def html_to_text(value: str, limit: int | None = None) -> str:
    """The readable text of an HTML fragment: tags dropped, script/style bodies dropped,
    entities decoded, whitespace collapsed."""
    collector = _TextCollector()
    collector.feed(value)
    collector.close()
    return plain_text("".join(collector.parts), limit)
