"""Grype JSON (``grype -o json``), streamed match by match.

Grype writes ``source``, ``distro`` and ``descriptor`` after the (long) ``matches`` array, so
those are read first in fast side passes; then each match is read and dropped in turn.
Kept: the vulnerability (id, namespace, data source, severity, every CVSS entry, fix versions and
state, URLs, description), related vulnerabilities (their CVE ids), the artifact (name, version,
type, language, PURL, CPEs, locations) and the match details (matcher, type).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ._errors import MalformedScanError
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

__all__ = ["GrypeParser"]

FORMAT = "grype"
_HEADER = frozenset({"source", "descriptor", "distro"})


def _cvss(entries: Any) -> tuple[float | None, list[dict[str, Any]]]:
    """The best base score (highest CVSS version, NVD first) and the entries kept."""
    if not isinstance(entries, list):
        return None, []
    kept = [entry for entry in entries if isinstance(entry, dict)]

    def rank(entry: dict[str, Any]) -> tuple[float, int]:
        try:
            version = float(entry.get("version") or 0)
        except (TypeError, ValueError):
            version = 0.0
        return version, int(entry.get("source") == "nvd@nist.gov")

    for entry in sorted(kept, key=rank, reverse=True):
        metrics = entry.get("metrics") if isinstance(entry.get("metrics"), dict) else {}
        score = metrics.get("baseScore")
        if isinstance(score, (int, float)) and not isinstance(score, bool):
            return float(score), kept
    return None, kept


class GrypeParser:
    """Streams Grype's JSON report; ``header`` is known before the first match."""

    format = FORMAT

    def __init__(
        self, source: ScanSource, *, asset: str | None = None, options: ParseOptions | None = None
    ) -> None:
        self._source = source
        self._asset = asset
        self._options = options or DEFAULT_OPTIONS
        self.header = ScanHeader(format=FORMAT, tool="grype", asset=asset)
        self.skipped = 0

    def _side_values(self) -> dict[str, Any]:
        """``source``, ``descriptor`` and ``distro``, in one side pass over the file (the
        matches are walked, not built)."""
        found: dict[str, Any] = {}
        try:
            for prefix, _path, value in stream_json(
                self._source.open_side, _HEADER, scan_format=FORMAT, options=self._options
            ):
                found.setdefault(prefix, value)
                if len(found) == len(_HEADER):
                    break
        except MalformedScanError:
            pass  # the main pass reports the problem, with its place
        return found

    def _read_header(self) -> None:
        found = self._side_values()
        source = found.get("source")
        descriptor = found.get("descriptor")
        distro = found.get("distro")
        asset = self._asset
        source_type = None
        if isinstance(source, dict):
            source_type = source.get("type")
            target = source.get("target")
            if asset is None and isinstance(target, str) and target:
                asset = target
            elif asset is None and isinstance(target, dict):
                asset = target.get("userInput") or target.get("imageID") or target.get("path")
        tool = "grype"
        version = None
        if isinstance(descriptor, dict):
            tool = str(descriptor.get("name") or "grype")
            version = descriptor.get("version")
        details = {
            "source_type": source_type,
            "distro": distro if isinstance(distro, dict) else None,
        }
        self.header = ScanHeader(
            format=FORMAT,
            tool=tool,
            tool_version=str(version) if version is not None else None,
            asset=str(asset) if asset else "local",
            details=without_none(details),
        )

    def findings(self) -> Iterator[ParsedFinding]:
        self._read_header()
        seen_matches = False
        for _prefix, path, value in stream_json(
            self._source.open,
            frozenset({"matches.item"}),
            boundaries=frozenset({"matches"}),
            scan_format=FORMAT,
            options=self._options,
        ):
            if value is END:
                seen_matches = True
                continue
            yield self._finding(value, path)
        if not seen_matches:
            raise MalformedScanError(
                "a Grype report needs a matches array", json_path="$.matches", scan_format=FORMAT
            )

    def _finding(self, match: Any, path: str) -> ParsedFinding:
        if not isinstance(match, dict):
            raise MalformedScanError(
                "a match must be an object", json_path=path, scan_format=FORMAT
            )
        vulnerability = match.get("vulnerability")
        artifact = match.get("artifact")
        if not isinstance(vulnerability, dict):
            raise MalformedScanError(
                "a match needs a vulnerability object",
                json_path=f"{path}.vulnerability",
                scan_format=FORMAT,
            )
        if not isinstance(artifact, dict):
            raise MalformedScanError(
                "a match needs an artifact object", json_path=f"{path}.artifact", scan_format=FORMAT
            )
        vuln_id = vulnerability.get("id")
        if not isinstance(vuln_id, str) or not vuln_id:
            raise MalformedScanError(
                "vulnerability.id is required",
                json_path=f"{path}.vulnerability.id",
                scan_format=FORMAT,
            )
        name = artifact.get("name")
        if not isinstance(name, str) or not name:
            raise MalformedScanError(
                "artifact.name is required", json_path=f"{path}.artifact.name", scan_format=FORMAT
            )
        label = vulnerability.get("severity", "Unknown")
        severity = Severity.from_label(label) if isinstance(label, str) else None
        if severity is None:
            raise MalformedScanError(
                "severity must be one of Unknown, Negligible, Low, Medium, High, Critical;"
                f" got {label!r}",
                json_path=f"{path}.vulnerability.severity",
                scan_format=FORMAT,
            )
        related = [
            item for item in match.get("relatedVulnerabilities") or [] if isinstance(item, dict)
        ]
        score, cvss = _cvss(vulnerability.get("cvss"))
        if score is None:
            for item in related:
                score, related_cvss = _cvss(item.get("cvss"))
                if score is not None:
                    cvss = related_cvss
                    break
        fix = vulnerability.get("fix") if isinstance(vulnerability.get("fix"), dict) else {}
        fixed_versions = [str(v) for v in fix.get("versions") or []]
        locations = [
            {key: loc.get(key) for key in ("path", "layerID", "accessPath") if loc.get(key)}
            for loc in artifact.get("locations") or []
            if isinstance(loc, dict)
        ]
        first_path = locations[0].get("path") if locations else None
        version = artifact.get("version")
        asset = self.header.asset or "local"
        description = vulnerability.get("description") or next(
            (item.get("description") for item in related if item.get("description")), None
        )
        details_list = [
            {key: detail.get(key) for key in ("type", "matcher")}
            for detail in match.get("matchDetails") or []
            if isinstance(detail, dict)
        ]
        details = {
            "kind": "vulnerability",
            "package": name,
            "installed_version": version,
            "fixed_version": ", ".join(fixed_versions) or None,
            "fix_state": fix.get("state"),
            "package_type": artifact.get("type"),
            "language": artifact.get("language") or None,
            "purl": artifact.get("purl"),
            "cpes": (artifact.get("cpes") or [])[:10],
            "locations": locations[:10],
            "tool_severity": label,
            "cvss_score": score,
            "cvss": cvss or None,
            "namespace": vulnerability.get("namespace"),
            "data_source": vulnerability.get("dataSource"),
            "urls": (vulnerability.get("urls") or [])[:20],
            "related": [item.get("id") for item in related if item.get("id")],
            "match_details": details_list or None,
            "known_exploited": vulnerability.get("knownExploited"),
            "epss": vulnerability.get("epss"),
            "target": first_path,
        }
        cwe_source = (
            vulnerability.get("cwes") if isinstance(vulnerability.get("cwes"), list) else []
        )
        cwe_texts = [item.get("cwe") if isinstance(item, dict) else item for item in cwe_source]
        location = f"{name}@{version}" + (f" ({first_path})" if first_path else "")
        return ParsedFinding(
            tool=self.header.tool,
            rule_id=clip(vuln_id, 255),
            title=clip(f"{vuln_id} in {name} {version or ''}".strip(), 500),
            severity=severity,
            asset=asset,
            location=clip(location, 1000),
            fingerprint=fingerprint_of(
                FORMAT,
                asset,
                artifact.get("purl") or f"{artifact.get('type')}:{name}@{version}",
                first_path,
                vuln_id,
            ),
            message=clip(description or f"{vuln_id} affects {name} {version}", MAX_MESSAGE),
            cve_ids=cve_ids_in([vuln_id, *(item.get("id") for item in related)]),
            cwe_ids=cwe_ids_in(cwe_texts),
            details=without_empty(details),
        )
