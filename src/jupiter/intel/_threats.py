"""The threat intelligence service: sources in, normalised items in the database, items out.

The database is the source of truth for what is served. A successful fetch replaces its
source's snapshot; a failed fetch leaves it alone and is recorded, so the last good data is
served marked ``stale`` with its age. Freshness and status decisions are pure functions of the
stored source state and the injected clock.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import anyio
import httpx
from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from jupiter.limits import InputLimitError
from jupiter.resilience import Clock
from jupiter.text import clean_text

from ._http import describe_error, release_frames
from ._items import ThreatFilters, ThreatItem
from ._limits import IntelLimits
from ._outbound import OutboundService
from ._sources import (
    AttackSource,
    KevUrlSource,
    LocalFileSource,
    StixUrlSource,
    TaxiiCollectionSource,
    ThreatSource,
)
from .models import IntelSourceState, ThreatItemRow

__all__ = ["ThreatIntelService", "source_status"]

log = logging.getLogger("jupiter.intel")

COMPONENT = "threat_intelligence"
ERROR_TYPE = "intel_source_error"
KEV_FIELDS = (
    "cveID",
    "vendorProject",
    "product",
    "vulnerabilityName",
    "dateAdded",
    "dueDate",
    "requiredAction",
    "knownRansomwareCampaignUse",
    "shortDescription",
    "notes",
    "cwes",
)


def _iso_wall(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")


def source_status(state: IntelSourceState | None, now: float) -> dict[str, Any]:
    """The per-source status served to clients: ``live``, ``stale`` or ``error``.

    ``live``: the last attempt succeeded. ``stale``: it failed but an older good snapshot is
    served. ``error``: it failed and there is nothing to serve. ``pending``: never tried yet.
    """
    if state is None or state.last_attempt_at is None:
        return {"status": "pending", "count": 0, "fetched_at": None, "age_seconds": None}
    has_data = state.last_success_at is not None
    failed = state.last_error is not None
    status = "error" if failed and not has_data else "stale" if failed else "live"
    age = None if state.last_success_at is None else max(0.0, now - state.last_success_at)
    answer: dict[str, Any] = {
        "status": status,
        "count": state.item_count if has_data else 0,
        "fetched_at": _iso_wall(state.last_success_at),
        "age_seconds": None if age is None else round(age, 3),
        "location": state.location,
    }
    if failed:
        answer["error"] = state.last_error
    elif state.item_count == 0:
        answer["empty"] = True
        answer["message"] = "the source returned no items"
    return answer


def _is_due(
    source: ThreatSource, state: IntelSourceState | None, now: float, failure_retry: float
) -> bool:
    if state is None or state.last_attempt_at is None:
        return True
    if state.location != source.location:  # the source was reconfigured: old data is not its
        return True
    if state.last_error is not None:
        return now - state.last_attempt_at >= failure_retry
    if source.refresh_seconds is None:
        return False
    return now - (state.last_success_at or 0.0) >= source.refresh_seconds


def _clean_optional(value: str | None) -> str | None:
    return None if value is None else clean_text(value)


def _clean_json(value: Any) -> Any:
    """Every string in a (shallow, item-built) JSON value cleaned with :func:`clean_text`."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(key)): _clean_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_clean_json(item) for item in value]
    return value


def _row_to_dict(row: ThreatItemRow) -> dict[str, Any]:
    return {
        "id": row.item_id,
        "title": row.title,
        "severity": row.severity,
        "source": row.source,
        "kind": row.kind,
        "description": row.description,
        "published": row.published,
        "added": row.added,
        "due": row.due,
        "modified": row.modified,
        "references": list(row.references or []),
        "extra": dict(row.extra or {}),
    }


def _kev_dict(row: ThreatItemRow) -> dict[str, Any]:
    extra = dict(row.extra or {})
    entry = {name: extra.get(name) for name in KEV_FIELDS}
    entry.update(
        cveID=row.item_id,
        dateAdded=row.added,
        dueDate=row.due,
        shortDescription=row.description,
        source=row.source,
        references=list(row.references or []),
    )
    entry["cwes"] = list(extra.get("cwes") or [])
    return entry


