"""SARIF 2.1.0 (Bandit, Semgrep, CodeQL, Trivy's SARIF...): streamed result by result.

Kept per result: rule (id, name, descriptions, help URI), level and severity (``security-severity``
first, then the tool's own severity property, then ``level``), message with arguments filled in,
file and region with snippet, CWE ids (tags, ``cwe`` properties, CWE taxa), CVE ids, fingerprints
and partial fingerprints, suppressions, baseline state and code flows count.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlparse

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
    without_none,
)
from ._limits import DEFAULT_OPTIONS, ParseOptions
from ._source import ScanSource
from ._stream import END, stream_json

__all__ = ["SarifParser"]

FORMAT = "sarif"
_LEVELS = frozenset({"error", "warning", "note", "none"})
_SKIPPED_KINDS = frozenset({"pass", "notApplicable"})
_RUN_HEADER = frozenset(
    {"runs.item.tool", "runs.item.versionControlProvenance", "runs.item.originalUriBaseIds"}
)
_CAPTURES = _RUN_HEADER | {"version", "runs.item.results.item"}
_ARGUMENT = re.compile(r"\{([0-9]{1,6})\}")  # {0} .. {999999}: never a 5,000-digit int()
_MAX_SNIPPET = 1000


def _text(value: Any) -> str | None:
    if isinstance(value, dict):
        text = value.get("text") or value.get("markdown")
        return text if isinstance(text, str) else None
    return None


def _display_uri(uri: str) -> str:
    if uri.startswith("file:"):
        return unquote(urlparse(uri).path)
    return uri


class _Run:
    """What a run's header says: its tool, rules and the asset its results belong to."""

    def __init__(self, index: int, sections: dict[str, Any], asset_override: str | None) -> None:
        self.index = index
        tool = sections.get("runs.item.tool")
        path = f"$.runs[{index}].tool"
        if not isinstance(tool, dict) or not isinstance(tool.get("driver"), dict):
            raise MalformedScanError(
                "a SARIF run needs tool.driver", json_path=path, scan_format=FORMAT
            )
        driver = tool["driver"]
        name = driver.get("name")
        if not isinstance(name, str) or not name.strip():
            raise MalformedScanError(
                "tool.driver.name is required", json_path=f"{path}.driver.name", scan_format=FORMAT
            )
        self.tool = name.strip()
        version = driver.get("semanticVersion") or driver.get("version")
        self.tool_version = str(version) if version is not None else None
        self.components: list[list[dict[str, Any]]] = [_rules(driver, f"{path}.driver")]
        for position, extension in enumerate(tool.get("extensions") or []):
            where = f"{path}.extensions[{position}]"
            self.components.append(_rules(extension, where) if isinstance(extension, dict) else [])
        self.rules_by_id: dict[str, dict[str, Any]] = {}
        for rules in self.components:
            for rule in rules:
                if isinstance(rule.get("id"), str):
                    self.rules_by_id.setdefault(rule["id"], rule)
        self.asset = asset_override or _run_asset(sections) or "local"

    def rule_for(self, result: dict[str, Any], rule_id: str | None) -> dict[str, Any]:
        reference = result.get("rule") if isinstance(result.get("rule"), dict) else {}
        component = 0
        if isinstance(reference.get("toolComponent"), dict):
            index = reference["toolComponent"].get("index")
            component = index + 1 if isinstance(index, int) else 0
        index = reference.get("index", result.get("ruleIndex"))
        rules = self.components[component] if component < len(self.components) else []
        if isinstance(index, int) and 0 <= index < len(rules):
            return rules[index]
        return self.rules_by_id.get(rule_id or "", {})


def _rules(component: dict[str, Any], path: str) -> list[dict[str, Any]]:
    rules = component.get("rules") or []
    if not isinstance(rules, list):
        raise MalformedScanError(
            "rules must be an array", json_path=f"{path}.rules", scan_format=FORMAT
        )
    return [rule if isinstance(rule, dict) else {} for rule in rules]


