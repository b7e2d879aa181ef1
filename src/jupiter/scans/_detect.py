"""Format detection from the first bytes of a file. Pure: bytes in, format name out."""

from __future__ import annotations

import re

import ijson

from ._errors import MalformedScanError, UnsupportedFormatError

__all__ = ["FORMATS", "detect_format"]

#: The formats Jupiter imports, by the name an uploader may give.
FORMATS = ("sarif", "trivy", "grype", "nmap")

_SARIF_KEYS = {"runs", "$schema", "inlineExternalProperties"}
_TRIVY_KEYS = {"SchemaVersion", "ArtifactName", "ArtifactType", "Results", "CreatedAt"}
_GRYPE_KEYS = {"matches", "ignoredMatches", "descriptor", "distro", "source"}
_XML_ROOT = re.compile(rb"<([A-Za-z_][\w.\-]*)[\s/>]")


def _top_level_keys(head: bytes) -> list[str]:
    """The top-level object keys readable within ``head`` (it may stop mid-document)."""
    keys: list[str] = []
    try:
        for prefix, event, value in ijson.parse(head):
            if prefix == "" and event == "map_key":
                keys.append(value)
    except ijson.IncompleteJSONError as exc:
        if (
            not keys
            and "premature" not in str(exc).lower()
            and "incomplete" not in str(exc).lower()
        ):
            raise MalformedScanError(
                f"malformed JSON: {str(exc).splitlines()[0]}", json_path="$"
            ) from None
    return keys


def _xml_root(head: bytes) -> str | None:
    position = 0
    while True:
        match = _XML_ROOT.search(head, position)
        if match is None:
            return None
        before = head[max(0, match.start() - 1) : match.start() + 2]
        if not before.startswith((b"<?", b"<!")):
            return match.group(1).decode("ascii", "replace")
        position = match.end()


def detect_format(head: bytes) -> str:
    """Name the format of a file from its first bytes, or raise naming what it looks like."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not text:
        raise MalformedScanError("the file is empty")
    if text.startswith(b"<"):
        if b"<!ENTITY" in head:
            # Decided by the parser (which refuses it), so the error names the line.
            return "nmap"
        root = _xml_root(text)
        if root == "nmaprun":
            return "nmap"
        raise UnsupportedFormatError(
            f"XML with root <{root or '?'}> is not an Nmap report (nmap -oX)"
        )
    if not text.startswith(b"{"):
        raise UnsupportedFormatError(
            "the file is neither JSON (SARIF, Trivy, Grype) nor XML (Nmap)"
        )
    keys = _top_level_keys(text)
    found = set(keys)
    if found & _SARIF_KEYS or (b'"ruleId"' in text and b'"results"' in text):
        return "sarif"
    if found & _TRIVY_KEYS or b'"VulnerabilityID"' in text:
        return "trivy"
    if found & _GRYPE_KEYS or (b'"vulnerability"' in text and b'"artifact"' in text):
        return "grype"
    shown = ", ".join(keys[:8]) or "none readable"
    raise UnsupportedFormatError(f"JSON with top-level keys ({shown}) is not SARIF, Trivy or Grype")
