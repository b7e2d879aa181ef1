"""KnowledgeBase: CWE lookups with mitigations, the OWASP 2021 mapping, ATT&CK, search, KEV."""

from __future__ import annotations

import datetime
import json
import threading

import pytest

from jupiter.knowledge import (
    CweEntry,
    KevEntry,
    KnowledgeBase,
    OwaspCategory,
    normalize_cwe_id,
)

KEV_ITEM = {
    "cveID": "CVE-2099-1234",
    "vendorProject": "Example",
    "product": "Gateway",
    "vulnerabilityName": "Example Gateway Path Traversal Vulnerability",
    "shortDescription": "Example Gateway allows reading arbitrary files via ../ sequences.",
    "requiredAction": "Apply updates per vendor instructions.",
    "knownRansomwareCampaignUse": "Unknown",
    "cwes": ["CWE-22"],
    "dateAdded": "2099-03-01",
    "dueDate": "2099-03-22",
}


# --- CWE


def test_lookup_cwe_89_has_name_description_mitigations_and_owasp(
    knowledge_base: KnowledgeBase,
) -> None:
    """CWE-89 is SQL injection, with a description, several mitigations and OWASP A03:2021."""
    entry = knowledge_base.lookup_cwe("CWE-89")
    assert isinstance(entry, CweEntry)
    assert entry.id == "CWE-89"
    assert "SQL Injection" in entry.name
    assert "SQL command" in entry.description
    assert len(entry.mitigations) >= 3
    assert any("prepared statements" in m.description for m in entry.mitigations)
    assert entry.owasp_category == "A03:2021-Injection"
    assert entry.top25
    assert "CAPEC-66" in entry.related_attack_patterns
    assert entry.url == "https://cwe.mitre.org/data/definitions/89.html"


@pytest.mark.parametrize("spelling", ["CWE-89", "cwe-89", "89", 89, "CWE89", " CWE-89 "])
def test_lookup_cwe_accepts_common_spellings(knowledge_base: KnowledgeBase, spelling) -> None:
    """CWE ids are normalised: 'CWE-89', 'cwe-89', '89' and 89 find the same entry."""
    entry = knowledge_base.lookup_cwe(spelling)
    assert entry is not None
    assert entry.id == "CWE-89"


@pytest.mark.parametrize("junk", ["", "CWE-", "CWE-0", "SQL", "CWE-999999", -3, "NVD-CWE-Other"])
def test_lookup_cwe_unknown_is_none(knowledge_base: KnowledgeBase, junk) -> None:
    """Unknown or malformed ids give None rather than raising."""
    assert knowledge_base.lookup_cwe(junk) is None


def test_deprecated_weaknesses_are_left_out(knowledge_base: KnowledgeBase) -> None:
    """No entry in the base is deprecated (CWE-1187 was deprecated in the catalog)."""
    assert knowledge_base.lookup_cwe("CWE-1187") is None


def test_normalize_cwe_id() -> None:
    """normalize_cwe_id turns common spellings into 'CWE-n' and junk into None."""
    assert normalize_cwe_id("cwe_79") == "CWE-79"
    assert normalize_cwe_id(True) is None
    assert normalize_cwe_id("CWE-abc") is None


def test_to_dict_is_json_serialisable(knowledge_base: KnowledgeBase) -> None:
    """An entry's to_dict() round-trips through JSON with the fields the scans helper shows."""
    entry = knowledge_base.lookup_cwe("CWE-79")
    assert entry is not None
    data = json.loads(json.dumps(entry.to_dict()))
    assert data["id"] == "CWE-79"
    assert data["owasp_category"] == "A03:2021-Injection"
    assert data["mitigations"][0]["description"]


# --- OWASP Top 10 2021


def test_ten_owasp_categories_from_cwe_categories_1345_to_1356(
    knowledge_base: KnowledgeBase,
) -> None:
    """The ten OWASP 2021 categories come from CWE categories in 1345-1356, each with members."""
    categories = knowledge_base.owasp_categories()
    assert [c.id for c in categories] == [f"A{n:02d}:2021" for n in range(1, 11)]
    for category in categories:
        assert isinstance(category, OwaspCategory)
        assert 1345 <= int(category.cwe_category_id.split("-")[1]) <= 1356
        assert category.member_cwes


@pytest.mark.parametrize(
    ("cwe", "category"),
    [
        ("CWE-89", "A03:2021-Injection"),
        ("CWE-79", "A03:2021-Injection"),
        ("CWE-22", "A01:2021-Broken Access Control"),
        ("CWE-327", "A02:2021-Cryptographic Failures"),
        ("CWE-287", "A07:2021-Identification and Authentication Failures"),
        ("CWE-502", "A08:2021-Software and Data Integrity Failures"),
        ("CWE-918", "A10:2021-Server-Side Request Forgery (SSRF)"),
    ],
)
def test_owasp_mapping(knowledge_base: KnowledgeBase, cwe: str, category: str) -> None:
    """Well-known weaknesses map to their OWASP Top 10 2021 category."""
    owasp = knowledge_base.owasp_category_for(cwe)
    assert owasp is not None
    assert owasp.label == category
    assert cwe in owasp.member_cwes