def _run_asset(sections: dict[str, Any]) -> str | None:
    provenance = sections.get("runs.item.versionControlProvenance")
    if isinstance(provenance, list):
        for entry in provenance:
            if isinstance(entry, dict) and isinstance(entry.get("repositoryUri"), str):
                return str(entry["repositoryUri"])
    bases = sections.get("runs.item.originalUriBaseIds")
    if isinstance(bases, dict):
        preferred = bases.get("SRCROOT") or next(iter(bases.values()), None)
        if isinstance(preferred, dict) and isinstance(preferred.get("uri"), str):
            return _display_uri(preferred["uri"])
    return None


def _severity(result: dict[str, Any], rule: dict[str, Any], level: str) -> tuple[Severity, str]:
    props = result.get("properties") if isinstance(result.get("properties"), dict) else {}
    rule_props = rule.get("properties") if isinstance(rule.get("properties"), dict) else {}
    for source in (props, rule_props):
        score = source.get("security-severity")
        if score is not None:
            with contextlib.suppress(TypeError, ValueError):
                return Severity.from_cvss(float(score)), f"security-severity {score}"
    for key in ("issue_severity", "severity", "problem.severity"):
        for source in (props, rule_props):
            label = source.get(key)
            if isinstance(label, str) and Severity.from_label(label) is not None:
                return Severity.from_label(label) or Severity.INFO, label
    return Severity.from_label(level) or Severity.MEDIUM, level


def _message(result: dict[str, Any], rule: dict[str, Any], path: str) -> str:
    message = result.get("message")
    if message is not None and not isinstance(message, dict):
        raise MalformedScanError(
            "message must be an object", json_path=f"{path}.message", scan_format=FORMAT
        )
    message = message or {}
    text = _text(message)
    if text is None and isinstance(message.get("id"), str):
        strings = rule.get("messageStrings") if isinstance(rule.get("messageStrings"), dict) else {}
        text = _text(strings.get(message["id"]))
    if text is None:
        text = _text(rule.get("shortDescription")) or _text(rule.get("fullDescription"))
    if text is None:
        raise MalformedScanError(
            "a result needs message.text (or a message id its rule defines)",
            json_path=f"{path}.message",
            scan_format=FORMAT,
        )
    arguments = message.get("arguments")
    if isinstance(arguments, list) and arguments:

        def fill(match: re.Match[str]) -> str:
            position = int(match.group(1))
            return str(arguments[position]) if position < len(arguments) else match.group(0)

        text = _ARGUMENT.sub(fill, text)
    return text


def _location(result: dict[str, Any], path: str) -> tuple[str, dict[str, Any]]:
    locations = result.get("locations")
    if locations is None:
        return "", {}
    if not isinstance(locations, list):
        raise MalformedScanError(
            "locations must be an array", json_path=f"{path}.locations", scan_format=FORMAT
        )
    if not locations or not isinstance(locations[0], dict):
        return "", {}
    first = locations[0]
    physical = (
        first.get("physicalLocation") if isinstance(first.get("physicalLocation"), dict) else {}
    )
    artifact = physical.get("artifactLocation") or {}
    region = physical.get("region") or {}
    if not isinstance(artifact, dict) or not isinstance(region, dict):
        raise MalformedScanError(
            "artifactLocation and region must be objects",
            json_path=f"{path}.locations[0].physicalLocation",
            scan_format=FORMAT,
        )
    uri = artifact.get("uri")
    file = _display_uri(uri) if isinstance(uri, str) else None
    if file is None and isinstance(artifact.get("index"), int):
        file = f"artifact #{artifact['index']}"
    logical = first.get("logicalLocations")
    logical_name = None
    if isinstance(logical, list) and logical and isinstance(logical[0], dict):
        logical_name = logical[0].get("fullyQualifiedName") or logical[0].get("name")
    details: dict[str, Any] = {}
    if file:
        details["file"] = file
    if isinstance(artifact.get("uriBaseId"), str):
        details["uri_base_id"] = artifact["uriBaseId"]
    kept_region = {
        key: region[key]
        for key in ("startLine", "startColumn", "endLine", "endColumn", "charOffset", "charLength")
        if isinstance(region.get(key), int)
    }
    if kept_region:
        details["region"] = kept_region
    snippet = _text(region.get("snippet"))
    if snippet:
        details["snippet"] = clip(snippet, _MAX_SNIPPET)
    if logical_name:
        details["logical_location"] = str(logical_name)
    text = file or (str(logical_name) if logical_name else "")
    if file and "startLine" in kept_region:
        text += f":{kept_region['startLine']}"
        if "startColumn" in kept_region:
            text += f":{kept_region['startColumn']}"
    return text, details


