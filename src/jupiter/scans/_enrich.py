"""Enrichment behind two small interfaces: a KEV lookup (CVE id -> KEV record or None) and a CWE
lookup (``CWE-89`` -> knowledge-base entry or None). Plain callables are accepted for both, so the
threat-intel service, the knowledge base or a KEV file on disk can each supply them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._finding import ParsedFinding

__all__ = [
    "CRITICAL_EXPLOITED",
    "CweLookup",
    "Enrichment",
    "FindingEnricher",
    "KevCatalog",
    "KevLookup",
    "KevLookupMany",
    "cwe_entry_to_dict",
    "kev_summary",
]

#: The priority of a finding whose CVE is in CISA's Known Exploited Vulnerabilities catalog.
CRITICAL_EXPLOITED = "critical-exploited"

KevLookup = Callable[[str], Mapping[str, Any] | None]
KevLookupMany = Callable[[list[str]], Mapping[str, Mapping[str, Any]]]
CweLookup = Callable[[str], Any]

_KEV_FIELDS = (
    "cveID",
    "vulnerabilityName",
    "vendorProject",
    "product",
    "dateAdded",
    "dueDate",
    "requiredAction",
    "knownRansomwareCampaignUse",
)


def kev_summary(record: Mapping[str, Any]) -> dict[str, Any]:
    """The KEV fields a finding keeps, plus ``ransomware`` as a boolean."""
    kept = {field: record.get(field) for field in _KEV_FIELDS if record.get(field) is not None}
    kept["ransomware"] = str(record.get("knownRansomwareCampaignUse", "")).lower() == "known"
    return kept


class KevCatalog:
    """A CVE -> KEV record index over a CISA KEV JSON document (e.g. the shared snapshot)."""

    def __init__(self, vulnerabilities: Iterable[Mapping[str, Any]], version: str | None = None):
        self.version = version
        self._by_cve = {
            str(item["cveID"]).upper(): dict(item)
            for item in vulnerabilities
            if isinstance(item, Mapping) and item.get("cveID")
        }

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> KevCatalog:
        return cls(document.get("vulnerabilities") or [], document.get("catalogVersion"))

    @classmethod
    def from_file(cls, path: Path | str) -> KevCatalog:
        with Path(path).open("rb") as handle:
            return cls.from_document(json.load(handle))

    def __len__(self) -> int:
        return len(self._by_cve)

    def __call__(self, cve_id: str) -> Mapping[str, Any] | None:
        return self._by_cve.get(cve_id.upper())

    lookup = __call__

    def many(self, cve_ids: Iterable[str]) -> dict[str, Mapping[str, Any]]:
        """``{CVE: record}`` for the given ids that are in the catalog."""
        return {
            cve.upper(): self._by_cve[cve.upper()] for cve in cve_ids if cve.upper() in self._by_cve
        }


def _field(entry: Any, name: str) -> Any:
    if isinstance(entry, Mapping):
        return entry.get(name)
    return getattr(entry, name, None)


def cwe_entry_to_dict(cwe_id: str, entry: Any) -> dict[str, Any]:
    """A knowledge-base entry (mapping or object with name/description/mitigations) as JSON."""
    if callable(getattr(entry, "to_dict", None)):
        entry = entry.to_dict()
    mitigations = _field(entry, "mitigations") or []
    if isinstance(mitigations, str):
        mitigations = [mitigations]
    number = cwe_id.split("-", 1)[-1]
    return {
        "id": cwe_id,
        "name": _field(entry, "name"),
        "description": _field(entry, "description"),
        "mitigations": [
            item if isinstance(item, (str, Mapping)) else str(item) for item in mitigations
        ],
        "url": _field(entry, "url") or f"https://cwe.mitre.org/data/definitions/{number}.html",
        "owasp_category": _field(entry, "owasp_category"),
        "known": bool(_field(entry, "name")),
    }


@dataclass(frozen=True, slots=True)
class Enrichment:
    """What enrichment adds to a finding."""

    priority: str
    kev: list[dict[str, Any]]

    @property
    def kev_exploited(self) -> bool:
        return bool(self.kev)


class FindingEnricher:
    """Adds KEV priority at import time and resolves CWE entries for readers. Lookups are cached
    (bounded), thread-safe, and a failing lookup degrades to "no enrichment", never to a failure.
    """

    def __init__(
        self,
        kev_lookup: KevLookup | None = None,
        cwe_lookup: CweLookup | None = None,
        *,
        kev_lookup_many: KevLookupMany | None = None,
        cache_size: int = 4096,
        on_error: Callable[[str, Exception], None] | None = None,
    ) -> None:
        self._kev_lookup = kev_lookup
        self._kev_lookup_many = kev_lookup_many
        self._cwe_lookup = cwe_lookup
        self._cache_size = cache_size
        self._on_error = on_error
        self._kev_cache: dict[str, dict[str, Any] | None] = {}
        self._cwe_cache: dict[str, dict[str, Any] | None] = {}
        self._lock = threading.Lock()

    def _cached(
        self, cache: dict[str, Any], key: str, compute: Callable[[], Any], source: str
    ) -> Any:
        with self._lock:
            if key in cache:
                return cache[key]
        try:
            value = compute()
        except Exception as exc:  # a broken lookup must not fail the import
            if self._on_error is not None:
                self._on_error(source, exc)
            return None
        with self._lock:
            if len(cache) >= self._cache_size:
                cache.pop(next(iter(cache)))
            cache[key] = value
        return value

    def kev_record(self, cve_id: str) -> dict[str, Any] | None:
        cve_id = cve_id.upper()
        with self._lock:
            if cve_id in self._kev_cache:
                return self._kev_cache[cve_id]
        lookup = self._kev_lookup
        if lookup is None:
            return None

        def compute() -> dict[str, Any] | None:
            record = lookup(cve_id)
            return kev_summary(record) if record else None

        return self._cached(self._kev_cache, cve_id, compute, "kev")

    def clear_kev_cache(self) -> None:
        with self._lock:
            self._kev_cache.clear()

    def prefetch_kev(self, cve_ids: Iterable[str]) -> None:
        """Look many CVEs up in one call (one query per batch instead of one per CVE)."""
        lookup = self._kev_lookup_many
        with self._lock:
            wanted = sorted({cve.upper() for cve in cve_ids} - self._kev_cache.keys())
        if lookup is None or not wanted:
            return
        try:
            found = {key.upper(): value for key, value in lookup(wanted).items()}
        except Exception as exc:  # a broken lookup must not fail the import
            if self._on_error is not None:
                self._on_error("kev", exc)
            return
        with self._lock:
            while len(self._kev_cache) + len(wanted) > self._cache_size and self._kev_cache:
                self._kev_cache.pop(next(iter(self._kev_cache)))
            for cve in wanted[: self._cache_size]:
                record = found.get(cve)
                self._kev_cache[cve] = kev_summary(record) if record else None

    def enrich(self, finding: ParsedFinding) -> Enrichment:
        kev = [record for record in map(self.kev_record, finding.cve_ids) if record]
        return Enrichment(
            priority=CRITICAL_EXPLOITED if kev else finding.severity.value,
            kev=kev,
        )

    def cwe_entry(self, cwe_id: str) -> dict[str, Any] | None:
        lookup = self._cwe_lookup
        if lookup is None:
            return None

        def compute() -> dict[str, Any] | None:
            entry = lookup(cwe_id)
            return cwe_entry_to_dict(cwe_id, entry) if entry is not None else None

        return self._cached(self._cwe_cache, cwe_id, compute, "cwe")

    def cwe_entries(self, cwe_ids: Iterable[str]) -> list[dict[str, Any]]:
        """Knowledge-base entries for ``cwe_ids``; an unknown id still gets its MITRE link."""
        entries = []
        for cwe_id in cwe_ids:
            entry = self.cwe_entry(cwe_id)
            entries.append(entry if entry is not None else cwe_entry_to_dict(cwe_id, {}))
        return entries
