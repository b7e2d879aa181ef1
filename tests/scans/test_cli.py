"""``jupiter scans import FILE...`` against a SQLite database in a temporary data dir."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from jupiter.cli import main
from jupiter.scans.models import FindingRecord


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "data"
    monkeypatch.setenv("JUPITER_DATA_DIR", str(directory))
    monkeypatch.delenv("JUPITER_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env
    return directory


def stored_findings(data_dir: Path) -> list[FindingRecord]:
    engine = create_engine(f"sqlite:///{data_dir / 'jupiter.db'}")
    try:
        with Session(engine) as session:
            return list(session.scalars(select(FindingRecord)))
    finally:
        engine.dispose()


def test_import_with_kev_file_reports_and_enriches(
    data_dir: Path,
    tmp_path: Path,
    builders: dict[str, Any],
    kev_snapshot: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Files are imported with KEV enrichment; a repeat says nothing changed; exit status 0."""
    report = builders["trivy_report"](
        [
            {
                "Target": "t",
                "Class": "lang-pkgs",
                "Type": "jar",
                "Vulnerabilities": [
                    builders["trivy_vulnerability"](
                        "CVE-2021-44228", "log4j-core", "2.14.1", "2.15.0", "CRITICAL"
                    ),
                    builders["trivy_vulnerability"]("CVE-2024-3094", "liblzma5", "5.6.0"),
                ],
            }
        ]
    )
    path = builders["write_json"](tmp_path / "trivy.json", report)
    assert main(["scans", "import", str(path), str(path), "--kev", str(kev_snapshot)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "2 findings, 2 new, 1 KEV-exploited" in out[0]
    assert "already imported" in out[1]
    priorities = {f.rule_id: f.priority for f in stored_findings(data_dir)}
    assert priorities == {"CVE-2021-44228": "critical-exploited", "CVE-2024-3094": "high"}


def test_bad_file_is_reported_with_its_place_and_others_still_import(
    data_dir: Path, tmp_path: Path, builders: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """A refused file names the problem and JSON path, exit status 1; good files still import."""
    bad = tmp_path / "bad.sarif"
    bad.write_text(
        '{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, '
        '"results": [{"ruleId": "r", "level": "loud", "message": {"text": "m"}}]}]}'
    )
    good = builders["write_json"](
        tmp_path / "good.json",
        builders["grype_report"](
            [builders["grype_match"]("CVE-2022-42889", "commons-text", "1.9")]
        ),
    )
    assert main(["scans", "import", str(bad), str(good), "--json"]) == 1
    captured = capsys.readouterr()
    assert "$.runs[0].results[0].level" in captured.err
    summary = json.loads(captured.out)
    assert summary["format"] == "grype"
    assert summary["new"] == 1
    assert [f.rule_id for f in stored_findings(data_dir)] == ["CVE-2022-42889"]


def test_a_directory_is_reported_as_a_directory(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Importing a directory says it is a directory (not "no such file"); exit status 1."""
    folder = tmp_path / "reports"
    folder.mkdir()
    missing = tmp_path / "absent.json"
    assert main(["scans", "import", str(folder), str(missing)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"jupiter: {folder}: is a directory, not a scan file",
        f"jupiter: {missing}: no such file",
    ]
    assert stored_findings(data_dir) == []


def test_a_bad_setting_stops_the_import_with_a_clear_error(
    data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A bad JUPITER_* value: exit status 2 and the variable named, nothing imported."""
    monkeypatch.setenv("JUPITER_SCAN_MAX_UPLOAD_BYTES", "-1")
    assert main(["scans", "import", str(tmp_path / "any.json")]) == 2
    assert "JUPITER_SCAN_MAX_UPLOAD_BYTES" in capsys.readouterr().err
    assert not (data_dir / "jupiter.db").exists()


def test_a_hostile_file_is_refused_by_the_limits_and_the_next_one_imports(
    data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The CLI parses in a worker with the server's limits (here JUPITER_SCAN_MAX_DEPTH):
    100,000 nested arrays are refused naming the limit and the path; the next file imports."""
    from support.scan_files import scan_with, valid_scan

    monkeypatch.setenv("JUPITER_SCAN_MAX_DEPTH", "32")
    deep = tmp_path / "deep.sarif"
    deep.write_bytes(scan_with("sarif", b"[" * 100_000 + b"]" * 100_000))
    good = tmp_path / "good.json"
    good.write_bytes(valid_scan("trivy"))
    assert main(["scans", "import", str(deep), str(good)]) == 1
    captured = capsys.readouterr()
    assert "nesting depth is over the limit of 32" in captured.err
    assert "$.runs[0].results[0].rank[0]" in captured.err
    assert "1 findings" in captured.out
    assert len(stored_findings(data_dir)) == 1
