"""A real HTTP server on 127.0.0.1 serving RSS 2.0 and Atom 1.0 documents, with the same
runtime-switchable faults and request recording as :mod:`support.kev_upstream`.

    with FeedUpstream() as upstream:
        url = upstream.add_rss("/rss.xml", "Vendor blog", [FeedEntry("CVE-2025-1 exploited", ...)])
        atom = upstream.add_atom("/atom.xml", "CERT", [...])
        upstream.set_fault("500", path="/rss.xml")

Documents are built with proper escaping and served with their registered media types
(``application/rss+xml``, ``application/atom+xml``).
"""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from support.kev_upstream import FaultyUpstream, Reply

__all__ = ["FeedEntry", "FeedUpstream", "atom_document", "rss_document"]

RSS_TYPE = "application/rss+xml; charset=utf-8"
ATOM_TYPE = "application/atom+xml; charset=utf-8"


@dataclass(frozen=True)
class FeedEntry:
    """One entry. ``title_type`` applies to Atom: ``text`` or ``html`` (escaped markup)."""

    title: str
    link: str
    summary: str = ""
    published: dt.datetime = dt.datetime(2025, 8, 25, 12, 0, tzinfo=dt.UTC)
    guid: str | None = None
    title_type: str = "text"


def rss_document(title: str, link: str, entries: Sequence[FeedEntry]) -> bytes:
    """An RSS 2.0 document."""
    items = "".join(
        "<item>"
        f"<title>{escape(entry.title)}</title>"
        f"<link>{escape(entry.link)}</link>"
        f'<guid isPermaLink="false">{escape(entry.guid or entry.link)}</guid>'
        f"<pubDate>{email.utils.format_datetime(entry.published)}</pubDate>"
        f"<description>{escape(entry.summary)}</description>"
        "</item>"
        for entry in entries
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rss version="2.0"><channel>'
        f"<title>{escape(title)}</title><link>{escape(link)}</link>"
        f"<description>{escape(title)} feed</description>{items}"
        "</channel></rss>"
    ).encode()


def atom_document(title: str, link: str, entries: Sequence[FeedEntry]) -> bytes:
    """An Atom 1.0 document."""
    updated = max(
        (entry.published for entry in entries), default=dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    )
    body = "".join(
        "<entry>"
        f"<title type={quoteattr(entry.title_type)}>{escape(entry.title)}</title>"
        f"<link href={quoteattr(entry.link)}/>"
        f"<id>{escape(entry.guid or entry.link)}</id>"
        f"<updated>{entry.published.isoformat()}</updated>"
        f"<published>{entry.published.isoformat()}</published>"
        f'<summary type="html">{escape(entry.summary)}</summary>'
        "</entry>"
        for entry in entries
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>{escape(title)}</title><link href={quoteattr(link)}/>"
        f"<id>{escape(link)}</id><updated>{updated.isoformat()}</updated>{body}"
        "</feed>"
    ).encode()


class FeedUpstream(FaultyUpstream):
    """RSS and Atom feeds at paths of one loopback server."""

    def __init__(self) -> None:
        super().__init__()
        self._kinds: dict[str, tuple[str, str]] = {}

    def add_rss(self, path: str, title: str, entries: Sequence[FeedEntry]) -> str:
        """Serve an RSS 2.0 feed at ``path``; returns its URL."""
        self._kinds[path] = ("rss", title)
        self.route(path, Reply(rss_document(title, "https://example.org/", entries), RSS_TYPE))
        return self.url_for(path) if self._server is not None else path

    def add_atom(self, path: str, title: str, entries: Sequence[FeedEntry]) -> str:
        """Serve an Atom 1.0 feed at ``path``; returns its URL."""
        self._kinds[path] = ("atom", title)
        self.route(path, Reply(atom_document(title, "https://example.org/", entries), ATOM_TYPE))
        return self.url_for(path) if self._server is not None else path

    def malformed_reply(self, path: str, normal: Reply) -> Reply:
        # Not XML and not a feed: what a captive portal or an error page looks like.
        return Reply(b"\x00\x01 this is not a feed {]", normal.content_type)

    def empty_reply(self, path: str, normal: Reply) -> Reply:
        kind, title = self._kinds.get(path, ("rss", "Empty"))
        build = rss_document if kind == "rss" else atom_document
        return Reply(build(title, "https://example.org/", []), normal.content_type)
