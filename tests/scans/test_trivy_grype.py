"""Trivy JSON and Grype JSON, and KEV enrichment against the real CISA KEV snapshot.

No Trivy or Grype binary can run here, so the reports are written by hand following the tools'
published JSON schemas: Trivy's report schema version 2 (``types.Report``: SchemaVersion,
ArtifactName, Results[].Vulnerabilities/Misconfigurations/Secrets) and Grype's JSON document
(``matches[]`` with vulnerability/artifact/matchDetails, then ``source``, ``distro``,
``descriptor``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from jupiter.scans import (
    CRITICAL_EXPLOITED,
    KevCatalog,
    MalformedScanError,
    ScanImporter,
    Severity,
)
from jupiter.scans._grype import GrypeParser
from jupiter.scans._source import ScanSource
from jupiter.scans._trivy import TrivyParser
from jupiter.scans.models import FindingRecord


def trivy_document(builders: dict[str, Any]) -> dict[str, Any]:
    vuln = builders["trivy_vulnerability"]
    return builders["trivy_report"](
        [
            {
                "Target": "registry.example/app:1.4 (debian 12.5)",
                "Class": "os-pkgs",
                "Type": "debian",
                "Vulnerabilities": [
                    vuln(
                        "CVE-2024-3094", "liblzma5", "5.6.0-0.2", "5.6.1+really5.4.5-1", "CRITICAL"
                    ),
                    vuln("CVE-2014-0160", "libssl1.0.0", "1.0.1f-1", "1.0.1g-1", "HIGH"),
                ],
            },
            {
                "Target": "app/lib/log4j-core-2.14.1.jar",
                "Class": "lang-pkgs",
                "Type": "jar",
                "Vulnerabilities": [
                    vuln(
                        "CVE-2021-44228",
                        "org.apache.logging.log4j:log4j-core",
                        "2.14.1",
                        "2.15.0",
                        "CRITICAL",
                        PkgPath="app/lib/log4j-core-2.14.1.jar",
                        CweIDs=["CWE-502", "CWE-400", "CWE-20"],
                        CVSS={"ghsa": {"V3Score": 10.0, "V3Vector": "CVSS:3.1/AV:N"}},
                        SeveritySource="ghsa",
                    )
                ],
            },
            {
                "Target": "Dockerfile",
                "Class": "config",
                "Type": "dockerfile",
                "Misconfigurations": [
                    {
                        "Type": "Dockerfile Security Check",
                        "ID": "DS002",
                        "AVDID": "AVD-DS-0002",
                        "Title": "Image user should not be 'root'",
                        "Message": "Specify at least 1 USER command in Dockerfile",
                        "Resolution": "Add 'USER <non root user name>' line to the Dockerfile",
                        "Severity": "HIGH",
                        "PrimaryURL": "https://avd.aquasec.com/misconfig/ds002",
                        "Status": "FAIL",
                        "CauseMetadata": {"Provider": "Dockerfile", "Service": "general"},
                    },
                    {"ID": "DS001", "AVDID": "AVD-DS-0001", "Severity": "MEDIUM", "Status": "PASS"},
                ],
            },
            {
                "Target": "app/settings.py",
                "Class": "secret",
                "Secrets": [
                    {
                        "RuleID": "aws-access-key-id",
                        "Category": "AWS",
                        "Severity": "CRITICAL",
                        "Title": "AWS Access Key ID",
                        "StartLine": 3,
                        "EndLine": 3,
                        "Match": "AWS_ACCESS_KEY_ID=********************",
                    }
                ],
            },
        ]
    )


def test_trivy_keeps_package_versions_cvss_target_and_severity(
    tmp_path: Path, builders: dict[str, Any]
) -> None:
    """Every Trivy vulnerability keeps package, installed/fixed versions, CVE, CVSS and target."""
    document = trivy_document(builders)
    path = builders["write_json"](tmp_path / "trivy.json", document)
    parser = TrivyParser(ScanSource(path))
    findings = list(parser.findings())
    assert parser.header.asset == document["ArtifactName"]
    assert parser.header.details["os"] == {"Family": "debian", "Name": "12.5"}
    assert parser.skipped == 1  # the passing DS001 check
    vulnerabilities = [f for f in findings if f.details["kind"] == "vulnerability"]
    expected = [
        (result["Target"], item)
        for result in document["Results"]
        for item in result.get("Vulnerabilities", [])
    ]
    assert len(vulnerabilities) == len(expected)
    for finding, (target, item) in zip(vulnerabilities, expected, strict=True):
        assert finding.rule_id == item["VulnerabilityID"]
        assert finding.cve_ids == [item["VulnerabilityID"]]
        assert finding.details["package"] == item["PkgName"]
        assert finding.details["installed_version"] == item["InstalledVersion"]
        assert finding.details["fixed_version"] == item["FixedVersion"]
        assert finding.details["target"] == target
        assert finding.severity is Severity(item["Severity"].lower())
        assert finding.asset == document["ArtifactName"]
        assert finding.cwe_ids == item["CweIDs"]
    log4j = vulnerabilities[-1]
    assert log4j.details["cvss_score"] == 10.0
    assert log4j.details["cvss"]["source"] == "ghsa"
    assert log4j.location == "app/lib/log4j-core-2.14.1.jar (app/lib/log4j-core-2.14.1.jar)"
    assert vulnerabilities[0].details["cvss_score"] == 9.8  # nvd preferred
    misconfig = next(f for f in findings if f.details["kind"] == "misconfiguration")
    assert misconfig.rule_id == "AVD-DS-0002"
    assert misconfig.severity is Severity.HIGH
    assert misconfig.details["resolution"].startswith("Add 'USER")
    secret = next(f for f in findings if f.details["kind"] == "secret")
    assert secret.location == "app/settings.py:3"
    assert "Match" not in secret.details
    assert "****" not in repr(secret)


def test_grype_reads_source_written_after_matches(tmp_path: Path, builders: dict[str, Any]) -> None:
    """Grype writes source/descriptor after matches; the asset and tool version still apply."""
    match = builders["grype_match"]
    related = [
        {"id": "CVE-2021-44228", "dataSource": "https://nvd.nist.gov/vuln/detail/CVE-2021-44228"}
    ]
    document = builders["grype_report"](
        [
            match(
                "GHSA-jfh8-c2jp-5v3q",
                "log4j-core",
                "2.14.1",
                "Critical",
                relatedVulnerabilities=related,
            ),
            match("CVE-2022-42889", "commons-text", "1.9", "Critical"),
            match("CVE-2020-0001", "tiny", "0.1", "Negligible"),
        ]
    )
    path = builders["write_json"](tmp_path / "grype.json", document)
    parser = GrypeParser(ScanSource(path))
    findings = list(parser.findings())
    assert parser.header.tool == "grype"
    assert parser.header.tool_version == "0.79.0"
    assert parser.header.details["distro"]["name"] == "alpine"
    log4j, text4shell, tiny = findings
    assert {f.asset for f in findings} == {"registry.example/api:2.0"}
    assert log4j.rule_id == "GHSA-jfh8-c2jp-5v3q"
    assert log4j.cve_ids == ["CVE-2021-44228"]
    assert log4j.details["installed_version"] == "2.14.1"
    assert log4j.details["fixed_version"] == "2.15.0"
    assert log4j.details["fix_state"] == "fixed"
    assert log4j.details["cvss_score"] == 10.0
    assert log4j.details["purl"] == "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1"
    assert log4j.location == "log4j-core@2.14.1 (/app/lib/log4j-core-2.14.1.jar)"
    assert text4shell.cve_ids == ["CVE-2022-42889"]
    assert text4shell.severity is Severity.CRITICAL
    assert tiny.severity is Severity.INFO
    assert tiny.details["tool_severity"] == "Negligible"


def test_kev_listed_cves_become_critical_exploited_with_kev_fields(
    tmp_path: Path,
    builders: dict[str, Any],
    kev_importer: ScanImporter,
    kev_catalog: KevCatalog,
    session_factory: Any,
) -> None:
    """Against the real KEV snapshot: listed CVEs get KEV's dates, action and ransomware flag."""
    path = builders["write_json"](tmp_path / "trivy.json", trivy_document(builders))
    result = kev_importer.import_file(path)
    with session_factory() as session:
        findings = list(session.scalars(select(FindingRecord)))
    listed = [f for f in findings if any(kev_catalog(cve) for cve in f.cve_ids)]
    assert {f.rule_id for f in listed} == {"CVE-2021-44228", "CVE-2014-0160"}
    assert result.kev_exploited == len(listed)
    for finding in findings:
        record = next((kev_catalog(cve) for cve in finding.cve_ids if kev_catalog(cve)), None)
        if record is None:
            assert not finding.kev_exploited
            assert finding.priority == finding.severity
            continue
        assert finding.kev_exploited
        assert finding.priority == CRITICAL_EXPLOITED
        (kev,) = finding.kev
        assert kev["dateAdded"] == record["dateAdded"]
        assert kev["dueDate"] == record["dueDate"]
        assert kev["requiredAction"] == record["requiredAction"]
        assert kev["ransomware"] is (record["knownRansomwareCampaignUse"] == "Known")
    log4j = next(f for f in listed if f.rule_id == "CVE-2021-44228")
    assert log4j.kev[0]["ransomware"] is True


