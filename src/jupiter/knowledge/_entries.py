"""The knowledge base's records. Plain frozen dataclasses with ``to_dict()`` for JSON APIs."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Kind = Literal["cwe", "technique", "owasp", "kev"]

_CWE_ID = re.compile(r"^\s*(?:CWE)?[-_\s:]*(\d{1,5})\s*$", re.IGNORECASE)


def normalize_cwe_id(value: str | int) -> str | None:
    """``"CWE-89"``, ``"cwe89"``, ``"89"`` and ``89`` all become ``"CWE-89"``; junk becomes None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return f"CWE-{value}" if value > 0 else None
    match = _CWE_ID.match(str(value))
    if match is None or int(match.group(1)) <= 0:
        return None
    return f"CWE-{int(match.group(1))}"


@dataclass(frozen=True, slots=True)
class Mitigation:
    """One CWE potential mitigation: the lifecycle ``phase`` it applies to and what to do."""

    description: str
    phase: str | None = None
    strategy: str | None = None
    effectiveness: str | None = None

    def __str__(self) -> str:
        prefix = f"[{self.phase}] " if self.phase else ""
        return prefix + self.description


@dataclass(frozen=True, slots=True)
class OwaspCategory:
    """An OWASP Top 10 2021 category, e.g. ``A03:2021`` Injection (CWE category 1347)."""

    id: str  # "A03:2021"
    name: str  # "Injection"
    cwe_category_id: str  # "CWE-1347"
    member_cwes: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """``"A03:2021-Injection"``, OWASP's own spelling."""
        return f"{self.id}-{self.name}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "label": self.label, "member_cwes": list(self.member_cwes)}


@dataclass(frozen=True, slots=True)
class CweEntry:
    """A CWE weakness: ``id`` ``"CWE-89"``, its name, description, mitigations, and links."""

    id: str
    name: str
    description: str
    extended_description: str = ""
    abstraction: str | None = None
    status: str | None = None
    mitigations: tuple[Mitigation, ...] = ()
    consequences: tuple[str, ...] = ()
    alternate_terms: tuple[str, ...] = ()
    related_attack_patterns: tuple[str, ...] = ()  # "CAPEC-66"
    owasp: OwaspCategory | None = None
    top25: bool = False

    @property
    def number(self) -> int:
        return int(self.id.split("-", 1)[1])

    @property
    def url(self) -> str:
        return f"https://cwe.mitre.org/data/definitions/{self.number}.html"

    @property
    def owasp_category(self) -> str | None:
        """``"A03:2021-Injection"`` or None when the CWE is in no OWASP Top 10 2021 category."""
        return self.owasp.label if self.owasp else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "extended_description": self.extended_description,
            "abstraction": self.abstraction,
            "status": self.status,
            "mitigations": [asdict(m) for m in self.mitigations],
            "consequences": list(self.consequences),
            "alternate_terms": list(self.alternate_terms),
            "related_attack_patterns": list(self.related_attack_patterns),
            "owasp_category": self.owasp_category,
            "owasp": self.owasp.to_dict() if self.owasp else None,
            "top25": self.top25,
            "url": self.url,
        }


@dataclass(frozen=True, slots=True)
class TechniqueEntry:
    """An ATT&CK Enterprise technique or sub-technique, e.g. ``T1190``."""

    id: str
    name: str
    description: str
    tactics: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    is_subtechnique: bool = False
    url: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["tactics"] = list(self.tactics)
        data["platforms"] = list(self.platforms)
        return data


@dataclass(frozen=True, slots=True)
class KevEntry:
    """A CISA Known Exploited Vulnerability, normalised like the intel feed stores it."""

    cve_id: str
    vendor_project: str = ""
    product: str = ""
    vulnerability_name: str = ""
    short_description: str = ""
    required_action: str = ""
    known_ransomware_campaign_use: str = ""
    cwes: tuple[str, ...] = ()
    date_added: str | None = None
    due_date: str | None = None

    @property
    def id(self) -> str:
        return self.cve_id

    @property
    def title(self) -> str:
        return self.vulnerability_name or f"{self.vendor_project} {self.product}".strip()

    def to_dict(self) -> dict[str, Any]:
        """The KEV catalog's own field names."""
        return {
            "cveID": self.cve_id,
            "vendorProject": self.vendor_project,
            "product": self.product,
            "vulnerabilityName": self.vulnerability_name,
            "shortDescription": self.short_description,
            "requiredAction": self.required_action,
            "knownRansomwareCampaignUse": self.known_ransomware_campaign_use,
            "cwes": list(self.cwes),
            "dateAdded": self.date_added,
            "dueDate": self.due_date,
        }


Entry = CweEntry | TechniqueEntry | OwaspCategory | KevEntry


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One retrieval result: which ``kind`` of record, its id and title, the BM25 score."""

    kind: Kind
    id: str
    title: str
    score: float
    entry: Entry = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.id, "title": self.title, "score": self.score}


@dataclass(frozen=True, slots=True)
class IndexStats:
    """How the static index came to be: built now or loaded from the on-disk cache, and timings."""

    source: Literal["built", "disk-cache"]
    seconds: float
    documents: int
    cache_path: str | None
    cache_key: str
