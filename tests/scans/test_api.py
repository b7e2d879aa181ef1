"""The scans REST API on the real app (httpx over ASGI): uploads, bad input, findings, deletes,
and the scan_processing guards (feature flag, breaker) that keep the rest of Jupiter working."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from jupiter.resilience.testing import FakeClock
from jupiter.scans import ScanService
from support.databases import postgres_schema, search_path_url
from support.jupiter_app import ADMIN, fast_settings, running_app

SAMPLE = "import subprocess\n\ndef run(cmd):\n    return subprocess.call(cmd, shell=True)\n"


@pytest.fixture(scope="module")
def bandit_sarif(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Real SARIF from Bandit on a small vulnerable sample."""
    directory = tmp_path_factory.mktemp("bandit")
    (directory / "sample.py").write_text(SAMPLE)
    output = directory / "out.sarif"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "bandit",
            "-q",
            "-f",
            "sarif",
            "-o",
            str(output),
            str(directory / "sample.py"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode in (0, 1), completed.stderr
    return output.read_bytes()


def trivy(builders: dict[str, Any], *cves: str) -> bytes:
    vulns = [
        builders["trivy_vulnerability"](cve, f"pkg-{cve}", "1.0", "1.1", "MEDIUM") for cve in cves
    ]
    report = builders["trivy_report"](
        [
            {
                "Target": "img (debian 12)",
                "Class": "os-pkgs",
                "Type": "debian",
                "Vulnerabilities": vulns,
            }
        ]
    )
    return json.dumps(report).encode()


@pytest.fixture
async def client(tmp_path: Path) -> Any:
    """The running app with a 200 kB upload limit."""
    settings = fast_settings(tmp_path, scan_max_upload_bytes=200_000)
    async with running_app(settings, clock=FakeClock(wall_start=1_750_000_000.0)) as pair:
        yield pair


async def test_multipart_upload_then_duplicate_upload_changes_nothing(
    client: tuple[Any, httpx.AsyncClient], bandit_sarif: bytes
) -> None:
    """Bandit's SARIF as a form upload: 201 with counts; the same file again: 200, no change."""
    _app, http = client
    first = await http.post("/api/scans", files={"file": ("bandit.sarif", bandit_sarif)})
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["format"] == "sarif"
    assert body["tool"] == "Bandit"
    assert body["new"] == body["findings"] > 0
    listing = (await http.get("/api/findings")).json()
    again = await http.post("/api/scans?filename=again.sarif", content=bandit_sarif)
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert again.json()["scan_id"] == body["scan_id"]
    assert (await http.get("/api/findings")).json() == listing
    scans = (await http.get("/api/scans")).json()
    assert scans["total"] == 1
    assert scans["items"][0]["source_name"] == "bandit.sarif"


async def test_finding_detail_links_cwe_knowledge_base_entry_with_mitigations(
    client: tuple[Any, httpx.AsyncClient], bandit_sarif: bytes
) -> None:
    """A Bandit shell-injection finding opens with CWE-78's knowledge-base entry and mitigations."""
    from jupiter.knowledge import default_knowledge_base

    _app, http = client
    await http.post("/api/scans", files={"file": ("bandit.sarif", bandit_sarif)})
    items = (await http.get("/api/findings", params={"tool": "bandit"})).json()["items"]
    shell = next(item for item in items if item["rule_id"] == "B602")
    detail = (await http.get(f"/api/findings/{shell['id']}")).json()
    entry = default_knowledge_base().lookup_cwe("CWE-78")
    (cwe,) = detail["cwe"]
    assert cwe["id"] == "CWE-78"
    assert cwe["name"] == entry.name
    assert [m["description"] for m in cwe["mitigations"]] == [
        m.description for m in entry.mitigations
    ]
    assert shell["cwe"] == [{"id": "CWE-78", "name": entry.name, "url": entry.url}]
    assert detail["details"]["snippet"]
    assert detail["scan_ids"] == [shell["last_scan_id"]]


async def test_kev_enrichment_uses_the_intel_components_stored_kev(
    tmp_path: Path, kev_snapshot: Path, builders: dict[str, Any]
) -> None:
    """With the KEV snapshot loaded by the intel component, KEV CVEs are critical-exploited."""
    catalog = {v["cveID"]: v for v in json.loads(kev_snapshot.read_text())["vulnerabilities"]}
    settings = fast_settings(tmp_path, intel_file=kev_snapshot)
    async with running_app(settings) as (app, http):
        await app.state.dashboard.service("intel").sync_feeds(sources=["file"])
        response = await http.post(
            "/api/scans?format=trivy",
            content=trivy(builders, "CVE-2024-3094", "CVE-2021-44228", "CVE-2017-5638"),
        )
        assert response.status_code == 201, response.text
        assert response.json()["kev_exploited"] == 2
        exploited = (await http.get("/api/findings", params={"kev": "true"})).json()["items"]
        rest = (await http.get("/api/findings", params={"kev": "false"})).json()["items"]
    assert {item["rule_id"] for item in exploited} == {"CVE-2021-44228", "CVE-2017-5638"}
    assert [item["rule_id"] for item in rest] == ["CVE-2024-3094"]
    for item in exploited:
        record = catalog[item["rule_id"]]
        assert item["priority"] == "critical-exploited"
        assert item["kev"][0]["dateAdded"] == record["dateAdded"]
        assert item["kev"][0]["dueDate"] == record["dueDate"]
        assert item["kev"][0]["requiredAction"] == record["requiredAction"]
        assert item["kev"][0]["ransomware"] is (record["knownRansomwareCampaignUse"] == "Known")


@pytest.mark.parametrize(
    ("body", "headers", "query", "status", "problem", "where"),
    [
        (b'{"title": "KEV", "vulnerabilities": []}', {}, "", 415, "unsupported_format", None),
        (b"PK\x03\x04 zip bytes", {}, "", 415, "unsupported_format", None),
        (
            b'{"SchemaVersion": 2, "ArtifactName": "x", "Results": [{"Target": "t", '
            b'"Vulnerabilities": [{"VulnerabilityID": "CVE-1", "PkgName": 7}]}]}',
            {},
            "",
            422,
            "malformed_scan",
            {"json_path": "$.Results[0].Vulnerabilities[0].PkgName"},
        ),
        (
            b'{"runs": [{"tool": {"driver": {"name": "x"}}, "results": [ {"ruleId": "a",,}]}]}',
            {},
            "",
            422,
            "malformed_scan",
            {"json_path": "$.runs[0].results[0].ruleId"},
        ),
        (
            b'<?xml version="1.0"?>\n<nmaprun>\n<host>\n',
            {},
            "",
            422,
            "malformed_scan",
            {"line": 4, "column": 0},
        ),
        (b'{"matches": []}', {}, "?format=sarif", 415, "unsupported_format", None),
        (  # a format the form names (the query's format is checked by the schema: a 422)
            b'--b\r\nContent-Disposition: form-data; name="format"\r\n\r\ncsv\r\n'
            b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.json"\r\n\r\n'
            b'{"matches": []}\r\n--b--\r\n',
            {"content-type": "multipart/form-data; boundary=b"},
            "",
            415,
            "unsupported_format",
            None,
        ),
        (b"", {}, "", 422, "malformed_scan", None),
        (b"{" + b" " * 250_000 + b"}", {}, "", 413, "upload_too_large", None),
        (
            b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.json"\r\n\r\n{"ma',
            {"content-type": "multipart/form-data; boundary=b"},
            "",
            400,
            "truncated_upload",
            None,
        ),
    ],
    ids=[
        "other-json",
        "binary",
        "schema",
        "bad-json",
        "cut-xml",
        "wrong-format-named",
        "unknown-format",
        "empty",
        "oversize",
        "truncated-multipart",
    ],
)
async def test_bad_uploads_get_4xx_naming_the_problem(
    client: tuple[Any, httpx.AsyncClient],
    body: bytes,
    headers: dict[str, str],
    query: str,
    status: int,
    problem: str,
    where: dict[str, Any] | None,
) -> None:
    """Each kind of bad upload gets its 4xx, an error body naming it (and where), nothing stored."""
    _app, http = client
    response = await http.post("/api/scans" + query, content=body, headers=headers)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == problem
    assert error["message"]
    assert error["suggestion"]
    assert error.get("location") == where
    assert (await http.get("/api/scans")).json()["total"] == 0
    recent = (await http.get("/api/recent-errors")).json()["errors"]
    assert recent[0]["type"] == "scan_rejected"


async def test_an_unknown_format_in_the_query_is_a_422_naming_it(
    client: tuple[Any, httpx.AsyncClient],
) -> None:
    _app, http = client
    response = await http.post("/api/scans?format=csv", content=b'{"matches": []}')
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["type"] == "validation_error"
    assert error["message"].startswith("format:")
    assert "'sarif'" in error["message"]
    assert (await http.get("/api/scans")).json()["total"] == 0


async def test_findings_filters_paginate_and_validate(
    client: tuple[Any, httpx.AsyncClient], builders: dict[str, Any]
) -> None:
    """severity/tool/asset filters and limit/offset apply; a bad severity is a clear 422."""
    _app, http = client
    cves = [f"CVE-2024-{n}" for n in range(1000, 1012)]
    assert (await http.post("/api/scans", content=trivy(builders, *cves))).status_code == 201
    page = (await http.get("/api/findings", params={"limit": 5, "offset": 10})).json()
    assert page["total"] == 12
    assert len(page["items"]) == 2
    medium = await http.get("/api/findings", params={"severity": "medium,high", "tool": "Trivy"})
    assert medium.json()["total"] == 12
    assert (await http.get("/api/findings", params={"severity": "low"})).json()["total"] == 0
    assert (await http.get("/api/findings", params={"asset": "app:1.4"})).json()["total"] == 12
    bad = await http.get("/api/findings", params={"severity": "urgent"})
    assert bad.status_code == 422
    assert "urgent" in bad.json()["error"]["message"]
    assert (await http.get("/api/findings", params={"limit": 0})).status_code == 422
    assert (await http.get("/api/findings/999999")).status_code == 404
    assert (await http.get("/api/scans/999999")).status_code == 404


async def test_delete_needs_the_admin_token(
    client: tuple[Any, httpx.AsyncClient], builders: dict[str, Any]
) -> None:
    """DELETE /api/scans/{id}: 401 without the token, 200 with it, then 404."""
    _app, http = client
    scan_id = (await http.post("/api/scans", content=trivy(builders, "CVE-2024-1"))).json()[
        "scan_id"
    ]
    assert (await http.delete(f"/api/scans/{scan_id}", auth=None)).status_code == 401
    bad_token = {"Authorization": "Bearer nope"}
    assert (await http.delete(f"/api/scans/{scan_id}", headers=bad_token)).status_code == 401
    deleted = await http.delete(f"/api/scans/{scan_id}", headers=ADMIN)
    assert deleted.status_code == 200
    assert deleted.json()["deleted_findings"] == 1
    assert (await http.get("/api/findings")).json()["total"] == 0
    assert (await http.delete(f"/api/scans/{scan_id}", headers=ADMIN)).status_code == 404


async def test_disabled_scan_processing_refuses_uploads_and_the_rest_works(
    client: tuple[Any, httpx.AsyncClient], builders: dict[str, Any]
) -> None:
    """With the scans flag off, uploads get 503 while status and other routes still answer."""
    app, http = client
    app.state.dashboard.disable_feature("scans", "maintenance")
    refused = await http.post("/api/scans", content=trivy(builders, "CVE-2024-1"))
    assert refused.status_code == 503
    assert refused.json()["error"]["type"] == "scan_processing_unavailable"
    assert (await http.get("/api/threats")).status_code == 200
    status = (await http.get("/api/status")).json()
    assert status["features"]["scan_processing"]["enabled"] is False
    assert status["features"]["grok_chat"]["enabled"] is True
    assert (await http.get("/api/scans")).status_code == 200  # stored scans stay readable
    app.state.dashboard.enable_feature("scans")
    assert (await http.post("/api/scans", content=trivy(builders, "CVE-2024-1"))).status_code == 201


class SwitchableSessions:
    """The real session factory until ``broken`` is set; then the database is unreachable."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.broken = False

    def __call__(self) -> Any:
        if self.broken:
            raise ConnectionError("database is unreachable")
        return self.real()


async def test_storage_failures_open_the_scan_breaker_but_not_for_bad_input(
    tmp_path: Path, builders: dict[str, Any]
) -> None:
    """Database failures trip scan_processing's breaker (503 + Retry-After); bad files do not;
    chat and status keep working."""

    sessions: list[SwitchableSessions] = []

    def factory(ctx: Any) -> ScanService:
        sessions.append(SwitchableSessions(ctx.session_factory))
        return ScanService(
            sessions[-1],
            breaker=ctx.breaker,
            degradation=ctx.degradation,
            aggregator=ctx.aggregator,
            publish=ctx.publish,
            clock=ctx.clock,
            upload_dir=tmp_path / "uploads",
        )

    settings = fast_settings(tmp_path)  # breaker_failure_threshold=3
    async with running_app(settings, factories={"scan_processing": factory}) as (app, http):
        for _ in range(5):
            bad = await http.post("/api/scans", content=b'{"runs": [')
            assert bad.status_code == 422
        assert app.state.dashboard.breaker("scans").state.value == "closed"
        sessions[-1].broken = True
        statuses = []
        for n in range(4):
            response = await http.post("/api/scans", content=trivy(builders, f"CVE-2024-{n}"))
            statuses.append(response.status_code)
            assert response.json()["error"]["type"].startswith("scan_processing")
        assert "ConnectionError" in (await http.get("/api/recent-errors")).text
        assert statuses == [503, 503, 503, 503]
        assert app.state.dashboard.breaker("scans").state.value == "open"
        assert "Retry-After" in response.headers
        stats = (await http.get("/api/error-stats")).json()
        assert stats["errors_by_type"]["scan_failure"] == 3
        chat = await http.post("/api/chat", json={"message": "What is CWE-89?"})
        assert chat.status_code == 200
        assert not chat.json().get("is_error")
        features = (await http.get("/api/feature-status")).json()
        assert features["scan_processing"]["circuit_breaker"] == "open"
        assert features["grok_chat"]["circuit_breaker"] == "closed"
        assert list((tmp_path / "uploads").iterdir()) == []  # spooled files are cleaned up


async def test_refresh_kev_after_a_feed_sync_marks_older_findings(
    tmp_path: Path, kev_snapshot: Path, builders: dict[str, Any]
) -> None:
    """Findings imported before KEV was synced become critical-exploited on refresh (admin)."""
    settings = fast_settings(tmp_path, intel_file=kev_snapshot)
    async with running_app(settings) as (app, http):
        body = trivy(builders, "CVE-2021-44228", "CVE-2024-3094")
        assert (await http.post("/api/scans", content=body)).json()["kev_exploited"] == 0
        await app.state.dashboard.service("intel").sync_feeds(sources=["file"])
        assert (await http.post("/api/findings/refresh-kev", auth=None)).status_code == 401
        refreshed = await http.post("/api/findings/refresh-kev", headers=ADMIN)
        assert refreshed.json() == {"checked": 2, "changed": 1}
        exploited = (await http.get("/api/findings", params={"kev": True})).json()["items"]
    assert [item["rule_id"] for item in exploited] == ["CVE-2021-44228"]
    assert exploited[0]["kev"][0]["ransomware"] is True


def trivy_with_severities(builders: dict[str, Any], artifact: str, *entries: tuple[str, str]):
    """A Trivy report for ``artifact`` with one vulnerability per (CVE, Trivy severity)."""
    vulns = [
        builders["trivy_vulnerability"](cve, f"pkg-{cve.lower()}", "1.0", "1.1", severity)
        for cve, severity in entries
    ]
    report = builders["trivy_report"](
        [
            {
                "Target": "img (debian 12)",
                "Class": "os-pkgs",
                "Type": "debian",
                "Vulnerabilities": vulns,
            }
        ],
        artifact=artifact,
    )
    return json.dumps(report).encode()


async def test_scans_list_paginates_newest_first_with_limit_and_offset(
    client: tuple[Any, httpx.AsyncClient], builders: dict[str, Any]
) -> None:
    """GET /api/scans pages through every scan exactly once, newest first; bad bounds are 422."""
    _app, http = client
    uploaded = []
    for n in range(5):
        body = trivy_with_severities(
            builders, f"registry.example/app-{n}:1", (f"CVE-2024-{n}", "LOW")
        )
        response = await http.post(f"/api/scans?filename=scan-{n}.json", content=body)
        assert response.status_code == 201, response.text
        uploaded.append(response.json()["scan_id"])
    pages = []
    for offset in (0, 2, 4):
        page = (await http.get("/api/scans", params={"limit": 2, "offset": offset})).json()
        assert (page["total"], page["limit"], page["offset"]) == (5, 2, offset)
        pages.append([item["id"] for item in page["items"]])
    assert pages == [uploaded[::-1][0:2], uploaded[::-1][2:4], uploaded[::-1][4:]]
    newest = (await http.get("/api/scans", params={"limit": 1})).json()["items"][0]
    assert newest["source_name"] == "scan-4.json"
    assert newest["asset"] == "registry.example/app-4:1"
    beyond = (await http.get("/api/scans", params={"offset": 5})).json()
    assert beyond["items"] == []
    assert beyond["total"] == 5
    default = (await http.get("/api/scans")).json()
    assert (default["limit"], default["offset"], len(default["items"])) == (50, 0, 5)
    for params in ({"limit": 0}, {"limit": 501}, {"offset": -1}, {"limit": "many"}):
        refused = await http.get("/api/scans", params=params)
        assert refused.status_code == 422, params
        assert refused.json()["error"]["message"]


async def test_scan_detail_has_its_identity_counts_and_findings_link(
    tmp_path: Path, kev_snapshot: Path, builders: dict[str, Any]
) -> None:
    """GET /api/scans/{id}: tool, version, asset, size, SHA-256, time, counts by severity and
    KEV, and a findings_url that lists exactly that scan's findings."""
    settings = fast_settings(tmp_path, intel_file=kev_snapshot)
    clock = FakeClock(wall_start=1_750_000_000.0)
    async with running_app(settings, clock=clock) as (app, http):
        await app.state.dashboard.service("intel").sync_feeds(sources=["file"])
        first = trivy_with_severities(
            builders,
            "registry.example/web:2.3",
            ("CVE-2021-44228", "CRITICAL"),  # in KEV: critical-exploited
            ("CVE-2024-3094", "CRITICAL"),
            ("CVE-2024-0001", "HIGH"),
            ("CVE-2024-0002", "MEDIUM"),
            ("CVE-2024-0003", "MEDIUM"),
            ("CVE-2024-0004", "UNKNOWN"),
        )
        created = await http.post("/api/scans?filename=web.json", content=first)
        assert created.status_code == 201, created.text
        scan_id = created.json()["scan_id"]
        # A second scan sharing one finding: its counts must not leak into the first's.
        second = trivy_with_severities(
            builders, "registry.example/web:2.3", ("CVE-2024-0001", "HIGH"), ("CVE-2024-9", "LOW")
        )
        assert (await http.post("/api/scans", content=second)).status_code == 201
        detail = (await http.get(f"/api/scans/{scan_id}")).json()
        listed = (await http.get(detail["findings_url"])).json()
    assert detail["id"] == scan_id
    assert detail["format"] == "trivy"
    assert detail["tool"] == "trivy"
    assert detail["asset"] == "registry.example/web:2.3"
    assert detail["source_name"] == "web.json"
    assert detail["size_bytes"] == len(first)
    assert detail["sha256"] == hashlib.sha256(first).hexdigest()
    assert detail["imported_at"] == "2025-06-15T15:06:40Z"  # the injected clock's wall time
    assert detail["finding_count"] == detail["new_count"] == 6
    summary = detail["summary"]
    assert summary["by_severity"] == {"critical": 2, "high": 1, "medium": 2, "low": 0, "info": 1}
    assert summary["kev_exploited"] == 1
    assert (summary["findings"], summary["new"], summary["existing"]) == (6, 6, 0)
    assert detail["findings_url"] == f"/api/findings?scan_id={scan_id}"
    assert listed["total"] == 6
    assert listed["items"][0]["rule_id"] == "CVE-2021-44228"  # KEV-exploited first
    assert "CVE-2024-9" not in {item["rule_id"] for item in listed["items"]}


@pytest.fixture(params=["sqlite", "postgresql"])
async def any_db_client(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """The running app on SQLite, or on a fresh PostgreSQL schema (which rejects NUL bytes and
    ids beyond its 32-bit INTEGER columns)."""
    if request.param == "sqlite":
        async with running_app(fast_settings(tmp_path)) as pair:
            yield pair
        return
    base = request.getfixturevalue("postgres_url")
    with postgres_schema(base, "jupiter_scans_api") as schema:
        settings = fast_settings(tmp_path, database_url=search_path_url(base, schema))
        async with running_app(settings) as pair:
            yield pair


HUGE = "99999999999999999999999"


@pytest.mark.parametrize(
    ("method", "path", "name"),
    [
        ("GET", f"/api/scans/{HUGE}", "scan_id"),
        ("GET", f"/api/scans/{2**31}", "scan_id"),
        ("GET", f"/api/findings/{HUGE}", "finding_id"),
        ("DELETE", f"/api/scans/{HUGE}", "scan_id"),
        ("GET", f"/api/findings?scan_id={HUGE}", "scan_id"),
        ("GET", f"/api/findings?offset={HUGE}", "offset"),
        ("GET", f"/api/findings?offset={2**63}", "offset"),
        ("GET", f"/api/scans?offset={HUGE}", "offset"),
        ("GET", "/api/findings?asset=%00", "asset"),
        ("GET", "/api/findings?tool=a%00", "tool"),
        ("GET", "/api/findings?asset=a%1Bb", "asset"),
        ("POST", "/api/scans?asset=a%00", "asset"),
    ],
)
async def test_out_of_range_ids_and_control_characters_are_422_naming_the_parameter(
    any_db_client: tuple[Any, httpx.AsyncClient], method: str, path: str, name: str
) -> None:
    """Huge ids/offsets and NUL or other control characters are a 422, never a 500."""
    _app, http = any_db_client
    # Only the upload takes a body (a raw file); a JSON-less body elsewhere would be a 415.
    body = b"{}" if method == "POST" else None
    response = await http.request(method, path, headers=ADMIN, content=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["type"] == "validation_error"
    assert error["message"].startswith(f"{name}:")
    errors = (await http.get("/api/recent-errors")).json()["errors"]
    assert not [e for e in errors if e["type"] != "scan_rejected"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/api/scans/{2**31 - 1}"),
        ("GET", f"/api/findings/{2**31 - 1}"),
        ("DELETE", f"/api/scans/{2**31 - 1}"),
    ],
)
async def test_the_largest_valid_id_is_a_plain_404(
    any_db_client: tuple[Any, httpx.AsyncClient], method: str, path: str
) -> None:
    """The top of the id range reaches the database and is simply not found."""
    _app, http = any_db_client
    response = await http.request(method, path, headers=ADMIN)
    assert response.status_code == 404, response.text


async def test_the_largest_offset_is_an_empty_page(
    any_db_client: tuple[Any, httpx.AsyncClient], builders: dict[str, Any]
) -> None:
    """offset 2**63-1 (and scan_id 2**31-1) is accepted and answers an empty page, not a 500."""
    _app, http = any_db_client
    assert (await http.post("/api/scans", content=trivy(builders, "CVE-2024-7"))).status_code == 201
    top = str(2**63 - 1)
    scans = await http.get("/api/scans", params={"offset": top})
    assert scans.status_code == 200, scans.text
    assert scans.json()["items"] == []
    assert scans.json()["total"] == 1
    found = await http.get("/api/findings", params={"offset": top, "scan_id": 2**31 - 1})
    assert found.status_code == 200, found.text
    assert found.json()["total"] == 0
    page = await http.get("/api/findings", params={"offset": top})
    assert page.json()["items"] == []
    assert page.json()["total"] == 1


async def test_closing_the_service_cancels_a_running_import(tmp_path: Path) -> None:
    """Shutdown mid-import: the job ends as scan_cancelled, its parser worker is killed, the
    transaction rolls back (nothing stored)."""
    import asyncio

    from support.procfs import gone
    from support.scan_files import big_trivy

    settings = fast_settings(tmp_path, scan_max_upload_bytes=64 * 1024 * 1024)
    async with running_app(settings) as (app, http):
        accepted = await http.post(
            "/api/scans", params={"wait": "false"}, content=big_trivy(), headers=ADMIN
        )
        assert accepted.status_code == 202, accepted.text
        job_url = accepted.json()["job_url"]
        for _ in range(3000):  # until the worker is reading the file
            job = (await http.get(job_url, headers=ADMIN)).json()
            if job["status"] == "running" and job["percent"] >= 1:
                break
            await asyncio.sleep(0.01)
        service = app.state.dashboard.service("scans")
        workers = service.parser_pool.pids()
        assert workers
        await service.aclose()
        job = (await http.get(job_url, headers=ADMIN)).json()
        assert job["status"] == "error"
        assert job["error"]["type"] == "scan_cancelled"
        assert all(gone(pid) for pid in workers)
        assert (await http.get("/api/scans", headers=ADMIN)).json()["total"] == 0