def test_cwe_outside_owasp_has_no_category(knowledge_base: KnowledgeBase) -> None:
    """A hardware weakness (CWE-1191) is in no OWASP category."""
    entry = knowledge_base.lookup_cwe("CWE-1191")
    assert entry is not None
    assert entry.owasp is None
    assert entry.owasp_category is None


def test_lookup_owasp_accepts_short_ids(knowledge_base: KnowledgeBase) -> None:
    """'A03' and 'A03:2021' both find Injection."""
    assert knowledge_base.lookup_owasp("A03").name == "Injection"  # type: ignore[union-attr]
    assert knowledge_base.lookup_owasp("a03:2021").name == "Injection"  # type: ignore[union-attr]


# --- ATT&CK


def test_lookup_technique(knowledge_base: KnowledgeBase) -> None:
    """T1190 is Exploit Public-Facing Application, an initial-access technique."""
    technique = knowledge_base.lookup_technique("t1190")
    assert technique is not None
    assert technique.name == "Exploit Public-Facing Application"
    assert "initial-access" in technique.tactics
    assert technique.url.endswith("/T1190")


def test_techniques_for_web_weakness(knowledge_base: KnowledgeBase) -> None:
    """SQL injection links to T1190; SSRF also to the cloud metadata API technique."""
    assert "T1190" in [t.id for t in knowledge_base.techniques_for_cwe("CWE-89")]
    assert "T1552.005" in [t.id for t in knowledge_base.techniques_for_cwe("CWE-918")]


def test_techniques_for_weakness_without_data_is_empty(knowledge_base: KnowledgeBase) -> None:
    """A weakness with no OWASP category has no technique link, and unknown CWEs give []."""
    assert knowledge_base.techniques_for_cwe("CWE-1191") == []
    assert knowledge_base.techniques_for_cwe("CWE-999999") == []


def test_every_mapped_technique_exists_in_attack(knowledge_base: KnowledgeBase) -> None:
    """Every technique in the OWASP table resolves in the packaged ATT&CK data."""
    from jupiter.knowledge._base import OWASP_TECHNIQUES

    for technique_ids in OWASP_TECHNIQUES.values():
        for technique_id in technique_ids:
            assert knowledge_base.lookup_technique(technique_id) is not None, technique_id


# --- search


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("What are SQL injection risks?", "CWE-89"),
        ("cross-site scripting", "CWE-79"),
        ("path traversal", "CWE-22"),
        ("deserialization of untrusted data", "CWE-502"),
        ("server-side request forgery", "CWE-918"),
        ("OS command injection", "CWE-78"),
    ],
)
def test_search_ranks_the_obvious_weakness_first(
    knowledge_base: KnowledgeBase, query: str, expected: str
) -> None:
    """BM25 with a small prior puts the canonical weakness first."""
    hits = knowledge_base.search(query, k=3, kinds=["cwe"])
    assert hits[0].id == expected
    assert hits[0].kind == "cwe"
    assert hits[0].score >= hits[-1].score


def test_search_finds_techniques(knowledge_base: KnowledgeBase) -> None:
    """A phishing question finds the ATT&CK Phishing technique."""
    ids = [h.id for h in knowledge_base.search("phishing emails", k=5, kinds=["technique"])]
    assert "T1566" in ids


def test_search_named_ids_come_first(knowledge_base: KnowledgeBase) -> None:
    """Ids named in the query are returned first, in order."""
    hits = knowledge_base.search("compare CWE-79 with T1190", k=5)
    assert [h.id for h in hits[:2]] == ["CWE-79", "T1190"]


def test_search_respects_k_and_kinds(knowledge_base: KnowledgeBase) -> None:
    """k bounds the results; kinds filters them."""
    hits = knowledge_base.search("injection", k=4, kinds=["cwe"])
    assert len(hits) == 4
    assert {h.kind for h in hits} == {"cwe"}
    assert knowledge_base.search("injection", k=0) == []


def test_search_with_no_match_is_empty(knowledge_base: KnowledgeBase) -> None:
    """Words that appear nowhere give no hits."""
    assert knowledge_base.search("zzzzqqq xxyyzz", k=5) == []


def test_search_refuses_unknown_kinds(knowledge_base: KnowledgeBase) -> None:
    """An unknown kind is a ValueError naming it."""
    with pytest.raises(ValueError, match="capec"):
        knowledge_base.search("x", kinds=["capec"])  # type: ignore[list-item]


def test_search_hit_to_dict(knowledge_base: KnowledgeBase) -> None:
    """Hits serialise to JSON (named hits have a finite score)."""
    hits = knowledge_base.search("CWE-89 SQL injection", k=2)
    assert json.loads(json.dumps([h.to_dict() for h in hits]))[0]["id"] == "CWE-89"


