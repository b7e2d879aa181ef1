"""Normalisation of KEV records, STIX objects and ATT&CK entries into ThreatItem."""

from __future__ import annotations

import pytest
import stix2

from jupiter.intel import ThreatFilters
from jupiter.intel._items import (
    attack_entry_to_item,
    kev_record_to_item,
    safe_http_url,
    stix_object_to_item,
)
from support.kev_upstream import kev_record


def test_kev_record_keeps_every_field_scans_and_knowledge_need() -> None:
    """A KEV record keeps its dates, required action, ransomware use, CWEs and note URLs."""
    record = kev_record(
        "CVE-2024-0001",
        knownRansomwareCampaignUse="Known",
        notes="See https://vendor.example/adv/1 ; https://nvd.nist.gov/vuln/detail/CVE-2024-0001",
        cwes=["CWE-89", "CWE-20"],
    )
    item = kev_record_to_item(record, "kev")
    assert item.id == "CVE-2024-0001"
    assert item.kind == "kev"
    assert item.severity == "critical"
    assert (item.added, item.due) == (record["dateAdded"], record["dueDate"])
    assert item.extra["requiredAction"] == record["requiredAction"]
    assert item.extra["knownRansomwareCampaignUse"] == "Known"
    assert item.extra["cwes"] == ["CWE-89", "CWE-20"]
    assert item.references == (
        "https://vendor.example/adv/1",
        "https://nvd.nist.gov/vuln/detail/CVE-2024-0001",
    )


def test_kev_without_known_ransomware_is_high() -> None:
    """Every KEV entry is exploited, so unknown ransomware use still means high severity."""
    assert kev_record_to_item(kev_record("CVE-2024-0002"), "kev").severity == "high"


def test_stix_vulnerability_and_indicator_are_items_relationships_are_not() -> None:
    """SDOs become items with their external references; relationships are left out."""
    vuln = stix2.Vulnerability(
        name="CVE-2025-1111",
        description="Remote code execution",
        external_references=[
            {"source_name": "cve", "external_id": "CVE-2025-1111"},
            {"source_name": "vendor", "url": "https://vendor.example/cve-2025-1111"},
        ],
    )
    indicator = stix2.Indicator(
        name="Bad domain", pattern="[domain-name:value = 'evil.example']", pattern_type="stix"
    )
    relation = stix2.Relationship(indicator, "indicates", vuln)
    vuln_item = stix_object_to_item(vuln, "stix")
    assert vuln_item is not None
    assert vuln_item.id == vuln.id
    assert vuln_item.title == "CVE-2025-1111"
    assert vuln_item.severity == "high"
    assert vuln_item.extra["external_ids"] == {"cve": "CVE-2025-1111"}
    assert vuln_item.references == ("https://vendor.example/cve-2025-1111",)
    assert vuln_item.modified is not None
    assert vuln_item.modified.endswith("Z")
    indicator_item = stix_object_to_item(indicator, "stix")
    assert indicator_item is not None
    assert indicator_item.kind == "indicator"
    assert indicator_item.extra["pattern"] == "[domain-name:value = 'evil.example']"
    assert stix_object_to_item(relation, "stix") is None


def test_stix_custom_severity_wins() -> None:
    """An x_severity custom property overrides the type's default severity."""
    malware = stix2.Malware(name="Dropper", is_family=False, x_severity="low", allow_custom=True)
    item = stix_object_to_item(malware, "stix")
    assert item is not None
    assert item.severity == "low"


def test_attack_entries_map_by_type_and_skip_deprecated() -> None:
    """ATT&CK groups, campaigns and software map to their kinds; deprecated ones are dropped."""
    group = {
        "stix_id": "intrusion-set--1",
        "stix_type": "intrusion-set",
        "external_id": "G0001",
        "name": "Axiom",
        "url": "https://attack.mitre.org/groups/G0001",
        "aliases": ["Axiom"],
    }
    item = attack_entry_to_item(group, "attack")
    assert item is not None
    assert (item.id, item.kind, item.severity) == ("G0001", "attack-group", "high")
    assert item.references == ("https://attack.mitre.org/groups/G0001",)
    assert attack_entry_to_item({**group, "deprecated": True}, "attack") is None
    assert attack_entry_to_item({**group, "stix_type": "x-mitre-tactic"}, "attack") is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://example.org/a?b=1", "https://example.org/a?b=1"),
        ("  http://example.org  ", "http://example.org"),
        ("javascript:alert(1)", None),
        ("JaVaScRiPt:alert(1)", None),
        ("data:text/html,<script>", None),
        ("/relative/path", None),
        ("https://", None),
        ("https://exa mple.org", None),
        (None, None),
    ],
)
def test_safe_http_url_accepts_only_absolute_http_urls(value: object, expected: str | None) -> None:
    """Only absolute http(s) URLs with a host survive."""
    assert safe_http_url(value) == expected


def test_filters_reject_bad_values_with_clear_errors() -> None:
    """Unknown filters, bad severities and limits raise ValueError naming the problem."""
    with pytest.raises(ValueError, match="unknown filter"):
        ThreatFilters.from_value({"colour": "red"})
    with pytest.raises(ValueError, match="severity must be one of"):
        ThreatFilters(severity="apocalyptic")
    with pytest.raises(ValueError, match="limit"):
        ThreatFilters(limit=0)
    assert ThreatFilters.from_value({"query": "git", "limit": 5}).limit == 5
