"""The normalised finding every parser produces, and the one severity scale they share."""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MAX_MESSAGE",
    "ParsedFinding",
    "ScanHeader",
    "Severity",
    "clip",
    "cve_ids_in",
    "cwe_ids_in",
    "fingerprint_of",
    "without_empty",
    "without_none",
]


class Severity(enum.Enum):
    """One scale for every tool. ``rank`` orders them (critical highest)."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    @classmethod
    def from_cvss(cls, score: float) -> Severity:
        """CVSS v3 qualitative bands (also GitHub's ``security-severity`` bands)."""
        if score >= 9.0:
            return cls.CRITICAL
        if score >= 7.0:
            return cls.HIGH
        if score >= 4.0:
            return cls.MEDIUM
        if score > 0.0:
            return cls.LOW
        return cls.INFO

    @classmethod
    def from_label(cls, label: str) -> Severity | None:
        """A tool's own word for severity (Trivy, Grype, Bandit, CodeQL, SARIF level), or None."""
        return _LABELS.get(label.strip().lower())


_RANKS = {
    Severity.CRITICAL: 4,
    Severity.HIGH: 3,
    Severity.MEDIUM: 2,
    Severity.LOW: 1,
    Severity.INFO: 0,
}

# Unknown/negligible map to INFO; the tool's own word is kept in details["tool_severity"].
_LABELS = {
    "critical": Severity.CRITICAL,
    "very-high": Severity.CRITICAL,
    "high": Severity.HIGH,
    "error": Severity.HIGH,
    "medium": Severity.MEDIUM,
    "moderate": Severity.MEDIUM,
    "warning": Severity.MEDIUM,
    "low": Severity.LOW,
    "note": Severity.LOW,
    "recommendation": Severity.LOW,
    "negligible": Severity.INFO,
    "info": Severity.INFO,
    "informational": Severity.INFO,
    "none": Severity.INFO,
    "unknown": Severity.INFO,
    "undefined": Severity.INFO,
}

_CVE_RE = re.compile(r"\bCVE-\d{4}-\d{4,}\b", re.IGNORECASE)
# Matches "CWE-89", "cwe-089", "external/cwe/cwe-78", "CWE_79".
_CWE_RE = re.compile(r"\bcwe[-_/ ]?0*(\d{1,5})\b", re.IGNORECASE)


#: The longest ``message`` a parser stores.
MAX_MESSAGE = 4000


def clip(text: Any, limit: int) -> str:
    """``text`` as a string of at most ``limit`` characters, an ellipsis marking a cut; None
    (or an empty string) gives ``""``."""
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def without_none(details: dict[str, Any]) -> dict[str, Any]:
    """``details`` without the keys whose value is None."""
    return {key: value for key, value in details.items() if value is not None}


def without_empty(details: dict[str, Any]) -> dict[str, Any]:
    """``details`` without the keys whose value is None, an empty list or an empty dict."""
    return {key: value for key, value in details.items() if value not in (None, [], {})}


def cve_ids_in(texts: Iterable[Any]) -> list[str]:
    """Distinct CVE ids mentioned in ``texts``, upper-cased, in order of first mention."""
    seen: dict[str, None] = {}
    for text in texts:
        if isinstance(text, str):
            for match in _CVE_RE.findall(text):
                seen.setdefault(match.upper(), None)
    return list(seen)


def cwe_ids_in(texts: Iterable[Any]) -> list[str]:
    """Distinct ``CWE-<n>`` ids (leading zeros dropped) mentioned in ``texts``."""
    seen: dict[str, None] = {}
    for text in texts:
        if isinstance(text, str):
            for number in _CWE_RE.findall(text):
                seen.setdefault(f"CWE-{int(number)}", None)
        elif isinstance(text, int) and not isinstance(text, bool):
            seen.setdefault(f"CWE-{text}", None)
    return list(seen)


def fingerprint_of(*parts: Any) -> str:
    """A stable SHA-256 over the identifying parts of a finding (order matters)."""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class ScanHeader:
    """What a parser learns about the scan as a whole."""

    format: str
    tool: str
    tool_version: str | None = None
    asset: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ParsedFinding:
    """One finding, normalised. ``fingerprint`` identifies it across re-imports.

    ``location`` is human-readable (``src/app.py:12:5``, ``tcp/22``, ``usr/lib/libssl.so``);
    ``details`` keeps every format-specific field (package versions, CVSS, region, service...).
    """

    tool: str
    rule_id: str
    title: str
    severity: Severity
    asset: str
    location: str
    fingerprint: str
    message: str = ""
    cve_ids: list[str] = field(default_factory=list)
    cwe_ids: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
