"""Keeps the offline knowledge base, and stored findings, in step with the stored KEV catalog.

The threat-intel component stores the KEV records it pulls; two consumers need to hear about
them in the running service:

* the offline chat assistant's :class:`~jupiter.knowledge.KnowledgeBase`, which answers
  "what is exploited in product X?" from whatever KEV entries it was given
  (``add_kev_entries``), and
* stored scan findings, whose ``critical-exploited`` priority was decided at import time
  (``ScanService.refresh_kev``, the same step as ``POST /api/findings/refresh-kev``).

:class:`KevPropagator` does both. The dashboard calls it in the background once the intel
component has started (knowledge base only: findings were enriched against that same stored
catalog when they were imported) and after every feed sync. Re-enriching findings is a pass
over every finding with a CVE, so it runs only when the stored catalog really changed: the
propagator keeps a fingerprint of the catalog it last saw (:func:`kev_fingerprint`) and the
pure rule :func:`catalog_changed` decides.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio

__all__ = [
    "KevPropagation",
    "KevPropagator",
    "catalog_changed",
    "kev_fingerprint",
    "sync_signature",
]

log = logging.getLogger("jupiter.knowledge_sync")

RefreshFindings = Callable[[], Awaitable[Mapping[str, int]]]


def kev_fingerprint(entries: Iterable[Mapping[str, Any]]) -> str:
    """A digest of a KEV catalog that ignores record order (equal catalogs, equal digests)."""
    canonical = sorted(json.dumps(dict(entry), sort_keys=True, default=str) for entry in entries)
    digest = hashlib.sha256()
    for record in canonical:
        digest.update(record.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def catalog_changed(previous: str | None, current: str) -> bool:
    """Whether findings need re-enriching: only a catalog that differs from a known earlier one.

    ``previous`` is None before the first look; the findings in the database were enriched
    against the catalog stored then, so there is nothing to catch up on.
    """
    return previous is not None and previous != current


def sync_signature(payload: Mapping[str, Any]) -> tuple[tuple[str, str | None], ...]:
    """When each source last fetched successfully, from a ``fetch_threats`` payload.

    ``fetch_threats`` also syncs sources that are due; a changed signature tells the dashboard
    that such a sync happened without asking the database again.
    """
    sources = payload.get("sources") or {}
    if not isinstance(sources, Mapping):
        return ()
    return tuple(
        sorted(
            (str(name), status.get("fetched_at") if isinstance(status, Mapping) else None)
            for name, status in sources.items()
        )
    )


@dataclass(frozen=True)
class KevPropagation:
    """What one propagation did."""

    entries: int  #: stored KEV records handed to the knowledge base
    new_in_knowledge_base: int  #: of those, how many were new or changed there
    catalog_changed: bool  #: the stored catalog differs from the one seen last time
    findings: Mapping[str, int] | None = None  #: ``{"checked", "changed"}`` when re-enriched


class KevPropagator:
    """Hands the stored KEV records to a knowledge base, and re-enriches findings on change.

    ``knowledge_base`` is the instance itself or a zero-argument callable returning it (so it
    can be resolved lazily). Propagations are serialised: a sync and a startup load never
    interleave, and the fingerprint always describes the catalog last handed over.
    """

    def __init__(self, knowledge_base: Any) -> None:
        self._knowledge_base = knowledge_base
        self._fingerprint: str | None = None
        self._lock = asyncio.Lock()

    @property
    def knowledge_base(self) -> Any:
        kb = self._knowledge_base
        return kb() if callable(kb) else kb

    @property
    def fingerprint(self) -> str | None:
        """The fingerprint of the catalog last handed over (None before the first time)."""
        return self._fingerprint

    def _hand_over(self, entries: list[dict[str, Any]]) -> tuple[str, int]:
        # Runs in a worker thread: normalising and hashing ~1,500 records is CPU work.
        fingerprint = kev_fingerprint(entries)
        if fingerprint == self._fingerprint:
            return fingerprint, 0
        return fingerprint, int(self.knowledge_base.add_kev_entries(entries))

    async def propagate(
        self, intel: Any, *, refresh_findings: RefreshFindings | None = None
    ) -> KevPropagation:
        """Read the stored KEV from ``intel`` (``akev_entries``/``kev_entries``) and hand it on.

        ``refresh_findings`` (e.g. ``ScanService.refresh_kev``) runs when the catalog changed
        since the last propagation; pass None to only update the knowledge base.
        """
        async with self._lock:
            reader = getattr(intel, "akev_entries", None)
            if reader is not None:
                entries = list(await reader())
            else:
                entries = list(await anyio.to_thread.run_sync(intel.kev_entries))
            fingerprint, added = await anyio.to_thread.run_sync(self._hand_over, entries)
            changed = catalog_changed(self._fingerprint, fingerprint)
            self._fingerprint = fingerprint
            findings: Mapping[str, int] | None = None
            if changed and refresh_findings is not None:
                findings = dict(await refresh_findings())
            return KevPropagation(len(entries), added, changed, findings)
