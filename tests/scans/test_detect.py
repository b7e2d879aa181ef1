"""Format detection from a file's first bytes."""

from __future__ import annotations

import json

import pytest

from jupiter.scans import MalformedScanError, UnsupportedFormatError, detect_format


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b'{"runs": [{"tool": {"driver": {"name": "Bandit"}}', "sarif"),  # Bandit: runs first
        (b'\xef\xbb\xbf\n {"$schema": "https://json.schemastore.org/sarif-2.1.0.json"', "sarif"),
        (b'{"SchemaVersion": 2, "CreatedAt": "2025-08-20", "ArtifactName": "x"', "trivy"),
        (b'{"matches": [{"vulnerability": {"id": "CVE-2021-44228"}, "artifact": {', "grype"),
        (
            b'<?xml version="1.0"?>\n<!DOCTYPE nmaprun>\n<?xml-stylesheet href="x"?>\n'
            b'<!-- Nmap 7.93 -->\n<nmaprun scanner="nmap">',
            "nmap",
        ),
    ],
)
def test_known_formats_are_detected_from_their_first_bytes(head: bytes, expected: str) -> None:
    """Each supported format is recognised from a prefix of the file, even mid-document."""
    assert detect_format(head) == expected


def test_other_json_names_the_keys_it_found() -> None:
    """JSON of another kind (the KEV catalog) is unsupported, naming its top-level keys."""
    head = json.dumps({"title": "CISA KEV", "catalogVersion": "2025.08.25"}).encode()
    with pytest.raises(UnsupportedFormatError, match="title, catalogVersion"):
        detect_format(head)


@pytest.mark.parametrize("head", [b"PK\x03\x04", b"plain text", b"<html><body/></html>"])
def test_other_content_is_unsupported(head: bytes) -> None:
    """Archives, text and non-Nmap XML are refused as unsupported formats."""
    with pytest.raises(UnsupportedFormatError):
        detect_format(head)


def test_empty_or_broken_json_is_malformed() -> None:
    """An empty file, or JSON broken at its start, is malformed rather than unsupported."""
    with pytest.raises(MalformedScanError, match="empty"):
        detect_format(b"  \n")
    with pytest.raises(MalformedScanError):
        detect_format(b"{[1, 2]}")
