"""SARIF 2.1.0: real Bandit output, and the parts of the spec other producers use."""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from jupiter.scans import MalformedScanError, ScanImporter, Severity, UnsupportedFormatError
from jupiter.scans._sarif import SarifParser
from jupiter.scans._source import ScanSource
from jupiter.scans.models import FindingRecord

VULNERABLE_SAMPLE = """\
import hashlib
import pickle
import subprocess


def run(command):
    return subprocess.call(command, shell=True)


def load(blob):
    return pickle.loads(blob)


def digest(data):
    return hashlib.md5(data).hexdigest()


def query(cursor, name):
    cursor.execute("SELECT * FROM users WHERE name = '%s'" % name)
"""


def run_bandit(tmp_path: Path) -> Path:
    """Run the real Bandit (dev dependency) with SARIF output on a vulnerable sample."""
    sample = tmp_path / "app" / "vulnerable.py"
    sample.parent.mkdir()
    sample.write_text(VULNERABLE_SAMPLE)
    output = tmp_path / "bandit.sarif"
    completed = subprocess.run(
        [sys.executable, "-m", "bandit", "-q", "-f", "sarif", "-o", str(output), str(sample)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Bandit exits 1 when it finds issues; anything else means it did not run.
    assert completed.returncode in (0, 1), completed.stderr
    return output


def parse(path: Path, asset: str | None = None) -> tuple[SarifParser, list[Any]]:
    parser = SarifParser(ScanSource(path), asset=asset)
    return parser, list(parser.findings())


def test_bandit_sarif_findings_keep_rule_severity_location_and_cwe(tmp_path: Path) -> None:
    """Every Bandit result becomes a finding with its rule, Bandit's severity, line and CWE."""
    output = run_bandit(tmp_path)
    document = json.loads(output.read_text())
    results = document["runs"][0]["results"]
    rules = {rule["id"]: rule for rule in document["runs"][0]["tool"]["driver"]["rules"]}
    parser, findings = parse(output)
    assert parser.header.tool == "Bandit"
    assert len(findings) == len(results) >= 4
    by_rule = {finding.rule_id: finding for finding in findings}
    assert {"B602", "B301", "B324", "B608"} <= set(by_rule)
    for result, finding in zip(results, findings, strict=True):
        region = result["locations"][0]["physicalLocation"]["region"]
        assert finding.rule_id == result["ruleId"]
        assert finding.severity is Severity.from_label(result["properties"]["issue_severity"])
        assert finding.location.endswith(
            f"vulnerable.py:{region['startLine']}:{region['startColumn']}"
        )
        assert finding.message == result["message"]["text"]
        tags = rules[result["ruleId"]]["properties"]["tags"]
        expected_cwe = [f"CWE-{tag.rsplit('-', 1)[1]}" for tag in tags if "cwe" in tag]
        assert finding.cwe_ids == expected_cwe
        assert finding.details["region"]["startLine"] == region["startLine"]
        assert finding.details["snippet"]
    assert by_rule["B602"].cwe_ids == ["CWE-78"]
    assert by_rule["B608"].cwe_ids == ["CWE-89"]


def test_bandit_sarif_imports_and_reimport_changes_nothing(
    tmp_path: Path, importer: ScanImporter, session_factory: Any
) -> None:
    """Importing Bandit's SARIF stores each finding once; importing it again changes nothing."""
    output = run_bandit(tmp_path)
    first = importer.import_file(output)
    assert first.findings == first.new >= 4
    assert not first.duplicate
    with session_factory() as session:
        before = [
            (f.id, f.fingerprint, f.last_seen) for f in session.scalars(select(FindingRecord))
        ]
    second = importer.import_file(output)
    assert second.duplicate
    assert second.scan_id == first.scan_id
    assert second.new == 0
    with session_factory() as session:
        after = [(f.id, f.fingerprint, f.last_seen) for f in session.scalars(select(FindingRecord))]
    assert after == before


def test_security_severity_outranks_level_and_message_arguments_are_filled(
    tmp_path: Path, builders: dict[str, Any]
) -> None:
    """CodeQL-style rules: security-severity sets the severity; {0} placeholders are filled."""
    run = {
        "tool": {
            "driver": {
                "name": "CodeQL",
                "semanticVersion": "2.18.0",
                "rules": [
                    {
                        "id": "py/sql-injection",
                        "shortDescription": {
                            "text": "SQL query built from user-controlled sources"
                        },
                        "messageStrings": {"default": {"text": "This query depends on {0}."}},
                        "defaultConfiguration": {"level": "error"},
                        "properties": {
                            "security-severity": "8.8",
                            "tags": ["security", "external/cwe/cwe-089"],
                        },
                    },
                    {
                        "id": "py/unused-import",
                        "properties": {"problem.severity": "recommendation"},
                    },
                ],
            }
        },
        "versionControlProvenance": [{"repositoryUri": "https://github.com/example/app"}],
        "results": [
            {
                "ruleId": "py/sql-injection",
                "ruleIndex": 0,
                "message": {"id": "default", "arguments": ["a user-provided value"]},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": "app/db.py"},
                            "region": {"startLine": 12},
                        }
                    }
                ],
                "partialFingerprints": {"primaryLocationLineHash": "9a2f0c1d:1"},
            },
            {"ruleId": "py/unused-import", "message": {"text": "Import of 'os' is not used."}},
            {"ruleId": "py/unused-import", "kind": "pass", "message": {"text": "fine"}},
        ],
    }
    path = builders["write_json"](tmp_path / "codeql.sarif", builders["sarif_log"]([run]))
    parser, findings = parse(path)
    assert parser.skipped == 1
    sql, unused = findings
    assert sql.severity is Severity.HIGH
    assert sql.details["tool_severity"] == "security-severity 8.8"
    assert sql.message == "This query depends on a user-provided value."
    assert sql.cwe_ids == ["CWE-89"]
    assert sql.asset == "https://github.com/example/app"
    assert sql.location == "app/db.py:12"
    assert sql.details["partial_fingerprints"] == {"primaryLocationLineHash": "9a2f0c1d:1"}
    assert unused.severity is Severity.LOW
    assert unused.title == "Import of 'os' is not used."


