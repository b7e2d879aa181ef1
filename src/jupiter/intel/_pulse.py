"""The community pulse: RSS 2.0 and Atom 1.0 feeds, fetched with httpx, parsed with feedparser,
cached in the database as plain text, with topics trending across sources.

Parsing (``parse_feed``) and trending (``trending_topics``) are pure; the service is the thin
driver that fetches through the breaker and retries, stores, and reports per-feed status.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import anyio
import httpx
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from jupiter.limits import InputLimitError
from jupiter.resilience import Clock

from ._errors import IntelSourceError
from ._feeds import PulseEntry, check_feed, parse_feed
from ._http import describe_error, get_bytes, release_frames
from ._http import redact_url as _redact_url
from ._items import safe_http_url
from ._limits import FeedLimits
from ._outbound import OutboundService
from ._threats import source_status
from ._worker import ParserWorker, shared_parser_worker
from .models import PulseFeedState, PulseItemRow

__all__ = ["CommunityPulseService", "PulseEntry", "check_feed", "parse_feed", "trending_topics"]

log = logging.getLogger("jupiter.intel")

COMPONENT = "community_pulse"
ERROR_TYPE = "pulse_feed_error"
_ACCEPT = "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.8"


# --- trending ---------------------------------------------------------------------------------

_CVE = re.compile(r"\bCVE-\d{4}-\d{4,19}\b", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-.+#][A-Za-z0-9]+)*")
_STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "also",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "him",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "new",
        "news",
        "says",
        "said",
        "via",
        "week",
        "today",
        "year",
        "years",
        "day",
        "days",
        "how",
        "why",
        "what",
        "amid",
        "into",
        "over",
        "more",
        "update",
        "updates",
        "updated",
        "report",
        "reports",
        "reported",
        "first",
        "latest",
        "could",
        "after",
        "still",
        "now",
        "get",
        "gets",
        "security",
        "vulnerability",
        "vulnerabilities",
        "flaw",
        "flaws",
        "attack",
        "attacks",
        "attacker",
        "attackers",
        "threat",
        "threats",
        "issue",
        "issues",
        "fix",
        "fixes",
        "fixed",
        "patch",
        "patches",
        "patched",
        "release",
        "released",
        "releases",
        "version",
    ]
)


def _topics_of(title: str, summary: str) -> tuple[set[str], Counter[str]]:
    """Topic keys mentioned by one item, and the spelling each key was written with."""
    keys: set[str] = set()
    spellings: Counter[str] = Counter()
    for match in _CVE.findall(f"{title} {summary}"):
        keys.add(match.upper())
        spellings[match.upper()] += 1
    for word in _WORD.findall(_CVE.sub(" ", title)):
        key = word.lower()
        if len(key) < 4 and not (len(word) >= 3 and word.isupper()):
            continue
        if key in _STOPWORDS or key == "cve" or key.isdigit():
            continue
        keys.add(key)
        spellings[word] += 1
    return keys, spellings


def trending_topics(
    items: Iterable[Mapping[str, Any]], *, min_sources: int = 2, limit: int = 10
) -> list[dict[str, Any]]:
    """Topics (CVE IDs, and words of titles) that appear in at least ``min_sources`` sources.

    Each item needs ``source`` and ``title`` (``summary`` is searched for CVE IDs only). The
    score rewards spread first: ``sources + 0.25 * extra mentions``, plus 0.5 for a CVE ID, so a
    topic two feeds agree on beats one feed repeating itself.
    """
    sources_of: dict[str, set[str]] = defaultdict(set)
    mentions: Counter[str] = Counter()
    spellings: dict[str, Counter[str]] = defaultdict(Counter)
    for item in items:
        keys, written = _topics_of(str(item.get("title") or ""), str(item.get("summary") or ""))
        for key in keys:
            sources_of[key].add(str(item.get("source") or ""))
            mentions[key] += 1
        for spelling, count in written.items():
            spellings[spelling.lower() if not _CVE.fullmatch(spelling) else spelling][spelling] += (
                count
            )
    trending: list[dict[str, Any]] = []
    for key, sources in sources_of.items():
        if len(sources) < min_sources:
            continue
        is_cve = bool(_CVE.fullmatch(key))
        score = len(sources) + 0.25 * (mentions[key] - len(sources)) + (0.5 if is_cve else 0.0)
        spelled = spellings.get(key)
        label = spelled.most_common(1)[0][0] if spelled else key
        trending.append(
            {
                "topic": label,
                "kind": "cve" if is_cve else "term",
                "sources": len(sources),
                "mentions": mentions[key],
                "score": round(score, 2),
            }
        )
    trending.sort(key=lambda topic: (-topic["score"], topic["topic"].lower()))
    return trending[:limit]


# --- service ----------------------------------------------------------------------------------


class CommunityPulseService(OutboundService):
    """The community pulse from ``settings.pulse_feeds`` (RSS 2.0 / Atom 1.0 URLs).

    Feeds are fetched when older than ``refresh_seconds`` (default
    ``settings.pulse_refresh_seconds`` or 300 s), each behind the injected breaker (one shared
    breaker, or a factory ``breaker(feed_url)``) and retries; the last good entries of every feed
    stay in the database and are served ``stale`` when a fetch fails.
    """

    error_type = ERROR_TYPE
    error_subject = "a pulse error"

    def __init__(
        self,
        settings: Any,
        session_factory: Callable[[], Session],
        *,
        breaker: Any = None,
        aggregator: Any = None,
        http_client: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
        retry: Any = None,
        timeout: float | None = None,
        refresh_seconds: float | None = None,
        max_items_per_feed: int = 50,
        parser_worker: ParserWorker | None = None,
    ) -> None:
        super().__init__(
            settings,
            session_factory,
            breaker=breaker,
            aggregator=aggregator,
            http_client=http_client,
            clock=clock,
            retry=retry,
            timeout=timeout,
            headers={"User-Agent": "jupiter-pulse/0.1", "Accept": _ACCEPT},
        )
        if refresh_seconds is None:
            refresh_seconds = float(getattr(settings, "pulse_refresh_seconds", 300.0))
        self.refresh_seconds = refresh_seconds
        self.max_items_per_feed = max_items_per_feed
        #: The parsing limits every feed document is held to (``pulse_max_*``).
        self.limits = FeedLimits.from_settings(settings)
        #: Where feedparser runs: the process-wide worker unless one is given.
        self.parser_worker = parser_worker or shared_parser_worker(
            self.limits.max_parser_memory_bytes
        )
        self.feeds: list[str] = list(dict.fromkeys(getattr(settings, "pulse_feeds", None) or []))

    # --- database (sync, run in worker threads) ------------------------------------------------

    def _load_states(self) -> dict[str, PulseFeedState]:
        with self.session_factory() as session:
            rows = session.scalars(
                select(PulseFeedState).where(PulseFeedState.feed_url.in_(self.feeds))
            ).all()
            session.expunge_all()
            return {row.feed_url: row for row in rows}

    def _store_snapshot(
        self, feed_url: str, name: str, entries: list[PulseEntry], now: float
    ) -> int:
        newest = sorted(entries, key=lambda e: e.published or "", reverse=True)
        kept = newest[: self.max_items_per_feed]
        with self.session_factory() as session, session.begin():
            existing = {
                row.item_key: row
                for row in session.scalars(
                    select(PulseItemRow).where(PulseItemRow.feed_url == feed_url)
                )
            }
            for entry in kept:
                row = existing.pop(entry.key, None)
                if row is None:
                    row = PulseItemRow(item_key=entry.key, feed_url=feed_url, stored_at=now)
                    session.add(row)
                row.source = name
                row.title = entry.title
                row.link = entry.link
                row.published = entry.published
                row.summary = entry.summary
            if existing:
                session.execute(
                    delete(PulseItemRow).where(PulseItemRow.item_key.in_(list(existing)))
                )
            state = session.get(PulseFeedState, feed_url) or PulseFeedState(feed_url=feed_url)
            state.name = name
            state.last_success_at = now
            state.last_attempt_at = now
            state.last_error = None
            state.item_count = len(kept)
            session.add(state)
        return len(kept)

    def _store_failure(self, feed_url: str, message: str, now: float) -> None:
        with self.session_factory() as session, session.begin():
            state = session.get(PulseFeedState, feed_url) or PulseFeedState(
                feed_url=feed_url, name="", item_count=0
            )
            state.last_attempt_at = now
            state.last_error = message
            session.add(state)

    def _load_items(self) -> list[dict[str, Any]]:
        with self.session_factory() as session:
            rows = session.scalars(
                select(PulseItemRow)
                .where(PulseItemRow.feed_url.in_(self.feeds))
                .order_by(PulseItemRow.published.desc().nulls_last(), PulseItemRow.item_key)
            ).all()
            return [
                {
                    "title": row.title,
                    "link": row.link,
                    "source": row.source,
                    "feed": _redact_url(row.feed_url),
                    "published": row.published,
                    "summary": row.summary,
                }
                for row in rows
            ]

    # --- fetching ------------------------------------------------------------------------------

    def _due(self, state: PulseFeedState | None, now: float) -> bool:
        if state is None or state.last_attempt_at is None:
            return True
        if state.last_error is not None:
            pause = min(self.failure_retry_seconds, self.refresh_seconds)
            return now - state.last_attempt_at >= pause
        return now - (state.last_success_at or 0.0) >= self.refresh_seconds

    async def _fetch_one(self, feed_url: str) -> tuple[str, list[PulseEntry], int]:
        if safe_http_url(feed_url) is None:
            raise IntelSourceError("feed URL must be an absolute http(s) URL")

        async def attempt() -> tuple[bytearray, str]:
            return await get_bytes(
                self._http(),
                feed_url,
                clock=self.clock,
                max_bytes=self.limits.xml.max_bytes,
                what="the feed",
                max_seconds=self.limits.max_fetch_seconds,
            )

        async def fetch_and_parse() -> tuple[str, list[PulseEntry], int]:
            body, content_type = await self._guard.retry(attempt)
            return await anyio.to_thread.run_sync(
                parse_feed, body, content_type, feed_url, self.limits, self.parser_worker
            )

        breaker = self._guard.breaker_for(feed_url)
        if breaker is None:
            return await fetch_and_parse()
        result: tuple[str, list[PulseEntry], int] = await breaker.call_async(fetch_and_parse)
        return result

    def _record_error(self, feed_url: str, message: str, exc: BaseException | None = None) -> None:
        context: dict[str, Any] = {"component": COMPONENT, "feed": _redact_url(feed_url)}
        if isinstance(exc, InputLimitError):
            context["limit"] = exc.to_dict()  # which limit, its maximum, the XML line
        self._report(f"{_redact_url(feed_url)}: {message}", context)

    async def _sync_feed(self, feed_url: str, *, force: bool) -> None:
        lock = self._lock(feed_url)
        async with lock:
            if not force:
                states = await anyio.to_thread.run_sync(self._load_states)
                if not self._due(states.get(feed_url), self.clock.wall()):
                    return
            try:
                name, entries, rejected = await self._fetch_one(feed_url)
            except Exception as exc:
                release_frames(exc)  # the breaker keeps it: not the document with it
                message = describe_error(exc, self.timeout)
                log.warning("⚠️ community feed %s failed: %s", _redact_url(feed_url), message)
                self._record_error(feed_url, message, exc)
                await anyio.to_thread.run_sync(
                    self._store_failure, feed_url, message, self.clock.wall()
                )
                return
            if rejected:
                log.warning(
                    "⚠️ community feed %s: %d non-http(s) links dropped",
                    _redact_url(feed_url),
                    rejected,
                )
            count = await anyio.to_thread.run_sync(
                self._store_snapshot, feed_url, name, entries, self.clock.wall()
            )
            log.info("📡 community feed %s: %d items", _redact_url(feed_url), count)

    async def refresh(self) -> dict[str, Any]:
        """Fetch every feed now, whatever its age, and return :meth:`get_pulse`'s answer."""
        return await self.get_pulse(refresh=True)

    async def get_pulse(self, *, refresh: bool = False, limit: int = 50) -> dict[str, Any]:
        """Items (newest first), per-feed status, trending topics and an overall status.

        ``status`` is ``live`` (every feed live), ``degraded`` (some feed stale or failing, but
        there is something to show), ``error`` (nothing live and nothing cached: ``message`` and
        ``suggestion`` say so plainly) or ``empty`` (no feeds configured).
        """
        if not 1 <= limit <= 1000:
            raise ValueError("limit must be between 1 and 1000")
        if not self.feeds:
            return {
                "status": "empty",
                "success": True,
                "stale": False,
                "age_seconds": None,
                "items": [],
                "count": 0,
                "sources": {},
                "trending": [],
                "message": "No community feeds are configured.",
                "suggestion": "Set JUPITER_PULSE_FEEDS to a JSON list of RSS or Atom feed URLs.",
            }
        await asyncio.gather(*(self._sync_feed(url, force=refresh) for url in self.feeds))
        states = await anyio.to_thread.run_sync(self._load_states)
        items = await anyio.to_thread.run_sync(self._load_items)
        now = self.clock.wall()
        sources: dict[str, dict[str, Any]] = {}
        for feed_url in self.feeds:
            state = states.get(feed_url)
            status = source_status(_as_source_state(state), now)
            status["name"] = (state.name if state and state.name else None) or _redact_url(feed_url)
            status.pop("location", None)
            key = _redact_url(feed_url)
            while key in sources:  # two URLs that differ only in their (secret) query string
                key += "#"
            sources[key] = status
        statuses = [source["status"] for source in sources.values()]
        serving = [s for s in sources.values() if s["status"] in ("live", "stale")]
        ages = [s["age_seconds"] for s in serving if s["age_seconds"] is not None]
        if all(status == "live" for status in statuses):
            overall = "live"
        elif serving:
            overall = "degraded"
        else:
            overall = "error"
        answer: dict[str, Any] = {
            "status": overall,
            "success": overall != "error",
            "stale": "stale" in statuses,
            "age_seconds": max(ages) if ages else None,
            "items": items[:limit],
            "count": len(items),
            "sources": sources,
            "trending": trending_topics(
                {"source": item["feed"], "title": item["title"], "summary": item["summary"]}
                for item in items
            ),
        }
        if overall == "error":
            answer["message"] = (
                "The community feeds could not be reached and nothing is cached yet."
            )
            answer["suggestion"] = (
                "Check the network connection and the feed URLs in JUPITER_PULSE_FEEDS; "
                "the pulse will fill in on the next successful fetch."
            )
        return answer


def _as_source_state(state: PulseFeedState | None) -> Any:
    # source_status only reads these attributes, so a feed state can use the same rules.
    if state is None:
        return None
    from types import SimpleNamespace

    return SimpleNamespace(
        last_attempt_at=state.last_attempt_at,
        last_success_at=state.last_success_at,
        last_error=state.last_error,
        item_count=state.item_count,
        location="",
    )
