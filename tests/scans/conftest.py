"""Fixtures for the scans tests: databases (SQLite, and PostgreSQL in a throwaway schema),
importers, and builders of Trivy, Grype and SARIF documents.

The Trivy and Grype documents are written by hand following the tools' published JSON schemas
(Trivy's ``types.Report`` schema version 2, Grype's ``presenter/models.Document``): neither tool
can run here.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

import jupiter.scans.models  # noqa: F401 - registers the scan tables on Base
from jupiter.resilience.testing import FakeClock
from jupiter.scans import FindingEnricher, KevCatalog, ScanImporter
from jupiter.scans.models import FindingRecord, ScanFindingLink, ScanRecord
from support.databases import engine_per_backend, sqlite_engine

SCAN_TABLES = [ScanRecord.__table__, FindingRecord.__table__, ScanFindingLink.__table__]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """A SQLite file database holding the scan tables."""
    engine = sqlite_engine(tmp_path / "scans.db", SCAN_TABLES)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """The scan tables on SQLite, then on the real PostgreSQL (a throwaway schema)."""
    yield from engine_per_backend(request, tmp_path / "scans.db", "scans", SCAN_TABLES)


@pytest.fixture
def session_factory(engine: Engine) -> Callable[[], Session]:
    return sessionmaker(engine)


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock: imports are stamped with its wall time."""
    return FakeClock(wall_start=1_750_000_000.0)


@pytest.fixture
def importer(session_factory: Callable[[], Session], clock: FakeClock) -> ScanImporter:
    """An importer without enrichment, small batches (so batching is exercised)."""
    return ScanImporter(session_factory, clock=clock, batch_size=7)


@pytest.fixture(scope="session")
def kev_catalog(kev_snapshot: Path) -> KevCatalog:
    """The real CISA KEV snapshot as a lookup (skips when ../shared is absent)."""
    return KevCatalog.from_file(kev_snapshot)


@pytest.fixture
def kev_importer(
    session_factory: Callable[[], Session], clock: FakeClock, kev_catalog: KevCatalog
) -> ScanImporter:
    """An importer enriching with the real KEV snapshot."""
    enricher = FindingEnricher(kev_catalog, kev_lookup_many=kev_catalog.many)
    return ScanImporter(session_factory, enricher=enricher, clock=clock, batch_size=7)


def write_json(path: Path, document: Any) -> Path:
    path.write_text(json.dumps(document, indent=1), encoding="utf-8")
    return path