def _cwe_sources(result: dict[str, Any], rule: dict[str, Any]) -> list[Any]:
    texts: list[Any] = []
    for holder in (rule, result):
        props = holder.get("properties") if isinstance(holder.get("properties"), dict) else {}
        tags = props.get("tags")
        if isinstance(tags, list):
            texts.extend(tags)
        for key in ("cwe", "cwes", "CWE"):
            value = props.get(key)
            texts.extend(value if isinstance(value, list) else [value])
    # SARIF taxonomies: result.taxa / rule.relationships pointing into the CWE component.
    for reference in result.get("taxa") or []:
        texts.extend(_taxon_cwe(reference))
    for relationship in rule.get("relationships") or []:
        if isinstance(relationship, dict):
            texts.extend(_taxon_cwe(relationship.get("target")))
    return texts


def _taxon_cwe(reference: Any) -> list[str]:
    if not isinstance(reference, dict):
        return []
    component = reference.get("toolComponent")
    name = component.get("name") if isinstance(component, dict) else None
    taxon_id = reference.get("id")
    if isinstance(name, str) and name.upper() == "CWE" and isinstance(taxon_id, (str, int)):
        return [f"CWE-{taxon_id}"]
    return [taxon_id] if isinstance(taxon_id, str) and taxon_id.upper().startswith("CWE") else []