class ThreatIntelService(OutboundService):
    """Threat intelligence from every configured source, cached in the database.

    Sources come from settings: ``kev_url`` (CISA KEV JSON), ``stix_url`` (a STIX 2.1 bundle),
    ``taxii_collection_url`` (a TAXII 2.1 collection), ``intel_file`` (a local KEV catalog or
    STIX bundle) and, always, the bundled ATT&CK groups, campaigns and software (offline
    default). ``sources`` replaces that list entirely (tests, custom feeds).

    ``breaker`` (``call_async``, or a factory ``breaker(source_name)``), ``aggregator``
    (``record_error``) and ``retry`` (a core ``RetryPolicy`` from ``retry_with_backoff``, or a
    callable running a zero-argument coroutine function with retries)
    guard the online sources; ``http_client`` is borrowed, never closed; ``clock`` drives ages,
    freshness and backoff sleeps.
    """

    error_type = ERROR_TYPE
    error_subject = "an intel error"

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
        sources: Sequence[ThreatSource] | None = None,
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
            headers={"User-Agent": "jupiter-intel/0.1"},
        )
        self.breaker = breaker
        #: The parsing limits every source's documents are held to (``intel_max_*``).
        self.limits = IntelLimits.from_settings(settings)
        self.sources: list[ThreatSource] = (
            list(sources) if sources is not None else self._sources_from_settings(settings)
        )
        names = [source.name for source in self.sources]
        if len(set(names)) != len(names):
            raise ValueError(f"threat source names must be unique, got {names}")

    # --- construction -------------------------------------------------------------------------

    def _sources_from_settings(self, settings: Any) -> list[ThreatSource]:
        interval = float(getattr(settings, "intel_sync_interval_seconds", 3600.0))
        common: dict[str, Any] = {
            "refresh_seconds": interval,
            "clock": self.clock,
            "limits": self.limits,
        }
        found: list[ThreatSource] = []
        if getattr(settings, "kev_url", None):
            found.append(KevUrlSource(settings.kev_url, self._http, **common))
        if getattr(settings, "stix_url", None):
            found.append(StixUrlSource(settings.stix_url, self._http, **common))
        if getattr(settings, "taxii_collection_url", None):
            found.append(
                TaxiiCollectionSource(settings.taxii_collection_url, timeout=self.timeout, **common)
            )
        if getattr(settings, "intel_file", None):
            found.append(LocalFileSource(settings.intel_file, **common))
        found.append(AttackSource())
        return found

    @property
    def source_names(self) -> list[str]:
        """Configured source names in order (``kev``, ``stix``, ``taxii``, ``file``, ``attack``)."""
        return [source.name for source in self.sources]

    # --- database (sync, run in worker threads) ------------------------------------------------

    def _load_states(self) -> dict[str, IntelSourceState]:
        with self.session_factory() as session:
            rows = session.scalars(select(IntelSourceState)).all()
            session.expunge_all()
            return {row.name: row for row in rows}

    def _store_snapshot(self, source: ThreatSource, items: list[ThreatItem], now: float) -> int:
        """Replace ``source``'s stored items with ``items`` (upsert + delete), idempotently."""
        unique: dict[str, ThreatItem] = {}
        for item in items:
            unique[item.id] = item  # a repeated id keeps its last version
        with self.session_factory() as session, session.begin():
            existing = {
                row.item_id: row
                for row in session.scalars(
                    select(ThreatItemRow).where(ThreatItemRow.source == source.name)
                )
            }
            for item_id, item in unique.items():
                row = existing.pop(item_id, None)
                # Text from outside may hold NUL (PostgreSQL refuses it) or lone surrogates
                # (no UTF-8 encoder accepts them): cleaned, so one odd record cannot fail
                # the whole snapshot's transaction.
                values = {
                    "kind": item.kind,
                    "title": clean_text(item.title),
                    "severity": item.severity,
                    "description": clean_text(item.description),
                    "published": _clean_optional(item.published),
                    "added": _clean_optional(item.added),
                    "due": _clean_optional(item.due),
                    "modified": _clean_optional(item.modified),
                    "references": [clean_text(ref) for ref in item.references],
                    "extra": _clean_json(dict(item.extra)),
                }
                if row is None:
                    session.add(
                        ThreatItemRow(source=source.name, item_id=item_id, stored_at=now, **values)
                    )
                    continue
                changed = False
                for key, value in values.items():
                    if getattr(row, key) != value:
                        setattr(row, key, value)
                        changed = True
                if changed:
                    row.stored_at = now
            if existing:
                session.execute(
                    delete(ThreatItemRow).where(
                        ThreatItemRow.source == source.name,
                        ThreatItemRow.item_id.in_(list(existing)),
                    )
                )
            state = session.get(IntelSourceState, source.name) or IntelSourceState(name=source.name)
            state.location = source.location
            state.last_success_at = now
            state.last_attempt_at = now
            state.last_error = None
            state.item_count = len(unique)
            session.add(state)
        return len(unique)

    def _store_failure(self, source: ThreatSource, message: str, now: float) -> None:
        with self.session_factory() as session, session.begin():
            state = session.get(IntelSourceState, source.name) or IntelSourceState(
                name=source.name, item_count=0
            )
            if state.location and state.location != source.location:
                # Reconfigured: what is stored came from somewhere else, so it is no fallback.
                session.execute(delete(ThreatItemRow).where(ThreatItemRow.source == source.name))
                state.last_success_at = None
                state.item_count = 0
            state.location = source.location
            state.last_attempt_at = now
            state.last_error = message
            session.add(state)

    def _query(self, filters: ThreatFilters, names: list[str]) -> tuple[int, list[dict[str, Any]]]:
        newest = func.coalesce(ThreatItemRow.added, ThreatItemRow.published, ThreatItemRow.modified)
        conditions: list[Any] = [ThreatItemRow.source.in_(names)]
        if filters.source:
            conditions.append(ThreatItemRow.source == filters.source)
        if filters.kind:
            conditions.append(ThreatItemRow.kind == filters.kind)
        if filters.severity:
            conditions.append(ThreatItemRow.severity == filters.severity)
        if filters.query:
            text = filters.query.strip()
            conditions.append(
                or_(
                    ThreatItemRow.item_id.icontains(text, autoescape=True),
                    ThreatItemRow.title.icontains(text, autoescape=True),
                    ThreatItemRow.description.icontains(text, autoescape=True),
                )
            )
        if filters.since:
            conditions.append(newest >= filters.since)
        with self.session_factory() as session:
            total = session.scalar(
                select(func.count()).select_from(ThreatItemRow).where(*conditions)
            )
            rows = session.scalars(
                select(ThreatItemRow)
                .where(*conditions)
                .order_by(newest.desc().nulls_last(), ThreatItemRow.source, ThreatItemRow.item_id)
                .limit(filters.limit)
                .offset(filters.offset)
            ).all()
            return int(total or 0), [_row_to_dict(row) for row in rows]

    def _kev_rows(self, cve_ids: Iterable[str] | None) -> list[ThreatItemRow]:
        conditions: list[Any] = [
            ThreatItemRow.kind == "kev",
            ThreatItemRow.source.in_(self.source_names),
        ]
        if cve_ids is not None:
            wanted = sorted({cve.strip().upper() for cve in cve_ids if cve and cve.strip()})
            if not wanted:
                return []
            conditions.append(ThreatItemRow.item_id.in_(wanted))
        with self.session_factory() as session:
            rows = session.scalars(
                select(ThreatItemRow)
                .where(*conditions)
                .order_by(ThreatItemRow.added.desc(), ThreatItemRow.item_id, ThreatItemRow.source)
            ).all()
            session.expunge_all()
            return list(rows)

    # --- fetching ------------------------------------------------------------------------------

    def _record_error(
        self, source: ThreatSource, message: str, exc: BaseException | None = None
    ) -> None:
        context: dict[str, Any] = {
            "component": COMPONENT,
            "source": source.name,
            "location": source.location,
        }
        if isinstance(exc, InputLimitError):
            context["limit"] = exc.to_dict()  # which limit, its maximum, the JSON path
        self._report(f"{source.name}: {message}", context)

    async def _sync_source(self, source: ThreatSource, *, force: bool) -> None:
        async with self._lock(source.name):
            if not force:
                states = await anyio.to_thread.run_sync(self._load_states)
                if not _is_due(
                    source, states.get(source.name), self.clock.wall(), self.failure_retry_seconds
                ):
                    return
            try:
                if source.online:
                    items = await self._guard.call(source.fetch, name=source.name)
                else:
                    items = await source.fetch()
            except Exception as exc:
                release_frames(exc)  # the breaker keeps it: not the document with it
                message = describe_error(exc, self.timeout)
                log.warning("⚠️ threat source %s failed: %s", source.name, message)
                self._record_error(source, message, exc)
                await anyio.to_thread.run_sync(
                    self._store_failure, source, message, self.clock.wall()
                )
                return
            count = await anyio.to_thread.run_sync(
                self._store_snapshot, source, items, self.clock.wall()
            )
            if count == 0:
                log.info("🔍 threat source %s returned no items", source.name)
            else:
                log.info("✅ threat source %s: %d items stored", source.name, count)

    async def _sync(self, names: Iterable[str] | None, *, force: bool) -> None:
        wanted = set(names) if names is not None else None
        if wanted is not None:
            unknown = wanted - set(self.source_names)
            if unknown:
                raise ValueError(f"unknown threat source(s): {', '.join(sorted(unknown))}")
        chosen = [s for s in self.sources if wanted is None or s.name in wanted]
        await asyncio.gather(*(self._sync_source(source, force=force) for source in chosen))

    async def _statuses(self) -> dict[str, dict[str, Any]]:
        states = await anyio.to_thread.run_sync(self._load_states)
        now = self.clock.wall()
        return {name: source_status(states.get(name), now) for name in self.source_names}

    async def source_statuses(self) -> dict[str, dict[str, Any]]:
        """Per-source status from the database, without fetching anything (for readiness)."""
        return await self._statuses()

    async def sync_feeds(
        self, sources: Iterable[str] | None = None, *, include_offline: bool = True
    ) -> dict[str, Any]:
        """Fetch and store now (``jupiter feeds sync`` and the periodic task).

        Every online source is fetched; offline ones (ATT&CK, a local file) only when due, unless
        ``include_offline`` is false. Returns ``{"success", "stored", "sources": {...}}``, where
        ``success`` is false when any fetched source failed.
        """
        if sources is not None:
            await self._sync(list(sources), force=True)
        else:
            await self._sync([s.name for s in self.sources if s.online], force=True)
            if include_offline:
                await self._sync([s.name for s in self.sources if not s.online], force=False)
        statuses = await self._statuses()
        return {
            "success": not any(
                status["status"] in ("stale", "error") for status in statuses.values()
            ),
            "stored": sum(status["count"] for status in statuses.values()),
            "sources": statuses,
        }

    async def fetch_threats(
        self, filters: ThreatFilters | Mapping[str, Any] | None = None, *, refresh: bool = False
    ) -> dict[str, Any]:
        """Items from every source (fetching those that are due first), newest first.

        Returns ``{items, count, returned, success, stale, age_seconds, sources}``: ``count`` is
        the number of matching items before ``limit``; ``stale`` is true when any source served
        old data; ``age_seconds`` is the age of the oldest data served; ``success`` is false only
        when no source has anything to serve (then ``message`` and ``suggestion`` say why).
        Bad filters raise ``ValueError``.
        """
        chosen = ThreatFilters.from_value(filters)
        await self._sync(None, force=refresh)
        statuses = await self._statuses()
        total, items = await anyio.to_thread.run_sync(self._query, chosen, self.source_names)
        serving = [s for s in statuses.values() if s["status"] in ("live", "stale")]
        ages = [s["age_seconds"] for s in serving if s["age_seconds"] is not None]
        answer: dict[str, Any] = {
            "items": items,
            "count": total,
            "returned": len(items),
            "success": bool(serving),
            "stale": any(s["status"] == "stale" for s in statuses.values()),
            "age_seconds": max(ages) if ages else None,
            "sources": statuses,
        }
        if not serving:
            answer["message"] = "No threat intelligence source could be read."
            answer["suggestion"] = (
                "Check the source URLs and the network, then run `jupiter feeds sync`."
            )
        return answer

    # --- KEV for the knowledge base and scan enrichment ----------------------------------------

    def kev_entries(self) -> list[dict[str, Any]]:
        """Every stored KEV record, in CISA's field names (for the knowledge base)."""
        return [_kev_dict(row) for row in self._dedupe(self._kev_rows(None))]

    def lookup_kev(self, cve_id: str) -> dict[str, Any] | None:
        """The stored KEV record of ``cve_id`` (case-insensitive), or ``None``."""
        return self.lookup_kev_many([cve_id]).get(cve_id.strip().upper())

    def lookup_kev_many(self, cve_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """``{CVE-ID: record}`` for every given id that is in the stored KEV catalog."""
        return {row.item_id: _kev_dict(row) for row in self._dedupe(self._kev_rows(cve_ids))}

    async def akev_entries(self) -> list[dict[str, Any]]:
        """:meth:`kev_entries` off the event loop."""
        return await anyio.to_thread.run_sync(self.kev_entries)

    async def alookup_kev_many(self, cve_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """:meth:`lookup_kev_many` off the event loop."""
        wanted = list(cve_ids)
        return await anyio.to_thread.run_sync(self.lookup_kev_many, wanted)

    @staticmethod
    def _dedupe(rows: list[ThreatItemRow]) -> list[ThreatItemRow]:
        # The same CVE may come from the KEV URL and a local KEV file; keep the first (newest).
        seen: dict[str, ThreatItemRow] = {}
        for row in rows:
            seen.setdefault(row.item_id, row)
        return list(seen.values())