def trivy_vulnerability(
    cve: str, package: str, installed: str, fixed: str = "", severity: str = "HIGH", **extra: Any
) -> dict[str, Any]:
    """One entry of a Trivy result's ``Vulnerabilities`` (types.DetectedVulnerability)."""
    entry: dict[str, Any] = {
        "VulnerabilityID": cve,
        "PkgID": f"{package}@{installed}",
        "PkgName": package,
        "PkgIdentifier": {"PURL": f"pkg:deb/debian/{package}@{installed}?distro=debian-12.5"},
        "InstalledVersion": installed,
        "FixedVersion": fixed,
        "Status": "fixed" if fixed else "affected",
        "Layer": {"DiffID": "sha256:" + "ab" * 32},
        "SeveritySource": "nvd",
        "PrimaryURL": f"https://avd.aquasec.com/nvd/{cve.lower()}",
        "DataSource": {"ID": "debian", "Name": "Debian Security Tracker"},
        "Title": f"{package}: a flaw",
        "Description": f"A flaw in {package} {installed}.",
        "Severity": severity,
        "CweIDs": ["CWE-787"],
        "VendorSeverity": {"nvd": 3},
        "CVSS": {
            "nvd": {"V3Vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "V3Score": 9.8},
            "redhat": {"V3Vector": "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H", "V3Score": 8.1},
        },
        "References": ["https://security-tracker.debian.org/tracker/" + cve],
        "PublishedDate": "2024-03-29T17:15:21.16Z",
        "LastModifiedDate": "2024-05-01T10:00:00Z",
    }
    entry.update(extra)
    return entry


def trivy_report(results: list[dict[str, Any]], artifact: str = "registry.example/app:1.4"):
    """A Trivy JSON report, schema version 2 (``trivy image --format json``)."""
    return {
        "SchemaVersion": 2,
        "CreatedAt": "2025-08-20T10:00:00.000000000Z",
        "ArtifactName": artifact,
        "ArtifactType": "container_image",
        "Metadata": {
            "OS": {"Family": "debian", "Name": "12.5"},
            "ImageID": "sha256:" + "cd" * 32,
            "RepoTags": [artifact],
        },
        "Results": results,
    }


def grype_match(
    vuln_id: str, package: str, version: str, severity: str = "High", **extra: Any
) -> dict[str, Any]:
    """One entry of Grype's ``matches`` (models.Match)."""
    match: dict[str, Any] = {
        "vulnerability": {
            "id": vuln_id,
            "dataSource": f"https://github.com/advisories/{vuln_id}",
            "namespace": "github:language:java",
            "severity": severity,
            "urls": [f"https://github.com/advisories/{vuln_id}"],
            "description": f"{package} {version} is vulnerable",
            "cvss": [
                {
                    "version": "3.1",
                    "vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H",
                    "metrics": {"baseScore": 10.0, "exploitabilityScore": 3.9, "impactScore": 6.0},
                    "vendorMetadata": {},
                }
            ],
            "fix": {"versions": ["2.15.0"], "state": "fixed"},
            "advisories": [],
        },
        "relatedVulnerabilities": [],
        "matchDetails": [
            {
                "type": "exact-direct-match",
                "matcher": "java-matcher",
                "searchedBy": {"language": "java", "namespace": "github:language:java"},
                "found": {"versionConstraint": "<2.15.0 (unknown)", "vulnerabilityID": vuln_id},
            }
        ],
        "artifact": {
            "id": uuid.uuid5(uuid.NAMESPACE_URL, package + version).hex[:16],
            "name": package,
            "version": version,
            "type": "java-archive",
            "locations": [{"path": f"/app/lib/{package}-{version}.jar", "layerID": "sha256:ef"}],
            "language": "java",
            "licenses": ["Apache-2.0"],
            "cpes": [f"cpe:2.3:a:apache:{package}:{version}:*:*:*:*:*:*:*"],
            "purl": f"pkg:maven/org.apache.logging.log4j/{package}@{version}",
            "upstreams": [],
        },
    }
    for key, value in extra.items():
        match[key] = value
    return match


def grype_report(matches: list[dict[str, Any]], target: str = "registry.example/api:2.0"):
    """A Grype JSON document (``grype -o json``): matches first, then source and descriptor."""
    return {
        "matches": matches,
        "source": {
            "type": "image",
            "target": {"userInput": target, "imageID": "sha256:" + "12" * 32, "tags": [target]},
        },
        "distro": {"name": "alpine", "version": "3.19.1", "idLike": []},
        "descriptor": {
            "name": "grype",
            "version": "0.79.0",
            "configuration": {"output": ["json"]},
            "db": {"built": "2025-08-20T00:00:00Z", "schemaVersion": 5},
        },
    }


def sarif_log(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": runs,
    }


def sarif_result(rule_id: str, line: int, text_: str = "a problem", **extra: Any):
    result: dict[str, Any] = {
        "ruleId": rule_id,
        "message": {"text": text_},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": "src/app.py", "uriBaseId": "%SRCROOT%"},
                    "region": {"startLine": line, "startColumn": 5},
                }
            }
        ],
    }
    result.update(extra)
    return result


@pytest.fixture
def builders() -> dict[str, Callable[..., Any]]:
    """The document builders above, for tests that compose their own files."""
    return {
        "write_json": write_json,
        "trivy_vulnerability": trivy_vulnerability,
        "trivy_report": trivy_report,
        "grype_match": grype_match,
        "grype_report": grype_report,
        "sarif_log": sarif_log,
        "sarif_result": sarif_result,
    }
