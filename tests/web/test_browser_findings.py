"""The Findings panel (dashboard) and the Scans section (Admin Console) in real Chromium, with
real Bandit SARIF and a Trivy report whose CVEs are in the KEV catalog the intel upstream serves.

Trivy cannot run here: its report is written by hand following Trivy's published JSON schema
(``types.Report``, schema version 2). The KEV records below are copied field for field from
CISA's catalog (they match ../shared/data/kev-2025-08-25.json).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from support.jupiter_app import ADMIN_TOKEN
from support.kev_upstream import KevUpstream, kev_catalog, kev_record
from web.browser_support import (
    ARTIFACTS,
    WIDTHS,
    XSS_ALERT,
    XSS_FLAG,
    Jupiter,
    sign_in_context,
    unnamed_controls,
)

pytestmark = pytest.mark.browser

expect = pytest.importorskip("playwright.sync_api").expect

LOG4SHELL = kev_record(
    "CVE-2021-44228",
    vendorProject="Apache",
    product="Log4j2",
    vulnerabilityName="Apache Log4j2 Remote Code Execution Vulnerability",
    dateAdded="2021-12-10",
    dueDate="2021-12-24",
    requiredAction=(
        "For all affected software assets for which updates exist, the only acceptable "
        "remediation actions are: 1) Apply updates; OR 2) remove affected assets from agency "
        "networks. Temporary mitigations using one of the measures provided at "
        "https://www.cisa.gov/uscert/ed-22-02-apache-log4j-recommended-mitigation-measures are "
        "only acceptable until updates are available."
    ),
    knownRansomwareCampaignUse="Known",
    cwes=["CWE-20", "CWE-400", "CWE-502"],
)
WEBP = kev_record(
    "CVE-2023-4863",
    vendorProject="Google",
    product="Chromium WebP",
    vulnerabilityName="Google Chromium WebP Heap-Based Buffer Overflow Vulnerability",
    dateAdded="2023-09-13",
    dueDate="2023-10-04",
    requiredAction=(
        "Apply mitigations per vendor instructions or discontinue use of the product if "
        "mitigations are unavailable."
    ),
    knownRansomwareCampaignUse="Unknown",
    cwes=["CWE-787"],
)

# Enough shell=True calls that Bandit's findings fill more than one page of the panel (25).
SHELL_CALLS = 30
VULNERABLE_SAMPLE = (
    "import hashlib\nimport subprocess\n\n\n"
    + "".join(
        f"def run_{n}(command):\n    return subprocess.call(command, shell=True)\n\n\n"
        for n in range(SHELL_CALLS)
    )
    + "def digest(data):\n    return hashlib.md5(data).hexdigest()\n"
)


def vulnerability(cve: str, package: str, installed: str, fixed: str, severity: str, **extra):
    """One ``Vulnerabilities`` entry of a Trivy result (types.DetectedVulnerability)."""
    entry = {
        "VulnerabilityID": cve,
        "PkgID": f"{package}@{installed}",
        "PkgName": package,
        "InstalledVersion": installed,
        "FixedVersion": fixed,
        "Status": "fixed",
        "SeveritySource": "nvd",
        "PrimaryURL": f"https://avd.aquasec.com/nvd/{cve.lower()}",
        "Title": f"{package}: flaw",
        "Description": f"A flaw in {package} {installed}.",
        "Severity": severity,
        "CweIDs": ["CWE-787"],
        "CVSS": {"nvd": {"V3Vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}},
        "PublishedDate": "2023-09-12T15:15:24.327Z",
    }
    entry.update(extra)
    return entry


def trivy_report(artifact: str, results: list[dict[str, Any]]) -> bytes:
    """A Trivy JSON report (``trivy image --format json``, schema version 2)."""
    report = {
        "SchemaVersion": 2,
        "CreatedAt": "2025-08-20T10:00:00.000000000Z",
        "ArtifactName": artifact,
        "ArtifactType": "container_image",
        "Metadata": {"OS": {"Family": "debian", "Name": "12.5"}, "RepoTags": [artifact]},
        "Results": results,
    }
    return json.dumps(report, indent=1).encode()


SHOP_IMAGE = "registry.example/shop:2.3"
SHOP_TRIVY = trivy_report(
    SHOP_IMAGE,
    [
        {
            "Target": "Java",
            "Class": "lang-pkgs",
            "Type": "jar",
            "Vulnerabilities": [
                vulnerability(
                    "CVE-2021-44228",
                    "org.apache.logging.log4j:log4j-core",
                    "2.14.1",
                    "2.15.0",
                    "CRITICAL",
                    PkgPath="app/lib/log4j-core-2.14.1.jar",
                    Title="log4j-core: Remote code injection in Log4j",
                    CweIDs=["CWE-502", "CWE-400", "CWE-20"],
                )
            ],
        },
        {
            "Target": "shop (debian 12.5)",
            "Class": "os-pkgs",
            "Type": "debian",
            "Vulnerabilities": [
                vulnerability(
                    "CVE-2023-4863", "libwebp7", "1.2.4-0.2", "1.2.4-0.2+deb12u1", "HIGH"
                ),
                # A hostile scan file: its text must reach the page as text.
                vulnerability(
                    "CVE-2024-3094",
                    "xz-utils",
                    "5.6.0-0.2",
                    "5.6.1+really5.4.5-1",
                    "MEDIUM",
                    Title=XSS_FLAG,
                    Description=XSS_ALERT,
                    PkgPath=XSS_ALERT,
                ),
            ],
        },
    ],
)


@pytest.fixture(scope="module")
def kev_upstream() -> Iterator[KevUpstream]:
    """The KEV catalog the intel component syncs: Log4Shell (ransomware) and the WebP flaw."""
    with KevUpstream(kev_catalog([LOG4SHELL, WEBP], version="2025.08.25")) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def bandit_sarif(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Real SARIF from Bandit (``bandit -f sarif``) on a small vulnerable sample."""
    directory = tmp_path_factory.mktemp("bandit")
    sample = directory / "service" / "handlers.py"
    sample.parent.mkdir()
    sample.write_text(VULNERABLE_SAMPLE)
    output = directory / "bandit.sarif"
    completed = subprocess.run(
        [sys.executable, "-m", "bandit", "-q", "-f", "sarif", "-o", str(output), str(sample)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode in (0, 1), completed.stderr  # 1: Bandit found issues
    return output.read_bytes()


@pytest.fixture(scope="module")
def imported(jupiter: Jupiter, bandit_sarif: bytes) -> dict[str, int]:
    """Bandit's SARIF and the Trivy report imported through the API, after the intel component
    has synced the KEV catalog (the scans enrich from it)."""
    threats = jupiter.http.get("/api/threats", params={"limit": 50}).json()
    assert {"CVE-2021-44228", "CVE-2023-4863"} <= {item["id"] for item in threats["items"]}
    scan_ids = {}
    for name, body in (("bandit.sarif", bandit_sarif), ("shop-trivy.json", SHOP_TRIVY)):
        response = jupiter.http.post("/api/scans", files={"file": (name, body)})
        assert response.status_code == 201, response.text
        scan_ids[name] = response.json()["scan_id"]
    return scan_ids


def findings_api(jupiter: Jupiter, **params: Any) -> dict[str, Any]:
    return jupiter.http.get("/api/findings", params={"limit": 500, **params}).json()


def open_dashboard(page: Any, jupiter: Jupiter) -> None:
    page.goto(jupiter.url + "/")
    expect(page.locator("#connection")).to_have_text("Live")
    expect(page.locator("#findings-panel")).to_have_attribute("aria-busy", "false")


def sign_in_admin(page: Any, jupiter: Jupiter) -> None:
    page.goto(jupiter.url + "/admin")
    page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#console")).to_be_visible()


def shown_ids(page: Any) -> list[int]:
    return [
        int(i)
        for i in page.locator("#findings-list .finding").evaluate_all(
            "(items) => items.map((item) => item.dataset.id)"
        )
    ]


def test_exploited_findings_come_first_with_badge_due_date_and_count(
    page: Any, jupiter: Jupiter, imported: dict[str, int]
) -> None:
    """KEV-exploited findings lead the list with their badge, ransomware flag and due date."""
    total = findings_api(jupiter)["total"]
    open_dashboard(page, jupiter)
    expect(page.locator("#findings-count")).to_have_text(f"{total} findings")
    expect(page.locator("#findings-kev-count")).to_have_text("2 exploited in the wild")

    first, second, third = (page.locator("#findings-list .finding").nth(i) for i in range(3))
    expect(first).to_have_attribute("data-kev", "true")
    expect(first.locator(".finding-toggle")).to_have_text(
        "log4j-core: Remote code injection in Log4j"
    )
    expect(first.locator(".kev-badge")).to_have_text("Exploited in the wild")
    expect(first.locator(".ransomware-badge")).to_have_text("Ransomware")
    expect(first.locator(".kev-due")).to_have_text("KEV due 2021-12-24")
    expect(first).to_contain_text(SHOP_IMAGE)
    expect(second).to_have_attribute("data-kev", "true")
    expect(second.locator(".kev-due")).to_have_text("KEV due 2023-10-04")
    expect(second.locator(".ransomware-badge")).to_have_count(0)
    expect(third).to_have_attribute("data-kev", "false")
    expect(third.locator(".kev-badge")).to_have_count(0)
    expect(page.locator("#findings-list .finding[data-kev='true']")).to_have_count(2)
    assert shown_ids(page) == [item["id"] for item in findings_api(jupiter, limit=25)["items"]]
    assert unnamed_controls(page) == []


def test_filters_and_pages_show_what_the_api_answers(
    page: Any, jupiter: Jupiter, imported: dict[str, int]
) -> None:
    """Severity, tool, asset and exploited-only filters, and Next/Previous, match the API."""
    open_dashboard(page, jupiter)
    everything = findings_api(jupiter)
    total = everything["total"]
    assert total > 25, "enough findings for two pages"
    expect(page.locator("#findings-range")).to_have_text(f"1–25 of {total}")
    expect(page.locator("#findings-prev")).to_be_disabled()
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#findings-range")).to_have_text(f"26–{total} of {total}")
    expect(page.locator("#findings-next")).to_be_disabled()
    assert shown_ids(page) == [item["id"] for item in everything["items"][25:]]
    page.get_by_role("button", name="Previous").click()
    expect(page.locator("#findings-range")).to_have_text(f"1–25 of {total}")

    panel = page.locator("#findings-panel")
    panel.get_by_label("Severity").select_option("low")
    low = findings_api(jupiter, severity="low")
    expect(page.locator("#findings-count")).to_have_text(f"{low['total']} matching")
    assert shown_ids(page) == [item["id"] for item in low["items"]]
    panel.get_by_label("Severity").select_option("")

    expect(panel.get_by_label("Tool").locator("option")).to_have_count(3)  # all, Bandit, trivy
    panel.get_by_label("Tool").select_option("trivy")
    expect(page.locator("#findings-count")).to_have_text("3 matching")
    expect(page.locator("#findings-list .finding[data-tool='trivy']")).to_have_count(3)
    panel.get_by_label("Tool").select_option("")

    panel.get_by_label("Asset").fill("shop")
    expect(page.locator("#findings-count")).to_have_text("3 matching")
    panel.get_by_label("Asset").fill("")
    expect(page.locator("#findings-count")).to_have_text(f"{total} findings")

    panel.get_by_label("Exploited in the wild only").check()
    expect(page.locator("#findings-count")).to_have_text("2 matching")
    expected = [item["id"] for item in findings_api(jupiter, kev="true")["items"]]
    assert shown_ids(page) == expected
    panel.get_by_label("Severity").select_option("info")
    expect(page.locator("#findings-list")).to_have_text("No findings match the filters.")


def test_detail_opens_from_the_keyboard_with_kev_action_and_cwe_mitigations(
    page: Any, jupiter: Jupiter, imported: dict[str, int]
) -> None:
    """Enter opens a finding's detail (focus moves in), Escape closes it (focus goes back)."""
    open_dashboard(page, jupiter)
    log4shell = page.locator("#findings-list .finding").first
    toggle = log4shell.locator(".finding-toggle")
    toggle.focus()
    page.keyboard.press("Enter")
    detail = log4shell.locator(".finding-detail")
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(detail.locator(".detail-heading")).to_be_focused()
    api = jupiter.http.get(f"/api/findings/{log4shell.get_attribute('data-id')}").json()
    kev = detail.locator(".detail-kev")
    expect(kev).to_contain_text("Apache Log4j2 Remote Code Execution Vulnerability")
    expect(kev).to_contain_text("Date added2021-12-10")
    expect(kev).to_contain_text("Due date2021-12-24")
    expect(kev).to_contain_text(LOG4SHELL["requiredAction"])
    expect(kev).to_contain_text("Known use in ransomware campaigns")
    expect(detail).to_contain_text("app/lib/log4j-core-2.14.1.jar")
    expect(detail).to_contain_text("Fixed in2.15.0")
    deserialisation = detail.locator('.cwe-entry[data-cwe="CWE-502"]')
    entry = next(c for c in api["cwe"] if c["id"] == "CWE-502")
    expect(deserialisation.locator("summary")).to_have_text(f"CWE-502: {entry['name']}")
    mitigations = deserialisation.locator(".mitigations li .mitigation-text")
    expect(mitigations).to_have_count(len(entry["mitigations"]))
    expect(mitigations.first).to_have_text(entry["mitigations"][0]["description"])

    page.keyboard.press("Escape")
    expect(detail).to_be_hidden()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(toggle).to_be_focused()

    # A Bandit finding: the code location, the snippet and CWE-78's mitigations.
    page.locator("#findings-panel").get_by_label("Tool").select_option("Bandit")
    page.locator("#findings-panel").get_by_label("Severity").select_option("high")
    shell = page.locator("#findings-list .finding").first
    expect(shell).to_have_attribute("data-tool", "Bandit")
    shell.locator(".finding-toggle").click()
    shell_detail = shell.locator(".finding-detail")
    expect(shell_detail).to_contain_text("Tool / ruleBandit / B602")
    expect(shell_detail.locator(".snippet")).to_contain_text("shell=True")
    expect(shell_detail.locator('.cwe-entry[data-cwe="CWE-78"] h5')).to_have_text("Mitigations")
    expect(
        shell_detail.locator('.cwe-entry[data-cwe="CWE-78"] .mitigations li').first
    ).to_be_visible()
    shell_detail.get_by_role("button", name="Close detail").click()
    expect(shell_detail).to_be_hidden()
    expect(shell.locator(".finding-toggle")).to_be_focused()


def test_hostile_finding_text_is_shown_as_text_and_never_runs(
    page: Any, jupiter: Jupiter, imported: dict[str, int]
) -> None:
    """A finding titled and described with HTML payloads shows them as text; nothing runs."""
    open_dashboard(page, jupiter)
    page.locator("#findings-panel").get_by_label("Asset").fill("shop")
    hostile = page.locator("#findings-list .finding", has_text="CVE-2024-3094")
    expect(hostile.locator(".finding-toggle")).to_have_text(XSS_FLAG)
    expect(hostile.locator(".finding-meta")).to_contain_text(XSS_ALERT)
    hostile.locator(".finding-toggle").click()
    expect(hostile.locator(".detail-message")).to_have_text(XSS_ALERT)
    assert page.locator("#findings-panel img, #findings-panel script").count() == 0
    page.wait_for_timeout(200)  # an onerror would fire as soon as the broken image failed
    assert page.evaluate("window.__xss") is None
    # The page fixture fails the test if an alert() dialog opened or a CSP violation happened.


def test_admin_import_and_delete_update_the_dashboard_live(
    page: Any, browser: Any, jupiter: Jupiter, imported: dict[str, int]
) -> None:
    """An admin import shows progress then findings on an open dashboard; deleting the scan
    (confirmed, with the session cookie and its CSRF token) removes them there without a
    reload."""
    dashboard = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    open_dashboard(dashboard, jupiter)
    before = findings_api(jupiter)["total"]
    expect(dashboard.locator("#findings-count")).to_have_text(f"{before} findings")
    dashboard.evaluate(
        """() => {
            window.progressSeen = [];
            const label = document.getElementById('scan-progress-label');
            new MutationObserver(() => window.progressSeen.push(label.textContent))
                .observe(label, {childList: true, characterData: true, subtree: true});
        }"""
    )
    billing_trivy = trivy_report(
        "registry.example/billing:0.9",
        [
            {
                "Target": "billing (debian 12.5)",
                "Class": "os-pkgs",
                "Type": "debian",
                "Vulnerabilities": [
                    vulnerability(
                        "CVE-2023-4863", "libwebp7", "1.2.4-0.1", "1.2.4-0.2+deb12u1", "HIGH"
                    ),
                    vulnerability(
                        "CVE-2023-44487", "nghttp2", "1.52.0-1", "1.52.0-1+deb12u1", "HIGH"
                    ),
                ],
            }
        ],
    )

    requests: list[Any] = []
    page.on("request", lambda r: requests.append(r) if "/api/scans" in r.url else None)
    sign_in_admin(page, jupiter)
    page.get_by_label("Scan file").set_input_files(
        {"name": "billing-trivy.json", "mimeType": "application/json", "buffer": billing_trivy}
    )
    page.get_by_label("Asset (optional)").fill("billing-prod")
    page.get_by_role("button", name="Import scan").click()
    expect(page.locator("#scan-import-result")).to_contain_text(
        re.compile(
            r"Imported billing-trivy\.json as scan #\d+: "
            r"trivy · 2 findings \(2 new, 1 exploited in the wild\)"
        )
    )
    scan_id = int(
        re.search(r"scan #(\d+)", page.locator("#scan-import-result").inner_text()).group(1)
    )
    scan_row = page.locator(f'#scan-rows tr[data-scan="{scan_id}"]')
    expect(scan_row).to_contain_text("billing-trivy.json")
    expect(scan_row).to_contain_text("billing-prod")
    expect(scan_row).to_contain_text("1 exploited")

    expect(dashboard.locator("#findings-count")).to_have_text(
        f"{before + 2} findings", timeout=3_000
    )
    expect(dashboard.locator("#findings-kev-count")).to_have_text("3 exploited in the wild")
    expect(dashboard.locator("#scan-progress-label")).to_contain_text("Imported billing-trivy.json")
    expect(dashboard.locator("#scan-progress-bar")).to_have_attribute("value", "100")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    dashboard.locator("#scan-progress").screenshot(
        path=str(ARTIFACTS / "findings-progress-1280.png")
    )
    seen = dashboard.evaluate("window.progressSeen")
    assert any(re.fullmatch(r"Importing billing-trivy\.json… \d+%", text) for text in seen), seen
    expect(dashboard.locator(".toast", has_text="Imported billing-trivy.json")).to_be_visible()

    # Cancelling the confirmation deletes nothing.
    scan_row.get_by_role("button", name=re.compile(f"Delete scan {scan_id}")).click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("2 findings only it reported")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert jupiter.http.get(f"/api/scans/{scan_id}").status_code == 200

    scan_row.get_by_role("button", name=re.compile(f"Delete scan {scan_id}")).click()
    dialog.get_by_role("button", name="Delete scan").click()
    expect(scan_row).to_have_count(0)
    expect(page.locator(".toast", has_text=f"Scan #{scan_id} deleted")).to_be_visible()
    assert jupiter.http.get(f"/api/scans/{scan_id}").status_code == 404
    deletes = [r for r in requests if r.method == "DELETE"]
    assert [r.url.rsplit("/", 1)[-1] for r in deletes] == [str(scan_id)]
    # The console holds no token: the HttpOnly cookie authenticates, X-CSRF-Token proves the
    # request came from the page that signed in.
    assert deletes[0].headers.get("authorization") is None
    assert deletes[0].headers.get("x-csrf-token")

    expect(dashboard.locator("#findings-count")).to_have_text(f"{before} findings", timeout=3_000)
    expect(dashboard.locator("#findings-kev-count")).to_have_text("2 exploited in the wild")
    expect(dashboard.locator(".toast", has_text=f"Scan {scan_id} deleted")).to_be_visible()
    [cookie] = page.context.cookies()
    assert (cookie["name"], cookie["httpOnly"], cookie["sameSite"]) == (
        "jupiter_session",
        True,
        "Strict",
    )
    assert ADMIN_TOKEN not in cookie["value"]
    dashboard.context.close()


def test_bad_uploads_show_the_servers_error_and_scan_error_reaches_the_dashboard(
    page: Any, browser: Any, jupiter: Jupiter, bandit_sarif: bytes
) -> None:
    """A malformed SARIF gets its 422 (with the JSON path) in the form that sent it, and every
    open dashboard shows the scan_error with its suggestion, styled like a chat error."""
    sarif = json.loads(bandit_sarif)
    sarif["runs"][0]["results"][0]["level"] = "loud"
    broken = json.dumps(sarif).encode()

    dashboard = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    sign_in_context(dashboard.context, jupiter.url)  # its own upload below needs analyst
    open_dashboard(dashboard, jupiter)
    sign_in_admin(page, jupiter)
    page.get_by_label("Scan file").set_input_files(
        {"name": "broken.sarif", "mimeType": "application/json", "buffer": broken}
    )
    page.get_by_role("button", name="Import scan").click()
    refusal = page.locator("#scan-import-error .scan-error")
    expect(refusal).to_contain_text("broken.sarif was not imported (HTTP 422)")
    expect(refusal.locator(".msg-text")).to_contain_text("$.runs[0].results[0].level")
    expect(refusal.locator(".msg-suggestion")).to_contain_text("Suggestion:")

    live = dashboard.locator("#scan-error .scan-error")
    expect(live).to_be_visible(timeout=3_000)
    expect(live).to_have_class(re.compile(r"\bmsg-error\b"))
    expect(live).to_contain_text("Import of broken.sarif failed")
    expect(live.locator(".msg-text")).to_contain_text("loud")
    expect(live.locator(".msg-suggestion")).to_contain_text("Suggestion: Check the file")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    dashboard.locator("#scan-error").screenshot(
        path=str(ARTIFACTS / "findings-scan-error-1280.png")
    )
    page.locator("#scan-import-form").screenshot(
        path=str(ARTIFACTS / "admin-scans-refusal-1280.png")
    )
    live.get_by_role("button", name="Dismiss").click()
    expect(dashboard.locator("#scan-error")).to_be_hidden()

    # The dashboard's own upload control: a file that is no scan at all gets the 415 message.
    dashboard.get_by_label("Import a scan file").set_input_files(
        {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"just some notes\n"}
    )
    dashboard.get_by_role("button", name="Import", exact=True).click()
    own = dashboard.locator("#findings-upload-error .scan-error")
    expect(own).to_contain_text("notes.txt was not imported (HTTP 415)")
    answer = jupiter.http.post("/api/scans", files={"file": ("notes.txt", b"just some notes\n")})
    assert answer.status_code == 415
    expect(own.locator(".msg-text")).to_have_text(answer.json()["error"]["message"])
    expect(own.locator(".msg-suggestion")).to_contain_text(answer.json()["error"]["suggestion"])
    dashboard.context.close()


def test_screenshots_at_both_widths_in_both_themes(
    browser: Any, jupiter: Jupiter, imported: dict[str, int]
) -> None:
    """The Findings panel (a detail open) and the Scans section at 1280 and 390 px, light and
    dark, with no sideways scrolling; written under artifacts/pages/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for width, height in WIDTHS.items():
        for scheme in ("light", "dark"):
            context = browser.new_context(
                viewport={"width": width, "height": height}, color_scheme=scheme
            )
            dashboard = context.new_page()
            open_dashboard(dashboard, jupiter)
            first = dashboard.locator("#findings-list .finding").first
            first.locator(".finding-toggle").click()
            expect(first.locator(".mitigations li").first).to_be_visible()
            dashboard.wait_for_timeout(200)
            assert unnamed_controls(dashboard) == []
            overflow = dashboard.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"the dashboard scrolls sideways by {overflow}px at {width}px"
            # The whole page, from the top: the sticky top bar is drawn where the page is scrolled.
            dashboard.evaluate("window.scrollTo(0, 0)")
            dashboard.screenshot(
                path=str(ARTIFACTS / f"findings-{width}-{scheme}.png"), full_page=True
            )
            # The panel's top (header, upload, filters) and its first finding, below the top bar.
            dashboard.evaluate(
                """() => window.scrollBy(0,
                    document.getElementById('findings-panel').getBoundingClientRect().top
                    - document.querySelector('.topbar').offsetHeight)"""
            )
            dashboard.screenshot(path=str(ARTIFACTS / f"findings-{width}-{scheme}-top.png"))
            first.scroll_into_view_if_needed()
            dashboard.screenshot(path=str(ARTIFACTS / f"findings-{width}-{scheme}-view.png"))

            admin = context.new_page()
            sign_in_context(context, jupiter.url)
            admin.goto(jupiter.url + "/admin")
            expect(admin.locator("#scan-rows tr[data-scan]").first).to_be_visible()
            admin.wait_for_timeout(200)
            assert unnamed_controls(admin) == []
            overflow = admin.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"the Admin Console scrolls sideways by {overflow}px at {width}px"
            admin.screenshot(
                path=str(ARTIFACTS / f"admin-scans-{width}-{scheme}.png"), full_page=True
            )
            context.close()
    assert (ARTIFACTS / "findings-390-dark.png").stat().st_size > 0
