"""Trivy JSON (``trivy image|fs|repo --format json``, schema version 2), streamed.

Kept: the artifact (asset), each result's target, class and type; for vulnerabilities the
package (name, id, path, PURL), installed and fixed versions, status, the CVE or advisory id,
severity and its source, every CVSS vector and score, CWE ids, title, description, references,
dates and layer; misconfigurations (failed checks) and secrets (rule and place, never the match).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ._errors import MalformedScanError, UnsupportedFormatError
from ._finding import (
    MAX_MESSAGE,
    ParsedFinding,
    ScanHeader,
    Severity,
    clip,
    cve_ids_in,
    cwe_ids_in,
    fingerprint_of,
    without_empty,
    without_none,
)
from ._limits import DEFAULT_OPTIONS, ParseOptions
from ._source import ScanSource
from ._stream import END, stream_json

__all__ = ["TrivyParser", "best_cvss"]

FORMAT = "trivy"
_HEADER = frozenset({"SchemaVersion", "ArtifactName", "ArtifactType", "CreatedAt", "Metadata"})
_RESULT_FIELDS = frozenset({"Results.item.Target", "Results.item.Class", "Results.item.Type"})
_ITEMS = {
    "Results.item.Vulnerabilities.item": "vulnerability",
    "Results.item.Misconfigurations.item": "misconfiguration",
    "Results.item.Secrets.item": "secret",
}
_CAPTURES = _HEADER | _RESULT_FIELDS | frozenset(_ITEMS)


def _at_line(target: dict[str, Any], line: Any) -> str:
    """The target's path, with ``:line`` when the tool gave a line number."""
    location = str(target["Target"])
    return f"{location}:{line}" if isinstance(line, int) else location


def best_cvss(cvss: Any, preferred: str | None = None) -> tuple[float | None, dict[str, Any]]:
    """The highest-priority CVSS score (preferred source, then nvd, then any; v4, v3, then v2)."""
    if not isinstance(cvss, dict) or not cvss:
        return None, {}
    order = [preferred, "nvd", "ghsa", "redhat", *cvss.keys()]
    for source in order:
        entry = cvss.get(source) if source else None
        if not isinstance(entry, dict):
            continue
        for key in ("V40Score", "V3Score", "V2Score"):
            score = entry.get(key)
            if isinstance(score, (int, float)) and not isinstance(score, bool):
                return float(score), {"source": source, "version": key[1:-5], **entry}
    return None, {}