def test_fingerprints_identify_a_result_even_when_it_moves(
    tmp_path: Path, builders: dict[str, Any]
) -> None:
    """A result with SARIF fingerprints keeps its identity when its line changes."""
    make = builders["sarif_result"]
    tool = {"driver": {"name": "Semgrep"}}

    def fingerprint(line: int) -> str:
        result = make("python.lang.eval", line, fingerprints={"matchBasedId/v1": "abc123"})
        path = builders["write_json"](
            tmp_path / f"s{line}.sarif",
            builders["sarif_log"]([{"tool": tool, "results": [result]}]),
        )
        return parse(path)[1][0].fingerprint

    assert fingerprint(10) == fingerprint(42)
    plain = builders["write_json"](
        tmp_path / "plain.sarif",
        builders["sarif_log"]([{"tool": tool, "results": [make("r", 10), make("r", 11)]}]),
    )
    first, second = parse(plain)[1]
    assert first.fingerprint != second.fingerprint


def test_rules_in_tool_extensions_and_cwe_taxa_are_resolved(
    tmp_path: Path, builders: dict[str, Any]
) -> None:
    """result.rule.toolComponent points into tool.extensions; CWE taxa give CWE ids."""
    run = {
        "tool": {
            "driver": {"name": "CodeQL", "rules": []},
            "extensions": [
                {
                    "name": "codeql/python-queries",
                    "rules": [
                        {"id": "py/path-injection", "properties": {"security-severity": "9.3"}}
                    ],
                }
            ],
        },
        "results": [
            {
                "rule": {"id": "py/path-injection", "index": 0, "toolComponent": {"index": 0}},
                "message": {"text": "path depends on user input"},
                "taxa": [{"id": "22", "toolComponent": {"name": "CWE"}}],
            }
        ],
    }
    path = builders["write_json"](tmp_path / "ext.sarif", builders["sarif_log"]([run]))
    (finding,) = parse(path)[1]
    assert finding.rule_id == "py/path-injection"
    assert finding.severity is Severity.CRITICAL
    assert finding.cwe_ids == ["CWE-22"]


def test_tool_written_after_results_is_read_ahead(tmp_path: Path, builders: dict[str, Any]) -> None:
    """Key order is free in JSON: a run whose tool comes after its results still resolves rules."""
    text = (
        '{"version": "2.1.0", "runs": [{"results": [{"ruleId": "R1", "ruleIndex": 0, '
        '"message": {"text": "m"}}], "tool": {"driver": {"name": "Late", "rules": '
        '[{"id": "R1", "properties": {"security-severity": "9.9", "tags": ["CWE-79"]}}]}}}]}'
    )
    path = tmp_path / "late.sarif"
    path.write_text(text)
    parser, (finding,) = parse(path)
    assert parser.header.tool == "Late"
    assert finding.severity is Severity.CRITICAL
    assert finding.cwe_ids == ["CWE-79"]


