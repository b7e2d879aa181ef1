"""Nmap XML: real output from Debian's nmap against a port this test opens on 127.0.0.1, vulners
and vulns-library script output, and hostile XML (XXE, billion laughs) refused by defusedxml."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import missing_service
from jupiter.scans import (
    MalformedScanError,
    ScanImporter,
    Severity,
    UnsafeXmlError,
    UnsupportedFormatError,
)
from jupiter.scans._nmap import NmapParser
from jupiter.scans._source import ScanSource

SSH_BANNER = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"


@pytest.fixture
def banner_port() -> Iterator[int]:
    """A TCP server on 127.0.0.1 (free port) that greets like OpenSSH, so -sV is quick."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                continue
            with connection:
                try:
                    connection.sendall(SSH_BANNER)
                    connection.settimeout(0.3)
                    connection.recv(1024)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(timeout=2)
    server.close()


def run_nmap(port: int, output: Path) -> Path:
    """Debian's nmap, service detection plus the banner script, against 127.0.0.1 only."""
    nmap = shutil.which("nmap") or "/usr/bin/nmap"
    if not Path(nmap).exists():
        missing_service("Debian's nmap is not installed at /usr/bin/nmap")
    command = [nmap, "-sV", "--script", "banner", "-p", str(port), "-oX", str(output), "127.0.0.1"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=90)
    assert completed.returncode == 0, completed.stderr
    return output


def parse(path: Path) -> tuple[NmapParser, list[Any]]:
    parser = NmapParser(ScanSource(path))
    return parser, list(parser.findings())


def test_real_nmap_output_gives_the_open_port_with_service_and_script(
    tmp_path: Path, banner_port: int
) -> None:
    """nmap -sV on our port: host, open port, service, product and version, banner output."""
    output = run_nmap(banner_port, tmp_path / "nmap.xml")
    parser, findings = parse(output)
    assert parser.header.tool == "nmap"
    assert parser.header.tool_version
    assert str(banner_port) in parser.header.details["args"]
    (finding,) = findings
    assert finding.asset == "127.0.0.1"
    assert finding.location == f"{banner_port}/tcp"
    assert finding.rule_id == "open-port"
    assert finding.severity is Severity.INFO
    service = finding.details["service"]
    assert service["name"] == "ssh"
    assert service["product"] == "OpenSSH"
    assert service["version"].startswith("9.2p1")
    assert "cpe:/a:openbsd:openssh:9.2p1" in finding.details["cpes"]
    assert finding.details["scripts"]["banner"] == SSH_BANNER.decode().strip()
    assert finding.details["state"] == "open"


def test_real_nmap_import_is_idempotent(
    tmp_path: Path, banner_port: int, importer: ScanImporter
) -> None:
    """Importing nmap's XML twice stores the open port once."""
    output = run_nmap(banner_port, tmp_path / "nmap.xml")
    first = importer.import_file(output)
    second = importer.import_file(output)
    assert (first.format, first.findings, first.new) == ("nmap", 1, 1)
    assert second.duplicate
    assert second.scan_id == first.scan_id


VULNERS_HOST = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE nmaprun>
<nmaprun scanner="nmap" args="nmap -sV --script vulners,ssl-heartbleed 10.0.0.5"
 start="1755000000" version="7.93" xmloutputversion="1.05">
<host><status state="up" reason="syn-ack"/>
<address addr="10.0.0.5" addrtype="ipv4"/>
<address addr="52:54:00:12:34:56" addrtype="mac"/>
<hostnames><hostname name="web.internal" type="PTR"/></hostnames>
<ports>
<port protocol="tcp" portid="22"><state state="closed" reason="reset"/></port>
<port protocol="tcp" portid="443"><state state="open" reason="syn-ack"/>
<service name="https" product="Apache httpd" version="2.4.49" method="probed" conf="10">
<cpe>cpe:/a:apache:http_server:2.4.49</cpe></service>
<script id="vulners"
 output="&#xa;  cpe:/a:apache:http_server:2.4.49: &#xa;    CVE-2021-41773 7.5">
