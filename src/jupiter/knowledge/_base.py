"""``KnowledgeBase``: CWE (with OWASP Top 10 2021 mapping), ATT&CK techniques and KEV entries,
searchable with BM25.

The static part (CWE, ATT&CK, OWASP) is built once, saved on disk under a key made of the data
packages' versions, and held in one process-wide instance, so only the very first start on a
machine pays for parsing the CWE catalog. Nothing is built at import or construction time:
the first lookup builds or loads it, or ``warm_up(background=True)`` does it in a thread.
KEV entries change at run time; they live in their own small index, rebuilt when they change.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, cast

from ._entries import (
    CweEntry,
    IndexStats,
    KevEntry,
    Kind,
    Mitigation,
    OwaspCategory,
    SearchHit,
    TechniqueEntry,
    normalize_cwe_id,
)
from ._index import Bm25Index, tokenize
from ._sources import load_cwe, load_techniques, normalize_kev_items, package_versions

logger = logging.getLogger("jupiter.knowledge")

# Bump when the record layout, the document text or the tokenizer changes, so that old caches
# are not reused.
SCHEMA_VERSION = 2
_CWE_REF = re.compile(r"\bCWE[-\s_]?(\d{1,5})\b", re.IGNORECASE)
_TECHNIQUE_REF = re.compile(r"\b(T\d{4}(?:\.\d{3})?)\b", re.IGNORECASE)
_CVE_REF = re.compile(r"\b(CVE-\d{4}-\d{4,})\b", re.IGNORECASE)
_OWASP_REF = re.compile(r"\b(A(?:0[1-9]|10))(?::2021)?\b")

# BM25 favours short documents; a small prior towards the weaknesses people actually meet
# (CWE Top 25, Base/Class level rather than narrow Variants) keeps answers useful.
_ABSTRACTION_PRIOR = {"Pillar": 0.85, "Class": 1.0, "Base": 1.1, "Variant": 0.9, "Compound": 1.0}
_TOP25_PRIOR = 1.25
# The score of a record the query names by id: above any BM25 score, and still valid JSON.
NAMED_SCORE = 1_000_000.0

# Jupiter's own table: how the weaknesses of each OWASP Top 10 2021 category are exploited, in
# ATT&CK terms. OWASP's categories are web-application weaknesses, so all start with T1190
# (Exploit Public-Facing Application); some categories add the technique they typically enable.
OWASP_TECHNIQUES: dict[str, tuple[str, ...]] = {
    "A01:2021": ("T1190",),
    "A02:2021": ("T1190", "T1557"),  # weak or missing crypto: adversary-in-the-middle
    "A03:2021": ("T1190", "T1059"),  # injection: command and scripting interpreter
    "A04:2021": ("T1190",),
    "A05:2021": ("T1190",),
    "A06:2021": ("T1190", "T1195"),  # outdated components: supply chain compromise
    "A07:2021": ("T1190", "T1110", "T1078"),  # authentication: brute force, valid accounts
    "A08:2021": ("T1190", "T1195"),  # integrity failures: supply chain compromise
    "A09:2021": ("T1190", "T1562"),  # logging failures: impair defenses
    "A10:2021": ("T1190", "T1552.005"),  # SSRF: cloud instance metadata API
}


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/jupiter/knowledge`` or ``~/.cache/jupiter/knowledge``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "jupiter" / "knowledge"


def cache_key() -> str:
    """A short digest of the schema and the data packages' versions."""
    payload = json.dumps({"schema": SCHEMA_VERSION, **package_versions()}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _cwe_document(entry: CweEntry) -> str:
    name_terms = " ".join([entry.name, *entry.alternate_terms])
    owasp = entry.owasp.name if entry.owasp else ""
    return " ".join(
        [
            entry.id,
            name_terms,
            name_terms,
            name_terms,
            entry.description,
            entry.extended_description,
            owasp,
        ]
    )


def _technique_document(entry: TechniqueEntry) -> str:
    return " ".join(
        [entry.id, entry.name, entry.name, entry.name, entry.description, " ".join(entry.tactics)]
    )


def _owasp_document(category: OwaspCategory, names: Mapping[str, str]) -> str:
    members = " ".join(names.get(cwe_id, "") for cwe_id in category.member_cwes)
    return " ".join([category.id, "OWASP Top 10 2021", category.name, category.name, members])


def _kev_document(entry: KevEntry, names: Mapping[str, str]) -> str:
    cwe_names = " ".join(names.get(cwe_id, "") for cwe_id in entry.cwes)
    return " ".join(
        [
            entry.cve_id,
            entry.vendor_project,
            entry.product,
            entry.vulnerability_name,
            entry.vulnerability_name,
            entry.short_description,
            " ".join(entry.cwes),
            cwe_names,
        ]
    )


@dataclass(slots=True)
class _Static:
    """The cached part: records by id and one BM25 index per kind."""

    cwes: dict[str, CweEntry]
    techniques: dict[str, TechniqueEntry]
    owasp: dict[str, OwaspCategory]
    indexes: dict[str, Bm25Index]

    # --- building -----------------------------------------------------------------------------

    @classmethod
    def build(cls) -> _Static:
        weaknesses, categories = load_cwe()
        techniques = load_techniques()
        names = {w.id: w.name for w in weaknesses}
        indexes = {
            "cwe": Bm25Index.build(
                [w.id for w in weaknesses], [_cwe_document(w) for w in weaknesses]
            ),
            "technique": Bm25Index.build(
                [t.id for t in techniques], [_technique_document(t) for t in techniques]
            ),
            "owasp": Bm25Index.build(
                [c.id for c in categories], [_owasp_document(c, names) for c in categories]
            ),
        }
        return cls(
            cwes={w.id: w for w in weaknesses},
            techniques={t.id: t for t in techniques},
            owasp={c.id: c for c in categories},
            indexes=indexes,
        )

    # --- disk cache ---------------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        records = {
            "owasp": [asdict(c) for c in self.owasp.values()],
            "techniques": [asdict(t) for t in self.techniques.values()],
            "cwes": [
                {**asdict(w), "owasp": w.owasp.id if w.owasp else None} for w in self.cwes.values()
            ],
        }
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "records.json").write_text(json.dumps(records), encoding="utf-8")
        for kind, index in self.indexes.items():
            index.save(directory / kind)

    @classmethod
    def load(cls, directory: Path) -> _Static:
        records = json.loads((directory / "records.json").read_text(encoding="utf-8"))
        owasp = {
            c["id"]: OwaspCategory(**{**c, "member_cwes": tuple(c["member_cwes"])})
            for c in records["owasp"]
        }
        techniques = {
            t["id"]: TechniqueEntry(
                **{**t, "tactics": tuple(t["tactics"]), "platforms": tuple(t["platforms"])}
            )
            for t in records["techniques"]
        }
        cwes = {}
        for w in records["cwes"]:
            cwes[w["id"]] = CweEntry(
                **{
                    **w,
                    "mitigations": tuple(Mitigation(**m) for m in w["mitigations"]),
                    "consequences": tuple(w["consequences"]),
                    "alternate_terms": tuple(w["alternate_terms"]),
                    "related_attack_patterns": tuple(w["related_attack_patterns"]),
                    "owasp": owasp.get(w["owasp"]) if w["owasp"] else None,
                }
            )
        indexes = {kind: Bm25Index.load(directory / kind) for kind in ("cwe", "technique", "owasp")}
        return cls(cwes=cwes, techniques=techniques, owasp=owasp, indexes=indexes)