def test_grype_related_cve_is_enriched_from_kev(
    tmp_path: Path, builders: dict[str, Any], kev_importer: ScanImporter, session_factory: Any
) -> None:
    """A GHSA match whose related CVE is in KEV is critical-exploited too."""
    related = [{"id": "CVE-2021-44228"}]
    document = builders["grype_report"](
        [
            builders["grype_match"](
                "GHSA-jfh8-c2jp-5v3q", "log4j-core", "2.14.1", relatedVulnerabilities=related
            )
        ]
    )
    kev_importer.import_file(builders["write_json"](tmp_path / "g.json", document))
    with session_factory() as session:
        (finding,) = session.scalars(select(FindingRecord))
    assert finding.priority == CRITICAL_EXPLOITED
    assert finding.kev[0]["cveID"] == "CVE-2021-44228"


@pytest.mark.parametrize(
    ("mutate", "problem", "where"),
    [
        (
            lambda d: d["Results"][0]["Vulnerabilities"][1].pop("PkgName"),
            "PkgName is required",
            "$.Results[0].Vulnerabilities[1].PkgName",
        ),
        (
            lambda d: d["Results"][1]["Vulnerabilities"][0].update(Severity="SEVERE"),
            "Severity must be one of",
            "$.Results[1].Vulnerabilities[0].Severity",
        ),
        (lambda d: d["Results"][0].pop("Target"), "needs a Target", "$.Results[0].Target"),
    ],
)
def test_trivy_schema_violations_name_their_json_path(
    tmp_path: Path, builders: dict[str, Any], mutate: Any, problem: str, where: str
) -> None:
    """A Trivy report breaking the schema is refused with the JSON path of the problem."""
    document = trivy_document(builders)
    mutate(document)
    path = builders["write_json"](tmp_path / "bad.json", document)
    with pytest.raises(MalformedScanError) as caught:
        list(TrivyParser(ScanSource(path)).findings())
    assert problem in caught.value.detail
    assert caught.value.json_path == where


def test_grype_match_without_artifact_name_is_refused(
    tmp_path: Path, builders: dict[str, Any]
) -> None:
    """A Grype match missing artifact.name is refused, naming $.matches[i].artifact.name."""
    matches = [
        builders["grype_match"]("CVE-2022-1", "a", "1"),
        builders["grype_match"]("CVE-2022-2", "b", "1"),
    ]
    del matches[1]["artifact"]["name"]
    path = builders["write_json"](tmp_path / "g.json", builders["grype_report"](matches))
    with pytest.raises(MalformedScanError) as caught:
        list(GrypeParser(ScanSource(path)).findings())
    assert caught.value.json_path == "$.matches[1].artifact.name"