@pytest.mark.parametrize(
    ("document", "problem", "where"),
    [
        (
            {
                "version": "2.1.0",
                "runs": [
                    {
                        "tool": {"driver": {"name": "X"}},
                        "results": [{"ruleId": "A", "message": {"text": "m"}, "level": "fatal"}],
                    }
                ],
            },
            "level must be one of",
            "$.runs[0].results[0].level",
        ),
        (
            {"version": "2.1.0", "runs": [{"tool": {"driver": {}}, "results": []}]},
            "tool.driver.name is required",
            "$.runs[0].tool.driver.name",
        ),
        (
            {
                "version": "2.1.0",
                "runs": [
                    {
                        "tool": {"driver": {"name": "X"}},
                        "results": [{"ruleId": "A", "message": {"text": "m"}}, {"ruleId": "B"}],
                    }
                ],
            },
            "needs message.text",
            "$.runs[0].results[1].message",
        ),
        ({"version": "2.1.0", "runs": []}, "non-empty runs array", "$.runs"),
    ],
)
def test_schema_violations_name_their_json_path(
    tmp_path: Path, builders: dict[str, Any], document: dict[str, Any], problem: str, where: str
) -> None:
    """Each SARIF schema violation is refused with the JSON path of the offending value."""
    path = builders["write_json"](tmp_path / "bad.sarif", document)
    with pytest.raises(MalformedScanError) as caught:
        parse(path)
    assert problem in caught.value.detail
    assert caught.value.json_path == where


def test_other_sarif_versions_are_refused(tmp_path: Path, builders: dict[str, Any]) -> None:
    """SARIF 2.0.0 is refused as an unsupported format, naming $.version."""
    document = builders["sarif_log"]([{"tool": {"driver": {"name": "X"}}, "results": []}])
    document["version"] = "2.0.0"
    path = builders["write_json"](tmp_path / "old.sarif", document)
    with pytest.raises(UnsupportedFormatError) as caught:
        parse(path)
    assert caught.value.json_path == "$.version"


def _bulky_sarif(
    builders: dict[str, Any], results: int, *, tool_last: bool, batch: str
) -> dict[str, Any]:
    """A SARIF log with ``results`` distinct results of about 2 kB each; its run's tool comes
    before or after them."""
    rules = [
        {
            "id": f"py/rule-{n}",
            "shortDescription": {"text": f"Rule {n}"},
            "properties": {"tags": ["security", f"external/cwe/cwe-{n + 20}"]},
        }
        for n in range(20)
    ]
    tool = {"driver": {"name": "BulkSAST", "version": "3.1", "rules": rules}}
    found = []
    for n in range(results):
        result = builders["sarif_result"](
            f"py/rule-{n % 20}",
            n + 1,
            f"tainted value number {n} reaches a sink: " + "request.args -> cursor.execute; " * 30,
            level="error",
            partialFingerprints={"primaryLocationLineHash": f"{batch}-{n:016x}:1"},
        )
        result["locations"][0]["physicalLocation"]["region"]["snippet"] = {
            "text": f"    cursor.execute(query_{n} % request.args['name'])  # noqa\n" * 15
        }
        found.append(result)
    run = {"results": found, "tool": tool} if tool_last else {"tool": tool, "results": found}
    return builders["sarif_log"]([run])


def test_sarif_import_memory_does_not_grow_with_the_number_of_results(
    tmp_path: Path, builders: dict[str, Any], session_factory: Any
) -> None:
    """Peak Python memory for 5x the SARIF results stays about the same, also when the run's
    tool comes after its results and a read-ahead pass has to find it."""
    importer = ScanImporter(session_factory, batch_size=50)

    def peak_for(count: int, name: str, tool_last: bool) -> tuple[int, int]:
        """(peak traced bytes during the import, file bytes)"""
        document = _bulky_sarif(builders, count, tool_last=tool_last, batch=name)
        path = builders["write_json"](tmp_path / f"{name}.sarif", document)
        del document
        tracemalloc.start()
        try:
            result = importer.import_file(path)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert result.findings == result.new == count
        assert result.tool == "BulkSAST"  # found by the read-ahead when the tool comes last
        assert result.by_severity["high"] == count
        return peak, path.stat().st_size

    # The warm-up fills SQLAlchemy's statement caches. Every measured file is larger than the
    # importer's 1 MiB hashing buffer, so what could still grow is what the results need.
    peak_for(100, "warm-up", tool_last=False)
    small_peak, small_size = peak_for(500, "small", tool_last=False)
    assert small_size > 1.1 * 1024 * 1024
    for tool_last in (False, True):
        large_peak, large_size = peak_for(2500, f"large-{tool_last}", tool_last=tool_last)
        assert large_size > 4.5 * small_size
        assert large_peak < small_peak * 1.25, (tool_last, small_peak, large_peak)
        assert large_peak < large_size / 2, (tool_last, large_peak, large_size)
    with session_factory() as session:
        stored = session.scalars(select(FindingRecord).where(FindingRecord.rule_id == "py/rule-3"))
        assert {tuple(finding.cwe_ids) for finding in stored} == {("CWE-23",)}