<table key="cpe:/a:apache:http_server:2.4.49">
<table><elem key="is_exploit">true</elem><elem key="cvss">7.5</elem>
<elem key="id">CVE-2021-41773</elem><elem key="type">cve</elem></table>
<table><elem key="is_exploit">false</elem><elem key="cvss">5.3</elem>
<elem key="id">CVE-2021-34798</elem><elem key="type">cve</elem></table>
<table><elem key="is_exploit">true</elem><elem key="cvss">7.5</elem>
<elem key="id">EDB-ID:50383</elem><elem key="type">exploitdb</elem></table>
</table>
</script>
<script id="ssl-heartbleed" output="VULNERABLE: The Heartbleed Bug">
<table key="NMAP-2">
<elem key="title">The Heartbleed Bug is a serious vulnerability in OpenSSL</elem>
<elem key="state">VULNERABLE</elem>
<table key="ids"><elem>CVE:CVE-2014-0160</elem></table>
<table key="description"><elem>OpenSSL 1.0.1 through 1.0.1f leaks memory.</elem></table>
<table key="refs"><elem>https://www.openssl.org/news/secadv_20140407.txt</elem></table>
</table>
</script>
</port>
</ports></host>
<host><status state="down" reason="no-response"/><address addr="10.0.0.6" addrtype="ipv4"/></host>
<runstats><finished time="1755000100" exit="success"/><hosts up="1" down="1" total="2"/></runstats>
</nmaprun>
"""


def test_vulners_and_vulns_library_scripts_become_cve_findings(tmp_path: Path) -> None:
    """vulners entries with CVE ids and VULNERABLE vulns-library tables become CVE findings.

    The XML follows nmap's output of the vulners.nse and ssl-heartbleed.nse scripts (written by
    hand: those scripts need the internet or a vulnerable server)."""
    path = tmp_path / "vulners.xml"
    path.write_text(VULNERS_HOST)
    parser, findings = parse(path)
    assert parser.skipped == 1  # the host that is down
    by_rule = {finding.rule_id: finding for finding in findings}
    assert set(by_rule) == {"open-port", "CVE-2021-41773", "CVE-2021-34798", "CVE-2014-0160"}
    assert {f.asset for f in findings} == {"10.0.0.5"}
    assert {f.location for f in findings} == {"443/tcp"}
    traversal = by_rule["CVE-2021-41773"]
    assert traversal.severity is Severity.HIGH
    assert traversal.details["is_exploit"] is True
    assert traversal.details["cpe"] == "cpe:/a:apache:http_server:2.4.49"
    assert by_rule["CVE-2021-34798"].severity is Severity.MEDIUM
    heartbleed = by_rule["CVE-2014-0160"]
    assert heartbleed.cve_ids == ["CVE-2014-0160"]
    assert heartbleed.severity is Severity.HIGH
    assert heartbleed.title.startswith("The Heartbleed Bug")
    assert by_rule["open-port"].details["hostnames"] == ["web.internal"]


XXE = """<?xml version="1.0"?>
<!DOCTYPE nmaprun [
  <!ENTITY xxe SYSTEM "file:///etc/passwd">
]>
<nmaprun scanner="nmap"><host><status state="up"/><address addr="&xxe;"/></host></nmaprun>
"""

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<nmaprun>&lol3;</nmaprun>
"""


@pytest.mark.parametrize(("document", "line"), [(XXE, 3), (BILLION_LAUGHS, 3)])
def test_entity_declarations_are_refused_with_their_line(
    tmp_path: Path, importer: ScanImporter, document: str, line: int
) -> None:
    """XXE and billion-laughs documents are refused (never expanded) and nothing is stored."""
    path = tmp_path / "evil.xml"
    path.write_text(document)
    with pytest.raises(UnsafeXmlError) as caught:
        importer.import_file(path)
    assert caught.value.line == line
    assert "passwd" not in str(caught.value)


def test_truncated_nmap_xml_names_the_line(tmp_path: Path) -> None:
    """An nmap run cut off mid-file is refused as truncated, with the line where it ends."""
    path = tmp_path / "cut.xml"
    lines = VULNERS_HOST.splitlines(keepends=True)[:12]
    path.write_text("".join(lines))
    with pytest.raises(MalformedScanError) as caught:
        parse(path)
    assert "truncated" in caught.value.detail
    assert caught.value.line == 13


def test_malformed_xml_names_line_and_column(tmp_path: Path) -> None:
    """A mismatched tag is refused with its line and column."""
    path = tmp_path / "bad.xml"
    path.write_text('<?xml version="1.0"?>\n<nmaprun>\n<host>\n</hots>\n</nmaprun>\n')
    with pytest.raises(MalformedScanError) as caught:
        parse(path)
    assert (caught.value.line, caught.value.column) == (4, 2)


def test_xml_that_is_not_nmap_is_an_unsupported_format(tmp_path: Path) -> None:
    """An XML document with another root (e.g. a JUnit report) is refused as unsupported."""
    path = tmp_path / "junit.xml"
    path.write_text('<?xml version="1.0"?>\n<testsuite name="x"></testsuite>\n')
    with pytest.raises(UnsupportedFormatError):
        parse(path)
