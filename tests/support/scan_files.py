"""Small valid scan files of each format, each with a hole where a test puts hostile content,
and the hostile contents themselves (deep nesting, huge numbers and strings, entity bombs...).

``scan_with(fmt, hole)`` is the valid file with ``hole`` (raw bytes) at a place the parser reads:
a SARIF result's ``rank``, a Trivy vulnerability's ``Layer``, a Grype match's ``epss``, an Nmap
port's script ``output`` attribute (XML text and attributes take ``xml_text``/``xml_attribute``).
"""

from __future__ import annotations

import gzip
import io
import json
from typing import Any

__all__ = [
    "FORMATS",
    "JSON_FORMATS",
    "VALID_HOLE",
    "big_trivy",
    "billion_laughs",
    "gzip_bomb",
    "hole_path",
    "scan_with",
    "valid_scan",
    "xxe",
]

FORMATS = ("sarif", "trivy", "grype", "nmap")
JSON_FORMATS = ("sarif", "trivy", "grype")
#: What fills the hole in a valid file.
VALID_HOLE = {"sarif": b"1", "trivy": b"null", "grype": b"null", "nmap": b"ok"}
_HOLE = "@@HOLE@@"

_SARIF = {
    "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
    "version": "2.1.0",
    "runs": [
        {
            "tool": {"driver": {"name": "Bandit", "version": "1.7.9", "rules": []}},
            "results": [
                {
                    "ruleId": "B602",
                    "level": "error",
                    "message": {"text": "subprocess call with shell=True"},
                    "locations": [
                        {
                            "physicalLocation": {
                                "artifactLocation": {"uri": "app.py"},
                                "region": {"startLine": 4, "startColumn": 12},
                            }
                        }
                    ],
                    "rank": _HOLE,
                    "properties": {"issue_severity": "HIGH", "issue_confidence": "HIGH"},
                }
            ],
        }
    ],
}

_TRIVY = {
    "SchemaVersion": 2,
    "CreatedAt": "2025-08-20T10:00:00Z",
    "ArtifactName": "registry.example/app:1.4",
    "ArtifactType": "container_image",
    "Results": [
        {
            "Target": "registry.example/app:1.4 (debian 12.5)",
            "Class": "os-pkgs",
            "Type": "debian",
            "Vulnerabilities": [
                {
                    "VulnerabilityID": "CVE-2024-3094",
                    "PkgID": "xz-utils@5.6.0",
                    "PkgName": "xz-utils",
                    "InstalledVersion": "5.6.0",
                    "FixedVersion": "5.6.1",
                    "Severity": "CRITICAL",
                    "Title": "xz: malicious code in the upstream tarballs",
                    "Layer": _HOLE,
                    "CVSS": {"nvd": {"V3Score": 10.0}},
                }
            ],
        }
    ],
}

_GRYPE = {
    "matches": [
        {
            "vulnerability": {
                "id": "CVE-2021-44228",
                "severity": "Critical",
                "namespace": "github:language:java",
                "cvss": [{"version": "3.1", "metrics": {"baseScore": 10.0}}],
                "fix": {"versions": ["2.15.0"], "state": "fixed"},
                "epss": _HOLE,
            },
            "relatedVulnerabilities": [],
            "matchDetails": [{"type": "exact-direct-match", "matcher": "java-matcher"}],
            "artifact": {
                "name": "log4j-core",
                "version": "2.14.1",
                "type": "java-archive",
                "locations": [{"path": "/app/lib/log4j-core-2.14.1.jar"}],
                "purl": "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1",
            },
        }
    ],
    "source": {"type": "image", "target": {"userInput": "registry.example/api:2.0"}},
    "distro": {"name": "alpine", "version": "3.19.1"},
    "descriptor": {"name": "grype", "version": "0.79.0"},
}

_NMAP = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE nmaprun>
<nmaprun scanner="nmap" args="nmap -sV 10.0.0.5" start="1755000000" version="7.93"
 xmloutputversion="1.05">