class SarifParser:
    """Streams a SARIF 2.1.0 log; ``header`` fills in as runs are read."""

    format = FORMAT

    def __init__(
        self, source: ScanSource, *, asset: str | None = None, options: ParseOptions | None = None
    ) -> None:
        self._source = source
        self._asset = asset
        self._options = options or DEFAULT_OPTIONS
        self._tools: dict[str, str | None] = {}
        self.header = ScanHeader(format=FORMAT, tool="sarif", asset=asset)
        self.skipped = 0

    def _update_header(self, run: _Run) -> None:
        self._tools.setdefault(run.tool, run.tool_version)
        _first_tool, first_version = next(iter(self._tools.items()))
        self.header = ScanHeader(
            format=FORMAT,
            tool=", ".join(self._tools),
            tool_version=first_version,
            asset=self._asset or run.asset,
            details={"runs": run.index + 1},
        )

    def _look_ahead(self) -> dict[int, dict[str, Any]]:
        """Read every run's header sections in a side pass (the tool came after its results)."""
        found: dict[int, dict[str, Any]] = {}
        index = 0
        for prefix, _path, value in stream_json(
            self._source.open_side,
            _RUN_HEADER,
            boundaries=frozenset({"runs.item"}),
            scan_format=FORMAT,
            options=self._options,
        ):
            if value is END:
                index += 1
            else:
                found.setdefault(index, {})[prefix] = value
        return found

    def findings(self) -> Iterator[ParsedFinding]:
        run_index = 0
        sections: dict[str, Any] = {}
        run: _Run | None = None
        ahead: dict[int, dict[str, Any]] | None = None
        seen_run = False
        for prefix, path, value in stream_json(
            self._source.open,
            _CAPTURES,
            boundaries=frozenset({"runs.item"}),
            scan_format=FORMAT,
            options=self._options,
        ):
            if prefix == "version":
                if value != "2.1.0":
                    raise UnsupportedFormatError(
                        f"SARIF version {value!r} is not supported; Jupiter reads 2.1.0",
                        json_path="$.version",
                        scan_format=FORMAT,
                    )
            elif prefix == "runs.item.results.item":
                if run is None:
                    if "runs.item.tool" not in sections:
                        ahead = ahead if ahead is not None else self._look_ahead()
                        sections = {**ahead.get(run_index, {}), **sections}
                    run = _Run(run_index, sections, self._asset)
                    self._update_header(run)
                finding = self._finding(run, value, path)
                if finding is not None:
                    yield finding
            elif value is END:
                if run is None:
                    run = _Run(run_index, sections, self._asset)
                    self._update_header(run)
                seen_run = True
                run_index += 1
                sections, run = {}, None
            elif run is None:
                sections[prefix] = value
        if not seen_run:
            raise MalformedScanError(
                "a SARIF log needs a non-empty runs array", json_path="$.runs", scan_format=FORMAT
            )

    def _finding(self, run: _Run, result: Any, path: str) -> ParsedFinding | None:
        if not isinstance(result, dict):
            raise MalformedScanError(
                "a result must be an object", json_path=path, scan_format=FORMAT
            )
        kind = result.get("kind", "fail")
        if kind in _SKIPPED_KINDS or result.get("baselineState") == "absent":
            self.skipped += 1
            return None
        reference = result.get("rule") if isinstance(result.get("rule"), dict) else {}
        rule_id = result.get("ruleId") or reference.get("id")
        if rule_id is not None and not isinstance(rule_id, str):
            raise MalformedScanError(
                "ruleId must be a string", json_path=f"{path}.ruleId", scan_format=FORMAT
            )
        rule = run.rule_for(result, rule_id)
        rule_id = rule_id or rule.get("id") or "(no rule)"
        default_config = rule.get("defaultConfiguration")
        default_level = default_config.get("level") if isinstance(default_config, dict) else None
        level = result.get("level", default_level or "warning")
        if level not in _LEVELS:
            raise MalformedScanError(
                f"level must be one of error, warning, note, none; got {level!r}",
                json_path=f"{path}.level",
                scan_format=FORMAT,
            )
        severity, tool_severity = _severity(result, rule, level)
        message = _message(result, rule, path)
        location, location_details = _location(result, path)
        fingerprints = (
            result.get("fingerprints") if isinstance(result.get("fingerprints"), dict) else {}
        )
        partial = (
            result.get("partialFingerprints")
            if isinstance(result.get("partialFingerprints"), dict)
            else {}
        )
        region = location_details.get("region", {})
        if fingerprints:
            identity: tuple[Any, ...] = ("fingerprints", sorted(fingerprints.items()))
        elif partial:
            identity = ("partial", rule_id, location_details.get("file"), sorted(partial.items()))
        else:
            identity = (
                "location",
                rule_id,
                location_details.get("file") or location,
                region.get("startLine"),
                region.get("startColumn"),
                message,
            )
        props = result.get("properties") if isinstance(result.get("properties"), dict) else {}
        title = (
            _text(rule.get("shortDescription")) or clip(message, 200) or rule.get("name") or rule_id
        )
        details: dict[str, Any] = {
            "level": level,
            "kind": kind,
            "tool_severity": tool_severity,
            "tool_version": run.tool_version,
            "rule_name": rule.get("name"),
            "help_uri": rule.get("helpUri"),
            **location_details,
        }
        if fingerprints:
            details["fingerprints"] = fingerprints
        if partial:
            details["partial_fingerprints"] = partial
        if props:
            details["properties"] = {
                key: value
                for key, value in props.items()
                if isinstance(value, (str, int, float, bool))
            }
        suppressions = result.get("suppressions")
        if isinstance(suppressions, list) and suppressions:
            details["suppressed"] = any(
                isinstance(item, dict) and item.get("status", "accepted") == "accepted"
                for item in suppressions
            )
        if isinstance(result.get("baselineState"), str):
            details["baseline_state"] = result["baselineState"]
        if isinstance(result.get("codeFlows"), list):
            details["code_flows"] = len(result["codeFlows"])
        tags = []
        for holder in (rule, result):
            holder_props = (
                holder.get("properties") if isinstance(holder.get("properties"), dict) else {}
            )
            if isinstance(holder_props.get("tags"), list):
                tags.extend(tag for tag in holder_props["tags"] if isinstance(tag, str))
        return ParsedFinding(
            tool=run.tool,
            rule_id=clip(rule_id, 255),
            title=clip(str(title), 500),
            severity=severity,
            asset=run.asset,
            location=clip(location, 1000),
            fingerprint=fingerprint_of(FORMAT, run.tool, run.asset, *identity),
            message=clip(message, MAX_MESSAGE),
            cve_ids=cve_ids_in([rule_id, *tags, rule.get("name")]),
            cwe_ids=cwe_ids_in(_cwe_sources(result, rule)),
            details=without_none(details),
        )
