"""What can be wrong with a scan file, each error naming the problem and where it is.

Input errors are the uploader's fault: they map to a 4xx, never trip the scan breaker and
carry a ``location`` (a JSON path such as ``$.runs[0].results[12].level`` or an XML
``line``/``column``) whenever the parser knows it.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "MalformedScanError",
    "ScanError",
    "ScanInputError",
    "TruncatedUploadError",
    "UnsafeXmlError",
    "UnsupportedFormatError",
    "UploadTooLargeError",
]


class ScanError(Exception):
    """Base class of every error the scans package raises itself."""


class ScanInputError(ScanError):
    """The submitted scan cannot be imported; the message says why and where."""

    status_code: int = 422
    problem: str = "invalid_scan"
    suggestion: str = "Check the file is the complete, unmodified output of the scanner."

    def __init__(
        self,
        message: str,
        *,
        json_path: str | None = None,
        line: int | None = None,
        column: int | None = None,
        scan_format: str | None = None,
    ) -> None:
        self.detail = message
        self.json_path = json_path
        self.line = line
        self.column = column
        self.scan_format = scan_format
        super().__init__(self._describe())

    def _describe(self) -> str:
        where = self.location_text()
        return f"{self.detail} (at {where})" if where else self.detail

    def location_text(self) -> str:
        """``$.a[1].b`` or ``line 3, column 7``; empty when the position is unknown."""
        if self.json_path:
            return self.json_path
        if self.line is not None:
            return f"line {self.line}" + (
                f", column {self.column}" if self.column is not None else ""
            )
        return ""

    def location(self) -> dict[str, Any] | None:
        """The machine-readable position for an error body, or None."""
        if self.json_path:
            return {"json_path": self.json_path}
        if self.line is not None:
            return {"line": self.line, "column": self.column}
        return None

    def to_dict(self) -> dict[str, Any]:
        """Fields for an error body or a ``scan_error`` event (no internals, no file content)."""
        body: dict[str, Any] = {"problem": self.problem, "detail": self.detail}
        if self.scan_format:
            body["format"] = self.scan_format
        where = self.location()
        if where:
            body["location"] = where
        return body


class MalformedScanError(ScanInputError):
    """The file is not well-formed JSON/XML, or breaks its format's schema."""

    problem = "malformed_scan"


class UnsupportedFormatError(ScanInputError):
    """The file is not one of the formats Jupiter imports, or not the format that was named."""

    status_code = 415
    problem = "unsupported_format"
    suggestion = "Upload SARIF 2.1.0, Trivy JSON, Grype JSON or Nmap XML (-oX), or name the format."


class UnsafeXmlError(MalformedScanError):
    """The XML declares entities (XXE, billion laughs); they are refused, never expanded."""

    problem = "unsafe_xml"
    suggestion = "Upload the XML exactly as nmap wrote it; entity declarations are not allowed."


class TruncatedUploadError(ScanInputError):
    """The upload ended before the size it announced, or before the multipart body closed."""

    status_code = 400
    problem = "truncated_upload"
    suggestion = "Upload the file again; the connection ended before the whole file arrived."


class UploadTooLargeError(ScanInputError):
    """The upload is bigger than ``settings.scan_max_upload_bytes``."""

    status_code = 413
    problem = "upload_too_large"
    suggestion = "Split the scan, or raise JUPITER_SCAN_MAX_UPLOAD_BYTES."

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"the upload is larger than the {limit}-byte limit")

    def to_dict(self) -> dict[str, Any]:
        body = super().to_dict()
        body["limit_bytes"] = self.limit
        return body