<host><status state="up" reason="syn-ack"/>
<address addr="10.0.0.5" addrtype="ipv4"/>
<ports>
<port protocol="tcp" portid="22"><state state="open" reason="syn-ack"/>
<service name="ssh" product="OpenSSH" version="9.2p1"/>
<script id="banner" output="@@ATTRIBUTE@@">@@TEXT@@</script>
</port>
</ports>
</host>
<runstats><finished time="1755000010"/><hosts up="1" down="0" total="1"/></runstats>
</nmaprun>
"""


def _json_with(document: dict[str, Any], hole: bytes) -> bytes:
    text = json.dumps(document, indent=1).encode()
    return text.replace(json.dumps(_HOLE).encode(), hole)


def scan_with(fmt: str, hole: bytes | None = None, *, xml_text: bytes = b"") -> bytes:
    """The valid ``fmt`` file with ``hole`` in it (for Nmap: in the script's ``output``
    attribute; ``xml_text`` goes between its tags)."""
    hole = VALID_HOLE[fmt] if hole is None else hole
    if fmt == "sarif":
        return _json_with(_SARIF, hole)
    if fmt == "trivy":
        return _json_with(_TRIVY, hole)
    if fmt == "grype":
        return _json_with(_GRYPE, hole)
    if fmt == "nmap":
        return _NMAP.encode().replace(b"@@ATTRIBUTE@@", hole).replace(b"@@TEXT@@", xml_text)
    raise ValueError(fmt)


def valid_scan(fmt: str) -> bytes:
    return scan_with(fmt)


def hole_path(fmt: str) -> str:
    """The JSON path of the hole (where a limit error inside it is reported)."""
    return {
        "sarif": "$.runs[0].results[0].rank",
        "trivy": "$.Results[0].Vulnerabilities[0].Layer",
        "grype": "$.matches[0].vulnerability.epss",
    }[fmt]


def billion_laughs(levels: int = 10) -> bytes:
    """The classic entity-expansion bomb, as an Nmap report."""
    entities = ['<!ENTITY lol "lol">'] + [
        f'<!ENTITY lol{n} "{("&lol" + (str(n - 1) if n > 1 else "") + ";") * 10}">'
        for n in range(1, levels)
    ]
    return (
        '<?xml version="1.0"?>\n<!DOCTYPE nmaprun [\n' + "\n".join(entities) + "\n]>\n"
        f'<nmaprun scanner="nmap"><host><address addr="&lol{levels - 1};"/></host></nmaprun>\n'
    ).encode()


def xxe(target: str = "file:///etc/passwd") -> bytes:
    """An external entity reading a local file, as an Nmap report."""
    return (
        '<?xml version="1.0"?>\n'
        f'<!DOCTYPE nmaprun [<!ENTITY xxe SYSTEM "{target}">]>\n'
        '<nmaprun scanner="nmap"><host><address addr="10.0.0.1"/>'
        "<hostnames><hostname name='&xxe;'/></hostnames></host></nmaprun>\n"
    ).encode()


def gzip_bomb(expanded_mb: int = 200) -> bytes:
    """A small gzip file that expands to ``expanded_mb`` MB of zeros (about 1,000:1)."""
    out = io.BytesIO()
    block = b"\0" * (1024 * 1024)
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as archive:
        for _ in range(expanded_mb):
            archive.write(block)
    return out.getvalue()


def big_trivy(vulnerabilities: int = 60_000) -> bytes:
    """A valid Trivy report of about 20 MB: long enough to be caught mid-parse."""
    entry = json.dumps(
        {
            "VulnerabilityID": "CVE-2024-%d",
            "PkgID": "pkg-%d@1.0",
            "PkgName": "pkg-%d",
            "InstalledVersion": "1.0",
            "FixedVersion": "1.1",
            "Severity": "HIGH",
            "Title": "a flaw in the parser of package %d",
            "Description": "A flaw was found. " * 8,
            "CVSS": {"nvd": {"V3Score": 7.5}},
        }
    )
    template = entry.replace("{", "{{").replace("}", "}}").replace("%d", "{0}")
    items = ",".join(template.format(n) for n in range(vulnerabilities))
    return (
        '{"SchemaVersion": 2, "ArtifactName": "registry.example/big:1", "Results": [{"Target":'
        f' "big (debian 12)", "Class": "os-pkgs", "Type": "debian", "Vulnerabilities": [{items}]'
        "}]}"
    ).encode()