class TrivyParser:
    """Streams Trivy's JSON report; ``header`` holds the artifact once read."""

    format = FORMAT

    def __init__(
        self, source: ScanSource, *, asset: str | None = None, options: ParseOptions | None = None
    ) -> None:
        self._source = source
        self._asset = asset
        self._options = options or DEFAULT_OPTIONS
        self._meta: dict[str, Any] = {}
        self.header = ScanHeader(format=FORMAT, tool="trivy", asset=asset)
        self.skipped = 0

    def _set_header(self) -> None:
        metadata = (
            self._meta.get("Metadata") if isinstance(self._meta.get("Metadata"), dict) else {}
        )
        os_info = metadata.get("OS") if isinstance(metadata.get("OS"), dict) else None
        details = {
            "artifact_type": self._meta.get("ArtifactType"),
            "schema_version": self._meta.get("SchemaVersion"),
            "created_at": self._meta.get("CreatedAt"),
            "os": os_info,
            "image_id": metadata.get("ImageID"),
        }
        self.header = ScanHeader(
            format=FORMAT,
            tool="trivy",
            asset=self._asset or self._artifact(),
            details=without_none(details),
        )

    def _artifact(self) -> str:
        name = self._meta.get("ArtifactName")
        return str(name) if isinstance(name, str) and name else "local"

    def _look_ahead(self) -> None:
        """The artifact name came after the results (hand-edited file): read it in a side pass."""
        for prefix, _path, value in stream_json(
            self._source.open_side, _HEADER, scan_format=FORMAT, options=self._options
        ):
            self._meta.setdefault(prefix, value)

    def findings(self) -> Iterator[ParsedFinding]:
        target: dict[str, Any] = {}
        header_ready = False
        for prefix, path, value in stream_json(
            self._source.open,
            _CAPTURES,
            boundaries=frozenset({"Results.item"}),
            scan_format=FORMAT,
            options=self._options,
        ):
            if prefix in _HEADER:
                self._meta[prefix] = value
                if prefix == "SchemaVersion" and value not in (2, 2.0):
                    raise UnsupportedFormatError(
                        f"Trivy SchemaVersion {value!r} is not supported; Jupiter reads 2",
                        json_path="$.SchemaVersion",
                        scan_format=FORMAT,
                    )
                continue
            if value is END:
                target = {}
                continue
            if prefix in _RESULT_FIELDS:
                target[prefix.rsplit(".", 1)[1]] = value
                continue
            if not header_ready:
                if "ArtifactName" not in self._meta and self._asset is None:
                    self._look_ahead()
                self._set_header()
                header_ready = True
            finding = self._finding(_ITEMS[prefix], value, target, path)
            if finding is not None:
                yield finding
        if "SchemaVersion" not in self._meta and "ArtifactName" not in self._meta:
            raise MalformedScanError(
                "a Trivy report needs SchemaVersion and ArtifactName",
                json_path="$",
                scan_format=FORMAT,
            )
        if not header_ready:
            self._set_header()

    def _finding(
        self, kind: str, item: Any, target: dict[str, Any], path: str
    ) -> ParsedFinding | None:
        if not isinstance(item, dict):
            raise MalformedScanError(
                f"a {kind} must be an object", json_path=path, scan_format=FORMAT
            )
        if "Target" not in target:
            raise MalformedScanError(
                "each result needs a Target before its findings",
                json_path=path.rsplit(".", 1)[0] + ".Target",
                scan_format=FORMAT,
            )
        if kind == "vulnerability":
            return self._vulnerability(item, target, path)
        if kind == "misconfiguration":
            return self._misconfiguration(item, target, path)
        return self._secret(item, target, path)

    def _require(self, item: dict[str, Any], key: str, path: str) -> str:
        value = item.get(key)
        if not isinstance(value, str) or not value:
            raise MalformedScanError(
                f"{key} is required and must be a string",
                json_path=f"{path}.{key}",
                scan_format=FORMAT,
            )
        return value

    def _severity(self, item: dict[str, Any], path: str) -> tuple[Severity, str]:
        label = item.get("Severity", "UNKNOWN")
        severity = Severity.from_label(label) if isinstance(label, str) else None
        if severity is None:
            raise MalformedScanError(
                f"Severity must be one of UNKNOWN, LOW, MEDIUM, HIGH, CRITICAL; got {label!r}",
                json_path=f"{path}.Severity",
                scan_format=FORMAT,
            )
        return severity, str(label)

    def _build(
        self,
        target: dict[str, Any],
        *,
        rule_id: str,
        title: Any,
        severity: Severity,
        location: str,
        identity: tuple[Any, ...],
        message: Any,
        details: dict[str, Any],
        cve_ids: list[str] | None = None,
        cwe_ids: list[str] | None = None,
    ) -> ParsedFinding:
        """One Trivy finding: texts clipped, fingerprinted by asset, target and ``identity``."""
        asset = self.header.asset or "local"
        return ParsedFinding(
            tool="trivy",
            rule_id=clip(rule_id, 255),
            title=clip(title, 500),
            severity=severity,
            asset=asset,
            location=clip(location, 1000),
            fingerprint=fingerprint_of(FORMAT, asset, target.get("Target"), *identity),
            message=clip(message, MAX_MESSAGE),
            cve_ids=cve_ids or [],
            cwe_ids=cwe_ids or [],
            details=details,
        )

    def _vulnerability(
        self, item: dict[str, Any], target: dict[str, Any], path: str
    ) -> ParsedFinding:
        vuln_id = self._require(item, "VulnerabilityID", path)
        package = self._require(item, "PkgName", path)
        severity, label = self._severity(item, path)
        installed = item.get("InstalledVersion")
        fixed = item.get("FixedVersion")
        score, cvss = best_cvss(item.get("CVSS"), item.get("SeveritySource"))
        identifiers = (
            item.get("PkgIdentifier") if isinstance(item.get("PkgIdentifier"), dict) else {}
        )
        title = item.get("Title") or f"{vuln_id} in {package}"
        location = str(target["Target"]) + (f" ({item['PkgPath']})" if item.get("PkgPath") else "")
        references = item.get("References") if isinstance(item.get("References"), list) else []
        details = {
            "kind": "vulnerability",
            "target": target.get("Target"),
            "class": target.get("Class"),
            "type": target.get("Type"),
            "package": package,
            "package_id": item.get("PkgID"),
            "package_path": item.get("PkgPath"),
            "purl": identifiers.get("PURL"),
            "installed_version": installed,
            "fixed_version": fixed or None,
            "status": item.get("Status"),
            "tool_severity": label,
            "severity_source": item.get("SeveritySource"),
            "vendor_severity": item.get("VendorSeverity"),
            "cvss_score": score,
            "cvss": cvss or None,
            "cvss_all": item.get("CVSS"),
            "primary_url": item.get("PrimaryURL"),
            "references": references[:20],
            "published": item.get("PublishedDate"),
            "last_modified": item.get("LastModifiedDate"),
            "data_source": item.get("DataSource"),
            "layer": item.get("Layer"),
        }
        cwe_source = item.get("CweIDs") if isinstance(item.get("CweIDs"), list) else []
        return self._build(
            target,
            rule_id=vuln_id,
            title=title,
            severity=severity,
            location=location,
            identity=(item.get("PkgID") or f"{package}@{installed}", item.get("PkgPath"), vuln_id),
            message=item.get("Description") or title,
            cve_ids=cve_ids_in([vuln_id, *(item.get("VendorIDs") or [])]),
            cwe_ids=cwe_ids_in(cwe_source),
            details=without_empty(details),
        )

    def _misconfiguration(
        self, item: dict[str, Any], target: dict[str, Any], path: str
    ) -> ParsedFinding | None:
        if item.get("Status") == "PASS":
            self.skipped += 1
            return None
        check_id = item.get("AVDID") or item.get("ID")
        if not isinstance(check_id, str) or not check_id:
            raise MalformedScanError(
                "a misconfiguration needs ID or AVDID", json_path=f"{path}.ID", scan_format=FORMAT
            )
        severity, label = self._severity(item, path)
        cause = item.get("CauseMetadata") if isinstance(item.get("CauseMetadata"), dict) else {}
        location = _at_line(target, cause.get("StartLine"))
        title = item.get("Title") or check_id
        details = {
            "kind": "misconfiguration",
            "target": target.get("Target"),
            "class": target.get("Class"),
            "type": item.get("Type") or target.get("Type"),
            "check_id": item.get("ID"),
            "avd_id": item.get("AVDID"),
            "status": item.get("Status"),
            "tool_severity": label,
            "resolution": item.get("Resolution"),
            "primary_url": item.get("PrimaryURL"),
            "resource": cause.get("Resource"),
            "provider": cause.get("Provider"),
            "service": cause.get("Service"),
            "start_line": cause.get("StartLine"),
            "end_line": cause.get("EndLine"),
        }
        return self._build(
            target,
            rule_id=check_id,
            title=title,
            severity=severity,
            location=location,
            identity=(check_id, cause.get("Resource"), cause.get("StartLine")),
            message=item.get("Message") or item.get("Description") or title,
            cve_ids=cve_ids_in([check_id]),
            details=without_empty(details),
        )

    def _secret(self, item: dict[str, Any], target: dict[str, Any], path: str) -> ParsedFinding:
        rule_id = self._require(item, "RuleID", path)
        severity, label = self._severity(item, path)
        location = _at_line(target, item.get("StartLine"))
        title = item.get("Title") or rule_id
        # The matched text is never stored: it is (part of) a secret.
        details = {
            "kind": "secret",
            "target": target.get("Target"),
            "class": target.get("Class"),
            "category": item.get("Category"),
            "tool_severity": label,
            "start_line": item.get("StartLine"),
            "end_line": item.get("EndLine"),
        }
        return self._build(
            target,
            rule_id=rule_id,
            title=title,
            severity=severity,
            location=location,
            identity=(rule_id, item.get("StartLine")),
            message=f"Secret found: {title}",
            cwe_ids=["CWE-798"],
            details=without_none(details),
        )
