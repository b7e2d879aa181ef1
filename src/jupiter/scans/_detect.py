"""Format detection from the first bytes of a file. Pure: bytes in, format name out.

It runs in the server process (before the file goes to the parser worker), so it reads the head
(at most 64 KB) with the bounded pure-Python tokenizer only: no C parser, nothing nested deeper
than 64 levels, no number or string longer than the head is ever built.
"""

from __future__ import annotations

import re

from ._errors import MalformedScanError, UnsupportedFormatError
from ._tokenize import top_level_keys

__all__ = ["FORMATS", "CompressedFileError", "detect_format"]

#: The formats Jupiter imports, by the name an uploader may give.
FORMATS = ("sarif", "trivy", "grype", "nmap")

_SARIF_KEYS = {"runs", "$schema", "inlineExternalProperties"}
_TRIVY_KEYS = {"SchemaVersion", "ArtifactName", "ArtifactType", "Results", "CreatedAt"}
_GRYPE_KEYS = {"matches", "ignoredMatches", "descriptor", "distro", "source"}
_ARCHIVES = (
    (b"\x1f\x8b", "gzip-compressed"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"BZh", "bzip2-compressed"),
    (b"\xfd7zXZ\x00", "xz-compressed"),
    (b"(\xb5/\xfd", "zstd-compressed"),
)
_XML_ROOT = re.compile(rb"<([A-Za-z_][\w.\-]*)[\s/>]")


class CompressedFileError(UnsupportedFormatError):
    """A compressed file or archive: never unpacked, whatever format it was named as."""


#: The most of a file's head that is read for detection.
HEAD_BYTES = 65536


def _top_level_keys(head: bytes) -> list[str]:
    """The top-level object keys readable within ``head`` (it may stop mid-document)."""
    keys, error = top_level_keys(head[:HEAD_BYTES])
    if error is not None and not keys and not error.truncated:
        what = "the file is not valid UTF-8 text" if error.encoding else f"malformed JSON: {error}"
        raise MalformedScanError(what, json_path="$")
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
    for magic, kind in _ARCHIVES:
        if text.startswith(magic):
            # Never unpacked here (a small archive can hold gigabytes): the uploader does it.
            raise CompressedFileError(
                f"the file is {kind}; upload the scan uncompressed (SARIF, Trivy or Grype JSON,"
                " or Nmap XML)"
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