class KnowledgeBase:
    """The offline security knowledge base.

    ``cache_dir`` holds the on-disk index (``default_cache_dir()`` when None); ``use_disk_cache``
    False always builds in memory (tests of the build itself). Prefer :meth:`default` or
    :func:`default_knowledge_base` to share one instance per process.
    """

    _instances: ClassVar[dict[Path, KnowledgeBase]] = {}
    _instances_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, cache_dir: Path | str | None = None, *, use_disk_cache: bool = True) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.use_disk_cache = use_disk_cache
        self.cache_key = cache_key()
        self._static: _Static | None = None
        self._stats: IndexStats | None = None
        self._build_lock = threading.Lock()
        self._warm_thread: threading.Thread | None = None
        self._kev_lock = threading.Lock()
        self._kev: dict[str, KevEntry] = {}
        self._kev_index: Bm25Index | None = None
        self._kev_dirty = False

    # --- construction helpers -----------------------------------------------------------------

    @classmethod
    def default(cls, cache_dir: Path | str | None = None) -> KnowledgeBase:
        """The process-wide instance for ``cache_dir`` (the default cache dir when None)."""
        path = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        with cls._instances_lock:
            instance = cls._instances.get(path)
            if instance is None:
                instance = cls(path)
                cls._instances[path] = instance
            return instance

    @classmethod
    def from_settings(cls, settings: Any) -> KnowledgeBase:
        """The process-wide instance whose cache lives in ``settings.data_dir / "cache"``."""
        return cls.default(Path(settings.data_dir) / "cache" / "knowledge")

    # --- index lifecycle ----------------------------------------------------------------------

    @property
    def cache_path(self) -> Path:
        """Where this version's index lives on disk."""
        return self.cache_dir / f"kb-{self.cache_key}"

    @property
    def ready(self) -> bool:
        """Whether the static index is in memory (lookups will not block on a build)."""
        return self._static is not None

    @property
    def stats(self) -> IndexStats | None:
        """How the index was obtained and how long it took; None before the first use."""
        return self._stats

    def warm_up(self, *, background: bool = True) -> threading.Thread | None:
        """Load or build the index now: in a daemon thread (returned) or in this thread."""
        if self._static is not None:
            return None
        if not background:
            self._ensure()
            return None
        with self._build_lock:
            if self._warm_thread is None or not self._warm_thread.is_alive():
                self._warm_thread = threading.Thread(
                    target=self._ensure, name="jupiter-knowledge-warm-up", daemon=True
                )
                self._warm_thread.start()
            return self._warm_thread

    def _ensure(self) -> _Static:
        static = self._static
        if static is not None:
            return static
        with self._build_lock:
            if self._static is None:
                self._static, self._stats = self._load_or_build()
            return self._static

    def _load_or_build(self) -> tuple[_Static, IndexStats]:
        started = time.perf_counter()
        path = self.cache_path
        if self.use_disk_cache and (path / "records.json").exists():
            try:
                static = _Static.load(path)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                logger.warning(
                    "⚠️ knowledge index cache at %s is unreadable (%s); rebuilding", path, exc
                )
            else:
                stats = IndexStats(
                    "disk-cache",
                    time.perf_counter() - started,
                    self._count(static),
                    str(path),
                    self.cache_key,
                )
                logger.info("✅ knowledge base loaded from cache in %.2fs", stats.seconds)
                return static, stats
        static = _Static.build()
        saved_to = self._save(static) if self.use_disk_cache else None
        stats = IndexStats(
            "built", time.perf_counter() - started, self._count(static), saved_to, self.cache_key
        )
        logger.info(
            "✅ knowledge base built in %.2fs (%d documents)", stats.seconds, stats.documents
        )
        return static, stats

    def _save(self, static: _Static) -> str | None:
        """Write to a temporary sibling, then rename: readers never see a half-written cache."""
        target = self.cache_path
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".kb-staging-", dir=self.cache_dir))
            static.save(staging)
            try:
                staging.rename(target)
            except OSError:  # another process won the race; its copy is as good as ours
                shutil.rmtree(staging, ignore_errors=True)
        except OSError as exc:
            logger.warning("⚠️ could not cache the knowledge index in %s: %s", self.cache_dir, exc)
            return None
        return str(target)

    @staticmethod
    def _count(static: _Static) -> int:
        return len(static.cwes) + len(static.techniques) + len(static.owasp)

    # --- lookups ------------------------------------------------------------------------------

    def lookup_cwe(self, cwe_id: str | int) -> CweEntry | None:
        """The weakness ``"CWE-89"`` (also ``"89"``, ``89``), or None if unknown or deprecated."""
        normalized = normalize_cwe_id(cwe_id)
        if normalized is None:
            return None
        return self._ensure().cwes.get(normalized)

    def lookup_technique(self, technique_id: str) -> TechniqueEntry | None:
        """The ATT&CK technique ``"T1190"`` or sub-technique ``"T1059.003"``."""
        return self._ensure().techniques.get(str(technique_id).strip().upper())

    def lookup_owasp(self, category_id: str) -> OwaspCategory | None:
        """The OWASP Top 10 2021 category ``"A03"`` or ``"A03:2021"``."""
        key = str(category_id).strip().upper()
        if not key.endswith(":2021"):
            key += ":2021"
        return self._ensure().owasp.get(key)

    def lookup_kev(self, cve_id: str) -> KevEntry | None:
        """A stored KEV entry by CVE id."""
        return self._kev.get(str(cve_id).strip().upper())

    def owasp_categories(self) -> list[OwaspCategory]:
        """The ten OWASP Top 10 2021 categories, A01 to A10."""
        return sorted(self._ensure().owasp.values(), key=lambda c: c.id)

    def owasp_category_for(self, cwe_id: str | int) -> OwaspCategory | None:
        """The OWASP Top 10 2021 category that lists ``cwe_id`` (from CWE categories 1345-1356)."""
        entry = self.lookup_cwe(cwe_id)
        return entry.owasp if entry else None

    def kev_for_cwe(self, cwe_id: str | int, limit: int | None = None) -> list[KevEntry]:
        """Known-exploited CVEs tagged with ``cwe_id``, most recently added first."""
        normalized = normalize_cwe_id(cwe_id)
        matches = [e for e in self._kev.values() if normalized in e.cwes]
        matches.sort(key=lambda e: e.date_added or "", reverse=True)
        return matches[:limit] if limit is not None else matches

    def techniques_for_cwe(self, cwe_id: str | int, k: int = 3) -> list[TechniqueEntry]:
        """ATT&CK techniques an attacker uses to exploit a weakness, where the data allows.

        The packaged ATT&CK data has no CAPEC references, so CWE -> CAPEC -> ATT&CK cannot be
        followed offline. Instead the link goes through the weakness's OWASP Top 10 2021
        category (derived from CWE's own categories 1345-1356) with Jupiter's small table
        ``OWASP_TECHNIQUES``; a weakness in no OWASP category has no techniques.
        """
        entry = self.lookup_cwe(cwe_id)
        if entry is None or entry.owasp is None:
            return []
        techniques = self._ensure().techniques
        found = [techniques[t] for t in OWASP_TECHNIQUES.get(entry.owasp.id, ()) if t in techniques]
        return found[:k]

    # --- KEV ----------------------------------------------------------------------------------

    def add_kev_entries(self, items: Iterable[Mapping[str, Any] | KevEntry]) -> int:
        """Store KEV entries (the catalog's camelCase fields); returns how many were new or changed.

        The whole batch is validated first: one bad item (no valid ``cveID``) raises
        ``ValueError`` and stores nothing.
        """
        entries = normalize_kev_items(items)
        changed = 0
        with self._kev_lock:
            for entry in entries:
                if self._kev.get(entry.cve_id) != entry:
                    self._kev[entry.cve_id] = entry
                    changed += 1
            if changed:
                self._kev_dirty = True
        return changed

    @property
    def kev_count(self) -> int:
        return len(self._kev)

    def _kev_index_now(self) -> Bm25Index | None:
        with self._kev_lock:
            if self._kev_dirty or self._kev_index is None:
                entries = list(self._kev.values())
                names = {cid: e.name for cid, e in self._ensure().cwes.items()} if entries else {}
                self._kev_index = Bm25Index.build(
                    [e.cve_id for e in entries], [_kev_document(e, names) for e in entries]
                )
                self._kev_dirty = False
            return self._kev_index

    # --- search -------------------------------------------------------------------------------

    def search(
        self, query: str, k: int = 5, kinds: Sequence[Kind] | None = None
    ) -> list[SearchHit]:
        """The ``k`` best records for ``query`` across ``kinds`` (all kinds when None), best first.

        Ids named in the query (CWE-89, T1190, CVE-..., A03:2021) come first, then BM25 matches.
        """
        if not isinstance(query, str):
            raise TypeError("query must be a string")
        if k <= 0:
            return []
        wanted: set[str] = set(kinds) if kinds else {"cwe", "technique", "owasp", "kev"}
        unknown = wanted - {"cwe", "technique", "owasp", "kev"}
        if unknown:
            raise ValueError(f"unknown kinds {sorted(unknown)}")
        static = self._ensure()
        hits: dict[tuple[str, str], SearchHit] = {}
        for hit in self._named_ids(query, wanted):
            hits[(hit.kind, hit.id)] = hit
        tokens = tokenize([query])[0]
        ranked: list[SearchHit] = []
        for kind in sorted(wanted):
            index = self._kev_index_now() if kind == "kev" else static.indexes[kind]
            if index is None:
                continue
            for entry_id, score in index.query(tokens, k * 3 if kind == "cwe" else k):
                entry = self._entry(kind, entry_id)
                if entry is None:
                    continue
                if isinstance(entry, CweEntry):
                    score *= _ABSTRACTION_PRIOR.get(entry.abstraction or "", 1.0)
                    score *= _TOP25_PRIOR if entry.top25 else 1.0
                ranked.append(SearchHit(cast(Kind, kind), entry_id, _title(entry), score, entry))
        ranked.sort(key=lambda hit: hit.score, reverse=True)
        for hit in ranked:
            hits.setdefault((hit.kind, hit.id), hit)
        return list(hits.values())[:k]

    def _named_ids(self, query: str, kinds: set[str]) -> list[SearchHit]:
        found: list[SearchHit] = []
        refs: list[tuple[str, str]] = []
        if "cwe" in kinds:
            refs += [("cwe", f"CWE-{int(n)}") for n in _CWE_REF.findall(query)]
        if "technique" in kinds:
            refs += [("technique", t.upper()) for t in _TECHNIQUE_REF.findall(query)]
        if "kev" in kinds:
            refs += [("kev", c.upper()) for c in _CVE_REF.findall(query)]
        if "owasp" in kinds:
            refs += [("owasp", f"{a}:2021") for a in _OWASP_REF.findall(query)]
        if "owasp" in kinds:
            lowered = query.lower()
            for category in self._ensure().owasp.values():
                name = category.name.lower()
                acronym = re.search(r"\((\w+)\)", name)
                if (len(name.split()) > 1 and name in lowered) or (
                    acronym and re.search(rf"\b{acronym.group(1)}\b", lowered)
                ):
                    refs.append(("owasp", category.id))
        for kind, entry_id in refs:
            entry = self._entry(kind, entry_id)
            if entry is not None:
                found.append(SearchHit(kind, entry_id, _title(entry), NAMED_SCORE, entry))  # type: ignore[arg-type]
        return found

    def _entry(self, kind: str, entry_id: str) -> Any:
        static = self._ensure()
        if kind == "cwe":
            return static.cwes.get(entry_id)
        if kind == "technique":
            return static.techniques.get(entry_id)
        if kind == "owasp":
            return static.owasp.get(entry_id)
        return self._kev.get(entry_id)

    def __repr__(self) -> str:
        state = self._stats.source if self._stats else "not loaded"
        return (
            f"KnowledgeBase(cache_dir={str(self.cache_dir)!r}, index={state}, kev={len(self._kev)})"
        )


def _title(entry: Any) -> str:
    if isinstance(entry, KevEntry):
        return entry.title
    if isinstance(entry, OwaspCategory):
        return entry.label
    return str(entry.name)


def default_knowledge_base() -> KnowledgeBase:
    """The process-wide knowledge base with the default cache dir."""
    return KnowledgeBase.default()
