"""What can be wrong with a scan file, each error naming the problem and where it is.

Input errors are the uploader's fault: they map to a 4xx, never trip the scan breaker and
carry a ``location`` (a JSON path such as ``$.runs[0].results[12].level`` or an XML
``line``/``column``) whenever the parser knows it.
"""

from __future__ import annotations

from typing import Any

from jupiter.limits import LIMIT_DESCRIPTIONS, InputLimitError

__all__ = [
    "LIMIT_SETTINGS",
    "MalformedScanError",
    "ParserCrashedError",
    "ParserFailedError",
    "ScanCancelledError",
    "ScanError",
    "ScanInputError",
    "ScanLimitError",
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


#: The setting that raises each parsing limit (named in the error's suggestion).
LIMIT_SETTINGS = {
    "max_bytes": "JUPITER_SCAN_MAX_UPLOAD_BYTES",
    "max_depth": "JUPITER_SCAN_MAX_DEPTH",
    "max_string_chars": "JUPITER_SCAN_MAX_STRING_CHARS",
    "max_text_chars": "JUPITER_SCAN_MAX_STRING_CHARS",
    "max_attribute_chars": "JUPITER_SCAN_MAX_STRING_CHARS",
    "max_number_chars": "JUPITER_SCAN_MAX_NUMBER_CHARS",
    "max_values": "JUPITER_SCAN_MAX_VALUES",
    "max_elements": "JUPITER_SCAN_MAX_VALUES",
    "max_items": "JUPITER_SCAN_MAX_FINDINGS",
    "max_item_bytes": "JUPITER_SCAN_MAX_FINDING_BYTES",
    "max_seconds": "JUPITER_SCAN_MAX_SECONDS",
    "max_memory_bytes": "JUPITER_SCAN_MAX_MEMORY_BYTES",
}


#: What the upload's own limits measure (the rest are in ``jupiter.limits``).
_UPLOAD_LIMITS = {
    "max_parts": "number of parts",
    "max_part_headers": "number of headers in one part",
    "max_part_header_bytes": "size of one header line of a part in bytes",
}


class ScanLimitError(ScanInputError):
    """The file went over one of the parsing limits (``jupiter.limits`` conventions): the error
    names the limit, its maximum and where (JSON path or XML line). Nothing is stored."""

    status_code = 413
    problem = "input_limit_exceeded"

    def __init__(
        self,
        limit: str,
        maximum: float,
        *,
        actual: float | None = None,
        json_path: str | None = None,
        line: int | None = None,
        column: int | None = None,
        scan_format: str | None = None,
        what: str = "the scan",
        suggestion: str | None = None,
    ) -> None:
        self.limit = limit
        self.maximum = maximum
        self.actual = actual
        setting = LIMIT_SETTINGS.get(limit)
        self.suggestion = suggestion or (
            f"If the file is genuine scanner output, raise {setting}."
            if setting
            else "Split the scan into smaller files."
        )
        # The wording of jupiter.limits (location left to ScanInputError's message).
        detail = str(InputLimitError(limit, maximum, what=what, actual=actual))
        if limit in _UPLOAD_LIMITS and limit not in LIMIT_DESCRIPTIONS:
            detail = detail.replace(f": {limit}", f": {_UPLOAD_LIMITS[limit]}", 1)
        super().__init__(
            detail, json_path=json_path, line=line, column=column, scan_format=scan_format
        )

    @classmethod
    def from_input_limit(
        cls, exc: InputLimitError, scan_format: str | None = None
    ) -> ScanLimitError:
        return cls(
            exc.limit,
            exc.maximum,
            actual=exc.actual,
            json_path=exc.json_path,
            line=exc.line,
            column=exc.column,
            scan_format=scan_format,
        )

    def to_dict(self) -> dict[str, Any]:
        body = super().to_dict()
        body["limit"] = self.limit
        body["maximum"] = self.maximum
        if self.actual is not None:
            body["actual"] = self.actual
        return body


class ParserCrashedError(ScanInputError):
    """The parser worker died on this file (a signal such as SIGSEGV, or an unexpected exit).
    Only the worker died; nothing was stored."""

    problem = "parser_crashed"
    suggestion = (
        "The file made the scan parser crash; check it is unmodified scanner output. The rest"
        " of Jupiter is unaffected."
    )

    def __init__(self, signal_name: str | None, exit_status: int | None = None, **kwargs: Any):
        self.signal = signal_name
        self.exit_status = exit_status
        how = f"signal {signal_name}" if signal_name else f"exit status {exit_status}"
        super().__init__(
            f"the scan parser crashed on this file ({how}); nothing was stored", **kwargs
        )

    def to_dict(self) -> dict[str, Any]:
        body = super().to_dict()
        if self.signal:
            body["signal"] = self.signal
        else:
            body["exit_status"] = self.exit_status
        return body


class ParserFailedError(ScanInputError):
    """The parser raised an unexpected error on this file (a shape it does not handle).
    Counted as the file's problem, not as a failure of scan processing."""

    problem = "parser_failed"


class ScanCancelledError(ScanError):
    """The import was cancelled (server shutdown); its parser worker was stopped."""

    problem = "scan_cancelled"
    suggestion = "Jupiter was shutting down; upload the file again. Nothing was stored."
