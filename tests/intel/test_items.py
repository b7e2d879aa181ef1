"""Normalisation of KEV records, STIX objects and ATT&CK entries into ThreatItem."""

from __future__ import annotations

import pytest
import stix2

from jupiter.intel import ThreatFilters
from jupiter.intel._items import (
    MAX_OFFSET,
    ThreatFilterError,
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


@pytest.mark.parametrize(
    ("filters", "field", "match"),
    [
        ({"limit": "abc"}, "limit", "limit must be an integer, not str"),
        ({"limit": True}, "limit", "limit must be an integer, not bool"),
        ({"limit": 1.5}, "limit", "limit must be an integer, not float"),
        ({"limit": 5001}, "limit", "limit must be between 1 and 5000"),
        ({"offset": float("nan")}, "offset", "offset must be an integer, not float"),
        ({"offset": -1}, "offset", "offset must be between 0"),
        ({"offset": 2**63}, "offset", "offset must be between 0 and 9223372036854775807"),
        ({"source": [1]}, "source", "source must be a string, not list"),
        ({"query": 5}, "query", "query must be a string, not int"),
        ({"kind": {"a": 1}}, "kind", "kind must be a string, not dict"),
        ({"severity": 3}, "severity", "severity must be a string"),
        ({"query": "a\x00b"}, "query", "control characters"),
        ({"source": "kev\n"}, "source", "control characters"),
        ({"query": "\ud800"}, "query", "lone surrogates"),
        ({"since": "2024\x7f"}, "since", "control characters"),
        ({"query": "x" * 201}, "query", "at most 200 characters"),
        ({"colour": "red"}, "colour", "unknown filter"),
    ],
)
def test_filters_check_types_and_ranges_naming_the_field(
    filters: dict[str, object], field: str, match: str
) -> None:
    """Wrong types (bools and floats are not counts), out-of-range numbers, control characters
    and lone surrogates raise a ValueError whose ``field`` names the filter."""
    with pytest.raises(ValueError, match=match) as caught:
        ThreatFilters.from_value(filters)
    assert isinstance(caught.value, ThreatFilterError)
    assert caught.value.field == field


@pytest.mark.parametrize("value", ["x", 5, [("limit", 5)], True])
def test_filters_that_are_not_a_mapping_are_rejected(value: object) -> None:
    """A string, number or list where the filters object belongs is an error, not dropped."""
    with pytest.raises(ThreatFilterError, match="filters must be an object") as caught:
        ThreatFilters.from_value(value)  # type: ignore[arg-type]
    assert caught.value.field == "filters"


def test_filters_accept_the_extremes_of_each_range() -> None:
    """limit 1 and 5000, offset 0 and 2**63-1, and tab-free unicode text are all valid."""
    low = ThreatFilters.from_value({"limit": 1, "offset": 0})
    high = ThreatFilters.from_value(
        {"limit": 5000, "offset": MAX_OFFSET, "query": "Ünïcødé — ransomware", "source": "kev"}
    )
    assert (low.limit, low.offset) == (1, 0)
    assert (high.limit, high.offset, high.query) == (5000, 2**63 - 1, "Ünïcødé — ransomware")
    assert ThreatFilters.from_value(None) == ThreatFilters()
