"""jupiter.scans: import SARIF, Trivy, Grype and Nmap results, normalise and deduplicate the
findings, enrich them with CISA KEV and CWE knowledge, and run imports as a guarded job.

Public names live in private modules and are re-exported here, loaded on first use: the parser
worker (``python -m jupiter.scans._worker``) imports this package too, and must start without
the database layer (SQLAlchemy alone takes most of a second to import).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._detect import FORMATS, detect_format
    from ._enrich import (
        CRITICAL_EXPLOITED,
        CweLookup,
        Enrichment,
        FindingEnricher,
        KevCatalog,
        KevLookup,
        KevLookupMany,
        cwe_entry_to_dict,
        kev_summary,
    )
    from ._errors import (
        MalformedScanError,
        ParserCrashedError,
        ParserFailedError,
        ScanError,
        ScanInputError,
        ScanLimitError,
        TruncatedUploadError,
        UnsafeXmlError,
        UnsupportedFormatError,
        UploadTooLargeError,
    )
    from ._finding import ParsedFinding, ScanHeader, Severity, fingerprint_of
    from ._importer import ImportProgress, ImportResult, ScanImporter
    from ._limits import ScanLimits
    from ._parsers import ScanParser
    from ._queries import FindingFilters
    from ._service import (
        ScanJob,
        ScanProcessingFailedError,
        ScanProcessingUnavailableError,
        ScanService,
        create_service,
    )
    from ._worker import ParserPool

#: Each public name and the private module defining it.
_WHERE = {
    "FORMATS": "_detect",
    "detect_format": "_detect",
    "CRITICAL_EXPLOITED": "_enrich",
    "CweLookup": "_enrich",
    "Enrichment": "_enrich",
    "FindingEnricher": "_enrich",
    "KevCatalog": "_enrich",
    "KevLookup": "_enrich",
    "KevLookupMany": "_enrich",
    "cwe_entry_to_dict": "_enrich",
    "kev_summary": "_enrich",
    "MalformedScanError": "_errors",
    "ParserCrashedError": "_errors",
    "ParserFailedError": "_errors",
    "ScanError": "_errors",
    "ScanInputError": "_errors",
    "ScanLimitError": "_errors",
    "TruncatedUploadError": "_errors",
    "UnsafeXmlError": "_errors",
    "UnsupportedFormatError": "_errors",
    "UploadTooLargeError": "_errors",
    "ParsedFinding": "_finding",
    "ScanHeader": "_finding",
    "Severity": "_finding",
    "fingerprint_of": "_finding",
    "ImportProgress": "_importer",
    "ImportResult": "_importer",
    "ScanImporter": "_importer",
    "ScanParser": "_parsers",
    "ScanLimits": "_limits",
    "FindingFilters": "_queries",
    "ScanJob": "_service",
    "ScanProcessingFailedError": "_service",
    "ScanProcessingUnavailableError": "_service",
    "ScanService": "_service",
    "create_service": "_service",
    "ParserPool": "_worker",
}

__all__ = [
    "CRITICAL_EXPLOITED",
    "FORMATS",
    "CweLookup",
    "Enrichment",
    "FindingEnricher",
    "FindingFilters",
    "ImportProgress",
    "ImportResult",
    "KevCatalog",
    "KevLookup",
    "KevLookupMany",
    "MalformedScanError",
    "ParsedFinding",
    "ParserCrashedError",
    "ParserFailedError",
    "ParserPool",
    "ScanError",
    "ScanHeader",
    "ScanImporter",
    "ScanInputError",
    "ScanJob",
    "ScanLimitError",
    "ScanLimits",
    "ScanParser",
    "ScanProcessingFailedError",
    "ScanProcessingUnavailableError",
    "ScanService",
    "Severity",
    "TruncatedUploadError",
    "UnsafeXmlError",
    "UnsupportedFormatError",
    "UploadTooLargeError",
    "create_service",
    "cwe_entry_to_dict",
    "detect_format",
    "fingerprint_of",
    "kev_summary",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