# --- KEV


def test_add_kev_entries_normalises_and_counts(fresh_kb: KnowledgeBase) -> None:
    """Entries are stored by CVE id; re-adding the same entry changes nothing."""
    assert fresh_kb.add_kev_entries([KEV_ITEM]) == 1
    assert fresh_kb.add_kev_entries([KEV_ITEM]) == 0
    assert fresh_kb.add_kev_entries([{**KEV_ITEM, "dueDate": "2099-04-01"}]) == 1
    entry = fresh_kb.lookup_kev("cve-2099-1234")
    assert isinstance(entry, KevEntry)
    assert entry.cwes == ("CWE-22",)
    assert entry.due_date == "2099-04-01"
    assert entry.to_dict()["cveID"] == "CVE-2099-1234"
    assert fresh_kb.kev_count == 1


def test_kev_entries_are_searchable_and_linked_to_cwe(fresh_kb: KnowledgeBase) -> None:
    """A stored KEV entry is found by words of its name and through its CWE."""
    fresh_kb.add_kev_entries([KEV_ITEM])
    hits = fresh_kb.search("Example Gateway", k=3, kinds=["kev"])
    assert hits[0].id == "CVE-2099-1234"
    assert [e.cve_id for e in fresh_kb.kev_for_cwe("CWE-22")] == ["CVE-2099-1234"]
    assert fresh_kb.search("CVE-2099-1234", k=1)[0].kind == "kev"


def test_bad_kev_batch_stores_nothing(fresh_kb: KnowledgeBase) -> None:
    """One item without a valid cveID rejects the whole batch with a clear error."""
    with pytest.raises(ValueError, match="cveID"):
        fresh_kb.add_kev_entries([KEV_ITEM, {"cveID": "not-a-cve"}])
    assert fresh_kb.kev_count == 0
    with pytest.raises(TypeError):
        fresh_kb.add_kev_entries(["CVE-2099-1234"])  # type: ignore[list-item]


def test_kev_cwes_accept_strings_and_drop_junk(fresh_kb: KnowledgeBase) -> None:
    """cwes given as a string or with NVD placeholders keep only real CWE ids."""
    fresh_kb.add_kev_entries([{**KEV_ITEM, "cwes": "CWE-22, NVD-CWE-noinfo, 23"}])
    entry = fresh_kb.lookup_kev("CVE-2099-1234")
    assert entry is not None
    assert entry.cwes == ("CWE-22", "CWE-23")


def test_kev_records_from_the_intel_store_are_accepted(fresh_kb: KnowledgeBase) -> None:
    """Records as the intel service returns them (dates as date objects, None for absent
    fields, extra keys such as source) are stored with ISO dates."""
    record = {
        **KEV_ITEM,
        "dateAdded": datetime.date(2099, 3, 1),
        "dueDate": datetime.datetime(2099, 3, 22, 0, 0),
        "knownRansomwareCampaignUse": None,
        "source": "kev",
        "references": ["https://example.invalid/advisory"],
    }
    fresh_kb.add_kev_entries([record])
    entry = fresh_kb.lookup_kev("CVE-2099-1234")
    assert entry is not None
    assert (entry.date_added, entry.due_date) == ("2099-03-01", "2099-03-22")
    assert entry.known_ransomware_campaign_use == ""


def test_concurrent_kev_adds_and_searches(fresh_kb: KnowledgeBase) -> None:
    """Many threads adding and searching at once lose no entry and never fail."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(16)

    def worker(index: int) -> None:
        barrier.wait()
        try:
            fresh_kb.add_kev_entries([{**KEV_ITEM, "cveID": f"CVE-2099-{1000 + index}"}])
            fresh_kb.search("Example Gateway path traversal", k=3)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert fresh_kb.kev_count == 16
    assert len(fresh_kb.search("Example Gateway", k=20, kinds=["kev"])) == 16


def test_real_kev_snapshot_loads_and_links(fresh_kb: KnowledgeBase, kev_snapshot) -> None:
    """The real CISA KEV catalog loads whole, and a SQL injection question finds exploited CVEs."""
    catalog = json.loads(kev_snapshot.read_text(encoding="utf-8"))
    items = catalog["vulnerabilities"]
    assert fresh_kb.add_kev_entries(items) == len({i["cveID"] for i in items})
    exploited = fresh_kb.kev_for_cwe("CWE-89")
    assert exploited, "the KEV catalog lists SQL injection CVEs"
    assert all("CWE-89" in e.cwes for e in exploited)
    log4shell = fresh_kb.lookup_kev("CVE-2021-44228")
    assert log4shell is not None
    assert "Log4j" in log4shell.vulnerability_name
    assert fresh_kb.search("Apache Log4j", k=5, kinds=["kev"])
